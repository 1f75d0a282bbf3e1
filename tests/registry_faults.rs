//! Registry faults and corners through the manager, on a real registry
//! (Debian's docker-registry, plain HTTP on loopback): the registry going
//! down mid-pull (a throttled [`Proxy`] between the engines and it, cut
//! while both nodes download), an engine dying mid-pull, a node that
//! cannot reach the registry while the other can, images named by
//! digest, `docker search` against a registry without a search API, and
//! `docker save` of a tag two nodes hold different builds of.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use swarm_harness::proxy::Proxy;
use swarm_harness::registry::Registry;
use swarm_harness::{
    docker, docker_cmd, docker_ok, free_port, http_request, info_value, start_cluster,
    start_engines_with, start_manager, wait_for, Cluster, Engine, EngineOptions, Engines, Etcd,
    FAST_REFRESH, IMAGE,
};

/// Bytes of random data in the big image's one layer: far more than the
/// throttled proxy lets through before the cut.
const BIG: u64 = 24 << 20;
/// The proxy's limit, both nodes together: the pull takes about 24 s, the
/// cut comes after about one.
const RATE: u64 = 2 << 20;
/// What each node must have downloaded through the proxy before the cut.
const STARTED: u64 = 1 << 20;

/// Two plain engines and a manager in front of them.
fn two_nodes() -> Cluster {
    start_cluster(&[&[], &[]], |e| {
        format!("nodes://{},{}", e[0].tcp, e[1].host())
    })
}

/// A manager over `engines` (as [`start_cluster`] starts it), once every
/// node is healthy.
fn cluster_of(engines: Engines) -> Cluster {
    let discovery = format!("nodes://{}", engines.tcp_addrs().join(","));
    let mut args = FAST_REFRESH.to_vec();
    args.push(&discovery);
    let manager = start_manager(&args);
    let c = Cluster { engines, manager };
    wait_healthy(&c);
    c
}

/// Imports, on `engine` directly, an image `name` of one layer holding
/// `size` bytes of random data (it does not compress).
fn import_random(engine: &Engine, size: u64, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut data = Vec::with_capacity(size as usize);
    std::fs::File::open("/dev/urandom")
        .expect("/dev/urandom")
        .take(size)
        .read_to_end(&mut data)
        .expect("reading /dev/urandom");
    std::fs::write(dir.path().join("random.bin"), &data).expect("writing random.bin");
    let tar = dir.path().join("layer.tar");
    let tar = tar.to_str().expect("path");
    let dir_path = dir.path().to_str().expect("path");
    let status = std::process::Command::new("tar")
        .args(["-cf", tar, "-C", dir_path, "random.bin"])
        .status()
        .expect("running tar");
    assert!(status.success(), "tar -cf failed: {status}");
    docker_ok(&engine.host(), &["import", tar, name]);
}

/// Restarts every engine of `c` with `max-download-attempts` 1 in its
/// daemon.json (dockerd 20.10 logs a reload of the setting on SIGHUP, yet
/// its downloads keep the old count): a layer download cut midway is then
/// retried once, 5 s later, instead of five times (5 + 10 + 15 + 20 +
/// 25 s). Waits until the manager sees every node healthy again.
fn one_download_attempt(c: &mut Cluster) {
    for engine in c.engines.engines.iter_mut() {
        std::fs::write(
            engine.dir().join("etc/daemon.json"),
            "{\"max-download-attempts\": 1}\n",
        )
        .expect("writing daemon.json");
        engine.restart();
    }
    wait_healthy(c);
}

/// Waits until `docker info` through the manager shows every node healthy.
fn wait_healthy(c: &Cluster) {
    let want = vec!["Healthy".to_string(); c.engines.len()];
    wait_for("every node healthy", Duration::from_secs(30), || {
        (info_value(&c.ok(&["info"]), "└ Status") == want).then_some(())
    });
}

/// The one line of `stderr` holding the manager's closing pull error.
fn pull_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("pull failed on"))
        .unwrap_or_else(|| panic!("no `pull failed on` line in: {stderr}"))
        .to_string()
}

/// A big image (see [`BIG`]) pushed from node-1 to `registry` and
/// removed there, so no node holds it; a [`Proxy`] to the registry at
/// [`RATE`]; the image's name through the proxy.
fn big_image_behind_proxy(c: &Cluster, registry: &Registry) -> (Proxy, String) {
    let direct = format!("{}/big:1", registry.addr);
    import_random(&c.engines[0], BIG, &direct);
    docker_ok(&c.engines[0].host(), &["push", &direct]);
    docker_ok(&c.engines[0].host(), &["rmi", &direct]);
    let proxy = Proxy::start(&registry.addr, RATE).expect("proxy");
    let image = format!("{}/big:1", proxy.addr);
    (proxy, image)
}

