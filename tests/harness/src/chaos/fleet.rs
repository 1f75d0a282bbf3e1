//! The engines of a chaos run behind one interface: the hollow fleet (the
//! default), started on the bridge of the managers' hosts when they have
//! their own, or real engines ([`RealFleet`], `--engines N`); stopping one
//! node for a while; reading every node's containers after healing, as the
//! engines themselves report them.

use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

use super::checker::{Capacity, EngineContainer, FinalNode, HostPort, Proto};
use super::net::ChaosNet;
use super::real::RealFleet;
use super::run::ChaosConfig;
use crate::bench::client::Client;
use crate::bench::rig::{FleetSpec, HollowFleet, Rig};

/// Timeout of one control request to an engine.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a node gets to answer `/_ping` again after its outage.
const BACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The engines of a run.
pub(crate) enum ChaosFleet {
    /// `hollow-engine` nodes.
    Hollow(HollowFleet),
    /// Real dockerd engines.
    Real(RealFleet),
}

impl ChaosFleet {
    /// Starts the engines `config` asks for (real ones if
    /// [`ChaosConfig::engines`] says so), on `net`'s bridge if given, and
    /// waits until they answer; `progress` prints a line.
    pub(crate) async fn start(
        config: &ChaosConfig,
        rig: &mut Rig,
        net: Option<&ChaosNet>,
        progress: impl Fn(String),
    ) -> anyhow::Result<ChaosFleet> {
        if config.engines > 0 {
            progress(format!("starting {} real engines", config.engines));
            let fleet = RealFleet::start(config.engines, net, config.duration).await?;
            return Ok(ChaosFleet::Real(fleet));
        }
        let host = net.map_or("127.0.0.1".to_string(), |n| n.bridge_ip().to_string());
        let mut args = vec![
            "--memory".to_string(),
            config.node_memory.to_string(),
            "--cpus".to_string(),
            config.node_cpus.to_string(),
        ];
        args.extend(config.rig.hollow_args.iter().cloned());
        let spec = FleetSpec {
            bin: &config.rig.hollow_bin,
            nodes: config.nodes,
            host: &host,
            base_port: config.rig.base_port,
            admin: false,
            args: &args,
            ready_timeout: config.rig.ready_timeout,
            request_timeout: CONTROL_TIMEOUT,
            processes: 1,
        };
        Ok(ChaosFleet::Hollow(rig.start_fleet(&spec, progress).await?))
    }

    /// How many nodes.
    pub(crate) fn len(&self) -> usize {
        match self {
            ChaosFleet::Hollow(f) => f.nodes,
            ChaosFleet::Real(f) => f.len(),
        }
    }

    /// Node i's API address.
    pub(crate) fn addr(&self, i: usize) -> String {
        match self {
            ChaosFleet::Hollow(f) => f.addr(i),
            ChaosFleet::Real(f) => f.addr(i),
        }
    }

    /// The managers' discovery URL naming every node.
    pub(crate) fn discovery(&self) -> String {
        match self {
            ChaosFleet::Hollow(f) => f.discovery(),
            ChaosFleet::Real(f) => f.discovery(),
        }
    }

    /// Node i stops answering (its listener and connections closed) and
    /// comes back by itself after `outage`; returns at once (a real engine:
    /// once it is killed).
    pub(crate) async fn stop_for(&self, i: usize, outage: Duration) -> anyhow::Result<()> {
        match self {
            ChaosFleet::Hollow(f) => {
                let node = f.addr(i);
                let path = format!("/hollow/kill?for={}ms", outage.as_millis());
                let mut c = Client::new(&node, CONTROL_TIMEOUT).map_err(anyhow::Error::msg)?;
                let killed = c.post(&path, None).await.map_err(anyhow::Error::msg)?;
                if killed.status != 200 {
                    bail!("{node}{path}: {}", killed.describe());
                }
                Ok(())
            }
            ChaosFleet::Real(f) => f.stop_for(i, outage).await,
        }
    }

    /// Waits until node i answers `/_ping` again.
    pub(crate) async fn wait_back(&self, i: usize) -> anyhow::Result<()> {
        if let ChaosFleet::Real(f) = self {
            return f.wait_back(i).await;
        }
        let what = format!("node {}", self.addr(i));
        wait_ping(
            &self.addr(i),
            false,
            BACK_TIMEOUT,
            &what,
            "after its outage",
            || None,
        )
        .await
    }

