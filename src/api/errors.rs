//! Docker-shaped errors: `{"message": "..."}` with the status code the
//! engine would answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::cluster::{ApplyError, LookupError, ProposeError};
use crate::engine::EngineError;
use crate::manager::ManagerError;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::NotFound(_) => ApiError::not_found(e.to_string()),
            LookupError::Ambiguous(_) => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::NameInUse { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            ApplyError::UnknownToken(_) => ApiError::not_found(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::Refused(e) => e.into(),
            ProposeError::NotLeader(_) | ProposeError::NoQuorum(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            ProposeError::Raft(_) => ApiError::internal(e.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e.status().and_then(|s| StatusCode::from_u16(s).ok()) {
            Some(status) => ApiError::new(status, e.engine_message()),
            None => ApiError::internal(e.to_string()),
        }
    }
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::Lookup(e) => e.into(),
            ManagerError::Propose(e) => e.into(),
            ManagerError::Engine(e) => e.into(),
            ManagerError::Unschedulable(e) => ApiError::internal(e.to_string()),
            ManagerError::InvalidRequest(message) => ApiError::bad_request(message),
            ManagerError::NoSuchExec(_) | ManagerError::NoSuchManager(_) => {
                ApiError::not_found(e.to_string())
            }
            ManagerError::Membership(message) | ManagerError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, message)
            }
            ManagerError::NotFound(message) => ApiError::not_found(message),
            ManagerError::Ambiguous(message) => ApiError::bad_request(message),
            ManagerError::NoHealthyNode(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            ManagerError::NoEngine(_) | ManagerError::Reschedule(_) | ManagerError::Internal(_) => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn renders_docker_json() {
        let response = ApiError::not_found("No such container: x").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"message": "No such container: x"})
        );
    }

    #[test]
    fn maps_statuses() {
        let e: ApiError = LookupError::NotFound("x".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e: ApiError = LookupError::Ambiguous("x".into()).into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e: ApiError = ApplyError::NameInUse {
            name: "a".into(),
            holder: "b".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert!(e.message.contains("\"/a\" is already in use"));
        let e: ApiError = ManagerError::InvalidRequest("no image was specified".into()).into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.message, "no image was specified");
        let e: ApiError = ManagerError::NoSuchExec("abc".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "No such exec instance: abc");
        let e: ApiError = ManagerError::NoSuchManager(7).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "no manager with id 7");
        let e: ApiError = ManagerError::Membership("a change is in progress".into()).into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        let e: ApiError = ManagerError::NoHealthyNode("prune containers on".into()).into();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.message, "no healthy node to prune containers on");
    }
}
