//! Manager replication on the API: followers hand every request to the
//! leader, and the `/_swarm/*` endpoints serve `swarmctl` (members, join,
//! remove).

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{json_response, ApiError, App, ClientVersion};
use crate::upstream::Upstream;

/// Paths every manager answers itself from its replicated state.
const LOCAL: [&str; 4] = ["/_ping", "/version", "/info", "/_swarm/state"];

/// Idle connections a follower keeps to its leader: every client's request
/// goes over them, many at once, and with the engines' one idle connection
/// nearly every forwarded request opened a connection of its own (and each
/// would be a handshake once managers talk TLS).
const LEADER_IDLE: usize = 64;

/// The connection details of the leader, kept while it stays the same.
#[derive(Default)]
pub struct LeaderClient(Mutex<Option<(String, Arc<Upstream>)>>);

impl LeaderClient {
    /// The client of the leader at `addr`, over TLS with `tls` when given.
    fn get(
        &self,
        addr: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Arc<Upstream>, ApiError> {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, client)) = cached.as_ref() {
            if known == addr {
                return Ok(client.clone());
            }
        }
        let url = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("tcp://{addr}")
        };
        let client = Arc::new(
            Upstream::connecting(&url, tls)
                .map_err(|e| ApiError::internal(format!("primary address {addr}: {e}")))?
                .keeping_idle(LEADER_IDLE),
        );
        *cached = Some((addr.to_string(), client.clone()));
        Ok(client)
    }
}

/// Where a request is served.
pub(super) enum Served {
    /// By this manager: the request, to route.
    Here(Request),
    /// Forwarded to the leader, or refused: the answer.
    Answered(Response),
}

/// On a follower, forwards the request (bodies streaming, upgrades spliced)
/// to the leader and gives its answer; answers 503 when there is no leader,
/// or when this leader has lost its quorum. Gives the request back when
/// this manager serves it itself (the leader, or a path every manager
/// answers).
pub(super) async fn forward_to_leader(app: &App, request: Request) -> Served {
    let manager = &app.manager;
    if LOCAL.contains(&request.uri().path()) {
        return Served::Here(request);
    }
    if manager.is_leader() {
        if manager.lost_quorum() {
            // Possibly deposed already: acting on engines now could race the
            // new leader.
            return Served::Answered(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("no leader: {}", manager.quorum_text().await),
                )
                .into_response(),
            );
        }
        return Served::Here(request);
    }
    let Some(leader) = manager.leader_api() else {
        return Served::Answered(
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no leader: {}", manager.quorum_text().await),
            )
            .into_response(),
        );
    };
    let prefix = request
        .extensions()
        .get::<ClientVersion>()
        .map(ClientVersion::prefix)
        .unwrap_or_default();
    let target = format!(
        "{prefix}{}",
        request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let leader_client = match app.leader.get(&leader, manager.config.peer_tls.as_ref()) {
        Ok(client) => client,
        Err(e) => return Served::Answered(e.into_response()),
    };
    tracing::debug!(%leader, %target, "forwarding to the primary");
    // Until the leader's answer begins: if this manager stops taking it for
    // the leader (it stopped hearing it and calls an election, or another
    // leads), the answer may never come; the client hears so at once.
    let forwarded = super::proxy::forward(&leader_client, request, &target);
    let answer = tokio::select! {
        answer = forwarded => answer,
        () = manager.leader_left(&leader) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "lost touch with it before it answered; the request may or may not have \
             taken effect",
        )),
    };
    Served::Answered(match answer {
        Ok(response) => response,
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("primary {leader} did not answer: {}", e.message),
        )
        .into_response(),
    })
}

/// `GET /_swarm/state[?containers=1]`: this manager's own copy of the
/// replicated state, never forwarded: role, term, applied index and a
/// digest to compare across managers, with the containers when asked.
pub(super) async fn state(State(app): State<Arc<App>>, request: Request) -> Response {
    let query = super::query_of(&request);
    let with_list =
        super::query_param(&query, "containers").is_some_and(|v| v == "1" || v == "true");
    match app.manager.state_view(with_list) {
        Ok(view) => json_response(StatusCode::OK, &view),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /_swarm/members`: every manager with its Raft state.
pub(super) async fn members(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, &app.manager.members().await)
}

/// Body of `POST /_swarm/join`.
#[derive(Debug, Deserialize)]
pub(super) struct JoinRequest {
    id: u64,
    raft_addr: String,
    api_addr: String,
    /// The state format the joining manager reads (absent from `swarmctl
    /// join-manager`, which adds a manager by hand).
    #[serde(default)]
    format: Option<u32>,
}

/// `POST /_swarm/join`: adds a manager as a learner; it is made a voter
/// once it has caught up. Answers `{"id": N, "role": "voter"|"learner"}`
/// (the role after up to 10 s).
pub(super) async fn join(
    State(app): State<Arc<App>>,
    body: Result<Json<JoinRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(join) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if join.id == 0 || join.raft_addr.is_empty() || join.api_addr.is_empty() {
        return Err(ApiError::bad_request(
            "join needs a non-zero id, a raft_addr and an api_addr",
        ));
    }
    let ours = <crate::cluster::ClusterState as swarm_raft::StateMachine>::FORMAT;
    if let Some(theirs) = join.format.filter(|f| *f != ours) {
        // Its log would hold entries it cannot read.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "this cluster's managers write state format {ours} and the joining manager reads format {theirs}: run the same version of swarm on every manager"
            ),
        ));
    }
    tracing::info!(id = join.id, raft = %join.raft_addr, api = %join.api_addr, "adding a manager");
    let role = app
        .manager
        .add_manager(join.id, join.raft_addr, join.api_addr)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "id": join.id, "role": role }),
    ))
}

/// Body of `POST /_swarm/remove`.
#[derive(Debug, Deserialize)]
pub(super) struct RemoveRequest {
    id: u64,
}

/// `POST /_swarm/remove`: removes a manager from the membership.
pub(super) async fn remove(
    State(app): State<Arc<App>>,
    body: Result<Json<RemoveRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(remove) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    tracing::info!(id = remove.id, "removing a manager");
    app.manager.remove_manager(remove.id).await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({})))
}
