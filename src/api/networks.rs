//! `/networks`: list, inspect, create, connect, disconnect, remove and
//! prune across the cluster (the semantics are the manager's:
//! `src/manager/networks.rs`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::{json_response, query_of, split_action, ApiError, App};

/// `GET /networks`.
pub(super) async fn list(
    State(app): State<Arc<App>>,
    request: Request,
) -> Result<Response, ApiError> {
    let networks = app.manager.list_networks(&query_of(&request)).await?;
    Ok(json_response(StatusCode::OK, &networks))
}

/// `POST /networks/create`.
pub(super) async fn create(
    State(app): State<Arc<App>>,
    request: Request,
) -> Result<Response, ApiError> {
    let body = json_object(request).await?;
    let created = app.manager.create_network(body).await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

/// `GET /networks/{ref}`, `DELETE /networks/{ref}`, `POST
/// /networks/{ref}/connect|disconnect`; `ref` may be `node/name`.
pub(super) async fn dispatch(
    State(app): State<Arc<App>>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    let rest = path.strip_prefix("/networks/").unwrap_or("");
    let (reference, action) = split_action(rest, &["connect", "disconnect"]);
    let manager = &app.manager;
    match (request.method().clone(), action.as_deref()) {
        (Method::GET, None) => {
            let network = manager
                .inspect_network(&reference, &query_of(&request))
                .await?;
            Ok(json_response(StatusCode::OK, &network))
        }
        (Method::DELETE, None) => {
            manager.remove_network(&reference).await?;
            Ok(no_content())
        }
        (Method::POST, Some(action)) => {
            let body = json_object(request).await?;
            manager.connect_network(&reference, body, action).await?;
            Ok(json_response(StatusCode::OK, &Value::Null))
        }
        (method, _) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed on {path}"),
        )),
    }
}

/// A request's JSON object body (read whole: the front bounded it); an
/// empty body is an empty object.
pub(super) async fn json_object(request: Request) -> Result<Map<String, Value>, ApiError> {
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    }
}

/// `204 No Content`.
pub(super) fn no_content() -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
