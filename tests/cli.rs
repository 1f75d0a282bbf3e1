//! The foundation end to end: two real engines, `swarm manage` in front of
//! them, and the real `docker` CLI driven through every command the
//! foundation serves. One cluster is started for the whole file; each
//! scenario runs in turn and every failure is reported by name at the end.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Stdio;
use std::time::Duration;

use swarm_harness::{
    docker, docker_cmd, docker_in_tty, docker_ok, docker_with_stdin, info_value, start_cluster,
    start_manager, wait_for, Cluster, IMAGE,
};

/// Raw HTTP/1.1 request to the manager; returns (status, body).
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    swarm_harness::http_request(addr, method, path, body, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The JSON `message` of a Docker-shaped error body (chunked or not).
fn error_message(body: &str) -> String {
    let start = body
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {body:?}"));
    let end = body.rfind('}').expect("closing brace") + 1;
    let value: serde_json::Value = serde_json::from_str(&body[start..end])
        .unwrap_or_else(|e| panic!("bad JSON {body:?}: {e}"));
    value["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {value}"))
        .to_string()
}

fn scenario_info_and_version(c: &Cluster) {
    let info = c.ok(&["info"]);
    assert_eq!(info_value(&info, "Nodes"), vec!["2"], "{info}");
    assert_eq!(info_value(&info, "Role"), vec!["primary"], "{info}");
    assert_eq!(info_value(&info, "Strategy"), vec!["spread"], "{info}");
    assert_eq!(
        info_value(&info, "└ Status"),
        vec!["Healthy", "Healthy"],
        "{info}"
    );
    // The cluster has an ID of its own, as classic's did, the same on
    // every call.
    let id = c.ok(&["info", "-f", "{{.ID}}"]);
    assert_eq!(id.len(), 59, "{id:?}");
    assert_eq!(c.ok(&["info", "-f", "{{.ID}}"]), id);
    let ids = info_value(&info, "└ ID");
    for engine in c.engines.iter() {
        assert!(
            ids.contains(&engine.id()),
            "engine {} missing in {info}",
            engine.id()
        );
        assert!(
            info.contains(&format!(" {}: ", engine.name)),
            "node line for {} missing in {info}",
            engine.name
        );
    }
    let labels = info_value(&info, "└ Labels").join("\n");
    assert!(
        labels.contains("region=eu") && labels.contains("region=us"),
        "{labels}"
    );
    assert!(labels.contains("ostype=linux"), "{labels}");
    assert!(
        info_value(&info, "Server Version")[0].starts_with("swarm/"),
        "{info}"
    );
    let cpus: i64 = c
        .engines
        .iter()
        .map(|e| {
            docker_ok(&e.host(), &["info", "-f", "{{.NCPU}}"])
                .parse::<i64>()
                .expect("NCPU")
        })
        .sum();
    assert_eq!(c.ok(&["info", "-f", "{{.NCPU}}"]), cpus.to_string());
    assert!(info_value(&info, "└ ServerVersion")[0].len() > 3, "{info}");
    assert_eq!(
        info_value(&info, "└ Error"),
        vec!["(none)", "(none)"],
        "{info}"
    );

    let version = c.ok(&[
        "version",
        "-f",
        "{{.Server.Version}} {{.Server.APIVersion}}",
    ]);
    let engine_api = docker_ok(
        &c.engines[0].host(),
        &["version", "-f", "{{.Server.APIVersion}}"],
    );
    assert_eq!(
        version,
        format!("swarm/{} {engine_api}", env!("CARGO_PKG_VERSION"))
    );

    let (status, body) = http(&c.manager.addr, "GET", "/_ping", None);
    assert_eq!((status, body.trim()), (200, "OK"));
    let (status, _) = http(&c.manager.addr, "HEAD", "/v1.24/_ping", None);
    assert_eq!(status, 200);
}

