//! Tests of the command line.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::scheduler::Strategy;

#[test]
fn manage_defaults() {
    let cli = Cli::try_parse_from(["swarm", "manage", "nodes://a:1"]).unwrap();
    let Command::Manage(args) = cli.command else {
        panic!("not manage")
    };
    assert_eq!(args.host, "tcp://127.0.0.1:4000");
    assert_eq!(args.strategy, Strategy::Spread);
    assert_eq!(args.engine_refresh_min_interval, Duration::from_secs(30));
    assert_eq!(args.engine_failure_retry, 3);
    assert_eq!(args.list_cache, Duration::from_secs(2));
    assert_eq!(
        args.enabled_filters().len(),
        crate::scheduler::filter::names().len()
    );
    assert_eq!(args.discovery_url(), "nodes://a:1");
    assert_eq!(args.raft_addr.to_string(), "127.0.0.1:0");
    assert_eq!(args.join, None);
    assert_eq!(args.raft_snapshot_logs, 5000);
    assert_eq!(args.raft_heartbeat, Duration::from_millis(100));
    let api = args.api_options();
    assert_eq!(api.header_timeout, Duration::from_secs(20));
    assert_eq!(api.idle_timeout, Duration::from_secs(60));
    assert_eq!(api.max_header_size, 64 * 1024);
    assert_eq!(api.max_connections, None);
    assert_eq!(api.max_body_size, 4 << 20);
    assert_eq!(api.hosts, vec!["127.0.0.1"]);
    assert!(api.cors_origins.is_empty());
}

#[test]
fn api_flags() {
    let cli = Cli::try_parse_from([
        "swarm",
        "manage",
        "--api-header-timeout",
        "2s",
        "--api-idle-timeout",
        "0s",
        "--api-max-connections",
        "50",
        "--api-max-header-size",
        "1M",
        "--api-max-body-size",
        "16k",
        "-H",
        "tcp://mgr1.example:4000",
        "--advertise",
        "mgr1.internal:4000",
        "--api-host",
        "swarm.example",
        "--api-host",
        "*.corp.example",
        "--api-cors-header",
        "http://ui.example",
    ])
    .unwrap();
    let Command::Manage(args) = cli.command else {
        panic!("not manage")
    };
    let api = args.api_options();
    assert_eq!(api.header_timeout, Duration::from_secs(2));
    assert!(api.idle_timeout > Duration::from_secs(365 * 24 * 3600));
    assert_eq!(api.max_connections, Some(50));
    assert_eq!(api.max_header_size, 1 << 20);
    assert_eq!(api.max_body_size, 16 << 10);
    assert_eq!(
        api.hosts,
        vec![
            "swarm.example",
            "*.corp.example",
            "mgr1.example",
            "mgr1.internal"
        ]
    );
    assert_eq!(api.cors_origins, vec!["http://ui.example"]);
    for bad in [
        ["--api-max-connections", "0"],
        ["--api-max-header-size", "100"],
        ["--api-max-header-size", "64q"],
        ["--api-header-timeout", "soon"],
    ] {
        let mut argv = vec!["swarm", "manage"];
        argv.extend(bad);
        assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
    }
}

#[test]
fn tls_flags() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["swarm", "manage"];
        argv.extend(extra);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Manage(args)) => Ok(args),
            Ok(_) => panic!("not manage"),
            Err(e) => Err(e),
        }
    };
    let plain = parse(&[]).unwrap();
    assert!(!plain.tls.enabled());
    assert!(!plain.engine_tls());
    let verify = parse(&[
        "--tlsverify",
        "--tlscacert",
        "/c/ca.pem",
        "--tlscert",
        "/c/m.pem",
    ])
    .unwrap();
    assert!(verify.tls.enabled() && verify.tls.tlsverify);
    assert!(verify.engine_tls());
    let files = verify.tls.files();
    assert_eq!(files.ca, PathBuf::from("/c/ca.pem"));
    assert_eq!(files.cert, PathBuf::from("/c/m.pem"));
    assert!(files.key.ends_with("key.pem"));
    assert_eq!(
        verify.tls_modes().api,
        Some(crate::tls::ApiClients::Verified)
    );
    let plain_engines = parse(&["--tls", "--engine-tls=false"]).unwrap();
    assert!(plain_engines.tls.enabled() && !plain_engines.engine_tls());
    assert_eq!(
        plain_engines.tls_modes(),
        crate::tls::TlsModes {
            api: Some(crate::tls::ApiClients::Optional),
            engines: false
        }
    );
    let engines_only = parse(&["--engine-tls"]).unwrap();
    assert!(!engines_only.tls.enabled() && engines_only.engine_tls());
    assert!(parse(&["--engine-tls=maybe"]).is_err());
}

