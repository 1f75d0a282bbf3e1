//! Read latency: `GET /info` (`docker info`), `GET /containers/json?all=1`
//! (`docker ps -a`) and filtered listings (`docker ps -a --filter ...`),
//! one request at a time, alternating over the managers.

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
    /// Whether to time `ps -a` (the whole list).
    pub ps_all: bool,
    /// Filtered listings to time: `docker ps -a --filter F` for each `F`
    /// (`label=k=v`, `name=n`, ...).
    pub filters: Vec<String>,
    /// How long one request may take before it counts as failed.
    pub timeout: Duration,
}

/// The figures of one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// What a user would type (`info`, `ps -a --filter name=x`).
    pub what: String,
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
    /// `GET /containers/json?all=1`, if timed.
    pub ps: Option<Endpoint>,
    /// The filtered listings, in the order asked.
    pub filtered: Vec<Endpoint>,
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

/// Runs `requests` timed `GET /info`, then as many `GET
/// /containers/json?all=1` (if asked) and of each filtered listing.
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
    let info = endpoint(&mut clients, "info", "/info", config.requests, |v| {
        node_counts(v).nodes
    })
    .await;
    let listed = |v: &Value| v.as_array().map_or(0, Vec::len);
    let ps = match config.ps_all {
        true => Some(
            endpoint(
                &mut clients,
                "ps -a",
                "/containers/json?all=1",
                config.requests,
                listed,
            )
            .await,
        ),
        false => None,
    };
    let mut filtered = Vec::with_capacity(config.filters.len());
    for filter in &config.filters {
        let path = filtered_path(filter)?;
        let what = format!("ps -a --filter {filter}");
        filtered.push(endpoint(&mut clients, &what, &path, config.requests, listed).await);
    }
    Ok(QueryReport { info, ps, filtered })
}

/// The path of `docker ps -a --filter FILTER` (`FILTER` is `key=value`,
/// as the CLI takes it).
pub fn filtered_path(filter: &str) -> anyhow::Result<String> {
    let Some((key, value)) = filter.split_once('=') else {
        anyhow::bail!("filter {filter:?} is not KEY=VALUE");
    };
    let filters = serde_json::json!({ key: { value: true } }).to_string();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("all", "1")
        .append_pair("filters", &filters)
        .finish();
    Ok(format!("/containers/json?{query}"))
}

/// Times `requests` GETs of `path` (`what` to a user), alternating over
/// `clients`.
async fn endpoint(
    clients: &mut [Client],
    what: &str,
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
        what: what.to_string(),
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
    fn filtered_paths_carry_docker_filters() {
        let path = filtered_path("label=swarm-bench.group=7").expect("a filter");
        let query = path.strip_prefix("/containers/json?").expect("a listing");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs[0], ("all".into(), "1".into()));
        let filters: Value = serde_json::from_str(&pairs[1].1).expect("JSON");
        assert_eq!(
            filters,
            serde_json::json!({"label": {"swarm-bench.group=7": true}})
        );
        assert!(filtered_path("name").is_err());
    }

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