fn scenario_run_spreads_and_names(c: &Cluster) {
    c.ok(&["run", "-d", "--name", "spread-a", IMAGE, "sleep", "600"]);
    c.ok(&["run", "-d", "--name", "spread-b", IMAGE, "sleep", "600"]);
    let (a, b) = (c.node_of("spread-a"), c.node_of("spread-b"));
    assert_ne!(a, b, "spread puts the second container on the other node");
    let names = c.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(
        names.lines().any(|l| l == format!("{a}/spread-a")),
        "{names}"
    );
    assert!(
        names.lines().any(|l| l == format!("{b}/spread-b")),
        "{names}"
    );
    // The container really runs on that engine.
    let on_engine = docker_ok(
        &c.engine_named(&a).host(),
        &["ps", "--format", "{{.Names}}"],
    );
    assert!(on_engine.lines().any(|l| l == "spread-a"), "{on_engine}");
    // Addressable by name, node/name, full ID and ID prefix.
    let id = c.ok(&["inspect", "-f", "{{.Id}}", "spread-a"]);
    for reference in [format!("{a}/spread-a"), id.clone(), id[..12].to_string()] {
        assert_eq!(c.ok(&["inspect", "-f", "{{.Id}}", &reference]), id);
    }
    let node = c.ok(&[
        "inspect",
        "-f",
        "{{.Node.Name}} {{.Node.Addr}} {{.Node.Cpus}} {{.Node.Labels.region}}",
        "spread-a",
    ]);
    assert!(node.starts_with(&format!("{a} ")), "{node}");
    assert!(node.ends_with("eu") || node.ends_with("us"), "{node}");
    let swarm_id = c.ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"com.docker.swarm.id\"}}",
        "spread-a",
    ]);
    assert_eq!(swarm_id.len(), 64, "swarm id label: {swarm_id:?}");
    // The swarm id names the container, as in classic.
    let by_swarm_id = c.ok(&["inspect", "-f", "{{.Name}}", &swarm_id]);
    assert_eq!(by_swarm_id, "/spread-a");
    // Names are unique across the cluster.
    let err = c.err(&["run", "-d", "--name", "spread-b", IMAGE, "true"]);
    assert!(err.contains("is already in use"), "{err}");
    let info = c.ok(&["info"]);
    assert!(
        info_value(&info, "Running")[0]
            .parse::<i32>()
            .expect("Running")
            >= 2,
        "{info}"
    );
    c.ok(&["rm", "-f", "spread-a", "spread-b"]);
    let all = c.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!all.contains("spread-"), "{all}");
}

/// `docker info`'s Running, Paused and Stopped totals: the manager's state.
fn state_counts(c: &Cluster) -> [i64; 3] {
    let info = c.ok(&["info"]);
    ["Running", "Paused", "Stopped"].map(|key| {
        info_value(&info, key)[0]
            .parse::<i64>()
            .unwrap_or_else(|e| panic!("{key}: {e}: {info}"))
    })
}

