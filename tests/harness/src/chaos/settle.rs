//! The end of a chaos run: once the faults healed, wait until the
//! managers agree (same applied index and digest) and the engines are
//! still (two reads of every engine's containers in a row agree), so that
//! what the managers still do after healing (stale copies of rescheduled
//! containers removed from a node back from an outage, say) is done
//! before the checker judges the state; both waits are bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::checker::{FinalManager, FinalNode, StateContainer};
use super::fleet::ChaosFleet;
use crate::bench::client::Client;

/// Timeout of one request to a manager.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between two reads of the engines.
const STILL_EVERY: Duration = Duration::from_millis(500);

/// Until the managers converged and two reads of the engines
/// [`STILL_EVERY`] apart agree, or `timeout`: whether the managers
/// converged, their last states and the engines' last read.
pub(crate) async fn settle(
    names: &[String],
    apis: &[String],
    fleet: &ChaosFleet,
    overcommit: f64,
    timeout: Duration,
) -> anyhow::Result<(bool, Vec<FinalManager>, Vec<FinalNode>)> {
    let start = Instant::now();
    let mut last: Option<Vec<FinalNode>> = None;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let (converged, managers) = converge(names, apis, left).await;
        let nodes = fleet.read(overcommit).await?;
        if last.as_ref() == Some(&nodes) || start.elapsed() > timeout {
            return Ok((converged, managers, nodes));
        }
        last = Some(nodes);
        tokio::time::sleep(STILL_EVERY).await;
    }
}

/// One manager's state, with its containers.
async fn read_state(api: &str) -> Option<(u64, String, Vec<StateContainer>)> {
    let mut c = Client::manager(api, CONTROL_TIMEOUT).ok()?;
    let answer = c.get("/_swarm/state?containers=1").await.ok()?;
    let v = (answer.status == 200).then(|| answer.json())??;
    let applied = v.get("applied_index").and_then(Value::as_u64).unwrap_or(0);
    let digest = v.get("digest")?.as_str()?.to_string();
    let list = v
        .get("list")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|c| {
                    Some(StateContainer {
                        id: c.get("id")?.as_str()?.to_string(),
                        name: c.get("name")?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some((applied, digest, list))
}

/// Until every manager reports the same applied index and digest, or
/// `timeout`: whether they did, and every manager's last state.
async fn converge(
    names: &[String],
    apis: &[String],
    timeout: Duration,
) -> (bool, Vec<FinalManager>) {
    let start = Instant::now();
    loop {
        let states = futures::future::join_all(apis.iter().map(|a| read_state(a))).await;
        let mut seen = BTreeMap::new();
        for s in states.iter().flatten() {
            seen.insert((s.0, s.1.clone()), ());
        }
        let all = states.iter().all(Option::is_some);
        let converged = all && seen.len() == 1;
        if converged || start.elapsed() > timeout {
            let managers = names
                .iter()
                .zip(states)
                .map(|(name, s)| match s {
                    Some((_, digest, containers)) => FinalManager {
                        name: name.clone(),
                        digest: Some(digest),
                        containers,
                    },
                    None => FinalManager {
                        name: name.clone(),
                        digest: None,
                        containers: Vec::new(),
                    },
                })
                .collect();
            return (converged, managers);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
