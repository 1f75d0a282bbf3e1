//! A TLS connection of the API: the handshake, in the connection's own
//! task and within the header timeout (a silent client holds up nobody
//! and keeps its place no longer than one that sends no head), then the
//! decrypted stream served as any other. A client that speaks plain HTTP
//! to the TLS port gets the answer Go's servers (dockerd's) give it, as
//! JSON, instead of a dropped connection.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{serve_stream, Conn};
use crate::ca::CertKind;

/// The client of a TLS connection, as its certificate says (an extension
/// of every request of the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsClient {
    /// The kind of the certificate it showed (verified against the CA by
    /// the handshake); `None`: no certificate, or not one of the built-in
    /// CA's kinds.
    pub kind: Option<CertKind>,
}

/// Go's answer to plain HTTP on a TLS port, as Docker's JSON error.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: application/json\r\n\
Connection: close\r\n\
Content-Length: 62\r\n\
\r\n\
{\"message\":\"Client sent an HTTP request to an HTTPS server.\"}\n";

/// Runs the TLS handshake on `stream` and serves the connection.
pub(super) async fn serve_tls(stream: TcpStream, config: Arc<rustls::ServerConfig>, conn: Conn) {
    let timeout = conn.slot.shared.limits.header_timeout;
    let handshake = async {
        if speaks_plain_http(&stream).await {
            answer_plain_http(stream).await;
            return None;
        }
        match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
            Ok(tls) => Some(tls),
            Err(e) => {
                tracing::debug!(error = %e, "API TLS handshake failed");
                None
            }
        }
    };
    let tls = match tokio::time::timeout(timeout, handshake).await {
        Ok(Some(tls)) => tls,
        Ok(None) => return,
        Err(_) => {
            tracing::debug!("API TLS handshake timed out");
            return;
        }
    };
    let kind = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| crate::ca::peer_kind(leaf).ok().flatten());
    serve_stream(tls, conn, Some(TlsClient { kind })).await;
}

/// Writes [`PLAIN_HTTP_ANSWER`], then reads what the client sent (a
/// little, briefly) before closing: a socket closed with unread bytes
/// resets the connection, and the client may lose the answer with it.
async fn answer_plain_http(mut stream: TcpStream) {
    if stream.write_all(PLAIN_HTTP_ANSWER).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

/// Whether the client's first byte starts an HTTP method (a TLS client
/// starts with a handshake record, 0x16). Waits for that byte.
async fn speaks_plain_http(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_http_answer_is_well_formed() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse().ok())
            .expect("content length");
        assert_eq!(body.len(), length);
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(
            json["message"],
            "Client sent an HTTP request to an HTTPS server."
        );
    }
}
