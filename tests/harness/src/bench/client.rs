//! HTTP/1.1 to a manager (or an engine) for benchmarks.
//!
//! [`Client`] keeps one connection open across requests, as the `docker`
//! CLI does within one command, so a latency is the server's work plus one
//! loopback round trip, not a TCP handshake each time. [`oneshot`] sends one
//! request on a fresh connection (through [`Upstream::send`]).
//!
//! Once [`use_tls`] was called, every [`Client::manager`] of a TCP address
//! speaks TLS with that configuration (a run against managers serving
//! `--tlsverify`: its client certificate), while engines stay plain; a
//! client's handshake is paid once per connection, as the docker CLI pays
//! it once per command.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Method;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use swarm::upstream::{Addr, Dialer, Upstream};

/// An answer: status code and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body, read to its end.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `STATUS message` for error reports (see [`message`]).
    pub fn describe(&self) -> String {
        format!("{} {}", self.status, message(&self.body))
    }
}

/// The TLS configuration of every [`Client::manager`], once set.
static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Makes every [`Client::manager`] of a TCP address made from now on speak
/// TLS with `config`, for the rest of the process. Only the first call
/// counts.
pub fn use_tls(config: Arc<rustls::ClientConfig>) {
    let _ = TLS.set(config);
}

/// One HTTP/1.1 connection to an address, opened on first use and again
/// after an error; requests on one client go one at a time.
pub struct Client {
    addr: Addr,
    /// How connections are opened: plain, or TLS once [`use_tls`] was called.
    dialer: Dialer,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
    connects: u64,
}

impl Client {
    /// A client of `addr` (`tcp://IP:PORT`, `IP:PORT` or `unix:///path`),
    /// in plain HTTP; each request (connecting included) must end within
    /// `timeout`.
    pub fn new(addr: &str, timeout: Duration) -> Result<Client, String> {
        Client::dialling(addr, timeout, None)
    }

    /// A client of the manager at `addr`: over TLS once [`use_tls`] was
    /// called (and `addr` is TCP), else as [`Client::new`].
    pub fn manager(addr: &str, timeout: Duration) -> Result<Client, String> {
        Client::dialling(addr, timeout, TLS.get())
    }

    fn dialling(
        addr: &str,
        timeout: Duration,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Client, String> {
        let addr = Addr::parse(addr.trim()).map_err(|e| e.to_string())?;
        let dialer = match (tls, &addr) {
            (Some(config), Addr::Tcp(_)) => {
                Dialer::tls(addr.clone(), config.clone()).map_err(|e| e.to_string())?
            }
            _ => Dialer::plain(addr.clone()),
        };
        Ok(Client {
            addr,
            dialer,
            sender: None,
            timeout,
            connects: 0,
        })
    }

    /// The address, as `tcp://IP:PORT` or `unix:///path`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// How many connections this client opened so far.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<Answer, String> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body if given.
    pub async fn post(&mut self, path: &str, body: Option<&Value>) -> Result<Answer, String> {
        self.request(Method::POST, path, body).await
    }

    /// Sends one request (with a JSON body if given) and reads the whole
    /// answer; on any error the connection is dropped, and the next request
    /// opens a new one. A request is never sent twice.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let timeout = self.timeout;
        let outcome = tokio::time::timeout(timeout, self.exchange(method, path, body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
        if outcome.is_err() {
            self.sender = None;
        }
        outcome
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "docker");
        let payload = match body {
            Some(value) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(value.to_string())
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| e.to_string())?;
        let sender = self.ready().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{}: {e}", self.addr))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{}: reading the answer: {e}", self.addr))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// The open connection, ready for a request, opening one if needed.
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if let Some(sender) = self.sender.as_mut() {
            if sender.ready().await.is_err() {
                self.sender = None;
            }
        }
        if self.sender.is_none() {
            let conn = self
                .dialer
                .dial()
                .await
                .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
                .await
                .map_err(|e| format!("{}: {e}", self.addr))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.connects += 1;
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| format!("{}: no connection", self.addr))
    }
}

