//! `/volumes`: list, create, inspect, remove and prune across the cluster
//! (the semantics are the manager's: `src/manager/volumes.rs`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::networks::{json_object, no_content};
use super::{json_response, query_of, ApiError, App};

/// `GET /volumes`.
pub(super) async fn list(
    State(app): State<Arc<App>>,
    request: Request,
) -> Result<Response, ApiError> {
    let volumes = app.manager.list_volumes(&query_of(&request)).await?;
    Ok(json_response(StatusCode::OK, &volumes))
}

/// `POST /volumes/create`.
pub(super) async fn create(
    State(app): State<Arc<App>>,
    request: Request,
) -> Result<Response, ApiError> {
    let body = json_object(request).await?;
    let created = app.manager.create_volume(body).await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

/// `GET /volumes/{ref}` and `DELETE /volumes/{ref}`; `ref` may be
/// `node/name`.
pub(super) async fn dispatch(
    State(app): State<Arc<App>>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    let reference = percent_encoding::percent_decode_str(
        path.strip_prefix("/volumes/")
            .unwrap_or("")
            .trim_end_matches('/'),
    )
    .decode_utf8_lossy()
    .into_owned();
    let manager = &app.manager;
    match request.method().clone() {
        Method::GET => {
            let volume = manager.inspect_volume(&reference).await?;
            Ok(json_response(StatusCode::OK, &volume))
        }
        Method::DELETE => {
            manager
                .remove_volume(&reference, &query_of(&request))
                .await?;
            Ok(no_content())
        }
        method => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed on {path}"),
        )),
    }
}