fn scenario_lifecycle(c: &Cluster) {
    // Every change shows in the state (`info`) as soon as the call answers:
    // the manager records it from the engine's event before it answers.
    let [r, p, s] = state_counts(c);
    c.ok(&["run", "-d", "--name", "life", IMAGE, "sleep", "600"]);
    assert_eq!(state_counts(c), [r + 1, p, s], "after run -d");
    let status = |c: &Cluster| c.ok(&["inspect", "-f", "{{.State.Status}}", "life"]);
    c.ok(&["pause", "life"]);
    assert_eq!(status(c), "paused");
    assert_eq!(state_counts(c), [r, p + 1, s], "after pause");
    let listed = c.ok(&["ps", "--filter", "name=life", "--format", "{{.Status}}"]);
    assert!(listed.contains("Paused"), "{listed}");
    c.ok(&["unpause", "life"]);
    assert_eq!(status(c), "running");
    assert_eq!(state_counts(c), [r + 1, p, s], "after unpause");
    // `docker ps -a` (no filter: nodes' lists kept between requests) shows
    // a change right after the call that made it...
    let listed_state = |c: &Cluster| {
        c.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"])
            .lines()
            .find_map(|l| {
                let (name, state) = l.split_once(' ')?;
                name.ends_with("/life").then(|| state.to_string())
            })
            .unwrap_or_else(|| "absent".into())
    };
    assert_eq!(listed_state(c), "running");
    c.ok(&["stop", "-t", "1", "life"]);
    assert_eq!(status(c), "exited");
    assert_eq!(state_counts(c), [r, p, s + 1], "after stop");
    assert_eq!(listed_state(c), "exited", "ps -a after stop");
    // ... and one made on the engine directly, once its event is in.
    let engine = c.engine_named(&c.node_of("life")).host();
    docker_ok(&engine, &["start", "life"]);
    wait_for(
        "ps -a to show life running",
        Duration::from_secs(10),
        || (listed_state(c) == "running").then_some(()),
    );
    docker_ok(&engine, &["stop", "-t", "1", "life"]);
    wait_for("ps -a to show life exited", Duration::from_secs(10), || {
        (listed_state(c) == "exited").then_some(())
    });
    c.ok(&["start", "life"]);
    assert_eq!(status(c), "running");
    assert_eq!(state_counts(c), [r + 1, p, s], "after start");
    let started = c.ok(&["inspect", "-f", "{{.State.StartedAt}}", "life"]);
    c.ok(&["restart", "-t", "1", "life"]);
    assert_ne!(
        c.ok(&["inspect", "-f", "{{.State.StartedAt}}", "life"]),
        started
    );
    assert_eq!(state_counts(c), [r + 1, p, s], "after restart");
    c.ok(&["update", "--memory", "64m", "--memory-swap", "128m", "life"]);
    assert_eq!(
        c.ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "life"]),
        (64 << 20).to_string()
    );
    c.ok(&["rename", "life", "life2"]);
    let names = c.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(names.lines().any(|l| l.ends_with("/life2")), "{names}");
    assert!(!names.lines().any(|l| l.ends_with("/life")), "{names}");
    c.ok(&["kill", "life2"]);
    assert_eq!(state_counts(c), [r, p, s + 1], "after kill");
    assert_eq!(c.ok(&["wait", "life2"]), "137");
    c.ok(&["rm", "life2"]);
    let err = c.err(&["inspect", "life2"]);
    assert!(err.contains("No such") || err.contains("no such"), "{err}");
}

