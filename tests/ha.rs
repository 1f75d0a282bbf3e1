//! High availability end to end: three `swarm manage` processes replicating
//! the cluster state with Raft (`--raft-addr`, `--join`, `--data-dir`) in
//! front of two real engines, driven with the real `docker` CLI and
//! `swarmctl members`. One cluster is started for the whole file; the
//! scenarios run in turn (each may kill and restart managers; every manager
//! that is down after a scenario is restarted before the next one), and
//! every failure is reported by name at the end.
//!
//! Managers join in a chain (manager 1 joins through manager 0, manager 2
//! through manager 1), so a join through a follower is exercised too. All
//! of them run with `--raft-snapshot-logs 20` so that a manager that was down
//! during many writes has to catch up from a snapshot.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Output;
use std::time::{Duration, Instant};

use swarm_harness::members::{bare, joined_as_voter, parse_members, Member};
use swarm_harness::{
    compose_cmd, compose_down, docker, docker_cmd, docker_ok, docker_with_stdin, free_port,
    http_get, info_value, output_ok, start_engines, start_manager, timed, trace, wait_ok, Engines,
    Manager, IMAGE,
};

/// Number of managers in the test cluster.
const MANAGERS: usize = 3;
/// Generous bound on "a surviving manager accepts writes again" (the target
/// is about 1 s; speed is measured in benchmarks, here it is only printed).
const FAILOVER_BOUND: Duration = Duration::from_secs(10);
/// Bound on "a write without quorum fails with `no leader`".
const NO_QUORUM_BOUND: Duration = Duration::from_secs(10);

/// Two engines and three managers over them.
struct Ha {
    /// Dropped after the managers (fields drop in declaration order: managers first).
    managers: Vec<Manager>,
    engines: Engines,
    /// `--raft-addr` of each manager, `127.0.0.1:PORT`.
    raft_addrs: Vec<String>,
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `docker -H host ARGS` bounded by `secs`; returns the output and how long it took.
fn docker_timed(secs: u64, host: &str, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = docker_cmd(secs, host, args)
        .output()
        .expect("running docker");
    (out, t.elapsed())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// `docker -H host info` (10 s at most), or why it failed.
fn info(host: &str) -> Result<String, String> {
    let (out, _) = docker_timed(10, host, &["info"]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("docker -H {host} info: {}", text(&out.stderr)))
    }
}

/// The `Role` and `Primary` values of a `docker info` output.
fn role_and_primary(info: &str) -> (Option<String>, Option<String>) {
    (
        info_value(info, "Role").into_iter().next(),
        info_value(info, "Primary").into_iter().next(),
    )
}

/// `swarmctl --manager HOST members --format json`, parsed.
fn swarmctl_members(host: &str) -> Result<Vec<Member>, String> {
    trace(format!("swarmctl --manager {host} members --format json"));
    let out = timed(20, env!("CARGO_BIN_EXE_swarmctl"))
        .args(["--manager", host, "members", "--format", "json"])
        .output()
        .map_err(|e| format!("running swarmctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "swarmctl --manager {host} members failed ({}): {}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        ));
    }
    parse_members(&String::from_utf8_lossy(&out.stdout))
}

/// What identifies a membership independently of terms and indexes.
fn membership(members: &[Member]) -> BTreeSet<(u64, String, String, String)> {
    members
        .iter()
        .map(|m| {
            (
                m.id,
                bare(&m.api_addr).to_string(),
                m.raft_addr.clone(),
                m.role.clone(),
            )
        })
        .collect()
}

