//! The etcd discovery (`etcd://`, src/discovery/etcd.rs) against a real
//! etcd 3.4 on loopback ([`EtcdV3`]): engines registered and listed under
//! classic's keys, a registration that is not renewed expiring after its
//! TTL while a renewed one stays, `changed()` waking on a registration or
//! an expiry but not on renewals, a store that is down or silent failing
//! clearly within seconds and working again once back, and TLS with
//! client certificates.

use std::future::Future;
use std::time::{Duration, Instant};

use swarm::ca::CertKind;
use swarm::discovery::etcd::{EtcdDiscovery, KvTls, CONNECT_TIMEOUT};
use swarm::discovery::DiscoveryError;
use swarm_harness::{wait_for, EtcdV3, Pki};
use tokio::time::{sleep, timeout};

/// The short TTL of the expiry tests.
const TTL: Duration = Duration::from_secs(2);
/// A TTL no test outlives.
const LONG_TTL: Duration = Duration::from_secs(60);
/// How long a failure may take to be reported.
const FAIL_WITHIN: Duration = Duration::from_secs(5);

const A: &str = "10.0.0.1:2375";
const B: &str = "10.0.0.2:2375";
const C: &str = "10.0.0.3:2375";

fn discovery(etcd: &EtcdV3, path: &str, tls: Option<KvTls>) -> EtcdDiscovery {
    EtcdDiscovery::parse(&format!("{}/{path}", etcd.addr), tls).expect("an etcd URL")
}

async fn fetch(d: &EtcdDiscovery) -> Vec<String> {
    d.fetch()
        .await
        .unwrap_or_else(|e| panic!("fetch from {}: {e}", d.url()))
}

async fn register(d: &EtcdDiscovery, addr: &str, ttl: Duration) {
    d.register(addr, ttl)
        .await
        .unwrap_or_else(|e| panic!("register {addr} in {}: {e}", d.url()));
}

