//! `ContainerSpec`: what placement needs from a create request, extracted
//! once, so that `place()` parses nothing.

use std::collections::BTreeSet;

use bollard::models::{ContainerCreateBody, MountType};

use super::expr::{Expr, ExprError};
use crate::cluster::{resources, Resources};

/// Label holding the container's constraints (a JSON array of expressions).
pub const CONSTRAINTS_LABEL: &str = "com.docker.swarm.constraints";
/// Label holding the container's affinities (a JSON array of expressions).
pub const AFFINITIES_LABEL: &str = "com.docker.swarm.affinities";
/// Label holding the container's reschedule policies (a JSON array:
/// `["on-node-failure"]` or `["off"]`).
pub const RESCHEDULE_LABEL: &str = "com.docker.swarm.reschedule-policies";

/// What placement needs to know about a container to be created.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Requested name, if any.
    pub name: Option<String>,
    /// Image reference from the create body.
    pub image: Option<String>,
    /// CPU, memory and host ports to reserve.
    pub resources: Resources,
    /// Constraints on node attributes and labels.
    pub constraints: Vec<Expr>,
    /// Affinities to containers, images and container labels.
    pub affinities: Vec<Expr>,
    /// Containers this one must share a node with (`--volumes-from`,
    /// `--link`, `--net=container:X`).
    pub dependencies: Vec<String>,
    /// The `com.docker.swarm.id` label it is created with.
    pub swarm_id: Option<String>,
    /// Re-create it elsewhere when its node fails (`reschedule:on-node-failure`).
    pub reschedule: bool,
    /// Node-local networks and named volumes it uses, with the nodes that
    /// hold them: the manager fills this in (it asks the engines; see
    /// [`networks_used`] and [`volumes_used`]), [`ContainerSpec::from_create`]
    /// leaves it empty.
    pub located: Vec<Located>,
}

/// Something a container uses that only some nodes hold: a node-local
/// network, a named volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// What it is, for messages: `network front`, `volume data`.
    pub what: String,
    /// The nodes that hold it.
    pub nodes: BTreeSet<crate::cluster::NodeId>,
}

/// Network modes that name no user network.
const BUILT_IN_NETWORKS: [&str; 4] = ["", "default", "bridge", "host"];

/// The user networks a create body joins: `HostConfig.NetworkMode` (not
/// `bridge`, `host`, `none`, `default` or `container:X`) and the keys of
/// `NetworkingConfig.EndpointsConfig`, without duplicates.
pub fn networks_used(body: &ContainerCreateBody) -> Vec<String> {
    let mode = body
        .host_config
        .as_ref()
        .and_then(|hc| hc.network_mode.clone());
    let endpoints = body
        .networking_config
        .as_ref()
        .and_then(|nc| nc.endpoints_config.as_ref())
        .map(|e| e.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for name in mode.into_iter().chain(endpoints) {
        let user = !BUILT_IN_NETWORKS.contains(&name.as_str())
            && name != "none"
            && !name.starts_with("container:");
        if user && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The named volumes a create body mounts: `HostConfig.Binds` entries
/// `NAME:/path[:opts]` (a source that is not a path) and `Mounts` of type
/// `volume` with a source, whose driver is `local` or unset. Without
/// duplicates.
pub fn volumes_used(body: &ContainerCreateBody) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    let Some(hc) = body.host_config.as_ref() else {
        return names;
    };
    for bind in hc.binds.iter().flatten() {
        if let Some((source, _)) = bind.split_once(':') {
            if !source.starts_with('/') && !source.starts_with('.') && !source.starts_with('~') {
                add(source);
            }
        }
    }
    for mount in hc.mounts.iter().flatten() {
        let local = mount
            .volume_options
            .as_ref()
            .and_then(|o| o.driver_config.as_ref())
            .and_then(|d| d.name.as_deref())
            .is_none_or(|d| d.is_empty() || d == "local");
        if mount.typ == Some(MountType::VOLUME) && local {
            add(mount.source.as_deref().unwrap_or(""));
        }
    }
    names
}

/// A create request whose placement instructions are malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A constraint or affinity does not parse.
    #[error(transparent)]
    Expr(#[from] ExprError),
    /// A reschedule policy other than `off` and `on-node-failure`, or both.
    #[error("invalid reschedule policy: {0} (expected \"off\" or \"on-node-failure\")")]
    Reschedule(String),
    /// A port, host IP or CPU share that is none.
    #[error(transparent)]
    Resources(#[from] resources::ResourceError),
    /// A swarm label is not a JSON array of strings.
    #[error("label {label} must be a JSON array of strings: {why}")]
    Label {
        /// The label.
        label: String,
        /// The parse error.
        why: String,
    },
}

/// Whether `policies` ask for rescheduling on node failure; refuses
/// unknown policies and `off` together with `on-node-failure`.
fn reschedule_policy(policies: &[String]) -> Result<bool, SpecError> {
    let mut on = false;
    let mut off = false;
    for p in policies {
        match p.trim() {
            "on-node-failure" => on = true,
            "off" => off = true,
            other => return Err(SpecError::Reschedule(other.to_string())),
        }
    }
    if on && off {
        return Err(SpecError::Reschedule("both off and on-node-failure".into()));
    }
    Ok(on)
}

fn label_list(body: &ContainerCreateBody, label: &str) -> Result<Vec<String>, SpecError> {
    match body.labels.as_ref().and_then(|l| l.get(label)) {
        None => Ok(Vec::new()),
        Some(text) => parse_label_list(label, text),
    }
}

/// Reads a swarm label's JSON array of strings as classic's users wrote
/// it: a backslash before a character JSON does not escape (the shell's
/// `\!` in `'["container\!=db"]'`) stands for that character. What is
/// still not an array of strings is refused with the parse error.
fn parse_label_list(label: &str, text: &str) -> Result<Vec<String>, SpecError> {
    let strict = match serde_json::from_str(text) {
        Ok(list) => return Ok(list),
        Err(e) => e,
    };
    let mut mended = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' | 'u') => {
                    mended.push(c);
                    if let Some(next) = chars.next() {
                        mended.push(next);
                    }
                }
                Some(_) => {}
                None => mended.push(c),
            }
        } else {
            mended.push(c);
        }
    }
    serde_json::from_str(&mended).map_err(|_| SpecError::Label {
        label: label.to_string(),
        why: strict.to_string(),
    })
}

