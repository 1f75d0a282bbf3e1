//! Token discovery and the cluster's discovery URL on the API
//! (`/_swarm/tokens`, `/_swarm/discovery`): `swarm create`, `swarm join
//! token://...`, `swarm list token://...` and `swarmctl discovery` call
//! these. Each parses, calls the manager once, renders.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{json_response, query_of, query_param, ApiError, App};

/// A registration's length when the join names none (classic's `--ttl`).
const DEFAULT_TTL: Duration = Duration::from_secs(180);

/// `POST /_swarm/tokens`: a new token, as text (as Docker Hub answered
/// `swarm create`).
pub(super) async fn create(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let token = app.manager.create_token().await?;
    let mut answer = Response::new(Body::from(token));
    *answer.status_mut() = StatusCode::CREATED;
    Ok(answer)
}

/// `POST /_swarm/tokens/{token}?addr=IP:PORT&ttl=SECONDS`: registers an
/// engine.
pub(super) async fn register(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let query = query_of(&request);
    let addr = query_param(&query, "addr")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("no engine to register: the query needs addr=IP:PORT")
        })?;
    let ttl = match query_param(&query, "ttl") {
        None => DEFAULT_TTL,
        Some(text) => text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| ApiError::bad_request(format!("invalid ttl {text:?}: seconds")))?,
    };
    app.manager.register_engine(&token, &addr, ttl).await?;
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::CREATED;
    Ok(answer)
}

/// `GET /_swarm/tokens/{token}`: the engines registered now, a JSON list.
pub(super) async fn engines(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let engines = app.manager.token_engines(&token)?;
    Ok(json_response(StatusCode::OK, &engines))
}

/// `DELETE /_swarm/tokens/{token}`.
pub(super) async fn delete(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    app.manager.delete_token(&token).await?;
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::NO_CONTENT;
    Ok(answer)
}

/// `GET /_swarm/discovery`: `{"URL": ...}`, the cluster's discovery
/// (`null` until a leader recorded it).
pub(super) async fn discovery(State(app): State<Arc<App>>) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "URL": app.manager.cluster_discovery() }),
    )
}

/// `POST /_swarm/discovery?url=URL`: changes the cluster's discovery.
pub(super) async fn set_discovery(
    State(app): State<Arc<App>>,
    request: Request,
) -> Result<Response, ApiError> {
    let url = query_param(&query_of(&request), "url")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("no discovery: the query needs url=URL"))?;
    app.manager.set_discovery(&url).await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "URL": url }),
    ))
}
