//! `docker build` through the cluster (the legacy builder, `POST /build`):
//! the scheduler picks one node as for a container, from what the build
//! asks for as Swarm classic took it (`--build-arg constraint:node==x`,
//! `affinity:...`, the `com.docker.swarm.constraints` label, `--memory`,
//! `--cpu-shares`); the node is reserved for the build's resources while
//! it runs, the context is streamed to its engine and the engine's
//! progress back, with one line naming the node first. When the build
//! ends (or the client goes away) the node's images are re-read, so that
//! `docker run` of the new tag lands where the image is, and the
//! reservation is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use bollard::models::{ContainerCreateBody, HostConfig};
use bytes::Bytes;
use futures::StreamExt;
use hyper::{Request, Response};

use super::{Manager, ManagerError};
use crate::cluster::Reservation;
use crate::scheduler::ContainerSpec;

/// How much of a refused build's context is read (and dropped) before the
/// refusal goes out: the docker CLI sends all of it before it reads an
/// answer, and an answer sent earlier would reach it as a closed
/// connection ("broken pipe").
const BUILD_CONTEXT_DRAINED: usize = 256 << 20;

/// A `docker build` as the API received it.
#[derive(Debug)]
pub struct BuildRequest {
    /// The client's `/vX.Y` prefix, or nothing.
    pub prefix: String,
    /// The client's query (`t`, `buildargs`, `labels`, `memory`,
    /// `cpushares`, `q`, ...).
    pub query: String,
    /// The request to send on: its headers (`X-Registry-Config`,
    /// `Content-Type`) and the build context as its body; its URI is
    /// replaced.
    pub request: Request<Body>,
}

/// Build arguments that carry placement rules, not values for the
/// Dockerfile: `--build-arg constraint:node==x` arrives as the argument
/// `constraint:node` with the value `=x`.
const PLACEMENT_ARGS: [&str; 2] = ["constraint:", "affinity:"];

impl Manager {
    /// Runs a build on a node the scheduler picks (see the module's
    /// documentation); the engine's answer, its progress streaming. A
    /// build that cannot start (a malformed query, no node fits) is
    /// refused once its context has been read.
    pub async fn build(
        self: &Arc<Self>,
        build: BuildRequest,
    ) -> Result<Response<Body>, ManagerError> {
        let BuildRequest {
            prefix,
            query,
            mut request,
        } = build;
        let placed = async {
            let (spec, query) = build_spec(&query)?;
            let reservation = self.reserve(&spec).await?;
            Ok::<_, ManagerError>((reservation, query))
        }
        .await;
        let (reservation, engine_query) = match placed {
            Ok(placed) => placed,
            Err(e) => {
                drain(request.into_body()).await;
                return Err(e);
            }
        };
        let finish = Finish {
            manager: self.clone(),
            reservation: Some(reservation.clone()),
        };
        let engine = match self.engine(&reservation.node) {
            Ok(engine) => engine,
            Err(e) => {
                drain(request.into_body()).await;
                return Err(e);
            }
        };
        let uri = format!("{prefix}/build?{engine_query}");
        *request.uri_mut() = uri
            .parse()
            .map_err(|e| ManagerError::InvalidRequest(format!("invalid build query: {e}")))?;
        let response = engine.send(request).await?;
        let (parts, body) = response.into_parts();
        let status = parts.status;
        if !status.is_success() {
            let body = http_body_util::BodyExt::collect(body)
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(engine.status_error(status, &body).into());
        }
        let quiet = query_flag(&query, "q");
        let node_name = self.state().node_name(&reservation.node);
        let first = (!quiet).then(|| {
            let line = serde_json::json!({ "stream": format!("Building on {node_name}\n") });
            let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
            bytes.extend_from_slice(b"\r\n");
            Ok::<_, axum::Error>(Bytes::from(bytes))
        });
        let end = futures::stream::once(async move {
            finish.done().await;
            None::<Result<Bytes, axum::Error>>
        })
        .filter_map(futures::future::ready);
        let progress = futures::stream::iter(first)
            .chain(Body::new(body).into_data_stream())
            .chain(end);
        let mut answer = Response::new(Body::from_stream(progress));
        *answer.status_mut() = status;
        *answer.headers_mut() = parts.headers;
        Ok(answer)
    }
}

/// The end of a build: the node's images re-read and the reservation
/// dropped, when the progress has been sent ([`Finish::done`]) or, if the
/// client went away first, in the background.
struct Finish {
    manager: Arc<Manager>,
    reservation: Option<Reservation>,
}

impl Finish {
    async fn done(mut self) {
        if let Some(reservation) = self.reservation.take() {
            finish(&self.manager, &reservation).await;
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            let manager = self.manager.clone();
            tokio::spawn(async move { finish(&manager, &reservation).await });
        }
    }
}

async fn finish(manager: &Manager, reservation: &Reservation) {
    if let Err(e) = manager.refresh_images(&reservation.node).await {
        tracing::warn!(node = %reservation.node, error = %e, "cannot re-read the images after a build");
    }
    manager.release(reservation).await;
}

