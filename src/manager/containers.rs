//! The container lifecycle: every write the cluster makes to a container
//! goes through here, for the API and the rescheduler alike.
//!
//! - [`Manager::create_container`]: a `docker create` from the API. The body
//!   is validated and given its `com.docker.swarm.id`, the scheduler places
//!   it and `Reserve` holds the name and resources ([`Manager::reserve`]),
//!   then [`Manager::create_reserved`] sends it to the chosen engine and
//!   records the container in place of its reservation. A failed create
//!   releases its reservation.
//! - [`Manager::create_reserved`]: the engine half of a create on a node
//!   reserved already; the rescheduler re-creates containers with it.
//! - [`Manager::change_container`]: start, stop, kill, restart, pause,
//!   unpause, rename, update and remove. The request goes to the
//!   container's engine; once the engine accepted it, the state is brought
//!   in line before the answer goes back (the engine's event awaited, the
//!   container read back, or its removal recorded), so the next request
//!   sees the change.

use std::time::Duration;

use axum::body::Body;
use bollard::models::ContainerCreateBody;
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;

use super::{Manager, ManagerError};
use crate::cluster::{
    ApplyError, Command, Container, ContainerState, ProposeError, Reservation, SWARM_ID_LABEL,
};
use crate::scheduler::ContainerSpec;
use crate::upstream::PoolBody;

/// How long a start waits for its engine event before it reads the
/// container back instead.
const EVENT_WAIT: Duration = Duration::from_secs(2);

/// A `docker create` as the API received it.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The name asked for (`?name=`, without the leading slash; checked
    /// against Docker's name rule by the caller).
    pub name: Option<String>,
    /// The create body, as the client sent it.
    pub body: Bytes,
    /// Path and query to send to the engine (`/v1.41/containers/create?name=web`).
    pub path: String,
    /// Headers passed on to the engine (`X-Registry-*`).
    pub headers: HeaderMap,
}

/// The engine's answer to a create, passed back to the client unchanged.
#[derive(Debug, Clone)]
pub struct EngineAnswer {
    /// Its status (201).
    pub status: StatusCode,
    /// Its content type.
    pub content_type: Option<HeaderValue>,
    /// Its body (`{"Id": ..., "Warnings": [...]}`).
    pub body: Bytes,
}

/// A create sent to the engine of a reserved node.
pub(super) struct EngineCreate<'a> {
    /// Path and query (`/containers/create?name=web`).
    pub path: &'a str,
    /// The body, as prepared ([`prepare_create_body`]).
    pub body: Bytes,
    /// The typed body: the record of a named container is built from it.
    pub typed: &'a ContainerCreateBody,
    /// The container's name, if it has one.
    pub name: Option<&'a str>,
    /// Headers for the engine.
    pub headers: HeaderMap,
}

/// A change asked of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `POST /containers/{id}/start`.
    Start,
    /// `POST /containers/{id}/stop`.
    Stop,
    /// `POST /containers/{id}/kill`.
    Kill,
    /// `POST /containers/{id}/restart`.
    Restart,
    /// `POST /containers/{id}/pause`.
    Pause,
    /// `POST /containers/{id}/unpause`.
    Unpause,
    /// `POST /containers/{id}/rename?name=NAME`, with the new name
    /// (without its leading slash).
    Rename(String),
    /// `POST /containers/{id}/update`.
    Update,
    /// `DELETE /containers/{id}`.
    Remove,
}

impl Change {
    /// The change a `POST /containers/{id}/{action}` asks for, if it
    /// changes the container (`rename` takes its name from `new_name`).
    pub fn of_action(action: &str, new_name: impl FnOnce() -> String) -> Option<Change> {
        Some(match action {
            "start" => Change::Start,
            "stop" => Change::Stop,
            "kill" => Change::Kill,
            "restart" => Change::Restart,
            "pause" => Change::Pause,
            "unpause" => Change::Unpause,
            "rename" => Change::Rename(new_name().trim_start_matches('/').to_string()),
            "update" => Change::Update,
            _ => return None,
        })
    }
}

/// A fresh swarm-unique id: 64 hex digits, as classic's.
fn new_swarm_id() -> String {
    format!(
        "{}{}",
        crate::ids::random_hex32(),
        crate::ids::random_hex32()
    )
}