/// `docker create --name NAME busybox true` through `hosts` (in turn) until
/// one succeeds; each attempt is bounded by 5 s. A name already in use means
/// an earlier attempt went through after its client gave up. Returns the time
/// it took; panics after `timeout` with the last error.
fn create_until_ok(hosts: &[&str], name: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    let mut attempt = 0usize;
    wait_ok(&format!("a successful create of {name}"), timeout, || {
        let host = hosts[attempt % hosts.len()];
        attempt += 1;
        let (out, took) = docker_timed(5, host, &["create", "--name", name, IMAGE, "true"]);
        let err = text(&out.stderr);
        if out.status.success() || err.contains("already in use") {
            Ok(())
        } else {
            Err(format!("via {host} after {took:?}: {err}"))
        }
    });
    let took = start.elapsed();
    let listed = docker_ok(hosts[0], &["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        listed.lines().any(|l| l.ends_with(&format!("/{name}"))),
        "{name} was created but is not listed: {listed}"
    );
    took
}

/// `docker ps -a` names (`node/name`) through `host`.
fn all_names(host: &str) -> BTreeSet<String> {
    docker_ok(host, &["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------

impl Ha {
    fn start() -> Ha {
        let engines = start_engines(&[&[("region", "eu")], &[("region", "us")]]);
        let discovery = format!("nodes://{}", engines.tcp_addrs().join(","));
        let raft_addrs: Vec<String> = (0..MANAGERS)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut ha = Ha {
            managers: Vec::new(),
            engines,
            raft_addrs,
        };
        for i in 0..MANAGERS {
            let mut args: Vec<String> = [
                "--raft-addr",
                &ha.raft_addrs[i],
                "--raft-snapshot-logs",
                "20",
            ]
            .iter()
            .chain(swarm_harness::FAST_REFRESH.iter())
            .map(|s| s.to_string())
            .collect();
            if i > 0 {
                // A chain: the second manager joins through the first (the
                // leader), the third through the second (a follower).
                args.extend(["--join".to_string(), ha.managers[i - 1].addr.clone()]);
            }
            args.push(discovery.clone());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let t = Instant::now();
            ha.managers.push(start_manager(&args));
            let new = ha.managers[i].addr.clone();
            wait_ok(
                &format!("manager {i} ({new}) a voting member"),
                Duration::from_secs(30),
                || {
                    let leader = ha.leader_now()?;
                    let members = swarmctl_members(&ha.managers[leader].host)?;
                    joined_as_voter(&members, &new, i)
                },
            );
            eprintln!("manager {i} ({new}) member after {:?}", t.elapsed());
        }
        let leader = ha.leader(Duration::from_secs(10));
        let host = ha.managers[leader].host.clone();
        wait_ok("every node healthy", Duration::from_secs(30), || {
            let info = info(&host)?;
            let status = info_value(&info, "└ Status");
            (status == ["Healthy", "Healthy"])
                .then_some(())
                .ok_or(format!("node status {status:?}"))
        });
        ha
    }

    fn host(&self, i: usize) -> &str {
        &self.managers[i].host
    }

    fn is_up(&self, i: usize) -> bool {
        self.managers[i].pid().is_some()
    }

    fn up(&self) -> Vec<usize> {
        (0..self.managers.len())
            .filter(|&i| self.is_up(i))
            .collect()
    }

    /// The index of the leader when the running managers agree on one: one
    /// says `Role: primary`, every other says `Role: replica` with `Primary:`
    /// the leader's API address.
    fn leader_now(&self) -> Result<usize, String> {
        let mut seen = Vec::new();
        for i in self.up() {
            let info = info(self.host(i))?;
            seen.push((i, role_and_primary(&info)));
        }
        let primaries: Vec<usize> = seen
            .iter()
            .filter(|(_, (role, _))| role.as_deref() == Some("primary"))
            .map(|(i, _)| *i)
            .collect();
        let [leader] = primaries[..] else {
            return Err(format!("not exactly one primary: {seen:?}"));
        };
        let want = self.managers[leader].addr.as_str();
        let agree = seen.iter().filter(|(i, _)| *i != leader).all(|(_, rp)| {
            rp.0.as_deref() == Some("replica") && rp.1.as_deref().map(bare) == Some(want)
        });
        if agree {
            Ok(leader)
        } else {
            Err(format!("replicas disagree on primary {want}: {seen:?}"))
        }
    }

    fn leader(&self, timeout: Duration) -> usize {
        wait_ok("one agreed leader", timeout, || self.leader_now())
    }

    fn followers_of(&self, leader: usize) -> Vec<usize> {
        self.up().into_iter().filter(|&i| i != leader).collect()
    }

    /// Waits until `swarmctl members` through manager `via` lists the three
    /// managers, all reachable, one leader and two followers.
    fn all_members(&self, via: usize, timeout: Duration) -> Vec<Member> {
        wait_ok(
            &format!("3 reachable members through {}", self.managers[via].addr),
            timeout,
            || {
                let members = swarmctl_members(self.host(via))?;
                let roles: Vec<&str> = members.iter().map(|m| m.role.as_str()).collect();
                let ok = members.len() == MANAGERS
                    && members.iter().all(|m| m.reachable)
                    && roles.iter().filter(|r| **r == "leader").count() == 1
                    && roles.iter().filter(|r| **r == "follower").count() == MANAGERS - 1;
                ok.then_some(members.clone())
                    .ok_or(format!("members: {members:?}"))
            },
        )
    }

    /// Restarts every manager that is down (in index order, so each one's
    /// `--join` target is up) and waits for a full, agreed membership.
    fn heal(&mut self) {
        for i in 0..MANAGERS {
            if !self.is_up(i) {
                eprintln!("    restarting manager {i} ({})", self.managers[i].addr);
                self.managers[i].restart().expect("restarting a manager");
            }
        }
        let leader = self.leader(Duration::from_secs(30));
        self.all_members(leader, Duration::from_secs(30));
    }

    fn print_logs(&self) {
        for (i, m) in self.managers.iter().enumerate() {
            eprintln!(
                "--- manager {i} ({}) log tail ---\n{}",
                m.addr,
                m.log_tail(40)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

fn scenario_election(ha: &mut Ha) {
    let mut roles = Vec::new();
    for i in 0..MANAGERS {
        let info = info(ha.host(i)).unwrap_or_else(|e| panic!("{e}"));
        roles.push(role_and_primary(&info));
    }
    let primaries: Vec<usize> = (0..MANAGERS)
        .filter(|&i| roles[i].0.as_deref() == Some("primary"))
        .collect();
    assert_eq!(primaries.len(), 1, "exactly one primary: {roles:?}");
    let leader = primaries[0];
    for i in ha.followers_of(leader) {
        assert_eq!(roles[i].0.as_deref(), Some("replica"), "{roles:?}");
        assert_eq!(
            roles[i].1.as_deref().map(bare),
            Some(ha.managers[leader].addr.as_str()),
            "manager {i} names the leader as primary: {roles:?}"
        );
    }
    // A follower serves info from its replicated state: both nodes, healthy.
    let follower = ha.followers_of(leader)[0];
    wait_ok(
        "a follower's info shows both nodes healthy",
        Duration::from_secs(20),
        || {
            let info = info(ha.host(follower))?;
            let nodes = info_value(&info, "Nodes");
            let status = info_value(&info, "└ Status");
            (nodes == ["2"] && status == ["Healthy", "Healthy"])
                .then_some(())
                .ok_or(format!("Nodes {nodes:?}, status {status:?}"))
        },
    );

    let members = ha.all_members(follower, Duration::from_secs(10));
    let leaders: Vec<&Member> = members.iter().filter(|m| m.role == "leader").collect();
    assert_eq!(
        bare(&leaders[0].api_addr),
        ha.managers[leader].addr,
        "{members:?}"
    );
    let api: BTreeSet<&str> = members.iter().map(|m| bare(&m.api_addr)).collect();
    let want_api: BTreeSet<&str> = ha.managers.iter().map(|m| m.addr.as_str()).collect();
    assert_eq!(api, want_api, "{members:?}");
    let raft: BTreeSet<&str> = members.iter().map(|m| m.raft_addr.as_str()).collect();
    let want_raft: BTreeSet<&str> = ha.raft_addrs.iter().map(String::as_str).collect();
    assert_eq!(raft, want_raft, "{members:?}");
    let ids: BTreeSet<u64> = members.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), MANAGERS, "distinct ids: {members:?}");
    for m in &members {
        assert!(m.term.is_some(), "a reachable member has a term: {m:?}");
        if let (Some(applied), Some(last)) = (m.applied_index, m.last_log_index) {
            assert!(applied <= last, "applied beyond the log: {m:?}");
        }
    }
    // The same membership over HTTP, from the leader and from the follower.
    for i in [leader, follower] {
        let (status, body) = http_get(&ha.managers[i].addr, "/_swarm/members")
            .unwrap_or_else(|e| panic!("GET /_swarm/members on manager {i}: {e}"));
        assert_eq!(status, 200, "{body}");
        let over_http = parse_members(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            membership(&over_http),
            membership(&members),
            "GET /_swarm/members on manager {i}"
        );
    }
}

fn scenario_through_a_follower(ha: &mut Ha) {
    let leader = ha.leader(Duration::from_secs(10));
    let follower = ha.followers_of(leader)[0];
    let host = ha.host(follower).to_string();
    docker_ok(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "ha-x",
            IMAGE,
            "sh",
            "-c",
            "echo hi; sleep 600",
        ],
    );
    wait_ok("logs of ha-x", Duration::from_secs(10), || {
        let (ok, out, err) = docker(&host, &["logs", "ha-x"]);
        (ok && out.trim() == "hi")
            .then_some(())
            .ok_or(format!("{out}{err}"))
    });
    let out = docker_with_stdin(
        &host,
        &["exec", "-i", "ha-x", "cat"],
        b"through a follower\n",
    );
    assert!(out.status.success(), "exec -i: {out:?}");
    assert_eq!(text(&out.stdout), "through a follower");
    assert_eq!(
        docker_ok(&host, &["exec", "ha-x", "echo", "exec ok"]),
        "exec ok"
    );

    docker_ok(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "ha-attach",
            IMAGE,
            "sh",
            "-c",
            "sleep 2; echo attached-out",
        ],
    );
    let out = docker_cmd(60, &host, &["attach", "ha-attach"])
        .output()
        .expect("docker attach");
    assert!(out.status.success(), "attach: {out:?}");
    assert_eq!(text(&out.stdout), "attached-out");

    let node = docker_ok(&host, &["inspect", "-f", "{{.Node.Name}}", "ha-x"]);
    assert!(
        ha.engines.iter().any(|e| e.name == node),
        "ha-x runs on an engine of the cluster: {node}"
    );
    let running = docker_ok(&host, &["ps", "--format", "{{.Names}}"]);
    assert!(
        running.lines().any(|l| l == format!("{node}/ha-x")),
        "{running}"
    );
    // Every manager sees the same container.
    for i in ha.up() {
        assert_eq!(
            docker_ok(ha.host(i), &["inspect", "-f", "{{.Node.Name}}", "ha-x"]),
            node,
            "through manager {i}"
        );
    }
    docker_ok(&host, &["rm", "-f", "ha-attach"]);
    // Each manager's own copy of the state (never forwarded): once they
    // applied the same log, the same digest, holding ha-x.
    wait_ok(
        "every manager's state alike",
        Duration::from_secs(10),
        || {
            let views: Vec<serde_json::Value> = ha
                .up()
                .into_iter()
                .map(|i| {
                    let (status, body) =
                        http_get(&ha.managers[i].addr, "/_swarm/state?containers=1")
                            .map_err(|e| format!("GET /_swarm/state on manager {i}: {e}"))?;
                    if status != 200 {
                        return Err(format!("manager {i}: {status} {body}"));
                    }
                    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
                })
                .collect::<Result<_, _>>()?;
            let same = |key: &str| views.windows(2).all(|w| w[0][key] == w[1][key]);
            let leaders = views.iter().filter(|v| v["role"] == "leader").count();
            let holds_x = views.iter().all(|v| {
                v["list"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|c| c["name"] == "ha-x"))
            });
            (same("applied_index") && same("digest") && same("term") && leaders == 1 && holds_x)
                .then_some(())
                .ok_or(format!("{views:?}"))
        },
    );
}

/// docker-compose pointed at a follower: every call is forwarded to the
/// leader (network and volume creates, creates placed by the project
/// network, exec, down -v).
fn scenario_compose_through_a_follower(ha: &mut Ha) {
    let leader = ha.leader(Duration::from_secs(10));
    let follower = ha.followers_of(leader)[0];
    let host = ha.host(follower).to_string();
    let dir = tempfile::tempdir().expect("project dir");
    let project = dir.path().join("haproj");
    std::fs::create_dir_all(&project).expect("project");
    std::fs::write(
        project.join("docker-compose.yml"),
        format!(
            "version: \"2.4\"\nservices:\n  app:\n    image: {IMAGE}\n    command: sleep 600\n    stop_grace_period: 1s\n    volumes: [\"appdata:/data\"]\n    networks: [inner]\n  side:\n    image: {IMAGE}\n    command: sleep 600\n    stop_grace_period: 1s\n    depends_on: [app]\n    networks: [inner]\nnetworks:\n  inner: {{}}\nvolumes:\n  appdata: {{}}\n"
        ),
    )
    .expect("compose file");
    let compose = |args: &[&str]| output_ok(compose_cmd(&host, &project, args));
    compose(&["up", "-d"]);
    let running = compose(&["ps", "--services", "--filter", "status=running"]);
    let mut services: Vec<&str> = running.lines().collect();
    services.sort_unstable();
    assert_eq!(services, ["app", "side"], "{running}");
    assert_eq!(
        compose(&["exec", "-T", "side", "echo", "side-ok"]),
        "side-ok"
    );
    // Both on the node that holds the project's network.
    let nodes: BTreeSet<String> = ["haproj_app_1", "haproj_side_1"]
        .iter()
        .map(|c| docker_ok(&host, &["inspect", "-f", "{{.Node.Name}}", c]))
        .collect();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    compose_down(&host, &project);
    let left = docker_ok(
        &host,
        &[
            "ps",
            "-aq",
            "--filter",
            "label=com.docker.compose.project=haproj",
        ],
    );
    assert!(left.is_empty(), "{left}");
    let nets = docker_ok(&host, &["network", "ls", "-q", "--filter", "name=haproj"]);
    assert!(nets.is_empty(), "{nets}");
    let vols = docker_ok(&host, &["volume", "ls", "-q", "--filter", "name=haproj"]);
    assert!(vols.is_empty(), "{vols}");

    // docker build through the follower: the context streamed on to the
    // leader, the progress back; the image runs through the follower.
    let context = dir.path().join("built");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {IMAGE}\nRUN echo through-a-follower > /said\nCMD [\"cat\", \"/said\"]\n"),
    )
    .expect("Dockerfile");
    let mut build = docker_cmd(
        120,
        &host,
        &["build", "-t", "ha-built:1", context.to_str().expect("path")],
    );
    build.env("DOCKER_BUILDKIT", "0");
    let built = output_ok(build);
    assert!(built.contains("Successfully tagged ha-built:1"), "{built}");
    assert_eq!(
        docker_ok(&host, &["run", "--rm", "ha-built:1"]),
        "through-a-follower"
    );
}

fn scenario_leader_killed(ha: &mut Ha) {
    let leader = ha.leader(Duration::from_secs(10));
    let lhost = ha.host(leader).to_string();
    docker_ok(&lhost, &["create", "--name", "ha-pre-1", IMAGE, "true"]);
    docker_ok(
        &lhost,
        &["run", "-d", "--name", "ha-pre-2", IMAGE, "sleep", "600"],
    );
    let before = all_names(&lhost);
    let identity = ha
        .all_members(leader, Duration::from_secs(10))
        .into_iter()
        .find(|m| m.raft_addr == ha.raft_addrs[leader])
        .map(|m| m.id)
        .expect("the leader is a member");
    assert!(
        before.iter().any(|n| n.ends_with("/ha-pre-1")),
        "{before:?}"
    );
    let survivors = ha.followers_of(leader);
    let hosts: Vec<String> = survivors.iter().map(|&i| ha.host(i).to_string()).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();

    eprintln!(
        "    SIGKILL leader, manager {leader} ({})",
        ha.managers[leader].addr
    );
    let killed = Instant::now();
    ha.managers[leader].kill();
    let took = create_until_ok(&hosts, "ha-after-kill", Duration::from_secs(30));
    eprintln!("    first write accepted {took:?} after the leader was killed");
    let new_leader = ha.leader(Duration::from_secs(15));
    eprintln!(
        "    manager {new_leader} is primary ({:?} after the kill)",
        killed.elapsed()
    );
    assert_ne!(new_leader, leader);
    assert!(
        took < FAILOVER_BOUND,
        "a survivor accepted writes only after {took:?}"
    );

    for host in &hosts {
        let after = all_names(host);
        let lost: Vec<&String> = before.difference(&after).collect();
        assert!(lost.is_empty(), "lost after failover via {host}: {lost:?}");
        assert!(
            after.iter().any(|n| n.ends_with("/ha-after-kill")),
            "{after:?}"
        );
    }
    // The names are still taken in the new leader's state.
    let (ok, _, err) = docker(
        ha.host(new_leader),
        &["create", "--name", "ha-pre-1", IMAGE, "true"],
    );
    assert!(!ok && err.contains("already in use"), "{err}");

    eprintln!("    restarting manager {leader} from its data dir");
    ha.managers[leader].restart().expect("restarting a manager");
    let new_addr = ha.managers[new_leader].addr.clone();
    wait_ok(
        "the restarted manager a replica of the new leader",
        Duration::from_secs(30),
        || {
            let (role, primary) = role_and_primary(&info(ha.host(leader))?);
            (role.as_deref() == Some("replica") && primary.as_deref().map(bare) == Some(&new_addr))
                .then_some(())
                .ok_or(format!("role {role:?}, primary {primary:?}"))
        },
    );
    let members = ha.all_members(leader, Duration::from_secs(30));
    let me = members
        .iter()
        .find(|m| m.raft_addr == ha.raft_addrs[leader])
        .unwrap_or_else(|| panic!("restarted manager missing: {members:?}"));
    assert_eq!(bare(&me.api_addr), ha.managers[leader].addr, "{members:?}");
    assert_eq!(me.role, "follower", "{members:?}");
    assert_eq!(me.id, identity, "rejoined with its identity: {members:?}");
}

/// `swarmctl --manager HOST discovery [ARGS]`: its printed line.
fn swarmctl_discovery(host: &str, args: &[&str]) -> String {
    let out = timed(20, env!("CARGO_BIN_EXE_swarmctl"))
        .args(["--manager", host, "discovery"])
        .args(args)
        .output()
        .expect("running swarmctl");
    assert!(
        out.status.success(),
        "swarmctl discovery {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// The nodes `docker info` through `host` counts.
fn node_count(host: &str) -> Result<String, String> {
    Ok(info_value(&info(host)?, "Nodes").join(""))
}

/// Discovery is the cluster's: a manager restarted with another URL (one
/// engine only) follows the recorded one when it leads, and says so; token
/// discovery set with swarmctl survives the loss of the leader (joins
/// register through a follower, which forwards to whichever leads).
fn scenario_discovery_is_the_clusters(ha: &mut Ha) {
    let leader = ha.leader(Duration::from_secs(10));
    let recorded = swarmctl_discovery(ha.host(leader), &[]);
    let all = format!("nodes://{}", ha.engines.tcp_addrs().join(","));
    assert_eq!(recorded, all);

    // Manager `odd` comes back with a URL naming one engine, and is made
    // the leader (the others killed in turn, quorum kept).
    let odd = ha.followers_of(leader)[0];
    let one = format!("nodes://{}", ha.engines.tcp_addrs()[0]);
    ha.managers[odd]
        .restart_with_arg(&all, &one)
        .expect("restarting with another discovery");
    // Election timeouts are drawn once per process: a manager with the
    // longest one can lose every race. With the third manager paused, only
    // `odd` can win when the killed leader returns: it needs that one's
    // vote, and is already campaigning when it comes back. The third is
    // paused a second before the kill, so that every entry the leader
    // committed meanwhile went through `odd`: a leader whose log is longer
    // than `odd`'s would refuse it its vote (and win again).
    let signal = |pid: Option<u32>, sig: &str| {
        let pid = pid.expect("a running manager");
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {pid}");
    };
    for _ in 0..8 {
        let now = ha.leader(Duration::from_secs(15));
        if now == odd {
            break;
        }
        let third = (0..MANAGERS)
            .find(|&i| i != odd && i != now)
            .expect("a third manager");
        signal(ha.managers[third].pid(), "-STOP");
        std::thread::sleep(Duration::from_secs(1));
        ha.managers[now].kill();
        std::thread::sleep(Duration::from_millis(600));
        ha.managers[now].restart().expect("restarting a manager");
        let odd_host = ha.host(odd).to_string();
        // Until it leads, or the round is lost (the loop tries again).
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline
            && !info(&odd_host).is_ok_and(|i| role_and_primary(&i).0.as_deref() == Some("primary"))
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        signal(ha.managers[third].pid(), "-CONT");
    }
    assert_eq!(ha.leader(Duration::from_secs(15)), odd, "never led");
    let host = ha.host(odd).to_string();
    wait_ok(
        "both nodes healthy under the odd leader",
        Duration::from_secs(20),
        || {
            let info = info(&host)?;
            let status = info_value(&info, "└ Status");
            (status == ["Healthy", "Healthy"])
                .then_some(())
                .ok_or(format!("node status {status:?}"))
        },
    );
    // Still both a while later: its own URL never replaced the cluster's.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(node_count(&host).as_deref(), Ok("2"));
    assert!(
        ha.managers[odd]
            .log()
            .contains("following the cluster's discovery, not this manager's flag"),
        "no word of it in the log"
    );
    ha.managers[odd]
        .restart_with_arg(&one, &all)
        .expect("restarting with the cluster's discovery");

    // Token discovery, set for the whole cluster, across a failover.
    let leader = ha.leader(Duration::from_secs(15));
    let via = ha.followers_of(leader)[0];
    let hub = ha.managers[via].addr.clone();
    let out = timed(20, env!("CARGO_BIN_EXE_swarm"))
        .args(["create", "--manager", &hub])
        .output()
        .expect("swarm create");
    let token = text(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && token.len() == 32,
        "{token:?} {}",
        text(&out.stderr)
    );
    let url = format!("token://{token}");
    assert_eq!(swarmctl_discovery(&hub, &["set", &url]), url);
    let mut joins: Vec<std::process::Child> = ha
        .engines
        .tcp_addrs()
        .iter()
        .map(|addr| {
            std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
                .args([
                    "join",
                    "--advertise",
                    addr,
                    "--heartbeat",
                    "1s",
                    "--ttl",
                    "5s",
                ])
                .args(["--manager", &hub, &url])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("swarm join")
        })
        .collect();
    let listed = |host: &str| -> Result<usize, String> {
        let out = timed(20, env!("CARGO_BIN_EXE_swarm"))
            .args(["list", &format!("token://{host}/{token}")])
            .output()
            .map_err(|e| e.to_string())?;
        Ok(text(&out.stdout).lines().count())
    };
    wait_ok("both engines registered", Duration::from_secs(20), || {
        (listed(&hub)? == 2)
            .then_some(())
            .ok_or("not yet".to_string())
    });
    ha.managers[leader].kill();
    let new_leader = ha.leader(Duration::from_secs(15));
    assert_ne!(new_leader, leader);
    // Past the TTL: the registrations went on through the follower.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(listed(&hub), Ok(2));
    let host = ha.host(new_leader).to_string();
    assert_eq!(node_count(&host).as_deref(), Ok("2"));
    for join in joins.iter_mut() {
        let _ = join.kill();
        let _ = join.wait();
    }
    ha.managers[leader].restart().expect("restarting a manager");
    assert_eq!(swarmctl_discovery(&host, &["set", &all]), all);
}

fn scenario_quorum_lost(ha: &mut Ha) {
    let leader = ha.leader(Duration::from_secs(10));
    let host = ha.host(leader).to_string();
    let followers = ha.followers_of(leader);
    for &i in &followers {
        eprintln!(
            "    SIGKILL follower, manager {i} ({})",
            ha.managers[i].addr
        );
        ha.managers[i].kill();
    }
    for args in [
        &["create", "--name", "ha-noquorum", IMAGE, "true"][..],
        &[
            "run",
            "-d",
            "--name",
            "ha-noquorum-run",
            IMAGE,
            "sleep",
            "600",
        ][..],
    ] {
        let (out, took) = docker_timed(30, &host, args);
        eprintln!(
            "    `docker {}` without quorum answered in {took:?}",
            args[0]
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "a write without quorum succeeded");
        eprintln!("      {err}");
        assert!(err.contains("no leader"), "{err}");
        assert!(
            took < NO_QUORUM_BOUND,
            "a write without quorum took {took:?}: {err}"
        );
    }
    // Served by the survivor itself.
    info(&host).unwrap_or_else(|e| panic!("info without quorum: {e}"));
    let ping = http_get(&ha.managers[leader].addr, "/_ping").expect("_ping");
    assert_eq!((ping.0, ping.1.trim()), (200, "OK"));

    let restarted = Instant::now();
    for &i in &followers {
        ha.managers[i].restart().expect("restarting a manager");
    }
    let hosts: Vec<String> = ha.up().iter().map(|&i| ha.host(i).to_string()).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let took = create_until_ok(&hosts, "ha-quorum-back", Duration::from_secs(30));
    eprintln!(
        "    writes accepted again {took:?} after the restarts ({:?} since the first restart)",
        restarted.elapsed()
    );
    // The refused writes left nothing behind.
    let names = all_names(hosts[0]);
    assert!(
        !names.iter().any(|n| n.contains("/ha-noquorum")),
        "a refused write left a container: {names:?}"
    );
}

/// `swarmctl add-manager` with `args`: its output, or why it failed.
fn swarmctl_add_manager(host: &str, args: &[&str]) -> Result<String, String> {
    let out = timed(40, env!("CARGO_BIN_EXE_swarmctl"))
        .args(["--manager", host, "add-manager"])
        .args(args)
        .output()
        .map_err(|e| format!("running swarmctl: {e}"))?;
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!("{}: {}", out.status, text(&out.stderr)))
    }
}

/// A manager added by hand that never catches up (nothing runs at its
/// addresses) stays a learner: it does not count for the quorum, so one
/// real manager may still die and writes go on. (It was made a voter at
/// once, and a single lost manager then stopped every write.)
fn scenario_learner_until_caught_up(ha: &mut Ha) {
    let leader = ha.leader(Duration::from_secs(10));
    let host = ha.host(leader).to_string();
    let (raft, api) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let added = swarmctl_add_manager(&host, &["4242", &raft, &api])
        .unwrap_or_else(|e| panic!("add-manager: {e}"));
    assert!(added.contains("as a learner"), "{added}");
    let members = swarmctl_members(&host).unwrap_or_else(|e| panic!("{e}"));
    let ghost = members
        .iter()
        .find(|m| m.id == 4242)
        .unwrap_or_else(|| panic!("4242 not listed: {members:?}"));
    assert_eq!((ghost.role.as_str(), ghost.reachable), ("learner", false));
    let follower = ha.followers_of(leader)[0];
    eprintln!(
        "    SIGKILL follower, manager {follower} ({}), with a learner that never answers",
        ha.managers[follower].addr
    );
    ha.managers[follower].kill();
    let took = create_until_ok(&[host.as_str()], "ha-with-learner", Duration::from_secs(15));
    eprintln!("    writes go on ({took:?}) with 2 of 3 voters");
    ha.managers[follower]
        .restart()
        .expect("restarting a manager");
    let out = timed(20, env!("CARGO_BIN_EXE_swarmctl"))
        .args(["--manager", &host, "remove-manager", "4242"])
        .output()
        .expect("swarmctl remove-manager");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn scenario_snapshot_catch_up(ha: &mut Ha) {
    let leader = ha.leader(Duration::from_secs(10));
    let followers = ha.followers_of(leader);
    let (down, other) = (followers[0], followers[1]);
    let lhost = ha.host(leader).to_string();
    let ohost = ha.host(other).to_string();
    eprintln!(
        "    SIGKILL follower, manager {down} ({})",
        ha.managers[down].addr
    );
    ha.managers[down].kill();

    let t = Instant::now();
    let names: Vec<String> = (0..30).map(|i| format!("ha-snap-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let host = if i % 2 == 0 { &lhost } else { &ohost };
        docker_ok(host, &["create", "--name", name, IMAGE, "true"]);
    }
    let mut rm = vec!["rm"];
    rm.extend(
        names
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 6 != 0)
            .map(|(_, n)| n.as_str()),
    );
    docker_ok(&lhost, &rm);
    let members = swarmctl_members(&lhost).unwrap_or_else(|e| panic!("{e}"));
    let target = members
        .iter()
        .find(|m| m.role == "leader")
        .and_then(|m| m.last_log_index)
        .unwrap_or_else(|| panic!("no leader log index: {members:?}"));
    eprintln!(
        "    30 creates + 25 removes in {:?}; leader log index {target}",
        t.elapsed()
    );

    let restarted = Instant::now();
    ha.managers[down].restart().expect("restarting a manager");
    let laddr = ha.managers[leader].addr.clone();
    let raft = ha.raft_addrs[down].clone();
    let count = wait_ok(
        "the restarted manager caught up",
        Duration::from_secs(60),
        || {
            let info_down = info(ha.host(down))?;
            let (role, primary) = role_and_primary(&info_down);
            if role.as_deref() != Some("replica") || primary.as_deref().map(bare) != Some(&laddr) {
                return Err(format!("role {role:?}, primary {primary:?}"));
            }
            let mine = info_value(&info_down, "Containers");
            let theirs = info_value(&info(&lhost)?, "Containers");
            if mine.is_empty() || mine != theirs {
                return Err(format!("containers {mine:?}, leader {theirs:?}"));
            }
            let members = swarmctl_members(&lhost)?;
            let me = members
                .iter()
                .find(|m| m.raft_addr == raft)
                .ok_or(format!("not a member: {members:?}"))?;
            match me.applied_index {
                Some(a) if a >= target && me.reachable => Ok(mine[0].clone()),
                _ => Err(format!("applied {:?} < {target}: {me:?}", me.applied_index)),
            }
        },
    );
    eprintln!(
        "    caught up {:?} after the restart ({count} containers; its log {} snapshot)",
        restarted.elapsed(),
        if ha.managers[down].log().to_lowercase().contains("snapshot") {
            "mentions a"
        } else {
            "does not mention a"
        }
    );
    let listed = docker_ok(&lhost, &["ps", "-aq"]).lines().count();
    assert_eq!(count, listed.to_string(), "info counts what ps -a lists");
    let kept: Vec<&str> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 6 == 0)
        .map(|(_, n)| n.as_str())
        .collect();
    let mut rm = vec!["rm"];
    rm.extend(kept);
    docker_ok(ha.host(down), &rm);
}

type Scenario = fn(&mut Ha);

#[test]
fn three_managers_over_two_engines() {
    let t = Instant::now();
    let mut ha = Ha::start();
    eprintln!("cluster up in {:?}", t.elapsed());
    let scenarios: [(&str, Scenario); 8] = [
        ("election", scenario_election),
        ("through a follower", scenario_through_a_follower),
        (
            "compose through a follower",
            scenario_compose_through_a_follower,
        ),
        ("leader killed", scenario_leader_killed),
        (
            "discovery is the cluster's",
            scenario_discovery_is_the_clusters,
        ),
        ("quorum lost", scenario_quorum_lost),
        ("learner until caught up", scenario_learner_until_caught_up),
        ("snapshot catch-up", scenario_snapshot_catch_up),
    ];
    let mut failed = Vec::new();
    for (name, scenario) in scenarios {
        eprintln!("--- scenario: {name}");
        trace(format!("scenario {name}"));
        let t = Instant::now();
        if catch_unwind(AssertUnwindSafe(|| scenario(&mut ha))).is_err() {
            failed.push(name);
            ha.print_logs();
        }
        if catch_unwind(AssertUnwindSafe(|| ha.heal())).is_err() {
            failed.push("(heal after scenario)");
            ha.print_logs();
        }
        eprintln!("    {name}: {:?}", t.elapsed());
    }
    eprintln!("total {:?}", t.elapsed());
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}

#[test]
fn members_json_is_checked_strictly() {
    let good = r#"[{"id":1,"api_addr":"127.0.0.1:1","raft_addr":"127.0.0.1:2","role":"leader",
        "term":3,"last_log_index":9,"applied_index":null,"reachable":true}]"#;
    let members = parse_members(good).expect("valid members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].applied_index, None);
    assert_eq!(members[0].last_log_index, Some(9));
    for (bad, why) in [
        (good.replace(r#","reachable":true"#, ""), "a key missing"),
        (
            good.replace(r#""term":3"#, r#""term":3,"extra":1"#),
            "an extra key",
        ),
        (good.replace(r#""id":1"#, r#""id":"1""#), "id a string"),
        (
            good.replace(r#""role":"leader""#, r#""role":"boss""#),
            "unknown role",
        ),
        (good.replace("true", "1"), "reachable a number"),
        (good.replace(['[', ']'], ""), "not an array"),
    ] {
        assert!(parse_members(&bad).is_err(), "accepted with {why}: {bad}");
    }
}