/// Starts `docker pull image` through the manager and returns once both
/// nodes are well into the big layer ([`STARTED`] bytes each through the
/// proxy, one connection per node).
fn pull_under_way(c: &Cluster, proxy: &Proxy, image: &str) -> std::process::Child {
    let mut pull = docker_cmd(120, c.host(), &["pull", image])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running docker pull");
    let started = Instant::now();
    loop {
        let busy = proxy
            .open_transfers()
            .iter()
            .filter(|sent| **sent >= STARTED)
            .count();
        if busy >= 2 {
            return pull;
        }
        if let Ok(Some(_)) = pull.try_wait() {
            let out = pull.wait_with_output().expect("pull output");
            panic!(
                "the pull ended before both nodes downloaded: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "both nodes never downloaded {STARTED} bytes: {:?}",
            proxy.open_transfers()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The end of a pull started with [`pull_under_way`]: whether it
/// succeeded, its stdout (progress) and stderr.
fn pull_end(pull: std::process::Child) -> (bool, String, String) {
    let out = pull.wait_with_output().expect("pull output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The registry goes down while both nodes download a big layer through
/// the manager's pull: the pull fails with one error naming both nodes,
/// the manager goes on answering, no node keeps a half-pulled image, and
/// the same pull succeeds everywhere once the registry is back.
#[test]
fn registry_down_mid_pull_names_every_node_and_recovers() {
    let registry = Registry::start().expect("registry");
    let mut c = two_nodes();
    one_download_attempt(&mut c);
    let (proxy, image) = big_image_behind_proxy(&c, &registry);

    let pull = pull_under_way(&c, &proxy, &image);
    proxy.cut();
    let (ok, stdout, stderr) = pull_end(pull);
    assert!(!ok, "the cut pull succeeded: {stdout}{stderr}");
    let error = pull_error(&stderr);
    for engine in c.engines.iter() {
        assert!(
            error.contains(&format!("{}: ", engine.name)),
            "{} not named: {error}\nprogress: {stdout}",
            engine.name
        );
        // The cut broke the layer's download on the node (its one retry
        // found the registry gone).
        let prefix = format!("{}: ", engine.name);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains("Retrying in")),
            "no retry of {} in the progress: {stdout}",
            engine.name
        );
    }

    // The manager still answers, and no node lists the image.
    let info = c.ok(&["info"]);
    assert_eq!(info_value(&info, "└ Status"), ["Healthy", "Healthy"]);
    assert_eq!(c.ok(&["images", "-q", &image]), "", "listed after the cut");
    for engine in c.engines.iter() {
        let (ok, out, _) = docker(&engine.host(), &["image", "inspect", &image]);
        assert!(!ok, "{} holds {image} after the cut: {out}", engine.name);
    }

    // Back, at full speed: the same pull reaches every node.
    proxy.set_rate(0);
    proxy.restore().expect("proxy back");
    c.ok(&["pull", &image]);
    let mut ids = Vec::new();
    for engine in c.engines.iter() {
        ids.push(docker_ok(
            &engine.host(),
            &["image", "inspect", "-f", "{{.Id}}", &image],
        ));
    }
    assert_eq!(ids[0], ids[1], "the nodes pulled different images");
    let listed = c.ok(&["images", "-q", "--no-trunc", &image]);
    assert_eq!(listed, ids[0], "the manager lists {listed}");
}

/// node-2's engine dies while both nodes download a big layer through the
/// manager's pull: the pull must fail naming node-2 (its stream broke off
/// without the image), while node-1 finishes.
#[test]
fn an_engine_dying_mid_pull_fails_the_pull() {
    let registry = Registry::start().expect("registry");
    let mut c = two_nodes();
    let (proxy, image) = big_image_behind_proxy(&c, &registry);

    let pull = pull_under_way(&c, &proxy, &image);
    c.engines[1].kill();
    proxy.set_rate(0);
    let (ok, stdout, stderr) = pull_end(pull);
    let (held, _, _) = docker(&c.engines[0].host(), &["image", "inspect", &image]);
    assert!(held, "node-1 did not finish the pull: {stdout}{stderr}");
    c.ok(&["info"]);
    assert!(
        !ok,
        "the pull succeeded though node-2 died in it\nstdout: {stdout}\nstderr: {stderr}"
    );
    let error = pull_error(&stderr);
    assert!(error.contains("node-2: "), "node-2 not named: {error}");
    assert!(!error.contains("node-1"), "node-1 named: {error}");
}

/// node-1 runs in a network namespace of its own (an engine with a
/// cluster store, see `Engine::netns`), where the registry on the host's
/// loopback cannot be reached; node-2 shares the host's. A pull through
/// the manager fails naming node-1 alone, and node-2 has the image: the
/// engine says so, `docker images` through the manager lists it, and a
/// `docker run` of it lands there.
#[test]
fn a_node_that_cannot_reach_the_registry_is_named_alone() {
    let registry = Registry::start().expect("registry");
    let etcd = Etcd::start();
    let c = cluster_of(start_engines_with(vec![
        EngineOptions {
            cluster_store: Some(etcd.cluster_store()),
            ..EngineOptions::default()
        },
        EngineOptions::default(),
    ]));
    let (cut_off, reaching) = (&c.engines[0], &c.engines[1]);
    assert!(cut_off.netns().is_some() && reaching.netns().is_none());
    let image = format!("{}/reach:1", registry.addr);
    let built = commit_marker(reaching, &image, "/reach");
    docker_ok(&reaching.host(), &["push", &image]);
    docker_ok(&reaching.host(), &["rmi", &image]);

    let err = c.err(&["pull", &image]);
    let error = pull_error(&err);
    assert!(error.contains("node-1: "), "node-1 not named: {error}");
    assert!(!err.contains("node-2"), "node-2 named: {err}");

    let id = docker_ok(
        &reaching.host(),
        &["image", "inspect", "-f", "{{.Id}}", &image],
    );
    assert_eq!(id, built, "node-2 pulled another image");
    let (ok, out, _) = docker(&cut_off.host(), &["image", "inspect", &image]);
    assert!(!ok, "node-1 holds {image}: {out}");
    let listed = c.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        listed.lines().any(|l| l == image),
        "{image} not listed: {listed}"
    );
    let ran = c.ok(&["run", "--rm", &image, "cat", "/reach"]);
    assert_eq!(ran, "/reach");
}

/// On `engine` directly: a container of busybox:local writes `marker`
/// (its path) into the file `marker`, and is committed as `name`;
/// returns the new image's ID.
fn commit_marker(engine: &Engine, name: &str, marker: &str) -> String {
    let host = engine.host();
    let container = format!("mark{}", marker.replace('/', "-"));
    docker_ok(
        &host,
        &[
            "run",
            "--name",
            &container,
            IMAGE,
            "sh",
            "-c",
            &format!("echo {marker} > {marker}"),
        ],
    );
    docker_ok(&host, &["commit", &container, name]);
    docker_ok(&host, &["rm", &container]);
    docker_ok(&host, &["image", "inspect", "-f", "{{.Id}}", name])
}

/// The digest a `docker push` printed (`1: digest: sha256:... size: N`).
fn pushed_digest(progress: &str) -> String {
    progress
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in: {progress}"))
        .to_string()
}

/// Images named by digest through the manager: after a push and a pull,
/// `docker images --digests` shows the digest; a pull by digest brings the
/// image back to every node, and inspect, history, tag, run and rmi take
/// `REPO@sha256:...`.
#[test]
fn images_named_by_digest() {
    let registry = Registry::start().expect("registry");
    let c = two_nodes();
    let repo = format!("{}/digests", registry.addr);
    let tagged = format!("{repo}:1");
    let id = commit_marker(&c.engines[0], &tagged, "/digests");
    let digest = pushed_digest(&docker_ok(&c.engines[0].host(), &["push", &tagged]));
    let by_digest = format!("{repo}@{digest}");
    docker_ok(&c.engines[0].host(), &["rmi", &tagged]);
    let listing = || {
        c.ok(&[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}",
            &repo,
        ])
    };

    c.ok(&["pull", &tagged]);
    assert_eq!(listing(), format!("{repo} 1 {digest}"));
    // The tag goes, and the digest with it (nothing else names the image).
    c.ok(&["rmi", &tagged]);
    for engine in c.engines.iter() {
        let (ok, out, _) = docker(&engine.host(), &["image", "inspect", &id]);
        assert!(!ok, "{} still holds {id}: {out}", engine.name);
    }

    c.ok(&["pull", &by_digest]);
    for engine in c.engines.iter() {
        let found = docker_ok(
            &engine.host(),
            &["image", "inspect", "-f", "{{.Id}}", &by_digest],
        );
        assert_eq!(found, id, "{} pulled another image", engine.name);
    }
    assert_eq!(listing(), format!("{repo} <none> {digest}"));
    assert_eq!(c.ok(&["inspect", "-f", "{{.Id}}", &by_digest]), id);
    assert_eq!(c.ok(&["image", "inspect", "-f", "{{.Id}}", &by_digest]), id);
    let history = c.ok(&["history", "--no-trunc", &by_digest]);
    assert!(history.contains("echo /digests"), "{history}");
    c.ok(&["tag", &by_digest, "from-digest:1"]);
    for engine in c.engines.iter() {
        let found = docker_ok(
            &engine.host(),
            &["image", "inspect", "-f", "{{.Id}}", "from-digest:1"],
        );
        assert_eq!(found, id, "from-digest:1 on {}", engine.name);
    }
    assert_eq!(
        c.ok(&["run", "--rm", &by_digest, "cat", "/digests"]),
        "/digests"
    );
    assert_eq!(saved_image(&c, &by_digest).0, id, "save by digest");
    // The digest goes; the image stays under its new tag.
    let removed = c.ok(&["rmi", &by_digest]);
    assert!(
        removed.contains(&format!("Untagged: {by_digest}")),
        "{removed}"
    );
    for engine in c.engines.iter() {
        let digests = docker_ok(
            &engine.host(),
            &[
                "image",
                "inspect",
                "-f",
                "{{.RepoDigests}}",
                "from-digest:1",
            ],
        );
        assert_eq!(digests, "[]", "{} kept the digest", engine.name);
    }
    assert_eq!(listing(), "", "the digest is still listed");
    let err = c.err(&["inspect", &by_digest]);
    assert!(err.contains("No such"), "{err}");
}

/// `docker search REGISTRY/TERM` through the manager and against an
/// engine directly give the same outcome, for a registry without a search
/// API (Distribution 2.8 has no `/v1/search`: dockerd answers
/// `Unexpected status code 404`) and for one that is down (connection
/// refused): the manager passes the engine's answer through, status and
/// body, instead of one of its own.
#[test]
fn search_answers_as_an_engine_does() {
    let registry = Registry::start().expect("registry");
    let c = two_nodes();
    let engine = &c.engines[0];
    let down = format!("127.0.0.1:{}", free_port());
    for (registry, expected) in [
        (&registry.addr, "Unexpected status code 404"),
        (&down, "connection refused"),
    ] {
        let term = format!("{registry}/busybox");
        let (ok, out, err) = docker(&engine.host(), &["search", &term]);
        assert!(!ok, "the engine found {term}: {out}");
        assert!(err.contains(expected), "the engine: {err}");
        assert_eq!(
            docker(c.host(), &["search", &term]),
            (ok, out, err),
            "docker search {term}"
        );
        let path = format!("/images/search?term={term}");
        let raw = |addr: &str| {
            http_request(addr, "GET", &path, None, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"))
        };
        let (status, body) = raw(&engine.tcp);
        assert_eq!(status, 500, "the engine: {body}");
        assert_eq!(
            raw(&c.manager.addr),
            (status, body.clone()),
            "GET {path}: the engine answered {status} {body}"
        );
    }
}

/// What the archive of a `docker save` of `name` through the manager
/// holds: the image's ID (its config file, `manifest.json`'s `Config`)
/// and its `RepoTags`.
fn saved_image(c: &Cluster, name: &str) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("saved.tar");
    let tar = tar.to_str().expect("path");
    c.ok(&["save", "-o", tar, name]);
    let out = std::process::Command::new("tar")
        .args(["-xOf", tar, "manifest.json"])
        .output()
        .expect("running tar");
    assert!(
        out.status.success(),
        "no manifest.json in the archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("manifest.json is JSON");
    let entry = &manifest[0];
    let config = entry["Config"]
        .as_str()
        .unwrap_or_else(|| panic!("no Config in {manifest}"));
    let tags = entry["RepoTags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (format!("sha256:{}", config.trim_end_matches(".json")), tags)
}

/// Waits until the manager lists `id` under `name` (its next image refresh
/// after a change made on an engine directly).
fn wait_listed(c: &Cluster, name: &str, id: &str) {
    wait_for(
        &format!("{id} listed as {name}"),
        Duration::from_secs(30),
        || {
            let listed = c.ok(&["images", "-q", "--no-trunc", name]);
            listed.lines().any(|l| l == id).then_some(())
        },
    );
}

/// Two nodes hold different builds under one tag: `docker save` through
/// the manager gives the newest copy, every time, whichever node holds
/// it.
#[test]
fn save_gives_the_newest_copy_of_a_tag() {
    let c = two_nodes();
    let name = "shared:1";
    docker_ok(&c.engines[0].host(), &["tag", IMAGE, name]);
    let older = docker_ok(
        &c.engines[0].host(),
        &["image", "inspect", "-f", "{{.Id}}", name],
    );
    let newer = commit_marker(&c.engines[1], name, "/newer");
    wait_listed(&c, name, &older);
    wait_listed(&c, name, &newer);
    for round in 1..=2 {
        let saved = saved_image(&c, name);
        assert_eq!(
            saved,
            (newer.clone(), vec![name.to_string()]),
            "save {round}"
        );
    }
    // Now node-1 holds the newest build.
    let newest = commit_marker(&c.engines[0], name, "/newest");
    wait_listed(&c, name, &newest);
    for round in 3..=4 {
        let saved = saved_image(&c, name);
        assert_eq!(
            saved,
            (newest.clone(), vec![name.to_string()]),
            "save {round}"
        );
    }
}