/// What placement needs from a build's query, and the query sent on to
/// the engine (without the build arguments that carry placement rules).
fn build_spec(query: &str) -> Result<(ContainerSpec, String), ManagerError> {
    let invalid = |what: &str, value: &str, why: String| {
        ManagerError::InvalidRequest(format!("invalid {what} {value:?}: {why}"))
    };
    let mut env = Vec::new();
    let mut labels = None;
    let mut host_config = HostConfig::default();
    let mut forwarded = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let number = |what: &str| -> Result<Option<i64>, ManagerError> {
            if value.is_empty() {
                return Ok(None);
            }
            value
                .parse::<i64>()
                .map(Some)
                .map_err(|e| invalid(what, &value, e.to_string()))
        };
        match key.as_ref() {
            "buildargs" if !value.is_empty() => {
                let args: BTreeMap<String, Option<String>> = serde_json::from_str(&value)
                    .map_err(|e| invalid("buildargs", &value, e.to_string()))?;
                let mut kept = BTreeMap::new();
                for (name, arg) in args {
                    if PLACEMENT_ARGS.iter().any(|p| name.starts_with(p)) {
                        env.push(match arg {
                            Some(arg) => format!("{name}={arg}"),
                            None => name,
                        });
                    } else {
                        kept.insert(name, arg);
                    }
                }
                let kept = serde_json::to_string(&kept)
                    .map_err(|e| ManagerError::Internal(e.to_string()))?;
                forwarded.append_pair(&key, &kept);
                continue;
            }
            "labels" if !value.is_empty() => {
                labels = Some(
                    serde_json::from_str::<std::collections::HashMap<String, String>>(&value)
                        .map_err(|e| invalid("labels", &value, e.to_string()))?,
                );
            }
            "memory" => host_config.memory = number("memory")?,
            "cpushares" => host_config.cpu_shares = number("cpushares")?,
            "cpuquota" => host_config.cpu_quota = number("cpuquota")?,
            "cpuperiod" => host_config.cpu_period = number("cpuperiod")?,
            "cpusetcpus" if !value.is_empty() => host_config.cpuset_cpus = Some(value.to_string()),
            _ => {}
        }
        forwarded.append_pair(&key, &value);
    }
    let body = ContainerCreateBody {
        env: (!env.is_empty()).then_some(env),
        labels,
        host_config: Some(host_config),
        ..Default::default()
    };
    let spec = ContainerSpec::from_create(None, &body)
        .map_err(|e| ManagerError::InvalidRequest(e.to_string()))?;
    Ok((spec, forwarded.finish()))
}

/// Whether the query sets `key` to a true value (`1`, `true`).
fn query_flag(query: &str, key: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == key && matches!(v.as_ref(), "1" | "true" | "True"))
}

/// Reads and drops up to [`BUILD_CONTEXT_DRAINED`] bytes of a body.
async fn drain(body: Body) {
    let mut context = body.into_data_stream();
    let mut read = 0usize;
    while let Some(Ok(chunk)) = context.next().await {
        read = read.saturating_add(chunk.len());
        if read > BUILD_CONTEXT_DRAINED {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    #[test]
    fn placement_rules_come_from_build_args_and_labels() {
        let q = query(&[
            ("t", "app:1"),
            (
                "buildargs",
                r#"{"constraint:node":"=node-2","affinity:image":"=~busybox*","V":"1","E":null}"#,
            ),
            (
                "labels",
                r#"{"com.docker.swarm.constraints":"[\"region==eu\"]"}"#,
            ),
            ("memory", "67108864"),
            ("cpushares", "2"),
        ]);
        let (spec, forwarded) = build_spec(&q).expect("spec");
        let constraints: Vec<String> = spec.constraints.iter().map(|c| c.to_string()).collect();
        assert!(
            constraints.contains(&"node==node-2".to_string()),
            "{constraints:?}"
        );
        assert!(
            constraints.contains(&"region==eu".to_string()),
            "{constraints:?}"
        );
        assert_eq!(spec.affinities.len(), 1);
        assert_eq!(spec.resources.memory, 64 << 20);
        assert_eq!(spec.resources.cpus_milli, 2000);
        let sent: BTreeMap<String, String> = url::form_urlencoded::parse(forwarded.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(sent["buildargs"], r#"{"E":null,"V":"1"}"#);
        assert_eq!(sent["t"], "app:1");
        assert_eq!(sent["memory"], "67108864");
        assert!(sent["labels"].contains("region==eu"));
    }

    #[test]
    fn malformed_queries_are_refused() {
        for bad in [
            query(&[("buildargs", "{")]),
            query(&[("labels", "[1]")]),
            query(&[("memory", "lots")]),
            query(&[("buildargs", r#"{"constraint:node":"=/[/"}"#)]),
            query(&[("cpushares", "999999999")]),
        ] {
            assert!(
                matches!(build_spec(&bad), Err(ManagerError::InvalidRequest(_))),
                "{bad}"
            );
        }
        assert!(query_flag("q=1&t=x", "q"));
        assert!(!query_flag("q=0", "q"));
    }
}