/// Validates a create body and adds the swarm id label. Returns the body to
/// forward and the parsed model.
pub fn prepare_create_body(
    body: &[u8],
) -> Result<(serde_json::Value, ContainerCreateBody), ManagerError> {
    let invalid = |message: String| ManagerError::InvalidRequest(message);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid(
            "config cannot be empty in order to create a container".into(),
        ));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid(
            "invalid JSON: the container config must be an object".into(),
        ));
    }
    if value
        .get("Env")
        .is_some_and(|e| !e.is_null() && !e.is_array())
    {
        return Err(invalid(
            "invalid container config: Env must be a list".into(),
        ));
    }
    crate::scheduler::spec::env_to_labels(&mut value).map_err(|e| invalid(e.to_string()))?;
    // Docker accepts `"Cmd": "x"` for `["x"]` (its strslice type); so do we.
    for key in ["Cmd", "Entrypoint"] {
        if let Some(field) = value.get_mut(key) {
            if let Some(s) = field.as_str() {
                *field = serde_json::json!([s]);
            }
        }
    }
    if let Some(object) = value.as_object_mut() {
        let labels = object
            .entry("Labels")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if labels.is_null() {
            *labels = serde_json::Value::Object(Default::default());
        }
        if let Some(labels) = labels.as_object_mut() {
            labels
                .entry(SWARM_ID_LABEL)
                .or_insert_with(|| serde_json::Value::String(new_swarm_id()));
        }
    }
    // Typed after the swarm id is in: placement and the reservation carry it.
    // Read from the tree in place (`&Value` deserializes without a copy).
    let typed = ContainerCreateBody::deserialize(&value)
        .map_err(|e| invalid(format!("invalid container config: {e}")))?;
    if typed.image.as_deref().unwrap_or("").is_empty() {
        return Err(invalid("no image was specified".into()));
    }
    Ok((value, typed))
}

