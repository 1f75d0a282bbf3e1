//! `docker build` through the manager (the legacy builder, as these
//! engines serve it), with the real CLI and two real engines: the context
//! goes to one node the scheduler picks, build-time constraints (a build
//! argument or a label, as classic took them) and `--memory` choose and
//! hold it like a container's, the progress streams back naming the node,
//! and `docker run` of the new tag lands where the image is. A failing
//! Dockerfile streams its error back and leaves no tag.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use swarm_harness::{
    compose_cmd, compose_down, docker, docker_cmd, info_value, output_ok, start_cluster, wait_for,
    Cluster, IMAGE,
};

/// A build context directory holding `dockerfile`.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
    std::fs::write(dir.path().join("greeting"), "hello from the context\n").expect("file");
    dir
}

/// `DOCKER_BUILDKIT=0 docker -H host build ARGS DIR`.
fn build(host: &str, args: &[&str], dir: &Path) -> Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let dir = dir.to_str().expect("path");
    all.push(dir);
    docker_cmd(180, host, &all)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("running docker build")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The build must succeed; its output.
fn built(host: &str, args: &[&str], dir: &Path) -> String {
    let output = build(host, args, dir);
    assert!(
        output.status.success(),
        "build {args:?} failed: {}",
        text(&output)
    );
    text(&output)
}

/// The names of the nodes whose engine holds `image`.
fn holders(c: &Cluster, image: &str) -> Vec<String> {
    c.engines
        .iter()
        .filter(|e| docker(&e.host(), &["image", "inspect", image]).0)
        .map(|e| e.name.clone())
        .collect()
}