impl ContainerSpec {
    /// Extracts the spec from a create request's name and body (after
    /// [`env_to_labels`] moved `-e constraint:...` entries into labels).
    pub fn from_create(name: Option<&str>, body: &ContainerCreateBody) -> Result<Self, SpecError> {
        let mut policies = label_list(body, RESCHEDULE_LABEL)?;
        policies.extend(
            body.env
                .iter()
                .flatten()
                .filter_map(|e| e.strip_prefix("reschedule:"))
                .map(str::to_string),
        );
        let reschedule = reschedule_policy(&policies)?;
        let mut constraints = label_list(body, CONSTRAINTS_LABEL)?;
        let mut affinities = label_list(body, AFFINITIES_LABEL)?;
        for entry in body.env.iter().flatten() {
            if let Some(c) = entry.strip_prefix("constraint:") {
                constraints.push(c.to_string());
            } else if let Some(a) = entry.strip_prefix("affinity:") {
                affinities.push(a.to_string());
            }
        }
        let host_config = body.host_config.as_ref();
        let mut dependencies = Vec::new();
        if let Some(hc) = host_config {
            for v in hc.volumes_from.iter().flatten() {
                let name = v.split(':').next().unwrap_or(v);
                dependencies.push(name.trim_start_matches('/').to_string());
            }
            for link in hc.links.iter().flatten() {
                let name = link.split(':').next().unwrap_or(link);
                dependencies.push(name.trim_start_matches('/').to_string());
            }
            if let Some(other) = hc
                .network_mode
                .as_deref()
                .and_then(|m| m.strip_prefix("container:"))
            {
                dependencies.push(other.trim_start_matches('/').to_string());
            }
        }
        dependencies.retain(|d| !d.is_empty());
        dependencies.dedup();
        Ok(ContainerSpec {
            name: name.filter(|n| !n.is_empty()).map(str::to_string),
            image: body.image.clone().filter(|i| !i.is_empty()),
            resources: resources::requested(
                host_config,
                body.exposed_ports.as_deref().unwrap_or(&[]),
            )?,
            constraints: parse_all(&constraints)?,
            affinities: parse_all(&affinities)?,
            dependencies,
            swarm_id: body
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::cluster::SWARM_ID_LABEL))
                .cloned(),
            reschedule,
            located: Vec::new(),
        })
    }
}

