//! Calls fanned out to every healthy node, and the reports they make: a
//! node that fails is named, with what the others did.

use std::sync::Arc;

use serde_json::Value;

use super::{Manager, ManagerError};
use crate::cluster::NodeId;
use crate::engine::Engine;

impl Manager {
    /// Runs `call` on every healthy node's engine at once; each answer with
    /// its node and the node's name, in node-ID order.
    pub async fn fan_out<F, Fut, T>(&self, call: F) -> Vec<(NodeId, String, T)>
    where
        F: Fn(Arc<Engine>) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let engines = self.healthy_engines();
        let names: Vec<String> = {
            let state = self.cluster.read();
            engines.iter().map(|(n, _)| state.node_name(n)).collect()
        };
        let answers = futures::future::join_all(engines.iter().map(|(_, e)| call(e.clone()))).await;
        engines
            .into_iter()
            .zip(names)
            .zip(answers)
            .map(|(((node, _), name), answer)| (node, name, answer))
            .collect()
    }
}

/// The strings of `key` in a JSON answer (`null` or missing: none).
pub(super) fn string_list(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// An error naming the nodes that failed and what was done elsewhere;
/// `Ok` when none failed.
pub(super) fn partial(failed: Vec<String>, done: &[String]) -> Result<(), ManagerError> {
    if failed.is_empty() {
        return Ok(());
    }
    let done = if done.is_empty() {
        "nothing was removed".to_string()
    } else {
        format!("removed: {}", done.join(", "))
    };
    Err(ManagerError::Internal(format!(
        "failed on {}; {done}",
        failed.join("; ")
    )))
}

/// An engine's error with the node it came from, status kept.
pub(super) fn on_node(e: ManagerError, node_name: &str) -> ManagerError {
    match e {
        ManagerError::Engine(engine) => {
            let message = format!("{}: {}", node_name, engine.engine_message());
            with_status(engine.status(), message)
        }
        other => other,
    }
}

/// `message` as the error an engine's `status` stands for (404, 409, 400;
/// anything else a 500).
pub(super) fn with_status(status: Option<u16>, message: String) -> ManagerError {
    match status {
        Some(404) => ManagerError::NotFound(message),
        Some(409) => ManagerError::Conflict(message),
        Some(400) => ManagerError::InvalidRequest(message),
        _ => ManagerError::Internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_failures_name_the_node_and_what_was_done() {
        assert!(partial(Vec::new(), &[]).is_ok());
        let e = partial(
            vec!["node-2: connection refused".into()],
            &["node-1/x".into()],
        )
        .expect_err("failed");
        let text = e.to_string();
        assert!(
            text.contains("node-2: connection refused") && text.contains("node-1/x"),
            "{text}"
        );
        assert!(matches!(
            with_status(Some(404), "x".into()),
            ManagerError::NotFound(_)
        ));
        assert!(matches!(
            with_status(Some(409), "x".into()),
            ManagerError::Conflict(_)
        ));
        assert!(matches!(
            with_status(None, "x".into()),
            ManagerError::Internal(_)
        ));
        let listed = serde_json::json!({"X": ["a", "b"], "Y": null});
        assert_eq!(string_list(&listed, "X"), ["a", "b"]);
        assert!(string_list(&listed, "Y").is_empty());
    }
}