fn scenario_logs_top_stats_diff_export_cp_port(c: &Cluster) {
    c.ok(&[
        "run",
        "-d",
        "--name",
        "talk",
        IMAGE,
        "sh",
        "-c",
        "echo one; echo two; echo changed > /tmp/made; sleep 600",
    ]);
    wait_for("logs of talk", Duration::from_secs(10), || {
        let (_, out, _) = docker(c.host(), &["logs", "talk"]);
        (out.contains("one") && out.contains("two")).then_some(())
    });
    assert_eq!(c.ok(&["logs", "--tail", "1", "talk"]), "two");
    let stamped = c.ok(&["logs", "--timestamps", "talk"]);
    assert!(stamped.lines().all(|l| l.starts_with("20")), "{stamped}");
    assert_eq!(
        c.ok(&["logs", "--since", "2099-01-01T00:00:00", "talk"]),
        ""
    );
    // follow: the stream stays open until the container stops.
    let mut follow = docker_cmd(60, c.host(), &["logs", "-f", "talk"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker logs -f");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        follow.try_wait().expect("try_wait").is_none(),
        "logs -f ended early"
    );
    let top = c.ok(&["top", "talk"]);
    assert!(top.contains("sleep 600"), "{top}");
    let stats = c.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        "talk",
    ]);
    assert!(stats.starts_with("talk "), "{stats}");
    let diff = c.ok(&["diff", "talk"]);
    assert!(diff.contains("/tmp/made"), "{diff}");
    let export = docker_cmd(60, c.host(), &["export", "talk"])
        .output()
        .expect("docker export");
    assert!(export.status.success());
    assert!(
        export.stdout.len() > 1_000_000,
        "export is a tar of the rootfs: {} bytes",
        export.stdout.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("in.txt");
    std::fs::write(&src, "copied in\n").expect("write");
    c.ok(&["cp", src.to_str().expect("path"), "talk:/tmp/in.txt"]);
    let back = dir.path().join("out.txt");
    c.ok(&["cp", "talk:/tmp/in.txt", back.to_str().expect("path")]);
    assert_eq!(
        std::fs::read_to_string(&back).expect("read back"),
        "copied in\n"
    );
    c.ok(&["stop", "-t", "1", "talk"]);
    let status = follow.wait().expect("logs -f exits");
    assert!(status.success());
    let mut followed = String::new();
    follow
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut followed)
        .expect("read");
    assert!(followed.contains("one\ntwo"), "{followed}");
    c.ok(&["rm", "talk"]);

    let port = swarm_harness::free_port().to_string();
    c.ok(&[
        "run",
        "-d",
        "--name",
        "served",
        "-p",
        &format!("{port}:80"),
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let mapped = c.ok(&["port", "served", "80"]);
    // Published ports bind the engine's own address (`IP:PORT`, see Engine::ip).
    let addr = mapped.lines().next().unwrap_or_default().to_string();
    assert!(addr.ends_with(&format!(":{port}")), "{mapped}");
    let node_ip = c.engine_named(&c.node_of("served")).ip();
    assert_eq!(addr, format!("{node_ip}:{port}"), "{mapped}");
    let answer = wait_for("httpd answers", Duration::from_secs(10), || {
        swarm_harness::http_get(&addr, "/").ok()
    });
    assert!(answer.0 == 404 || answer.0 == 200, "{answer:?}");
    c.ok(&["rm", "-f", "served"]);
}

fn scenario_attach_run_and_exec(c: &Cluster) {
    assert_eq!(
        c.ok(&["run", "--rm", IMAGE, "echo", "hello from the cluster"]),
        "hello from the cluster"
    );
    let out = docker_with_stdin(
        c.host(),
        &[
            "run",
            "-i",
            "--rm",
            "--name",
            "stdin-run",
            IMAGE,
            "sh",
            "-c",
            "tr a-z A-Z",
        ],
        b"shout\n",
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SHOUT");
    // --rm: gone from every listing once it exited.
    wait_for("--rm containers removed", Duration::from_secs(10), || {
        let all = c.ok(&["ps", "-a", "--format", "{{.Names}}"]);
        (!all.contains("stdin-run")).then_some(())
    });
    let (ok, _, _) = docker(c.host(), &["run", "--rm", IMAGE, "sh", "-c", "exit 3"]);
    assert!(!ok, "exit code is propagated");

    c.ok(&["run", "-d", "--name", "exec-me", IMAGE, "sleep", "600"]);
    assert_eq!(c.ok(&["exec", "exec-me", "echo", "exec ok"]), "exec ok");
    let out = docker_with_stdin(
        c.host(),
        &["exec", "-i", "exec-me", "cat"],
        b"through stdin\n",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "through stdin");
    let out = docker_cmd(60, c.host(), &["exec", "exec-me", "sh", "-c", "exit 7"])
        .output()
        .expect("exec exit code");
    assert_eq!(out.status.code(), Some(7));
    // -it needs a terminal: script(1) provides one.
    let text = docker_in_tty(c.host(), "exec -it exec-me sh -c 'tty && echo tty-ok'");
    assert!(
        text.contains("/dev/pts/") && text.contains("tty-ok"),
        "{text}"
    );
    let text = docker_in_tty(
        c.host(),
        &format!("run -it --rm {IMAGE} sh -c 'tty && echo run-tty-ok'"),
    );
    assert!(text.contains("run-tty-ok"), "{text}");
    // A container started detached, then attached to: its output arrives
    // and attach ends when it exits.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "attach-me",
        IMAGE,
        "sh",
        "-c",
        "sleep 2; echo attached-out",
    ]);
    let out = docker_cmd(60, c.host(), &["attach", "attach-me"])
        .output()
        .expect("docker attach");
    assert!(out.status.success(), "attach: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "attached-out");
    c.ok(&["rm", "-f", "exec-me", "attach-me"]);
}

fn scenario_listing(c: &Cluster) {
    c.ok(&[
        "run",
        "-d",
        "--name",
        "list-run",
        "--label",
        "team=blue",
        IMAGE,
        "sleep",
        "600",
    ]);
    // `Created` has a one-second resolution: make "newest" unambiguous.
    std::thread::sleep(Duration::from_millis(1100));
    c.ok(&["create", "--name", "list-created", IMAGE, "true"]);
    let running = c.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(
        running.contains("/list-run") && !running.contains("list-created"),
        "{running}"
    );
    let all = c.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        all.contains("/list-run") && all.contains("/list-created"),
        "{all}"
    );
    let blue = c.ok(&[
        "ps",
        "-a",
        "--filter",
        "label=team=blue",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(blue.lines().count(), 1, "{blue}");
    assert!(blue.ends_with("/list-run"), "{blue}");
    let latest = c.ok(&["ps", "-a", "-n", "1", "--format", "{{.Names}}"]);
    assert!(latest.ends_with("/list-created"), "newest first: {latest}");
    // As Docker: -n and -l list containers in every state, -a or not.
    for args in [&["ps", "-n", "1"][..], &["ps", "-l"]] {
        let mut args = args.to_vec();
        args.extend(["--format", "{{.Names}}"]);
        let latest = c.ok(&args);
        assert!(latest.ends_with("/list-created"), "{args:?}: {latest}");
    }
    // Classic's node filter.
    let run_node = c.node_of("list-run");
    let on_node = c.ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("node={run_node}"),
        "--format",
        "{{.Names}}",
    ]);
    assert!(on_node.contains("/list-run"), "{on_node}");
    assert!(
        on_node
            .lines()
            .all(|l| l.starts_with(&format!("{run_node}/"))),
        "{on_node}"
    );
    // is-task as the engines evaluate it: no container made through the
    // manager is a swarm-mode task (a label does not make one).
    let ps_all = |filter: &str| c.ok(&["ps", "-aq", "--filter", filter]);
    assert_eq!(ps_all("is-task=true"), "");
    assert_eq!(ps_all("is-task=false").lines().count(), all.lines().count());
    let err = c.err(&["ps", "--filter", "is-task=maybe"]);
    assert!(err.contains("Invalid filter"), "{err}");
    let quiet = c.ok(&["ps", "-aq"]);
    assert_eq!(quiet.lines().count(), all.lines().count());
    let err = c.err(&["ps", "--filter", "bogus=1"]);
    assert!(err.contains("bogus"), "{err}");
    // docker rm --link PARENT/ALIAS removes the link on the parent's node.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "list-linked",
        "--link",
        "list-run:db",
        IMAGE,
        "sleep",
        "600",
    ]);
    let links = c.ok(&["inspect", "-f", "{{.HostConfig.Links}}", "list-linked"]);
    assert!(links.contains("/list-linked/db"), "{links}");
    c.ok(&["rm", "--link", "list-linked/db"]);
    let links = c.ok(&["inspect", "-f", "{{.HostConfig.Links}}", "list-linked"]);
    assert!(!links.contains("/list-linked/db"), "{links}");
    c.ok(&["rm", "-f", "list-run", "list-created", "list-linked"]);
}

