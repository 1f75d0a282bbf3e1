//! Pass-through of one client request to one engine (or, on a follower,
//! to the leader): bodies stream both ways unbuffered, and upgraded
//! connections (attach, exec start) are spliced byte for byte until either
//! side closes.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::errors::ApiError;
use crate::upstream::{PoolBody, Upstream};

/// Headers that belong to one hop, never forwarded as they are.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::HOST,
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, keep_upgrade: bool) {
    for (name, value) in from {
        let hop = HOP_BY_HOP.contains(name) || name.as_str() == "keep-alive";
        let upgrade_header = *name == header::CONNECTION || *name == header::UPGRADE;
        if !hop || (keep_upgrade && upgrade_header) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Sends `request` to `upstream` (an engine, or the leader) at
/// `path_and_query` (which replaces the client's URI) and returns its
/// answer as the client's.
pub async fn forward(
    upstream: &Upstream,
    request: Request<Body>,
    path_and_query: &str,
) -> Result<Response<Body>, ApiError> {
    let (outgoing, upgrade) = outgoing(request, path_and_query)?;
    let response = upstream
        .send(outgoing)
        .await
        .map_err(crate::engine::EngineError::from)?;
    answer(response, upgrade, path_and_query)
}

/// The client's request as sent on to an engine at `path_and_query`
/// (hop-by-hop headers dropped), and the client's side of an upgrade it
/// asks for.
pub fn outgoing(
    mut request: Request<Body>,
    path_and_query: &str,
) -> Result<(Request<Body>, Option<OnUpgrade>), ApiError> {
    let wants_upgrade = request.headers().contains_key(header::UPGRADE);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let mut outgoing = Request::builder()
        .method(parts.method)
        .uri(path_and_query)
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))?;
    copy_headers(&parts.headers, outgoing.headers_mut(), wants_upgrade);
    Ok((outgoing, client_upgrade))
}

/// The engine's `response` as the client's answer: the body streams
/// through; an upgraded connection is spliced to the client's
/// (`client_upgrade`) byte for byte.
pub fn answer(
    mut response: Response<PoolBody>,
    client_upgrade: Option<OnUpgrade>,
    path_and_query: &str,
) -> Result<Response<Body>, ApiError> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ApiError::internal(
                "engine upgraded a connection that did not ask for it",
            ));
        };
        let engine_upgrade = hyper::upgrade::on(&mut response);
        let path = path_and_query.to_string();
        tokio::spawn(async move {
            match tokio::join!(client_upgrade, engine_upgrade) {
                (Ok(client), Ok(engine)) => {
                    tracing::debug!(%path, "hijacked stream open");
                    let mut client = TokioIo::new(client);
                    let mut engine = TokioIo::new(engine);
                    match tokio::io::copy_bidirectional(&mut client, &mut engine).await {
                        Ok((to_engine, to_client)) => {
                            tracing::debug!(%path, to_engine, to_client, "hijacked stream ended")
                        }
                        Err(e) => tracing::debug!(%path, error = %e, "hijacked stream failed"),
                    }
                }
                (Err(e), _) | (_, Err(e)) => tracing::debug!(%path, error = %e, "upgrade failed"),
            }
        });
        let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        if let Some(headers) = answer.headers_mut() {
            copy_headers(response.headers(), headers, true);
        }
        return answer
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }

    let (parts, body) = response.into_parts();
    let mut answer = Response::new(Body::new(body));
    *answer.status_mut() = parts.status;
    copy_headers(&parts.headers, answer.headers_mut(), false);
    Ok(answer)
}

/// An engine's answer read whole, as the client's (hop-by-hop headers
/// dropped).
pub fn whole_answer(response: Response<bytes::Bytes>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let mut answer = Response::new(Body::from(body));
    *answer.status_mut() = parts.status;
    copy_headers(&parts.headers, answer.headers_mut(), false);
    answer
}

/// Reads a whole (small) engine answer: status and body.
pub async fn read_body(
    response: Response<Body>,
    limit: usize,
) -> Result<(StatusCode, HeaderMap, bytes::Bytes), ApiError> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| ApiError::internal(format!("reading engine answer: {e}")))?;
    Ok((parts.status, parts.headers, bytes))
}

/// Turns a non-success engine answer into the client's error, keeping the
/// engine's status and message.
pub fn engine_error(status: StatusCode, body: &[u8]) -> ApiError {
    ApiError::new(status, crate::upstream::error_message(body))
}