/// The error `what` ends with, and that it ended within [`FAIL_WITHIN`].
async fn fails<T: std::fmt::Debug>(
    what: &str,
    f: impl Future<Output = Result<T, DiscoveryError>>,
) -> String {
    let start = Instant::now();
    let result = timeout(FAIL_WITHIN * 2, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {:?}", FAIL_WITHIN * 2));
    let elapsed = start.elapsed();
    let err = result.expect_err(what).to_string();
    assert!(
        elapsed <= FAIL_WITHIN,
        "{what}: failed only after {elapsed:?}: {err}"
    );
    eprintln!("{what}: failed in {elapsed:?}: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_register_under_classic_keys_and_are_listed() {
    let etcd = EtcdV3::start().expect("etcd");
    let manager = discovery(&etcd, "cluster/one", None);
    assert!(fetch(&manager).await.is_empty());

    // Two engines, each its own `swarm join`.
    register(&discovery(&etcd, "cluster/one", None), B, LONG_TTL).await;
    register(&discovery(&etcd, "cluster/one", None), A, LONG_TTL).await;
    assert_eq!(fetch(&manager).await, [A, B]);
    assert!(fetch(&discovery(&etcd, "cluster/two", None))
        .await
        .is_empty());
    assert!(fetch(&discovery(&etcd, "", None)).await.is_empty());

    // The key and value libkv's discovery used, bound to a lease.
    let mut raw = etcd_client::Client::connect([etcd.addr.as_str()], None)
        .await
        .expect("a plain etcd client");
    let key = format!("cluster/one/docker/swarm/nodes/{A}");
    let got = raw.get(key.as_str(), None).await.expect("get");
    let kv = got.kvs().first().unwrap_or_else(|| panic!("no key {key}"));
    assert_eq!(kv.value(), A.as_bytes());
    assert_ne!(kv.lease(), 0, "{key} is not bound to a lease");

    // An entry written by hand, without a lease, counts; one that is not
    // an engine address is left out.
    let prefix = "cluster/one/docker/swarm/nodes/";
    raw.put(format!("{prefix}{C}"), C, None).await.expect("put");
    raw.put(format!("{prefix}junk"), "not an address", None)
        .await
        .expect("put");
    assert_eq!(fetch(&manager).await, [A, B, C]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrenewed_registration_expires_and_renewed_one_stays() {
    let etcd = EtcdV3::start().expect("etcd");
    let d = discovery(&etcd, "ttl", None);
    register(&d, A, TTL).await;
    register(&d, B, TTL).await;
    let registered = Instant::now();
    assert_eq!(fetch(&d).await, [A, B]);

    // A is renewed every half second, B is not.
    let gone = loop {
        sleep(Duration::from_millis(500)).await;
        register(&d, A, TTL).await;
        let now = fetch(&d).await;
        let elapsed = registered.elapsed();
        assert!(
            now.iter().any(|a| a == A),
            "renewed {A} gone after {elapsed:?}"
        );
        if !now.iter().any(|a| a == B) {
            break elapsed;
        }
        assert!(
            elapsed < TTL + Duration::from_secs(3),
            "{B}, not renewed, still there after {elapsed:?}"
        );
    };
    assert!(
        gone >= TTL - Duration::from_millis(500),
        "{B} gone after {gone:?}, before its TTL of {TTL:?}"
    );
    eprintln!("unrenewed registration gone after {gone:?}");

    // A stays for two more TTLs of renewals.
    for _ in 0..8 {
        sleep(Duration::from_millis(500)).await;
        register(&d, A, TTL).await;
        assert_eq!(fetch(&d).await, [A]);
    }
    // B registered again after its lease expired: a new lease.
    register(&d, B, TTL).await;
    assert_eq!(fetch(&d).await, [A, B]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_wakes_on_registration_and_expiry_not_on_renewals() {
    let etcd = EtcdV3::start().expect("etcd");
    let manager = discovery(&etcd, "watched", None);
    let joiner = discovery(&etcd, "watched", None);
    register(&joiner, A, LONG_TTL).await;
    assert_eq!(fetch(&manager).await, [A]);

    // Renewals write nothing: the watch sleeps through them.
    let waiting = tokio::spawn({
        let manager = manager.clone();
        async move { manager.changed().await }
    });
    for _ in 0..4 {
        sleep(Duration::from_millis(500)).await;
        register(&joiner, A, LONG_TTL).await;
    }
    assert!(!waiting.is_finished(), "changed() woke on renewals");

    // A registration wakes it.
    let start = Instant::now();
    register(&joiner, B, LONG_TTL).await;
    timeout(FAIL_WITHIN, waiting)
        .await
        .expect("changed() did not return after a registration")
        .expect("the waiting task")
        .expect("changed()");
    eprintln!(
        "changed() returned {:?} after a registration",
        start.elapsed()
    );
    assert_eq!(fetch(&manager).await, [A, B]);

    // A change between a fetch and changed(): it returns at once.
    register(&joiner, C, TTL).await;
    timeout(Duration::from_secs(1), manager.changed())
        .await
        .expect("changed() missed a registration made after the fetch")
        .expect("changed()");
    assert_eq!(fetch(&manager).await, [A, B, C]);

    // C, not renewed, expires: that wakes it too.
    timeout(TTL + Duration::from_secs(4), manager.changed())
        .await
        .expect("changed() did not return on an expiry")
        .expect("changed()");
    assert_eq!(fetch(&manager).await, [A, B]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_fails_clearly_and_works_once_back() {
    let mut etcd = EtcdV3::start().expect("etcd");
    let d = discovery(&etcd, "down", None);
    register(&d, A, LONG_TTL).await;
    assert_eq!(fetch(&d).await, [A]);
    let waiting = tokio::spawn({
        let d = d.clone();
        async move { d.changed().await }
    });
    sleep(Duration::from_millis(300)).await;

    etcd.kill();
    let url = format!("etcd://{}/down", etcd.addr);
    // The connection in use breaks, the watch on it too.
    let err = fails("fetch from a killed etcd", d.fetch()).await;
    assert!(err.contains(&url), "{err}");
    let err = fails("the watch of a killed etcd", async {
        waiting.await.expect("the waiting task")
    })
    .await;
    assert!(err.contains(&url) && err.contains("watching"), "{err}");
    // Connecting anew is refused, each endpoint's reason said.
    let endpoint = format!("http://{}", etcd.addr);
    for err in [
        fails("fetch again", d.fetch()).await,
        fails("register", d.register(B, LONG_TTL)).await,
        fails("changed", d.changed()).await,
    ] {
        assert!(
            err.contains(&url) && err.contains("cannot connect") && err.contains(&endpoint),
            "{err}"
        );
        assert!(
            err.to_lowercase().contains("refused") && !err.contains("kv.cacertfile"),
            "{err}"
        );
    }

    // Back (same data): A's lease lived on, registering works again.
    etcd.restart().expect("etcd restarted");
    assert_eq!(fetch(&d).await, [A]);
    register(&d, B, LONG_TTL).await;
    register(&d, A, LONG_TTL).await;
    assert_eq!(fetch(&d).await, [A, B]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_store_times_out() {
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("address");
    let d = EtcdDiscovery::parse(&format!("{addr}/x"), None).expect("URL");
    let start = Instant::now();
    let err = fails("fetch from a silent store", d.fetch()).await;
    assert!(
        start.elapsed() >= CONNECT_TIMEOUT,
        "gave up after {:?}",
        start.elapsed()
    );
    assert!(
        err.contains(&format!("etcd://{addr}/x")) && err.contains("no answer within 3s"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let pki = Pki::new().expect("PKI");
    // etcd 3.4's HTTP gateway dials its own gRPC with the server's
    // certificate, which so needs clientAuth too: a manager's has both.
    let server = pki
        .issue(CertKind::Manager, "etcd", &["127.0.0.1"])
        .expect("server certificate");
    let client = pki
        .issue(CertKind::Client, "swarm-join", &["swarm-join"])
        .expect("client certificate");
    let etcd = EtcdV3::start_tls(&server).expect("etcd with TLS");
    let tls = KvTls {
        ca: client.join("ca.pem"),
        cert: Some(client.join("cert.pem")),
        key: Some(client.join("key.pem")),
    };
    let d = discovery(&etcd, "secure", Some(tls.clone()));
    register(&d, A, LONG_TTL).await;
    assert_eq!(fetch(&d).await, [A]);
    let url = format!("etcd://{}/secure", etcd.addr);

    // Plain HTTP/2 to a TLS port.
    let plain = discovery(&etcd, "secure", None);
    let err = fails("fetch without TLS", plain.fetch()).await;
    assert!(err.contains(&url) && err.contains("kv.cacertfile"), "{err}");

    // Another CA: the store's certificate is not trusted.
    let other_ca = KvTls {
        ca: pki.dir().join("other-ca").join("ca.pem"),
        ..tls.clone()
    };
    let err = fails(
        "fetch trusting another CA",
        discovery(&etcd, "secure", Some(other_ca)).fetch(),
    )
    .await;
    assert!(
        err.contains(&url) && err.contains("UnknownIssuer") && err.contains("not the CA"),
        "{err}"
    );

    // No client certificate, or one of another CA: the store refuses.
    let ca_only = KvTls {
        cert: None,
        key: None,
        ..tls.clone()
    };
    let stranger = pki
        .issue_stranger(CertKind::Client, "stranger", &["stranger"])
        .expect("a stranger's certificate");
    let strangers = KvTls {
        cert: Some(stranger.join("cert.pem")),
        key: Some(stranger.join("key.pem")),
        ..tls
    };
    for (what, tls) in [
        ("fetch without a client certificate", ca_only),
        ("fetch with a stranger's client certificate", strangers),
    ] {
        let err = fails(what, discovery(&etcd, "secure", Some(tls)).fetch()).await;
        assert!(
            err.contains(&url) && err.contains("https://") && err.contains("client certificate"),
            "{what}: {err}"
        );
    }
}

/// Classic's setup with an etcd, run as a user runs it, up to where the
/// caller goes on: `swarm manage etcd://...`, `swarm join` next to each of
/// two engines, `swarm list`; a stopped join's node leaves after its TTL
/// and returns when joined again. Every command gets the discovery
/// options `kv` (`--discovery-opt kv.cacertfile=...`, for TLS).
struct Classic {
    manager: swarm_harness::Manager,
    /// The running joins, one per engine.
    joins: Vec<std::process::Child>,
    /// The engines' addresses.
    addrs: Vec<String>,
    /// The discovery URL.
    url: String,
    /// The joins' logs.
    dir: tempfile::TempDir,
    _engines: swarm_harness::Engines,
}

impl Classic {
    fn run(etcd: &EtcdV3, path: &str, kv: &[String]) -> Classic {
        use swarm_harness::join::{swarm_join, swarm_list_with, wait_nodes};
        let kv: Vec<&str> = kv.iter().map(String::as_str).collect();
        let engines = swarm_harness::start_engines(&[&[], &[]]);
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("etcd://{}/{path}", etcd.addr);
        let mut args = swarm_harness::FAST_REFRESH.to_vec();
        args.extend_from_slice(&kv);
        args.push(&url);
        let manager = swarm_harness::start_manager(&args);
        let addrs: Vec<String> = engines.iter().map(|e| e.tcp.clone()).collect();
        let log = |name: &str| dir.path().join(name);
        let first = swarm_join(&addrs[0], &url, &kv, &log("j1"));
        let mut second = swarm_join(&addrs[1], &url, &kv, &log("j2"));
        wait_nodes(&manager.host, 2);
        let mut want = addrs.clone();
        want.sort();
        assert_eq!(swarm_list_with(&kv, &url), want);

        second.kill().expect("kill join");
        second.wait().expect("reap join");
        wait_nodes(&manager.host, 1);
        assert_eq!(swarm_list_with(&kv, &url), [addrs[0].clone()]);
        let second = swarm_join(&addrs[1], &url, &kv, &log("j3"));
        wait_nodes(&manager.host, 2);
        Classic {
            manager,
            joins: vec![first, second],
            addrs,
            url,
            dir,
            _engines: engines,
        }
    }
}

impl Drop for Classic {
    fn drop(&mut self) {
        for join in &mut self.joins {
            let _ = join.kill();
            let _ = join.wait();
        }
    }
}

/// [`Classic`] with a plain etcd; then an etcd that goes down leaves the
/// manager with its last view (it says so), and once back the joins and
/// the manager go on.
#[test]
fn manage_join_and_list_with_an_etcd() {
    use swarm_harness::join::wait_nodes;
    let mut etcd = EtcdV3::start().expect("etcd");
    let mut classic = Classic::run(&etcd, "classic", &[]);
    let manager = &classic.manager;

    // The store goes down: the manager keeps what it knew, and says why.
    etcd.kill();
    std::thread::sleep(Duration::from_secs(5));
    wait_nodes(&manager.host, 2);
    assert!(
        manager
            .log()
            .contains("discovery failed; keeping the current engines"),
        "{}",
        manager.log_tail(20)
    );
    etcd.restart().expect("etcd back");
    // Back: a join that stops is noticed again.
    let second = &mut classic.joins[1];
    second.kill().expect("kill join");
    second.wait().expect("reap join");
    wait_nodes(&classic.manager.host, 1);
}

/// [`Classic`] with an etcd serving TLS that asks for client certificates,
/// every command given classic's `--discovery-opt kv.cacertfile=...
/// kv.certfile=... kv.keyfile=...`; `swarm list` and `swarm join` without
/// them fail saying that kv.cacertfile is missing.
#[test]
fn manage_join_and_list_with_an_etcd_over_tls() {
    use swarm_harness::join::{output_text, swarm};
    let pki = Pki::new().expect("PKI");
    // A manager's certificate: see tls_with_client_certificates.
    let server = pki
        .issue(CertKind::Manager, "etcd", &["127.0.0.1"])
        .expect("server certificate");
    let client = pki
        .issue(CertKind::Client, "swarm", &["swarm"])
        .expect("client certificate");
    let etcd = EtcdV3::start_tls(&server).expect("etcd with TLS");
    let file = |name: &str| client.join(name).display().to_string();
    let kv: Vec<String> = [
        ("kv.cacertfile", "ca.pem"),
        ("kv.certfile", "cert.pem"),
        ("kv.keyfile", "key.pem"),
    ]
    .iter()
    .flat_map(|(opt, name)| {
        [
            "--discovery-opt".to_string(),
            format!("{opt}={}", file(name)),
        ]
    })
    .collect();
    let classic = Classic::run(&etcd, "secure", &kv);

    let out = swarm(&["list", &classic.url]);
    let said = output_text(&out);
    assert!(!out.status.success(), "swarm list without TLS: {said}");
    assert!(
        said.contains(&classic.url) && said.contains("kv.cacertfile"),
        "{said}"
    );
    let log = classic.dir.path().join("plain-join");
    let mut plain = swarm_harness::join::swarm_join(&classic.addrs[0], &classic.url, &[], &log);
    let complaint = wait_for(
        "the join without TLS to say why it fails",
        Duration::from_secs(15),
        || {
            std::fs::read_to_string(&log).ok().and_then(|l| {
                l.lines()
                    .find(|l| l.contains("registration failed") && l.contains("kv.cacertfile"))
                    .map(str::to_string)
            })
        },
    );
    eprintln!("swarm list without TLS: {said}\nswarm join without TLS: {complaint}");
    let _ = plain.kill();
    let _ = plain.wait();
}