/// Asks each engine directly whether it lists `tag` (`present`) or not.
fn assert_image_on_every_engine(c: &Cluster, tag: &str, present: bool, why: &str) {
    for engine in c.engines.iter() {
        let on_engine = docker_ok(
            &engine.host(),
            &["images", "--format", "{{.Repository}}:{{.Tag}}"],
        );
        assert_eq!(on_engine.contains(tag), present, "{why}: {on_engine}");
    }
}

fn scenario_images(c: &Cluster) {
    let images = c.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(
        images.lines().filter(|l| *l == IMAGE).count(),
        1,
        "one entry per image: {images}"
    );
    c.ok(&["tag", IMAGE, "busybox:extra"]);
    assert_image_on_every_engine(c, "busybox:extra", true, "tag on every node");
    let id = c.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox:extra"]);
    assert!(id.starts_with("sha256:"), "{id}");
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("extra.tar");
    c.ok(&["save", "-o", tar.to_str().expect("path"), "busybox:extra"]);
    assert!(std::fs::metadata(&tar).expect("saved").len() > 1_000_000);
    let removed = c.ok(&["rmi", "busybox:extra"]);
    assert!(removed.contains("Untagged: busybox:extra"), "{removed}");
    assert_image_on_every_engine(c, "busybox:extra", false, "removed on every node");
    let loaded = c.ok(&["load", "-i", tar.to_str().expect("path")]);
    assert!(loaded.contains("busybox:extra"), "{loaded}");
    assert_image_on_every_engine(c, "busybox:extra", true, "loaded on every node");
    c.ok(&["rmi", "busybox:extra"]);
    // No registry is reachable here: the pull reaches the engines and their
    // refusal comes back as a Docker error (not a missing route).
    let err = c.err(&["pull", "nothing:here"]);
    assert!(!err.contains("page not found"), "{err}");
    // `docker push repo:1` sends the tag in the query: the image is found
    // (the push then fails at the registry nobody serves), not "No such
    // image: repo".
    let port = swarm_harness::free_port();
    let pushed = format!("127.0.0.1:{port}/app:1");
    c.ok(&["tag", IMAGE, &pushed]);
    let err = c.err(&["push", &pushed]);
    assert!(!err.to_lowercase().contains("no such image"), "{err}");
    assert!(err.contains(&port.to_string()), "{err}");
    c.ok(&["rmi", &pushed]);
    // Classic's node filter: an image tagged on one node only.
    docker_ok(&c.engines[1].host(), &["tag", IMAGE, "only-two:1"]);
    let node_two = &c.engines[1].name;
    let node_one = &c.engines[0].name;
    let images = |node: &str| {
        c.ok(&[
            "images",
            "--filter",
            &format!("node={node}"),
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ])
    };
    wait_for("only-two:1 listed", Duration::from_secs(30), || {
        images(node_two).contains("only-two:1").then_some(())
    });
    assert!(!images(node_one).contains("only-two:1"));
    // A save needs one node with every image: classic's words when none has.
    docker_ok(&c.engines[0].host(), &["tag", IMAGE, "only-one:1"]);
    wait_for("only-one:1 listed", Duration::from_secs(30), || {
        images(node_one).contains("only-one:1").then_some(())
    });
    let tar = dir.path().join("split.tar");
    let tar = tar.to_str().expect("path");
    let err = c.err(&["save", "-o", tar, "only-one:1", "only-two:1"]);
    assert!(
        err.contains(
            "Unable to find a healthy engine containing all images: [only-one:1 only-two:1]"
        ),
        "{err}"
    );
    let err = c.err(&["save", "-o", tar, "only-one:1", "nothing:here"]);
    assert!(
        err.contains("Unable to find a healthy engine containing all images")
            && err.contains("no healthy node holds nothing:here"),
        "{err}"
    );
    docker_ok(&c.engines[0].host(), &["rmi", "only-one:1"]);
    docker_ok(&c.engines[1].host(), &["rmi", "only-two:1"]);
    // An image no node has, as a filter's reference: Docker's error.
    let err = c.err(&["images", "--filter", "before=nothing:here"]);
    assert!(err.to_lowercase().contains("no such image"), "{err}");
    let err = c.err(&["image", "inspect", "nothing:here"]);
    assert!(err.to_lowercase().contains("no such image"), "{err}");
    let err = c.err(&["rmi", "nothing:here"]);
    assert!(err.to_lowercase().contains("no such image"), "{err}");
}

