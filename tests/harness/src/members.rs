//! The managers as `swarmctl members --format json` lists them, parsed
//! strictly (exactly the documented keys and types), and the check the HA
//! tests wait on while a manager joins.

use std::collections::BTreeSet;

use serde_json::Value;

/// The keys of one `swarmctl members --format json` entry, exactly.
pub const MEMBER_KEYS: [&str; 8] = [
    "api_addr",
    "applied_index",
    "id",
    "last_log_index",
    "raft_addr",
    "reachable",
    "role",
    "term",
];

/// One manager as `swarmctl members --format json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Raft node ID.
    pub id: u64,
    /// Its API address, as the cluster knows it.
    pub api_addr: String,
    /// Its Raft address.
    pub raft_addr: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
    /// Its current term, if known.
    pub term: Option<u64>,
    /// Its last log index, if known.
    pub last_log_index: Option<u64>,
    /// Its applied index, if known.
    pub applied_index: Option<u64>,
    /// Whether the leader hears from it.
    pub reachable: bool,
}

/// `tcp://127.0.0.1:1` and `127.0.0.1:1` name the same address.
pub fn bare(addr: &str) -> &str {
    addr.strip_prefix("tcp://").unwrap_or(addr)
}

fn opt_u64(entry: &Value, key: &str) -> Result<Option<u64>, String> {
    match &entry[key] {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key} is neither a number nor null in {entry}")),
    }
}

/// Parses the members JSON, insisting on exactly the documented keys and
/// types and a known role.
pub fn parse_members(json: &str) -> Result<Vec<Member>, String> {
    let value: Value =
        serde_json::from_str(json.trim()).map_err(|e| format!("invalid JSON {json:?}: {e}"))?;
    let entries = value
        .as_array()
        .ok_or_else(|| format!("not a JSON array: {json}"))?;
    let want: BTreeSet<&str> = MEMBER_KEYS.into_iter().collect();
    entries
        .iter()
        .map(|e| {
            let keys: BTreeSet<&str> = e
                .as_object()
                .ok_or_else(|| format!("member is not an object: {e}"))?
                .keys()
                .map(String::as_str)
                .collect();
            if keys != want {
                return Err(format!("member keys {keys:?}, want {want:?}: {e}"));
            }
            let string = |k: &str| {
                e[k].as_str()
                    .map(String::from)
                    .ok_or_else(|| format!("{k} is not a string in {e}"))
            };
            let role = string("role")?;
            if !["leader", "follower", "learner"].contains(&role.as_str()) {
                return Err(format!("unknown role {role:?} in {e}"));
            }
            Ok(Member {
                id: e["id"]
                    .as_u64()
                    .ok_or_else(|| format!("id is not a number in {e}"))?,
                api_addr: string("api_addr")?,
                raft_addr: string("raft_addr")?,
                role,
                term: opt_u64(e, "term")?,
                last_log_index: opt_u64(e, "last_log_index")?,
                applied_index: opt_u64(e, "applied_index")?,
                reachable: e["reachable"]
                    .as_bool()
                    .ok_or_else(|| format!("reachable is not a bool in {e}"))?,
            })
        })
        .collect()
}

/// Whether the manager at `api_addr` has joined as the `nth` manager
/// (0-based): `members` lists `nth + 1` managers and it is among them, a
/// reachable voter (the leader when it is the first).
pub fn joined_as_voter(members: &[Member], api_addr: &str, nth: usize) -> Result<(), String> {
    let me = members
        .iter()
        .find(|m| bare(&m.api_addr) == bare(api_addr))
        .ok_or_else(|| format!("{api_addr} not in {members:?}"))?;
    let voting = if nth == 0 { "leader" } else { "follower" };
    if members.len() == nth + 1 && me.role == voting && me.reachable {
        Ok(())
    } else {
        Err(format!("members: {members:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"[
        {"id": 1, "api_addr": "127.0.0.1:4001", "raft_addr": "127.0.0.1:4101",
         "role": "leader", "term": 3, "last_log_index": 12, "applied_index": 12, "reachable": true},
        {"id": 2, "api_addr": "127.0.0.1:4002", "raft_addr": "127.0.0.1:4102",
         "role": "learner", "term": null, "last_log_index": null, "applied_index": null, "reachable": true}
    ]"#;

    #[test]
    fn members_parse_strictly() {
        let members = parse_members(TWO).expect("valid");
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].term, None);
        assert!(parse_members(&TWO.replace("\"term\": 3,", "")).is_err());
        assert!(parse_members(&TWO.replace("learner", "boss")).is_err());
        assert!(parse_members("{}").is_err());
    }

    #[test]
    fn a_joining_manager_counts_once_it_votes() {
        let members = parse_members(TWO).expect("valid");
        assert!(joined_as_voter(&members[..1], "tcp://127.0.0.1:4001", 0).is_ok());
        // The learner is not yet a voter.
        assert!(joined_as_voter(&members, "127.0.0.1:4002", 1).is_err());
        let mut voted = members.clone();
        voted[1].role = "follower".into();
        assert!(joined_as_voter(&voted, "127.0.0.1:4002", 1).is_ok());
        assert!(joined_as_voter(&voted, "127.0.0.1:4002", 2).is_err());
        assert!(joined_as_voter(&voted, "127.0.0.1:4009", 1).is_err());
    }
}