/// Sends one request on a fresh connection to `engine` (a raw body with its
/// content type, if any) and reads the whole answer, or says why there was
/// none within `timeout`.
pub async fn oneshot(
    engine: &Upstream,
    method: Method,
    path: &str,
    body: Option<(Bytes, &str)>,
    timeout: Duration,
) -> Result<Answer, String> {
    let mut builder = hyper::Request::builder().method(method).uri(path);
    let payload = match body {
        Some((bytes, content_type)) => {
            builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
            bytes
        }
        None => Bytes::new(),
    };
    let request = builder
        .body(Full::new(payload))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = engine.send(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// [`oneshot`] with a JSON body.
pub async fn oneshot_json(
    engine: &Upstream,
    method: Method,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Answer, String> {
    let body = body.map(|b| (Bytes::from(b.to_string()), "application/json"));
    oneshot(engine, method, path, body, timeout).await
}

/// The `message` of a Docker-shaped error body, else the body as text.
pub fn message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

/// An error message with `IP:PORT`, `os error N`, manager counts and long
/// hex IDs replaced by placeholders, cut to 160 characters: one kind of
/// error gives one key.
pub fn fold_error(why: &str) -> String {
    static FOLD: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let folded = match FOLD.get_or_init(|| {
        regex::Regex::new(r"\d+\.\d+\.\d+\.\d+:\d+|os error \d+|has \d+ of \d+|[0-9a-f]{12,}").ok()
    }) {
        Some(re) => re
            .replace_all(why, |c: &regex::Captures<'_>| {
                let m = &c[0];
                if m.starts_with("os") {
                    "os error N".to_string()
                } else if m.starts_with("has") {
                    "has K of N".to_string()
                } else if m.contains('.') {
                    "ADDR".to_string()
                } else {
                    "ID".to_string()
                }
            })
            .into_owned(),
        None => why.to_string(),
    };
    folded.chars().take(160).collect()
}

/// Failures counted by kind (see [`fold_error`]); at most `limit` kinds
/// are kept, the others are only counted in the total.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Errors {
    /// All failures.
    pub total: u64,
    /// Failures by folded message.
    pub kinds: BTreeMap<String, u64>,
}

impl Errors {
    /// At most this many distinct kinds are kept.
    const KINDS: usize = 20;

    /// Counts one failure.
    pub fn add(&mut self, why: &str) {
        self.total += 1;
        let key = fold_error(why);
        if self.kinds.len() < Self::KINDS || self.kinds.contains_key(&key) {
            *self.kinds.entry(key).or_default() += 1;
        }
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &Errors) {
        self.total += other.total;
        for (key, n) in &other.kinds {
            if self.kinds.len() < Self::KINDS || self.kinds.contains_key(key) {
                *self.kinds.entry(key.clone()).or_default() += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_addresses_errnos_and_ids() {
        assert_eq!(
            fold_error("connecting to tcp://127.0.0.1:4001: os error 111"),
            "connecting to tcp://ADDR: os error N"
        );
        assert_eq!(
            fold_error("503 no leader: cluster has 1 of 3 managers"),
            "503 no leader: cluster has K of N managers"
        );
        assert_eq!(
            fold_error("404 no such container: 0123456789abcdef0123"),
            "404 no such container: ID"
        );
    }

    #[test]
    fn errors_count_kinds() {
        let mut e = Errors::default();
        e.add("a 127.0.0.1:1");
        e.add("a 127.0.0.1:2");
        e.add("b");
        assert_eq!(e.total, 3);
        assert_eq!(e.kinds["a ADDR"], 2);
        let mut f = Errors::default();
        f.merge(&e);
        assert_eq!(f.total, 3);
        assert_eq!(f.kinds.len(), 2);
    }

    #[test]
    fn messages() {
        assert_eq!(message(br#"{"message":"no"}"#), "no");
        assert_eq!(message(b" plain \n"), "plain");
    }
}