fn scenario_bad_input(c: &Cluster) {
    let addr = &c.manager.addr;
    for (path, body, status, expect) in [
        ("/containers/create", Some("{not json"), 400, "invalid JSON"),
        (
            "/v1.41/containers/create",
            Some(r#"{"Image": 12}"#),
            400,
            "invalid container config",
        ),
        (
            "/containers/create",
            Some(r#"{"Image":"x","HostConfig":{"Memory":"lots"}}"#),
            400,
            "invalid container config",
        ),
        (
            "/containers/create",
            Some(""),
            400,
            "config cannot be empty",
        ),
        (
            "/containers/create?name=bad%20name",
            Some(r#"{"Image":"x"}"#),
            400,
            "Invalid container name",
        ),
        (
            "/containers/nope/start",
            None,
            404,
            "No such container: nope",
        ),
        (
            "/v1.41/exec/nope/start",
            Some("{}"),
            404,
            "No such exec instance",
        ),
    ] {
        let (got, answer) = http(addr, "POST", path, body);
        assert_eq!(got, status, "{path}: {answer}");
        let message = error_message(&answer);
        assert!(message.contains(expect), "{path}: {message}");
    }
    let (got, answer) = http(addr, "GET", "/v1.41/containers/nope/json", None);
    assert_eq!(got, 404);
    assert_eq!(error_message(&answer), "No such container: nope");
    let (got, answer) = http(addr, "GET", "/v99.0/info", None);
    assert_eq!(got, 400);
    assert!(error_message(&answer).contains("too new"), "{answer}");
    let (got, answer) = http(addr, "GET", "/no/such/route", None);
    assert_eq!(got, 404);
    assert_eq!(error_message(&answer), "page not found");
    // An engine error keeps the engine's status and message.
    let (got, answer) = http(
        addr,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"no-such-image:1"}"#),
    );
    assert_eq!(got, 404, "{answer}");
    assert!(error_message(&answer).contains("no-such-image"), "{answer}");
    // Nothing was lost and the manager keeps serving.
    assert_eq!(info_value(&c.ok(&["info"]), "Nodes"), vec!["2"]);
    let err = c.err(&["logs", "nope"]);
    assert!(err.contains("No such container: nope"), "{err}");
}

fn scenario_node_health(c: &mut Cluster) {
    c.ok(&["run", "-d", "--name", "survivor", IMAGE, "sleep", "600"]);
    let node = c.node_of("survivor");
    let index = c
        .engines
        .iter()
        .position(|e| e.name == node)
        .expect("engine of survivor");
    c.engines.engines[index].kill();
    wait_for("node marked unhealthy", Duration::from_secs(30), || {
        let info = c.ok(&["info"]);
        info_value(&info, "└ Status")
            .contains(&"Unhealthy".to_string())
            .then_some(())
    });
    let info = c.ok(&["info"]);
    assert_ne!(
        info_value(&info, "└ Error"),
        vec!["(none)", "(none)"],
        "{info}"
    );
    // Calls to a container of the down node say so, in classic's words.
    for args in [&["logs", "survivor"][..], &["exec", "survivor", "true"]] {
        let err = c.err(args);
        assert!(
            err.contains(&format!("running on unhealthy node {node}")),
            "{args:?}: {err}"
        );
    }
    // As classic: a down node's containers only with -a.
    let listed = c.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(!listed.contains("survivor"), "{listed}");
    let listed = c.ok(&[
        "ps",
        "-a",
        "--no-trunc",
        "--format",
        "{{.Names}} {{.Status}} {{.Command}} {{.RunningFor}}",
    ]);
    // Its real command and age, as the engine last showed them.
    assert!(
        listed.contains(&format!("{node}/survivor Host Down \"sleep 600\" ")),
        "{listed}"
    );
    assert!(!listed.contains("years ago"), "{listed}");
    // New containers go to the healthy node.
    c.ok(&["run", "-d", "--name", "elsewhere", IMAGE, "sleep", "600"]);
    assert_ne!(c.node_of("elsewhere"), node);
    c.engines.engines[index].restart();
    wait_for("node healthy again", Duration::from_secs(60), || {
        let info = c.ok(&["info"]);
        (info_value(&info, "└ Status") == vec!["Healthy", "Healthy"]).then_some(())
    });
    c.ok(&["rm", "-f", "survivor", "elsewhere"]);
}

fn scenario_file_discovery(c: &Cluster) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster");
    let dead = format!("127.0.0.1:{}", swarm_harness::free_port());
    std::fs::write(
        &file,
        format!("# test cluster\n{}\n{dead}\n", c.engines[0].tcp),
    )
    .expect("write");
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["list", &format!("file://{}", file.display())])
        .output()
        .expect("swarm list");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        format!("{}\n{dead}\n", c.engines[0].tcp)
    );
    let manager = start_manager(&[
        "--engine-refresh-min-interval",
        "1s",
        "--engine-refresh-max-interval",
        "1s",
        &format!("file://{}", file.display()),
    ]);
    let info = wait_for("one node and one pending", Duration::from_secs(20), || {
        let info = docker_ok(&manager.host, &["info"]);
        (info_value(&info, "└ Status") == vec!["Healthy", "Pending"]).then_some(info)
    });
    assert_eq!(info_value(&info, "Nodes"), vec!["2"], "{info}");
    let errors = info_value(&info, "└ Error");
    assert!(
        errors[1].contains(&dead),
        "the pending engine shows why: {info}"
    );
    // A node joins when the file changes ...
    std::fs::write(
        &file,
        format!("{}\n{}\n", c.engines[0].tcp, c.engines[1].tcp),
    )
    .expect("write");
    wait_for("second node joins", Duration::from_secs(20), || {
        let info = docker_ok(&manager.host, &["info"]);
        (info_value(&info, "└ Status") == vec!["Healthy", "Healthy"]).then_some(())
    });
    // ... and leaves when it is taken out.
    std::fs::write(&file, format!("{}\n", c.engines[1].tcp)).expect("write");
    let info = wait_for("first node leaves", Duration::from_secs(20), || {
        let info = docker_ok(&manager.host, &["info"]);
        (info_value(&info, "Nodes") == vec!["1"]).then_some(info)
    });
    assert!(
        info.contains(&format!(" {}: ", c.engines[1].name)),
        "{info}"
    );
    assert!(
        !info.contains(&format!(" {}: ", c.engines[0].name)),
        "{info}"
    );
}

#[test]
fn docker_cli_against_two_engines() {
    // One engine over TCP, one over its unix socket: both transports.
    let mut cluster = start_cluster(&[&[("region", "eu")], &[("region", "us")]], |e| {
        format!("nodes://{},{}", e[0].tcp, e[1].host())
    });
    let mut failed = cluster.run_scenarios(
        &[
            ("info and version", scenario_info_and_version),
            ("run spreads, names", scenario_run_spreads_and_names),
            ("lifecycle", scenario_lifecycle),
            (
                "logs, top, stats, diff, export, cp, port",
                scenario_logs_top_stats_diff_export_cp_port,
            ),
            ("attach, run, exec", scenario_attach_run_and_exec),
            ("listing", scenario_listing),
            ("images", scenario_images),
            ("bad input", scenario_bad_input),
            ("file discovery", scenario_file_discovery),
        ],
        |_| {},
    );
    // Last: it stops and restarts an engine.
    eprintln!("--- scenario: node health");
    if catch_unwind(AssertUnwindSafe(|| scenario_node_health(&mut cluster))).is_err() {
        eprintln!("manager log:\n{}", cluster.manager.log_tail(80));
        failed.push("node health");
    }
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}