#[test]
fn sizes() {
    assert_eq!(parse_size("65536"), Ok(65536));
    assert_eq!(parse_size("64k"), Ok(65536));
    assert_eq!(parse_size("64KiB"), Ok(65536));
    assert_eq!(parse_size("16MB"), Ok(16 << 20));
    assert_eq!(parse_size("1g"), Ok(1 << 30));
    assert!(parse_size("").is_err());
    assert!(parse_size("1k").is_err());
    assert!(parse_size("k").is_err());
    assert!(parse_size("99999999999999G").is_err());
}

#[test]
fn raft_flags() {
    let cli = Cli::try_parse_from([
        "swarm",
        "manage",
        "--raft-addr",
        "127.0.0.1:4101",
        "--join",
        "127.0.0.1:4001",
        "--raft-snapshot-logs",
        "20",
        "--raft-heartbeat",
        "400ms",
    ])
    .unwrap();
    let Command::Manage(args) = cli.command else {
        panic!("not manage")
    };
    assert_eq!(args.raft_addr.to_string(), "127.0.0.1:4101");
    assert_eq!(args.join.as_deref(), Some("127.0.0.1:4001"));
    assert_eq!(args.raft_snapshot_logs, 20);
    assert_eq!(args.raft_heartbeat, Duration::from_millis(400));
    for bad in [
        ["--raft-addr", "nowhere"],
        ["--raft-snapshot-logs", "0"],
        ["--raft-heartbeat", "5ms"],
        ["--raft-heartbeat", "1m"],
        ["--raft-heartbeat", "-1s"],
    ] {
        let mut argv = vec!["swarm", "manage"];
        argv.extend(bad);
        assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
    }
}

#[test]
fn manage_flags() {
    let cli = Cli::try_parse_from([
        "swarm",
        "--log-format",
        "json",
        "manage",
        "-H",
        "unix:///tmp/s",
        "--strategy",
        "binpack",
        "--filter",
        "health",
        "--filter",
        "port",
        "--engine-refresh-min-interval",
        "500ms",
        "--engine-failure-retry",
        "2",
    ])
    .unwrap();
    assert_eq!(cli.log_format, LogFormat::Json);
    let Command::Manage(args) = cli.command else {
        panic!("not manage")
    };
    assert_eq!(args.strategy, Strategy::Binpack);
    assert_eq!(args.enabled_filters(), vec!["health", "port"]);
    assert_eq!(args.engine_refresh_min_interval, Duration::from_millis(500));
    assert_eq!(args.placement().overcommit, 50_000);
    let cli =
        Cli::try_parse_from(["swarm", "manage", "--cluster-opt", "swarm.overcommit=0.5"]).unwrap();
    let Command::Manage(args) = cli.command else {
        panic!("not manage")
    };
    assert_eq!(args.placement().overcommit, 500_000);
}

