//! Read latency: `GET /info` (`docker info`) and `GET /containers/json?all=1`
//! (`docker ps -a`), one request at a time, alternating over the managers.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::client::{Client, Errors};
use super::stats::Summary;

/// An endpoint is given up after this many failed requests in a row.
const GIVE_UP_AFTER: usize = 3;

/// What to query.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Manager API addresses; requests alternate over them.
    pub managers: Vec<String>,
    /// Timed requests per endpoint (after one untimed request per manager).
    pub requests: usize,
    /// How long one request may take before it counts as failed.
    pub timeout: Duration,
}

/// The figures of one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// The request path.
    pub path: String,
    /// Latency of the successful requests.
    pub latency: Summary,
    /// Requests that failed.
    pub failures: u64,
    /// Failures by kind.
    pub errors: Errors,
    /// Size of the last successful answer, in bytes.
    pub bytes: usize,
    /// Items in the last successful answer: nodes for `info`, containers
    /// for `ps`.
    pub items: usize,
}

/// What a query run measured.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    /// `GET /info`.
    pub info: Endpoint,
    /// `GET /containers/json?all=1`.
    pub ps: Endpoint,
}

/// Nodes by status in an `/info` answer's `SystemStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NodeCounts {
    /// The `Nodes` figure.
    pub nodes: usize,
    /// Nodes whose `└ Status` is `Healthy`.
    pub healthy: usize,
    /// Nodes whose `└ Status` is `Pending`.
    pub pending: usize,
    /// Nodes with another status (`Unhealthy`, ...).
    pub other: usize,
}

/// Counts the nodes of an `/info` answer by their `└ Status`.
pub fn node_counts(info: &Value) -> NodeCounts {
    let mut counts = NodeCounts::default();
    let Some(pairs) = info.get("SystemStatus").and_then(Value::as_array) else {
        return counts;
    };
    for pair in pairs {
        let (Some(key), Some(value)) = (
            pair.get(0).and_then(Value::as_str),
            pair.get(1).and_then(Value::as_str),
        ) else {
            continue;
        };
        let key = key.trim();
        if key == "Nodes" {
            counts.nodes = value.trim().parse().unwrap_or(0);
        } else if key.ends_with("Status") && key.starts_with('└') {
            match value.trim() {
                "Healthy" => counts.healthy += 1,
                "Pending" => counts.pending += 1,
                _ => counts.other += 1,
            }
        }
    }
    counts
}

/// Runs `requests` timed `GET /info` then as many `GET
/// /containers/json?all=1`.
pub async fn run(config: &QueryConfig) -> anyhow::Result<QueryReport> {
    if config.managers.is_empty() {
        anyhow::bail!("no manager address");
    }
    let mut clients = config
        .managers
        .iter()
        .map(|m| Client::manager(m, config.timeout))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let info = endpoint(&mut clients, "/info", config.requests, |v| {
        node_counts(v).nodes
    })
    .await;
    let ps = endpoint(
        &mut clients,
        "/containers/json?all=1",
        config.requests,
        |v| v.as_array().map_or(0, Vec::len),
    )
    .await;
    Ok(QueryReport { info, ps })
}

/// Times `requests` GETs of `path`, alternating over `clients`.
async fn endpoint(
    clients: &mut [Client],
    path: &str,
    requests: usize,
    count: impl Fn(&Value) -> usize,
) -> Endpoint {
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = Errors::default();
    let (mut bytes, mut items) = (0, 0);
    // One untimed request per manager: connections open, caches warm.
    for client in clients.iter_mut() {
        let _ = client.get(path).await;
    }
    let mut failed_in_a_row = 0;
    for i in 0..requests {
        if failed_in_a_row == GIVE_UP_AFTER {
            errors.add(&format!(
                "GET {path}: gave up after {GIVE_UP_AFTER} failures in a row"
            ));
            break;
        }
        failed_in_a_row += 1;
        let k = i % clients.len();
        let sent = Instant::now();
        match clients[k].get(path).await {
            Ok(answer) if answer.status == 200 => {
                failed_in_a_row = 0;
                latencies.push(sent.elapsed());
                bytes = answer.body.len();
                match answer.json() {
                    Some(v) => items = count(&v),
                    None => errors.add(&format!("GET {path}: invalid JSON")),
                }
            }
            Ok(answer) => errors.add(&format!("GET {path}: {}", answer.describe())),
            Err(e) => errors.add(&format!("GET {path}: {e}")),
        }
    }
    Endpoint {
        path: path.to_string(),
        latency: Summary::of(&latencies),
        failures: errors.total,
        errors,
        bytes,
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nodes_by_status() {
        let info = serde_json::json!({
            "SystemStatus": [
                ["Role", "primary"],
                ["Nodes", "3"],
                [" node-1", "127.0.0.1:1"],
                ["  └ Status", "Healthy"],
                [" node-2", "127.0.0.1:2"],
                ["  └ Status", "Unhealthy"],
                [" 127.0.0.1:3", "127.0.0.1:3"],
                ["  └ Status", "Pending"],
            ]
        });
        assert_eq!(
            node_counts(&info),
            NodeCounts {
                nodes: 3,
                healthy: 1,
                pending: 1,
                other: 1
            }
        );
        assert_eq!(node_counts(&serde_json::json!({})), NodeCounts::default());
    }
}