fn parse_all(texts: &[String]) -> Result<Vec<Expr>, SpecError> {
    let mut out: Vec<Expr> = Vec::new();
    for text in texts {
        let expr = Expr::parse(text)?;
        if !out.iter().any(|e| e.to_string() == expr.to_string()) {
            out.push(expr);
        }
    }
    Ok(out)
}

/// Moves `-e constraint:EXPR` and `-e affinity:EXPR` entries of a create
/// body's `Env` into the `com.docker.swarm.constraints` / `affinities`
/// labels, as Swarm classic did: the container keeps its placement rules
/// (for rescheduling) without them leaking into its environment.
pub fn env_to_labels(body: &mut serde_json::Value) -> Result<(), SpecError> {
    let Some(object) = body.as_object_mut() else {
        return Ok(());
    };
    let mut moved: [(String, Vec<String>); 3] = [
        (CONSTRAINTS_LABEL.to_string(), Vec::new()),
        (AFFINITIES_LABEL.to_string(), Vec::new()),
        (RESCHEDULE_LABEL.to_string(), Vec::new()),
    ];
    if let Some(serde_json::Value::Array(env)) = object.get_mut("Env") {
        env.retain(|entry| {
            let Some(text) = entry.as_str() else {
                return true;
            };
            if let Some(c) = text.strip_prefix("constraint:") {
                moved[0].1.push(c.to_string());
                false
            } else if let Some(a) = text.strip_prefix("affinity:") {
                moved[1].1.push(a.to_string());
                false
            } else if let Some(r) = text.strip_prefix("reschedule:") {
                moved[2].1.push(r.to_string());
                false
            } else {
                true
            }
        });
    }
    for (label, entries) in moved {
        if entries.is_empty() {
            continue;
        }
        let labels = object
            .entry("Labels")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if labels.is_null() {
            *labels = serde_json::Value::Object(Default::default());
        }
        let Some(labels) = labels.as_object_mut() else {
            return Ok(());
        };
        let mut all: Vec<String> = match labels.get(&label).and_then(|v| v.as_str()) {
            Some(text) => parse_label_list(&label, text)?,
            None => Vec::new(),
        };
        all.extend(entries);
        let text = serde_json::to_string(&all).map_err(|e| SpecError::Label {
            label: label.clone(),
            why: e.to_string(),
        })?;
        labels.insert(label, serde_json::Value::String(text));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_volumes_a_create_uses() {
        let body: ContainerCreateBody = serde_json::from_value(serde_json::json!({
            "Image": "x",
            "HostConfig": {
                "NetworkMode": "proj_default",
                "Binds": ["data:/data", "/srv:/srv", "./rel:/rel", "cache:/c:ro", "data:/again"],
                "Mounts": [
                    {"Type": "volume", "Source": "logs", "Target": "/logs"},
                    {"Type": "volume", "Source": "remote", "Target": "/r",
                     "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}},
                    {"Type": "bind", "Source": "/etc", "Target": "/etc"},
                    {"Type": "volume", "Target": "/anonymous"}
                ]
            },
            "NetworkingConfig": {"EndpointsConfig": {"proj_default": {}, "back": {}}}
        }))
        .expect("body");
        assert_eq!(networks_used(&body), vec!["proj_default", "back"]);
        assert_eq!(volumes_used(&body), vec!["data", "cache", "logs"]);
        for mode in ["bridge", "host", "none", "default", "container:db", ""] {
            let body: ContainerCreateBody =
                serde_json::from_value(serde_json::json!({"HostConfig": {"NetworkMode": mode}}))
                    .expect("body");
            assert!(networks_used(&body).is_empty(), "{mode}");
        }
        assert!(volumes_used(&ContainerCreateBody::default()).is_empty());
    }

    fn spec(json: serde_json::Value) -> Result<ContainerSpec, SpecError> {
        let mut json = json;
        env_to_labels(&mut json)?;
        let body: ContainerCreateBody = serde_json::from_value(json).unwrap();
        ContainerSpec::from_create(Some("web"), &body)
    }

    #[test]
    fn env_moves_into_labels() {
        let mut body = serde_json::json!({
            "Image": "x",
            "Env": ["A=1", "constraint:region==eu", "affinity:container!=db", "constraint:disk==ssd"],
            "Labels": {"com.docker.swarm.constraints": "[\"zone==a\"]"}
        });
        env_to_labels(&mut body).unwrap();
        assert_eq!(body["Env"], serde_json::json!(["A=1"]));
        assert_eq!(
            body["Labels"][CONSTRAINTS_LABEL],
            "[\"zone==a\",\"region==eu\",\"disk==ssd\"]"
        );
        assert_eq!(body["Labels"][AFFINITIES_LABEL], "[\"container!=db\"]");
    }

    #[test]
    fn extracts_everything() {
        let s = spec(serde_json::json!({
            "Image": "busybox:local",
            "Env": ["constraint:region==eu", "affinity:image==busybox*"],
            "Labels": {"com.docker.swarm.constraints": "[\"node!=n2\"]"},
            "HostConfig": {
                "Memory": 1073741824, "NanoCpus": 500000000,
                "PortBindings": {"80/tcp": [{"HostPort": "8080"}]},
                "VolumesFrom": ["data:ro"], "Links": ["/db:/web/db"],
                "NetworkMode": "container:net"
            }
        }))
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("web"));
        assert_eq!(s.resources.memory, 1 << 30);
        assert_eq!(s.resources.cpus_milli, 500);
        assert_eq!(s.resources.ports.len(), 1);
        let c: Vec<String> = s.constraints.iter().map(|e| e.to_string()).collect();
        assert_eq!(c, vec!["node!=n2", "region==eu"]);
        assert_eq!(s.affinities[0].to_string(), "image==busybox*");
        assert_eq!(s.dependencies, vec!["data", "db", "net"]);
    }

    #[test]
    fn reschedule_policy_from_env_or_label() {
        let s =
            spec(serde_json::json!({"Image": "x", "Env": ["reschedule:on-node-failure"]})).unwrap();
        assert!(s.reschedule);
        let s = spec(serde_json::json!({"Image": "x",
            "Labels": {RESCHEDULE_LABEL: "[\"on-node-failure\"]"}}))
        .unwrap();
        assert!(s.reschedule);
        assert!(!spec(serde_json::json!({"Image": "x"})).unwrap().reschedule);
        assert!(
            !spec(serde_json::json!({"Image": "x", "Env": ["reschedule:off"]}))
                .unwrap()
                .reschedule
        );
        let e = spec(serde_json::json!({"Image": "x", "Env": ["reschedule:always"]})).unwrap_err();
        assert!(
            e.to_string().contains("invalid reschedule policy: always"),
            "{e}"
        );
        let e = spec(serde_json::json!({"Image": "x",
            "Env": ["reschedule:off", "reschedule:on-node-failure"]}))
        .unwrap_err();
        assert!(e.to_string().contains("both"), "{e}");
    }

    #[test]
    fn bad_ports_are_refused() {
        let e = spec(serde_json::json!({"Image": "x",
            "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}}}))
        .unwrap_err();
        assert_eq!(e.to_string(), r#"invalid port specification: "70000""#);
        let e =
            spec(serde_json::json!({"Image": "x", "ExposedPorts": {"80/xyz": {}}})).unwrap_err();
        assert_eq!(e.to_string(), r#"invalid port specification: "80/xyz""#);
    }

    #[test]
    fn bad_rules_are_refused() {
        let e = spec(serde_json::json!({"Image": "x", "Env": ["constraint:region"]})).unwrap_err();
        assert!(e.to_string().contains("expected KEY==VALUE"), "{e}");
        let e = spec(
            serde_json::json!({"Image": "x", "Labels": {"com.docker.swarm.affinities": "nope"}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("JSON array"), "{e}");
    }

    #[test]
    fn labels_read_as_classic_users_wrote_them() {
        let read = |text: &str| parse_label_list(AFFINITIES_LABEL, text);
        assert_eq!(
            read(r#"["container\!=db"]"#),
            Ok(vec!["container!=db".into()])
        );
        assert_eq!(
            read(r#"["a\\b", "q\"", "x\u0021"]"#),
            Ok(vec![r"a\b".into(), "q\"".into(), "x!".into()])
        );
        for bad in [r#"["container==db""#, "[1]", "container==db", r#"["\"]"#] {
            let e = read(bad).expect_err(bad);
            assert!(e.to_string().contains("must be a JSON array"), "{e}");
        }
        let mut body = serde_json::json!({
            "Env": ["affinity:image==x"],
            "Labels": {AFFINITIES_LABEL: r#"["container\!=db"]"#},
        });
        env_to_labels(&mut body).expect("merged");
        assert_eq!(
            body["Labels"][AFFINITIES_LABEL],
            r#"["container!=db","image==x"]"#
        );
    }
}
