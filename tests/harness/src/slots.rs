//! Slots of the real engines (subnet 172.29.N.0/24, bridge `swtbrN`,
//! containerd namespace `swtN`; for an engine in its own network namespace
//! also the namespace `swtnsN` and the veth `swtvN`; an [`crate::etcd::Etcd`]
//! takes a slot for its address), shared by every test process of the host:
//! a slot is recorded in a file under [`NET_LOCK_DIR`] (owner pid, its start
//! time, the engine's directory) while a file lock is held, so several test
//! binaries can start engines at the same time; slots left behind by a
//! killed test process are reclaimed (processes killed, bridge and files
//! removed) by the next test that starts engines.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::sys::{
    kill_tree, proc_is_zombie, proc_starttime, remove_cgroups, remove_tree, run_quiet,
};

/// Directory holding the slot lock files shared by all test processes.
pub(crate) const NET_LOCK_DIR: &str = "/tmp/swarm-test-net";

/// Takes the host-wide file lock guarding the slot files (also those of
/// [`crate::chaos::net`]).
pub(crate) fn slot_lock() -> Result<File, String> {
    fs::create_dir_all(NET_LOCK_DIR).map_err(|e| format!("creating {NET_LOCK_DIR}: {e}"))?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(NET_LOCK_DIR).join(".lock"))
        .map_err(|e| format!("opening slot lock: {e}"))?;
    f.lock().map_err(|e| format!("locking slot lock: {e}"))?;
    Ok(f)
}

/// Contents of a slot file: owner pid, owner start time, a detail line
/// (an engine's dir).
pub(crate) fn slot_record(detail: &str) -> String {
    let pid = std::process::id();
    format!("{pid} {}\n{detail}\n", proc_starttime(pid).unwrap_or(0))
}

/// Whether the slot file's owner process is gone; returns the detail line
/// (for an engine, its dir to clean).
pub(crate) fn slot_is_stale(content: &str) -> Option<String> {
    let mut lines = content.lines();
    let mut first = lines.next()?.split_whitespace();
    let pid: u32 = first.next()?.parse().ok()?;
    let start: u64 = first.next()?.parse().ok()?;
    let detail = lines.next()?.to_string();
    match proc_starttime(pid) {
        Some(s) if s == start && !proc_is_zombie(pid) => None,
        _ => Some(detail),
    }
}

/// Cleans up after a dead owner: its engine's processes, network and files.
fn reclaim(slot: u8, dir: &Path) {
    kill_tree(&[], Some(&format!("{}/", dir.display())));
    remove_cgroups(&dir.join("data/containers"));
    remove_slot_network(slot);
    remove_tree(dir);
}

/// The bridge of slot N, `swtbrN`: an engine's containers' bridge (in the
/// engine's network namespace when it has one), or the interface holding
/// an etcd's address.
pub(crate) fn bridge_name(slot: u8) -> String {
    format!("swtbr{slot}")
}

/// The network namespace of slot N's engine, when it has one: `swtnsN`
/// (`/run/netns/swtnsN`).
pub(crate) fn netns_name(slot: u8) -> String {
    format!("swtns{slot}")
}

/// The host side of the veth pair into slot N's network namespace: `swtvN`.
pub(crate) fn veth_name(slot: u8) -> String {
    format!("swtv{slot}")
}

/// The FORWARD rule of a bridge on the host: traffic between its ports.
pub(crate) fn bridge_rule(br: &str) -> Vec<String> {
    ["FORWARD", "-i", br, "-o", br, "-j", "ACCEPT"]
        .map(String::from)
        .to_vec()
}

/// The FORWARD rule of a veth on the host: traffic from the namespace
/// behind it to every other engine's namespace (`swtv+`).
pub(crate) fn veth_rule(veth: &str) -> Vec<String> {
    ["FORWARD", "-i", veth, "-o", "swtv+", "-j", "ACCEPT"]
        .map(String::from)
        .to_vec()
}

/// `iptables -w -D RULE`, quietly (the rule may not be there).
pub(crate) fn delete_rule(rule: &[String]) {
    let mut args = vec!["-w", "-D"];
    args.extend(rule.iter().map(String::as_str));
    run_quiet("iptables", &args);
}

/// Removes what slot N may have on the host, best effort: the bridge and
/// its FORWARD rule, the veth (both ends) and its rule, the network
/// namespace (and with it the bridge inside).
pub(crate) fn remove_slot_network(slot: u8) {
    let br = bridge_name(slot);
    delete_rule(&bridge_rule(&br));
    if Path::new("/sys/class/net").join(&br).exists() {
        run_quiet("ip", &["link", "del", &br]);
    }
    let veth = veth_name(slot);
    if Path::new("/sys/class/net").join(&veth).exists() {
        delete_rule(&veth_rule(&veth));
        run_quiet("ip", &["link", "del", &veth]);
    }
    let ns = netns_name(slot);
    if Path::new("/run/netns").join(&ns).exists() {
        run_quiet("ip", &["netns", "del", &ns]);
    }
}

/// Reclaims, once per process, every slot whose owner process is dead.
pub(crate) fn reclaim_stale_slots() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(_lock) = slot_lock() else { return };
        let Ok(rd) = fs::read_dir(NET_LOCK_DIR) else {
            return;
        };
        for entry in rd.flatten() {
            let Some(slot) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u8>().ok())
            else {
                continue;
            };
            let Ok(content) = fs::read_to_string(entry.path()) else {
                continue;
            };
            if let Some(dir) = slot_is_stale(&content) {
                reclaim(slot, Path::new(&dir));
                let _ = fs::remove_file(entry.path());
            }
        }
    });
}

/// Picks a free slot N (1..=254) whose subnet 172.29.N.0/24 is not in use on
/// this host and records it for `dir`.
pub(crate) fn acquire_slot(dir: &Path) -> Result<u8, String> {
    let _lock = slot_lock()?;
    let addrs = Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let seed = (std::process::id() as usize).wrapping_mul(7);
    for k in 0..254usize {
        let slot = ((seed + k) % 254 + 1) as u8;
        let path = Path::new(NET_LOCK_DIR).join(slot.to_string());
        if let Ok(content) = fs::read_to_string(&path) {
            match slot_is_stale(&content) {
                Some(old) => reclaim(slot, Path::new(&old)),
                None => continue,
            }
        }
        let prefix = format!(" 172.29.{slot}.");
        let ours = [
            format!(" {} ", bridge_name(slot)),
            format!(" {} ", veth_name(slot)),
        ];
        if addrs
            .lines()
            .any(|l| l.contains(&prefix) && !ours.iter().any(|o| l.contains(o)))
        {
            continue; // someone else's network
        }
        fs::write(&path, slot_record(&dir.display().to_string()))
            .map_err(|e| format!("writing slot file: {e}"))?;
        return Ok(slot);
    }
    Err("no free 172.29.N.0/24 slot".into())
}

pub(crate) fn release_slot(slot: u8) {
    if let Ok(_lock) = slot_lock() {
        let _ = fs::remove_file(Path::new(NET_LOCK_DIR).join(slot.to_string()));
    }
}