/// Per node, the reserved memory in `docker info` (the `used` part).
fn reserved_memory(c: &Cluster) -> Vec<String> {
    info_value(&c.ok(&["info"]), "└ Reserved Memory")
        .into_iter()
        .map(|v| v.split(" / ").next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn build_through_the_manager() {
    let c = start_cluster(&[&[("region", "eu")], &[("region", "us")]], |e| {
        format!("nodes://{},{}", e[0].tcp, e[1].host())
    });
    let dir = context(&format!(
        "FROM {IMAGE}\nCOPY greeting /greeting\nRUN echo built > /built\nCMD [\"cat\", \"/greeting\"]\n"
    ));

    // Built on one node, named in the progress; run lands there.
    let out = built(c.host(), &["-t", "app:1"], dir.path());
    assert!(out.contains("Step 1/4 : FROM"), "{out}");
    assert!(out.contains("Successfully tagged app:1"), "{out}");
    let on = holders(&c, "app:1");
    assert_eq!(on.len(), 1, "app:1 on {on:?}");
    assert!(out.contains(&format!("Building on {}", on[0])), "{out}");
    let listed = c.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}", "app"]);
    assert_eq!(listed, "app:1");
    let greeting = c.ok(&["run", "--name", "from-build", "app:1"]);
    assert_eq!(greeting, "hello from the context");
    assert_eq!(c.node_of("from-build"), on[0]);
    c.ok(&["rm", "from-build"]);

    // Constraints as classic took them: a build argument, a label, an
    // engine label; each build lands on the node they name.
    for (args, node) in [
        (vec!["--build-arg", "constraint:node==node-2"], "node-2"),
        (vec!["--build-arg", "constraint:node==node-1"], "node-1"),
        (vec!["--build-arg", "constraint:region==us"], "node-2"),
        (
            vec!["--label", r#"com.docker.swarm.constraints=["region==eu"]"#],
            "node-1",
        ),
    ] {
        let tag = format!("placed-{node}:{}", args[0].trim_start_matches('-'));
        let mut all = vec!["-t", tag.as_str()];
        all.extend_from_slice(&args);
        let out = built(c.host(), &all, dir.path());
        assert!(
            out.contains(&format!("Building on {node}")),
            "{args:?}: {out}"
        );
        assert_eq!(holders(&c, &tag), [node], "{args:?}");
        // The placement rule is not handed to the Dockerfile.
        assert!(!out.contains("were not consumed"), "{args:?}: {out}");
    }

    // Run where the image is not: copied from the node that built it (the
    // cluster has it), not pulled.
    assert_eq!(holders(&c, "placed-node-2:build-arg"), ["node-2"]);
    let greeting = c.ok(&[
        "run",
        "--rm",
        "-e",
        "constraint:node==node-1",
        "placed-node-2:build-arg",
    ]);
    assert_eq!(greeting, "hello from the context");
    assert_eq!(holders(&c, "placed-node-2:build-arg"), ["node-1", "node-2"]);

    // A constraint no node meets, and more memory than any node has: the
    // scheduler's refusal, read by the CLI (not a broken pipe).
    let out = build(
        c.host(),
        &["-t", "nowhere:1", "--build-arg", "constraint:node==nope"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("node==nope"), "{}", text(&out));
    // Classic's words first (scripts match them), then why.
    assert!(
        text(&out).contains("Unable to find a node that satisfies the following conditions"),
        "{}",
        text(&out)
    );
    let out = build(c.host(), &["-t", "huge:1", "--memory", "100t"], dir.path());
    assert!(!out.status.success());
    assert!(
        text(&out).to_lowercase().contains("memory"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("no resources available to schedule container"),
        "{}",
        text(&out)
    );
    assert!(holders(&c, "nowhere:1").is_empty() && holders(&c, "huge:1").is_empty());

    // --memory holds the node while the build runs, like a container's,
    // and is given back when it ends.
    let slow = context(&format!("FROM {IMAGE}\nRUN sleep 4\n"));
    let host = c.host().to_string();
    let slow_path = slow.path().to_path_buf();
    let running = std::thread::spawn(move || {
        build(
            &host,
            &[
                "-t",
                "slow:1",
                "--memory",
                "64m",
                "--build-arg",
                "constraint:node==node-1",
            ],
            &slow_path,
        )
    });
    // The whole build takes 4 s: the wait is for a loaded machine, where
    // the CLI took over 20 s to send it once.
    wait_for(
        "the build's memory reserved",
        Duration::from_secs(60),
        || (reserved_memory(&c)[0] == "64 MiB").then_some(()),
    );
    let out = running.join().expect("build thread");
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        "the build's memory released",
        Duration::from_secs(10),
        || {
            reserved_memory(&c)
                .iter()
                .all(|used| used == "0 B")
                .then_some(())
        },
    );

    // A quiet build prints the image ID alone.
    let out = build(c.host(), &["-q", "-t", "quiet:1"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("sha256:") && !id.contains('\n'), "{id:?}");

    // A failing step: its error streamed back, no tag recorded anywhere.
    let failing = context(&format!(
        "FROM {IMAGE}\nRUN echo partial > /p\nRUN exit 3\n"
    ));
    let out = build(c.host(), &["-t", "broken:1"], failing.path());
    assert!(!out.status.success());
    assert!(
        text(&out).contains("returned a non-zero code: 3"),
        "{}",
        text(&out)
    );
    assert!(holders(&c, "broken:1").is_empty());
    let listed = c.ok(&["images", "-q", "broken:1"]);
    assert!(listed.is_empty(), "broken:1 listed: {listed}");
    assert!(reserved_memory(&c).iter().all(|used| used == "0 B"));

    // A bad query is the manager's 400, after the context was read.
    let out = build(
        c.host(),
        &["--cpu-shares", "999999999", "-t", "x:1"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("999999999"), "{}", text(&out));
}

/// docker-compose up --build through the manager: the service's image is
/// built on one node (its build argument says node-2), the project network
/// is made on another (its label says node-1), and the containers, placed
/// by the network, run there: the image is copied over.
#[test]
fn compose_builds_and_runs_where_its_network_is() {
    let c = start_cluster(&[&[], &[]], |e| {
        format!("nodes://{},{}", e[0].tcp, e[1].host())
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("bproj");
    std::fs::create_dir_all(project.join("web")).expect("project");
    std::fs::write(
        project.join("web/Dockerfile"),
        format!("FROM {IMAGE}\nRUN echo web-built > /said\nCMD [\"sleep\", \"600\"]\n"),
    )
    .expect("Dockerfile");
    std::fs::write(
        project.join("docker-compose.yml"),
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    build:\n      context: ./web\n      args:\n        \"constraint:node\": \"=node-2\"\n    image: bproj-web:1\n    stop_grace_period: 1s\n    networks: [inner]\n  db:\n    image: {IMAGE}\n    command: sleep 600\n    stop_grace_period: 1s\n    networks: [inner]\nnetworks:\n  inner:\n    labels:\n      com.docker.swarm.constraints: '[\"node==node-1\"]'\n"
        ),
    )
    .expect("compose file");
    let compose = |args: &[&str]| output_ok(compose_cmd(c.host(), &project, args));
    compose(&["up", "-d", "--build"]);
    assert_eq!(holders(&c, "bproj-web:1"), ["node-1", "node-2"]);
    for container in ["bproj_web_1", "bproj_db_1"] {
        assert_eq!(c.node_of(container), "node-1", "{container}");
    }
    assert_eq!(compose(&["exec", "-T", "web", "cat", "/said"]), "web-built");
    compose_down(c.host(), &project);
}