#[test]
fn cluster_opts_as_classic_took_them() {
    let manage = |opts: &[&str]| {
        let mut argv = vec!["swarm", "manage"];
        for o in opts {
            argv.extend(["--cluster-opt", o]);
        }
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Manage(args)) => Ok(args),
            Ok(_) => Err("not manage".to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let args = manage(&["swarm.overcommit=-0.5", "swarm.createretry=2"]).expect("taken");
    assert_eq!(args.placement().overcommit, -500_000);
    assert_eq!(args.create_retry(), 2);
    let notes = args.classic_notes().expect("notes");
    assert!(
        notes.iter().any(|n| n.contains("less resource")),
        "{notes:?}"
    );
    assert_eq!(manage(&[]).expect("defaults").create_retry(), 0);
    let heartbeat = manage(&["swarm.discovery.heartbeat=5s"]).expect("taken");
    let notes = heartbeat.classic_notes().expect("notes");
    assert!(notes.iter().any(|n| n.contains("heartbeat")), "{notes:?}");
    for (opt, message) in [
        (
            "swarm.overcommit=-2",
            "swarm.overcommit should be larger than -1, -2.000000 is invalid",
        ),
        (
            "swarm.createretry=-1",
            "swarm.createretry can not be negative, -1 is invalid",
        ),
        ("mesos.port=3375", "Mesos driver is not served"),
    ] {
        let e = manage(&[opt]).err().unwrap_or_default();
        assert!(e.contains(message), "{opt}: {e}");
    }
}

#[test]
fn join_and_list_say_what_is_missing_as_classic() {
    let join = |argv: &[&str]| {
        let mut all = vec!["swarm", "join"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all).map(|c| c.command) {
            Ok(Command::Join(args)) => args.validate(),
            Ok(_) => Err("not join".into()),
            Err(e) => Err(e.to_string()),
        }
    };
    // The environment may hold SWARM_DISCOVERY or SWARM_ADVERTISE.
    if std::env::var_os("SWARM_DISCOVERY").is_none() {
        assert_eq!(
            join(&["--advertise=10.0.0.1:2375"]),
            Err("discovery required to join a cluster. See 'swarm join --help'.".into())
        );
    }
    if std::env::var_os("SWARM_ADVERTISE").is_none() {
        assert_eq!(
            join(&["token://t"]),
            Err("missing mandatory --advertise flag".into())
        );
    }
    assert_eq!(
        join(&["--addr", "10.0.0.1:2375", "token://t"]),
        Ok(("token://t".into(), "10.0.0.1:2375".into()))
    );
    let delay = join(&["--delay", "-1s", "--addr", "a:1", "token://t"]);
    assert!(
        delay
            .as_ref()
            .is_err_and(|e| e.contains("--delay should not be a negative number")),
        "{delay:?}"
    );
    assert_eq!(
        discovery_required(None, "list"),
        Err("discovery required to list a cluster. See 'swarm list --help'.".into())
    );
    // Classic's one-letter commands.
    for (short, long) in [
        ("m", "manage"),
        ("l", "list"),
        ("c", "create"),
        ("j", "join"),
    ] {
        let parsed = Cli::try_parse_from(["swarm", short, "--help"]);
        let help = parsed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(help.contains(&format!("swarm {long}")), "{short}: {help}");
    }
    // Classic's deprecated --engine-refresh-retry is taken, with a note.
    let Ok(Command::Manage(args)) =
        Cli::try_parse_from(["swarm", "manage", "--engine-refresh-retry", "5"]).map(|c| c.command)
    else {
        panic!("manage with --engine-refresh-retry")
    };
    assert_eq!(args.failure_retry(), 5);
    let notes = args.classic_notes().expect("notes");
    assert!(notes.iter().any(|n| n.contains("deprecated")), "{notes:?}");
}

#[test]
fn bad_flags_are_refused() {
    for argv in [
        vec!["swarm", "manage", "--strategy", "bogus"],
        vec!["swarm", "manage", "--filter", "bogus"],
        vec!["swarm", "manage", "--engine-refresh-min-interval", "soon"],
        vec!["swarm", "manage", "--engine-refresh-min-interval", "0s"],
        vec!["swarm", "manage", "--engine-failure-retry", "0"],
        vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit"],
        vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit=lots"],
        vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit=-1"],
        vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit=-2"],
        vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit=NaN"],
        vec!["swarm", "manage", "--cluster-opt", "swarm.createretry=-1"],
        vec!["swarm", "manage", "--cluster-opt", "swarm.createretry=x"],
        vec!["swarm", "manage", "--cluster-opt", "mesos.address=1.2.3.4"],
        vec!["swarm", "manage", "--cluster-opt", "other=1"],
    ] {
        assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
    }
}

#[test]
fn classic_command_lines_are_taken() {
    let args = |line: &str| classic_args(line.split_whitespace().map(str::to_string));
    assert_eq!(
        args("swarm -debug manage -strategy binpack -H tcp://0.0.0.0:4000 -f health nodes://a:1"),
        [
            "swarm",
            "--debug",
            "manage",
            "--strategy",
            "binpack",
            "-H",
            "tcp://0.0.0.0:4000",
            "-f",
            "health",
            "nodes://a:1"
        ]
    );
    assert_eq!(
        args("swarm join -advertise=1.2.3.4:2375 token://t")[2],
        "--advertise=1.2.3.4:2375"
    );
    assert_eq!(args("swarm manage -addr 1.2.3.4:4000")[2], "--addr");
    // A value that looks like a flag stays a value.
    assert_eq!(
        args("swarm manage --engine-refresh-min-interval -10s")[3],
        "-10s"
    );
    let cli = Cli::try_parse_from(args(
        "swarm -l warn -experimental manage -c swarm --replication --replication-ttl 20s \
         --heartbeat 5s --cors --discovery-opt kv.path=a --addr 1.2.3.4:4000 nodes://a:1",
    ))
    .expect("classic's flags");
    assert_eq!(cli.log_level, "warn");
    let Command::Manage(manage) = cli.command else {
        panic!("not manage")
    };
    assert_eq!(manage.advertise.as_deref(), Some("1.2.3.4:4000"));
    assert_eq!(manage.discovery_opt("kv.path").as_deref(), Some("a"));
    assert_eq!(manage.api_options().cors_origins, ["*"]);
    assert_eq!(manage.classic_notes().expect("notes").len(), 2);
    for bad in [
        "swarm manage -c mesos-experimental nodes://a:1",
        "swarm manage --discovery-opt kv.nothing=1 nodes://a:1",
        "swarm manage --engine-refresh-min-interval 90s nodes://a:1",
    ] {
        let cli = Cli::try_parse_from(args(bad)).expect(bad);
        let Command::Manage(manage) = cli.command else {
            panic!("not manage")
        };
        assert!(manage.classic_notes().is_err(), "{bad}");
    }
    for refused in [
        "swarm manage --engine-refresh-min-interval -10s nodes://a:1",
        "swarm manage --heartbeat 500ms nodes://a:1",
    ] {
        assert!(Cli::try_parse_from(args(refused)).is_err(), "{refused}");
    }
}
