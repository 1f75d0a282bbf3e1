//! `POST /build` (`docker build`, the legacy builder): parsed here, run
//! by the manager on a node the scheduler picks ([`Manager::build`]), the
//! engine's progress streamed back.
//!
//! [`Manager::build`]: crate::manager::Manager::build

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::Extension;

use super::{query_of, ApiError, App, ClientVersion};
use crate::manager::BuildRequest;

/// `POST /build`: the context (the body) streamed to the chosen node.
pub(super) async fn build(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let query = query_of(&request);
    let (request, _) = super::proxy::outgoing(request, "/build")?;
    let answer = app
        .manager
        .build(BuildRequest {
            prefix: version.prefix(),
            query,
            request,
        })
        .await?;
    Ok(answer)
}