/// Pulls `image` on `engine` (with the client's `X-Registry-Auth`) and
/// reads the progress to its end; an error message in it is the error.
async fn pull_on(
    engine: &crate::engine::Engine,
    image: &str,
    headers: &HeaderMap,
) -> Result<(), ManagerError> {
    // With a tag: without one the engine would pull every tag.
    let image = crate::cluster::normalize_image_name(image);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("fromImage", &image)
        .finish();
    let mut request = Request::post(format!("/images/create?{query}"))
        .body(Body::empty())
        .map_err(|e| ManagerError::Internal(e.to_string()))?;
    request.headers_mut().extend(
        headers
            .iter()
            .filter(|(k, _)| k.as_str() == "x-registry-auth")
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let answer = engine.exchange(request).await?;
    let (parts, body) = answer.into_parts();
    if !parts.status.is_success() {
        return Err(engine.status_error(parts.status, &body).into());
    }
    match crate::engine::stream_error(&body) {
        Some(error) => Err(ManagerError::Internal(format!("pulling {image}: {error}"))),
        None => Ok(()),
    }
}

/// The command a create asks for, as `docker ps` shows one: the
/// entrypoint, then the command, joined by spaces.
fn requested_command(body: &ContainerCreateBody) -> String {
    body.entrypoint
        .iter()
        .flatten()
        .chain(body.cmd.iter().flatten())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a failed create may still have made its container: the
/// connection broke after the request went out (neither refused before
/// it, nor answered).
fn is_ambiguous(error: &ManagerError) -> bool {
    matches!(
        error,
        ManagerError::Engine(
            crate::engine::EngineError::Http { .. } | crate::engine::EngineError::Pool { .. }
        )
    )
}

/// What [`Located`](crate::scheduler::spec::Located) a retried create is
/// limited by.
const RETRY_NODES: &str = "nodes a failed create has not tried";

/// A create's retries on other nodes, as classic's: once on a node that
/// holds the image when the chosen node had none and could get none (no
/// `node==` constraint), then up to `swarm.createretry` times on any node
/// not tried yet.
struct CreateRetry {
    /// `swarm.createretry` retries left.
    left: u32,
    /// Whether the retry on an image holder was made.
    image_retried: bool,
    /// The nodes the create failed on.
    failed: std::collections::BTreeSet<crate::cluster::NodeId>,
    /// The last failure, answered when no node is left to try.
    last: Option<ManagerError>,
}

impl CreateRetry {
    fn new(left: u32) -> Self {
        CreateRetry {
            left,
            image_retried: false,
            failed: Default::default(),
            last: None,
        }
    }

    /// After a create of `spec` failed on `node` with `error`: the nodes
    /// the next try may use, or `None` when it ends here. A failure that
    /// may have left a container on the engine (the connection broke
    /// after the request went out), or a name conflict, is never retried:
    /// the container could then exist twice. `holders` are the healthy
    /// nodes whose state lists the image.
    fn next(
        &mut self,
        state: &crate::cluster::ClusterState,
        spec: &ContainerSpec,
        node: &str,
        error: &ManagerError,
        holders: Vec<crate::cluster::NodeId>,
    ) -> Option<std::collections::BTreeSet<crate::cluster::NodeId>> {
        let ManagerError::Engine(engine) = error else {
            return None;
        };
        let status = engine.status();
        let clear = matches!(engine, crate::engine::EngineError::Connect { .. })
            || status.is_some_and(|s| s != StatusCode::CONFLICT.as_u16());
        if !clear {
            return None;
        }
        self.failed.insert(node.to_string());
        let missing_image = status == Some(StatusCode::NOT_FOUND.as_u16())
            && engine.engine_message().contains("No such image");
        let node_pinned = spec
            .constraints
            .iter()
            .any(|c| c.key == "node" && !c.soft && c.op == crate::scheduler::expr::Op::Eq);
        let untried = |n: &crate::cluster::NodeId| !self.failed.contains(n);
        if missing_image && !node_pinned && !self.image_retried {
            let nodes: std::collections::BTreeSet<_> =
                holders.into_iter().filter(|n| untried(n)).collect();
            if !nodes.is_empty() {
                self.image_retried = true;
                return Some(nodes);
            }
        }
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(state.nodes.keys().filter(|n| untried(n)).cloned().collect())
    }
}

impl Manager {
    /// Creates a container: validates the body, places it, reserves the
    /// node, creates it there and records it (see the module docs). The
    /// engine's answer is returned as it gave it.
    pub async fn create_container(
        &self,
        request: CreateRequest,
    ) -> Result<EngineAnswer, ManagerError> {
        let (value, typed) = prepare_create_body(&request.body)?;
        let mut spec = ContainerSpec::from_create(request.name.as_deref(), &typed)
            .map_err(|e| ManagerError::InvalidRequest(e.to_string()))?;
        spec.located = self
            .locate_networks(&crate::scheduler::spec::networks_used(&typed))
            .await?;
        spec.located.extend(
            self.locate_volumes(&crate::scheduler::spec::volumes_used(&typed))
                .await?,
        );
        let body = Bytes::from(
            serde_json::to_vec(&value).map_err(|e| ManagerError::Internal(e.to_string()))?,
        );
        let mut retry = CreateRetry::new(self.config.create_retry);
        loop {
            let reservation = match (self.reserve(&spec).await, retry.last.take()) {
                (Ok(reservation), _) => reservation,
                // No other node can take it: the failure that sent it on stands.
                (Err(ManagerError::Unschedulable(_)), Some(last)) => return Err(last),
                (Err(e), _) => return Err(e),
            };
            let result = async {
                if let (true, Some(swarm_id)) = (spec.reschedule, &spec.swarm_id) {
                    // Before the engine has it: a container that exists can
                    // always be re-created from the state.
                    self.cluster
                        .propose(Command::SpecRecorded {
                            swarm_id: swarm_id.clone(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                            name: spec.name.clone(),
                        })
                        .await?;
                }
                let create = EngineCreate {
                    path: &request.path,
                    body: body.clone(),
                    typed: &typed,
                    name: spec.name.as_deref(),
                    headers: request.headers.clone(),
                };
                let (_, answer) = self.create_reserved(&reservation, create).await?;
                Ok(answer)
            }
            .await;
            match result {
                // Debug, as engines log creates: a line per create at `info`
                // cost a busy manager 3-6% of its placements (and a state read
                // each).
                Ok(answer) => {
                    tracing::debug!(
                        node = %self.cluster.read().node_name(&reservation.node),
                        status = answer.status.as_u16(),
                        "container created"
                    );
                    return Ok(answer);
                }
                // `ContainerCreated` ended the reservation; a failed create
                // still holds one. When the answer broke off after the
                // request went out, the engine may have made the container:
                // settled before anything else, or its name could go to
                // another create meanwhile.
                Err(e) if is_ambiguous(&e) => {
                    return match self.settle_ambiguous(&reservation, &spec).await {
                        Some(answer) => Ok(answer),
                        None => Err(e),
                    };
                }
                Err(e) => {
                    self.release(&reservation).await;
                    let holders = self.image_holders(typed.image.as_deref().unwrap_or(""));
                    let Some(nodes) =
                        retry.next(&self.cluster.read(), &spec, &reservation.node, &e, holders)
                    else {
                        return Err(e);
                    };
                    tracing::warn!(
                        node = %self.cluster.read().node_name(&reservation.node),
                        error = %e,
                        "create failed on its node; trying another"
                    );
                    spec.located.retain(|l| l.what != RETRY_NODES);
                    spec.located.push(crate::scheduler::spec::Located {
                        what: RETRY_NODES.to_string(),
                        nodes,
                    });
                    retry.last = Some(e);
                }
            }
        }
    }

    /// After a create whose answer broke off: asks the node's engine for
    /// a container with the create's swarm id. Found: it is recorded in
    /// place of the reservation and answered as the engine would have
    /// (201 with its ID). Not there: the reservation is released. The
    /// engine does not answer: the reservation is released after a
    /// refresh interval, as a new leader does with those it inherits (a
    /// container made meanwhile is recorded by the refresh, which ends the
    /// reservation first). Never an orphan, never its name given twice.
    async fn settle_ambiguous(
        &self,
        reservation: &Reservation,
        spec: &ContainerSpec,
    ) -> Option<EngineAnswer> {
        let Some(swarm_id) = spec.swarm_id.as_deref() else {
            self.release(reservation).await;
            return None;
        };
        let filters = serde_json::json!({ "label": [format!("{SWARM_ID_LABEL}={swarm_id}")] });
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("all", "1")
            .append_pair("filters", &filters.to_string())
            .finish();
        let found = match self.engine(&reservation.node) {
            Ok(engine) => {
                engine
                    .get_json::<Vec<bollard::models::ContainerSummary>>(&format!(
                        "/containers/json?{query}"
                    ))
                    .await
            }
            Err(e) => Err(crate::engine::EngineError::Pool {
                addr: reservation.node.clone(),
                message: e.to_string(),
            }),
        };
        match found {
            Ok(list) => match list.into_iter().find_map(|c| c.id) {
                Some(id) => {
                    tracing::warn!(container = %id, "a create whose answer broke off made its container: recorded");
                    self.record_created(reservation, &id).await;
                    Some(EngineAnswer {
                        status: StatusCode::CREATED,
                        content_type: Some(HeaderValue::from_static("application/json")),
                        body: Bytes::from(
                            serde_json::json!({ "Id": id, "Warnings": [] }).to_string(),
                        ),
                    })
                }
                None => {
                    self.release(reservation).await;
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether a broken create made its container; released after a refresh");
                self.release_after_refresh(vec![reservation.id.clone()], None);
                None
            }
        }
    }

    /// Sends `create` to the engine of the node `reservation` holds, and
    /// records the container it made in place of the reservation. A named
    /// container is recorded from the request (labels its image adds are
    /// read back when its `create` event is applied after this record,
    /// else at the node's next refresh); one the engine named is read back.
    /// The reservation is left as it is on failure: the caller releases it
    /// or keeps it. Returns the container's ID and the engine's answer.
    pub(super) async fn create_reserved(
        &self,
        reservation: &Reservation,
        create: EngineCreate<'_>,
    ) -> Result<(String, EngineAnswer), ManagerError> {
        let engine = self.engine(&reservation.node)?;
        let send = || -> Result<Request<Body>, ManagerError> {
            let mut outgoing = Request::post(create.path)
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from(create.body.clone()))
                .map_err(|e| ManagerError::Internal(e.to_string()))?;
            outgoing.headers_mut().extend(create.headers.clone());
            Ok(outgoing)
        };
        let mut answer = engine.exchange(send()?).await?;
        // The image is not on the chosen node. Another node holds it (the
        // cluster, as one engine, has it): copied from there, as an engine
        // runs the image it has without pulling. Else pulled there (a raw
        // API client does not pull on a 404 as the docker CLI does). Then
        // the create again.
        if answer.status() == hyper::StatusCode::NOT_FOUND
            && String::from_utf8_lossy(answer.body()).contains("No such image")
        {
            if let Some(image) = create.typed.image.as_deref() {
                let fetched = match self.copy_image(image, &reservation.node).await {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        tracing::debug!(%image, error = %e, "no copy for a create; pulling");
                        let pulled = pull_on(&engine, image, &create.headers).await;
                        if pulled.is_ok() {
                            if let Err(e) = self.refresh_images(&reservation.node).await {
                                tracing::debug!(error = %e, "image refresh after a pull failed");
                            }
                        }
                        pulled
                    }
                };
                match fetched {
                    Ok(()) => answer = engine.exchange(send()?).await?,
                    // The engine's 404 stands: the docker CLI pulls on it.
                    Err(e) => tracing::debug!(%image, error = %e, "no image for a create"),
                }
            }
        }
        let (parts, body) = answer.into_parts();
        if !parts.status.is_success() {
            return Err(engine.status_error(parts.status, &body).into());
        }
        let id = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("Id")?.as_str().map(str::to_string))
            .ok_or_else(|| ManagerError::Internal("engine answered create without an Id".into()))?;
        match create.name {
            // Everything the state keeps of it is in the request.
            Some(name) => {
                let container = Container {
                    id: id.clone(),
                    node: reservation.node.clone(),
                    name: name.to_string(),
                    image: create.typed.image.clone().unwrap_or_default(),
                    state: ContainerState::Created,
                    labels: create
                        .typed
                        .labels
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    resources: Some(reservation.resources.clone()),
                    // As the request gives it (the image's entrypoint or
                    // command, when the request has none, come with the
                    // next list of the node); the engine made it a moment
                    // ago.
                    command: requested_command(create.typed),
                    created: chrono::Utc::now().timestamp(),
                };
                if let Err(e) = self.created(reservation, container).await {
                    tracing::warn!(container = %id, error = %e, "cannot record the created container");
                }
            }
            None => self.record_created(reservation, &id).await,
        }
        let answer = EngineAnswer {
            status: parts.status,
            content_type: parts.headers.get(CONTENT_TYPE).cloned(),
            body,
        };
        Ok((id, answer))
    }

    /// Sends `request` (the change, addressed to the engine of container
    /// `id` on `node`) and, once the engine accepted it, brings the state in line: a
    /// removal is recorded; a start waits until its engine event is applied
    /// (or reads the container back when events are not followed, or the
    /// event does not come within 2 s); other changes read the container
    /// back (a `stop` once left the state running on a real engine in
    /// `tests/cli.rs`, cause not found yet). A rename to a name another
    /// container holds is refused before the engine is asked. The engine's
    /// answer is returned, its body unread.
    pub async fn change_container(
        &self,
        node: &str,
        id: &str,
        change: Change,
        request: Request<Body>,
    ) -> Result<Response<PoolBody>, ManagerError> {
        if let Change::Rename(name) = &change {
            let holder = self.cluster.read().name_holder(name);
            if let Some(holder) = holder.filter(|h| h != id) {
                return Err(ProposeError::Refused(ApplyError::NameInUse {
                    name: name.clone(),
                    holder,
                })
                .into());
            }
        }
        let engine = self.engine(node)?;
        let wait = (change == Change::Start && self.follows_events(node))
            .then(|| self.waiters.expect(id, "start"));
        let response = engine.send(request).await?;
        if !response.status().is_success() {
            return Ok(response);
        }
        if change == Change::Remove {
            let _ = self
                .cluster
                .propose(Command::ContainerRemoved { id: id.to_string() })
                .await;
            return Ok(response);
        }
        let seen = match wait {
            Some(wait) => wait.wait(EVENT_WAIT).await,
            None => false,
        };
        if !seen {
            tracing::debug!(container = %id, ?change, "no event applied: reading the container back");
            if let Err(e) = self.refresh_container(node, id).await {
                tracing::warn!(container = %id, error = %e, "cannot re-read container");
            }
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_creates_retry_as_classic_did() {
        use crate::cluster::testing::{add_node, engine};
        use crate::engine::EngineError;
        let mut state = crate::cluster::ClusterState::default();
        for id in ["A", "B", "C"] {
            add_node(&mut state, engine(id, id));
        }
        let answered = |status: u16, message: &str| {
            ManagerError::Engine(EngineError::Api {
                addr: "e".into(),
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: status,
                    message: message.into(),
                },
            })
        };
        let spec = |constraints: &[&str]| ContainerSpec {
            constraints: constraints
                .iter()
                .map(|c| crate::scheduler::expr::Expr::parse(c).expect("expr"))
                .collect(),
            ..ContainerSpec::from_create(None, &Default::default()).expect("spec")
        };
        let set = |ids: &[&str]| ids.iter().map(|i| i.to_string()).collect();
        let no_image = answered(404, "No such image: app:1");
        let holders = || vec!["A".to_string(), "C".to_string()];

        // Without swarm.createretry: once, on a holder of the image.
        let mut retry = CreateRetry::new(0);
        assert_eq!(
            retry.next(&state, &spec(&[]), "A", &no_image, holders()),
            Some(set(&["C"]))
        );
        assert_eq!(
            retry.next(&state, &spec(&[]), "C", &no_image, holders()),
            None
        );
        // Not with a node pinned, nor for other failures.
        let mut retry = CreateRetry::new(0);
        let pinned = spec(&["node==A"]);
        assert_eq!(retry.next(&state, &pinned, "A", &no_image, holders()), None);
        let busy = answered(500, "runtime failed");
        assert_eq!(retry.next(&state, &spec(&[]), "A", &busy, holders()), None);

        // With swarm.createretry=2: on nodes not tried yet, twice.
        let mut retry = CreateRetry::new(2);
        assert_eq!(
            retry.next(&state, &spec(&[]), "A", &busy, vec![]),
            Some(set(&["B", "C"]))
        );
        let refused = ManagerError::Engine(EngineError::Connect {
            addr: "e".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        });
        assert_eq!(
            retry.next(&state, &spec(&[]), "B", &refused, vec![]),
            Some(set(&["C"]))
        );
        assert_eq!(retry.next(&state, &spec(&[]), "C", &busy, vec![]), None);

        // Never when the container may exist: a name conflict, a broken
        // answer, a failure that is not the engine's.
        let mut retry = CreateRetry::new(5);
        let conflict = answered(409, "Conflict. The container name is in use");
        assert_eq!(retry.next(&state, &spec(&[]), "A", &conflict, vec![]), None);
        let broken = ManagerError::Engine(EngineError::Pool {
            addr: "e".into(),
            message: "connection reset".into(),
        });
        assert_eq!(retry.next(&state, &spec(&[]), "A", &broken, vec![]), None);
        let internal = ManagerError::Internal("x".into());
        assert_eq!(retry.next(&state, &spec(&[]), "A", &internal, vec![]), None);
    }

    #[test]
    fn changes_of_actions() {
        assert_eq!(Change::of_action("start", String::new), Some(Change::Start));
        assert_eq!(Change::of_action("kill", String::new), Some(Change::Kill));
        assert_eq!(
            Change::of_action("rename", || "/web".into()),
            Some(Change::Rename("web".into()))
        );
        for read in ["json", "logs", "wait", "attach", "exec", "top"] {
            assert_eq!(Change::of_action(read, String::new), None, "{read}");
        }
    }

    #[test]
    fn create_bodies() {
        let (value, typed) =
            prepare_create_body(br#"{"Image":"busybox:local","Cmd":["true"],"Extra":1}"#).unwrap();
        assert_eq!(typed.image.as_deref(), Some("busybox:local"));
        assert_eq!(value["Extra"], 1, "unknown fields are kept");
        let id = value["Labels"][SWARM_ID_LABEL].as_str().unwrap();
        assert_eq!(id.len(), 64);

        let (value, typed) =
            prepare_create_body(br#"{"Image":"x","Cmd":"sh","Labels":{"a":"b"}}"#).unwrap();
        assert_eq!(typed.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(value["Labels"]["a"], "b");
        assert!(value["Labels"][SWARM_ID_LABEL].is_string());

        for (body, expect) in [
            (&b""[..], "config cannot be empty"),
            (b"  ", "config cannot be empty"),
            (b"{not json", "invalid JSON"),
            (b"[1]", "must be an object"),
            (br#"{"Image": 5}"#, "invalid container config"),
            (br#"{"Image":"x","Cmd":5}"#, "invalid container config"),
            (br#"{"Cmd":["x"]}"#, "no image"),
        ] {
            match prepare_create_body(body) {
                Err(ManagerError::InvalidRequest(message)) => assert!(
                    message.contains(expect),
                    "{}: {message}",
                    String::from_utf8_lossy(body)
                ),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn swarm_ids_differ() {
        assert_ne!(new_swarm_id(), new_swarm_id());
        let id = new_swarm_id();
        assert!(
            id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
}
