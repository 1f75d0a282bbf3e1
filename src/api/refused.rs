//! Endpoints of the Engine API that the cluster does not serve, each
//! refused with a message that says so and why, instead of a bare `404
//! page not found` (or worse, a path read as an object's name).
//!
//! - Swarm mode (`/swarm`, `/nodes`, `/services`, `/tasks`, `/secrets`,
//!   `/configs`): `503` with the message an engine outside swarm mode
//!   answers ("This node is not a swarm manager."), so tools that
//!   recognise it behave as against a single engine, followed by what
//!   this cluster is and where to look instead.
//! - Plugins and BuildKit's sessions: `501 Not Implemented`, naming the
//!   call ("is not supported by this cluster") and what to do instead.

use axum::extract::Request;
use axum::http::StatusCode;

use super::ApiError;

/// Swarm mode's endpoints: `503`, as an engine outside swarm mode.
pub(super) async fn swarm_mode(request: Request) -> ApiError {
    let path = request.uri().path();
    let resource = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "This node is not a swarm manager. It is a classic-style cluster manager ({}), \
             which does not serve swarm mode (/{resource}): containers are run with \
             \"docker run\" and placed by the cluster's scheduler, and \"docker info\" \
             lists the cluster's nodes.",
            super::system::server_version()
        ),
    )
}

/// `/plugins/...`: `501`.
pub(super) async fn plugins(request: Request) -> ApiError {
    not_served(
        &request,
        "plugins are installed on each engine, not on the cluster; manage them on \
         each node (docker -H ENGINE plugin ...)",
    )
}

/// `POST /session`: `501`.
pub(super) async fn session(request: Request) -> ApiError {
    not_served(
        &request,
        "sessions serve BuildKit builds, which the cluster does not serve; \
         build with the legacy builder (DOCKER_BUILDKIT=0 docker build ...)",
    )
}

/// `501 Not Implemented`: `METHOD PATH is not supported by this cluster:
/// why`. The words "not supported" matter: `docker inspect NAME` asks for
/// a plugin NAME too when no container, image, network or volume has the
/// name, and goes on to "No such object" only past an error that says
/// "not supported" (or a 404).
fn not_served(request: &Request, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "{} {} is not supported by this cluster: {why}",
            request.method(),
            request.uri().path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(method: &str, path: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn swarm_mode_is_refused_as_an_engine_outside_it() {
        let error = swarm_mode(request("GET", "/nodes")).await;
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            error
                .message
                .starts_with("This node is not a swarm manager."),
            "{}",
            error.message
        );
        assert!(error.message.contains("(/nodes)"), "{}", error.message);
        let error = swarm_mode(request("POST", "/services/web/update")).await;
        assert!(error.message.contains("(/services)"), "{}", error.message);
    }

    #[tokio::test]
    async fn the_rest_is_not_implemented_and_says_why() {
        let error = plugins(request("POST", "/plugins/pull")).await;
        assert_eq!(error.status, StatusCode::NOT_IMPLEMENTED);
        assert!(
            error
                .message
                .starts_with("POST /plugins/pull is not supported by this cluster: plugins"),
            "{}",
            error.message
        );
        let error = session(request("POST", "/session")).await;
        assert_eq!(error.status, StatusCode::NOT_IMPLEMENTED);
    }
}