    /// Every node's name, capacity and containers, from its own API.
    pub(crate) async fn read(&self, overcommit: f64) -> anyhow::Result<Vec<FinalNode>> {
        let mut nodes = Vec::new();
        for i in 0..self.len() {
            let addr = self.addr(i);
            let mut c = Client::new(&addr, CONTROL_TIMEOUT).map_err(anyhow::Error::msg)?;
            let info = get_json(&mut c, "/info").await?;
            let name = info
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or(&addr)
                .to_string();
            let capacity = Capacity {
                memory: info.get("MemTotal").and_then(Value::as_u64).unwrap_or(0),
                cpus_milli: info.get("NCPU").and_then(Value::as_u64).unwrap_or(0) * 1000,
            };
            let list = get_json(&mut c, "/containers/json?all=1").await?;
            let mut containers = Vec::new();
            for id in list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("Id")?.as_str())
            {
                // Gone since the list (the managers still at work): not there.
                let path = format!("/containers/{id}/json");
                if let Some(v) = get_json_unless_gone(&mut c, &path).await? {
                    containers.push(engine_container(&v));
                }
            }
            nodes.push(FinalNode {
                name,
                capacity,
                overcommit,
                containers,
            });
        }
        Ok(nodes)
    }
}

/// Polls `GET /_ping` on `addr` every 100 ms until it answers 200, over
/// the managers' client (TLS when the run uses it) if `manager`, else
/// plain HTTP as to an engine. An error naming `what` after `timeout`, or
/// at once when `gave_up` says why.
pub(crate) async fn wait_ping(
    addr: &str,
    manager: bool,
    timeout: Duration,
    what: &str,
    after: &str,
    gave_up: impl Fn() -> Option<String>,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    loop {
        if let Some(why) = gave_up() {
            bail!("{what} did not come back: {why}");
        }
        let client = if manager {
            Client::manager(addr, CONTROL_TIMEOUT)
        } else {
            Client::new(addr, CONTROL_TIMEOUT)
        };
        if let Ok(mut c) = client {
            if matches!(c.get("/_ping").await, Ok(a) if a.status == 200) {
                return Ok(());
            }
        }
        if start.elapsed() > timeout {
            bail!("{what} did not answer /_ping {timeout:?} {after}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` as JSON; an error unless it answers 200 with JSON.
async fn get_json(c: &mut Client, path: &str) -> anyhow::Result<Value> {
    get_json_unless_gone(c, path)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{} {path}: 404", c.addr()))
}

/// `GET path` as JSON, `None` when it answers 404; an error unless it
/// answers 200 with JSON.
async fn get_json_unless_gone(c: &mut Client, path: &str) -> anyhow::Result<Option<Value>> {
    let answer = c.get(path).await.map_err(anyhow::Error::msg)?;
    if answer.status == 404 {
        return Ok(None);
    }
    if answer.status != 200 {
        bail!("{} {path}: {}", c.addr(), answer.describe());
    }
    answer
        .json()
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("{} {path}: invalid JSON", c.addr()))
}

/// A container from an engine's inspect answer; its reservations counted
/// as swarm counts them (`-c N` reserves N CPUs, `--cpus` wins).
pub fn engine_container(v: &Value) -> EngineContainer {
    let text = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let num = |p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(0).max(0) as u64;
    let nano = num("/HostConfig/NanoCpus");
    let shares = num("/HostConfig/CpuShares");
    let cpus_milli = if nano > 0 {
        nano.div_ceil(1_000_000)
    } else {
        shares.saturating_mul(1000)
    };
    let mut host_ports = Vec::new();
    if let Some(bindings) = v
        .pointer("/HostConfig/PortBindings")
        .and_then(Value::as_object)
    {
        for (key, list) in bindings {
            let proto = match key.split_once('/').map(|(_, p)| p) {
                Some("udp") => Proto::Udp,
                Some("sctp") => Proto::Sctp,
                _ => Proto::Tcp,
            };
            for b in list.as_array().into_iter().flatten() {
                let port = b
                    .get("HostPort")
                    .and_then(Value::as_str)
                    .and_then(|p| p.parse::<u16>().ok());
                if let Some(port) = port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: b
                            .get("HostIp")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        port,
                        proto,
                    });
                }
            }
        }
    }
    EngineContainer {
        id: text("/Id").unwrap_or_default(),
        name: text("/Name").unwrap_or_default(),
        swarm_id: text("/Config/Labels/com.docker.swarm.id"),
        memory: num("/HostConfig/Memory"),
        cpus_milli,
        host_ports,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reservations_are_read_as_swarm_counts_them() {
        let v = json!({
            "Id": "abc", "Name": "/web",
            "Config": { "Labels": { "com.docker.swarm.id": "s1" } },
            "HostConfig": {
                "Memory": 268435456, "NanoCpus": 0, "CpuShares": 2,
                "PortBindings": { "80/tcp": [{ "HostIp": "", "HostPort": "20001" }],
                                  "53/udp": [{ "HostPort": "" }] }
            }
        });
        let c = engine_container(&v);
        assert_eq!(c.name, "/web");
        assert_eq!(c.swarm_id.as_deref(), Some("s1"));
        assert_eq!((c.memory, c.cpus_milli), (256 << 20, 2000));
        assert_eq!(c.host_ports, vec![HostPort::tcp(20_001)]);
        let nano = json!({ "HostConfig": { "NanoCpus": 1_500_000_000i64, "CpuShares": 4 } });
        assert_eq!(engine_container(&nano).cpus_milli, 1500);
    }
}
