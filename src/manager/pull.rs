//! `docker pull` through the cluster: the pull runs on every healthy node
//! at once and the nodes' progress comes back as one stream, each message
//! naming its node (`node-1: Pulling from library/busybox`, as classic
//! showed it) and sent alone in its own chunk, as an engine sends them
//! (clients that decode chunk by chunk, docker-py's streaming pull among
//! them, read one JSON message per chunk). A node that fails does not stop
//! the others: its error is shown as its own progress line, and one error
//! at the end names every node that failed (the CLI stops reading at the
//! first error message).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyper::header::HeaderValue;
use serde_json::{json, Value};

use super::{Manager, ManagerError};
use crate::engine::{json_lines, Engine};

impl Manager {
    /// Pulls on every healthy node (`path_and_query`: the client's
    /// `/images/create?...`, `auth`: its `X-Registry-Auth`); the merged
    /// progress as a stream of JSON lines, one per item. The nodes' images
    /// are re-read when the stream ends.
    pub fn pull_everywhere(
        self: &Arc<Self>,
        path_and_query: &str,
        auth: Option<HeaderValue>,
    ) -> Result<impl Stream<Item = Bytes> + Send + 'static, ManagerError> {
        let engines = self.healthy_or_error("pull images to")?;
        let failures: Arc<Mutex<Vec<String>>> = Arc::default();
        let names: Vec<String> = {
            let state = self.state();
            engines.iter().map(|(n, _)| state.node_name(n)).collect()
        };
        let nodes: Vec<String> = engines.iter().map(|(n, _)| n.clone()).collect();
        let streams: Vec<_> = engines
            .into_iter()
            .zip(names)
            .map(|((_, engine), name)| {
                node_progress(
                    engine,
                    name,
                    path_and_query.to_string(),
                    auth.clone(),
                    failures.clone(),
                )
                .boxed()
            })
            .collect();
        let manager = self.clone();
        let end = futures::stream::once(async move {
            for node in &nodes {
                if let Err(e) = manager.refresh_images(node).await {
                    tracing::debug!(%node, error = %e, "image refresh after a pull failed");
                }
            }
            let failed = failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
            (!failed.is_empty()).then(|| {
                let message = format!("pull failed on {}", failed.join("; "));
                line(&json!({"error": message, "errorDetail": {"message": message}}))
            })
        })
        .filter_map(futures::future::ready);
        Ok(futures::stream::select_all(streams).chain(end))
    }
}

/// One node's pull: its messages with the node's name, its failure noted.
fn node_progress(
    engine: Arc<Engine>,
    name: String,
    path_and_query: String,
    auth: Option<HeaderValue>,
    failures: Arc<Mutex<Vec<String>>>,
) -> impl Stream<Item = Bytes> + Send + 'static {
    futures::stream::once(async move {
        let mut request = hyper::Request::post(&path_and_query);
        if let Some(auth) = auth {
            request = request.header("x-registry-auth", auth);
        }
        let fail = |why: String| {
            failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{name}: {why}"));
            futures::stream::iter(vec![line(&json!({"status": format!("{name}: {why}")}))]).boxed()
        };
        let request = match request.body(http_body_util::Empty::<Bytes>::new()) {
            Ok(request) => request,
            Err(e) => return fail(e.to_string()),
        };
        let response = match engine.send(request).await {
            Ok(response) => response,
            Err(e) => return fail(e.to_string()),
        };
        if !response.status().is_success() {
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return fail(engine.status_error(status, &body).engine_message());
        }
        // Whether the node said how its pull ended (`Status: ...`, or an
        // error): a stream cut short (the engine died, the connection
        // broke) or ended without a word is the node's failure.
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let record = {
            let failures = failures.clone();
            let name = name.clone();
            move |why: String| {
                failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{name}: {why}"));
            }
        };
        let end = {
            let (ended, record, name) = (ended.clone(), record.clone(), name.clone());
            futures::stream::once(async move {
                if ended.load(std::sync::atomic::Ordering::Relaxed) {
                    return None;
                }
                let why = "the pull ended without a result";
                record(why.to_string());
                Some(line(&json!({"status": format!("{name}: error: {why}")})))
            })
            .filter_map(futures::future::ready)
        };
        json_lines::<Value, _>(response.into_body())
            .map(move |message| match message {
                Ok(message) => {
                    let (message, error) = named(&name, message);
                    if error.is_some() || is_result(&message) {
                        ended.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    if let Some(error) = error {
                        record(error);
                    }
                    line(&message)
                }
                Err(e) => {
                    ended.store(true, std::sync::atomic::Ordering::Relaxed);
                    record(e.clone());
                    line(&json!({"status": format!("{name}: error: {e}")}))
                }
            })
            .chain(end)
            .boxed()
    })
    .flatten()
}

/// A node's progress message with the node's name in front of its id
/// when it has one (two nodes' progress bars for one layer stay apart;
/// the CLI shows `id: status`), else in front of its status; an error
/// becomes a status line, returned beside it.
fn named(node: &str, mut message: Value) -> (Value, Option<String>) {
    let error = message
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(object) = message.as_object_mut() {
        if let Some(error) = &error {
            object.remove("error");
            object.remove("errorDetail");
            object.insert("status".into(), Value::String(format!("error: {error}")));
        }
        let key = if object.get("id").is_some_and(Value::is_string) {
            "id"
        } else {
            "status"
        };
        if let Some(Value::String(text)) = object.get_mut(key) {
            *text = format!("{node}: {text}");
        }
    }
    (message, error)
}

/// Whether a node's (named) message is the end of its pull: the engine
/// closes a pull with `Status: Downloaded newer image for ...` or `Status:
/// Image is up to date for ...`.
fn is_result(message: &Value) -> bool {
    message
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|s| s.contains("Status: "))
}

/// One JSON message and its line end, as engines frame them.
fn line(message: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(message).unwrap_or_default();
    bytes.extend_from_slice(b"\r\n");
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_node_and_errors_become_lines() {
        let (m, e) = named("node-1", json!({"status": "Pulling fs layer", "id": "abc"}));
        assert_eq!(
            m,
            json!({"status": "Pulling fs layer", "id": "node-1: abc"})
        );
        assert_eq!(e, None);
        assert!(!is_result(&m));
        let (m, _) = named(
            "node-1",
            json!({"status": "Status: Image is up to date for x:1"}),
        );
        assert_eq!(m["status"], "node-1: Status: Image is up to date for x:1");
        assert!(is_result(&m));
        let (m, e) = named(
            "node-2",
            json!({"error": "manifest unknown", "errorDetail": {"message": "manifest unknown"}}),
        );
        assert_eq!(m, json!({"status": "node-2: error: manifest unknown"}));
        assert_eq!(e.as_deref(), Some("manifest unknown"));
        let framed = line(&json!({"status": "x"}));
        assert_eq!(&framed[..], b"{\"status\":\"x\"}\r\n");
    }
}
