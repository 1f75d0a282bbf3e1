//! Reads of the state that answer a question: which container a reference
//! names ([`ClusterState::resolve_container`]), who holds a name, which
//! node is called what, and whether a command would change anything at all
//! ([`ClusterState::is_noop`], so that it need not be replicated).

use super::command::Command;
use super::container::Container;
use super::image::ImageRef;
use super::node::Node;
use super::ClusterState;

/// Why a container reference did not resolve to one container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Nothing matches.
    #[error("No such container: {0}")]
    NotFound(String),
    /// Several containers match.
    #[error("{0}")]
    Ambiguous(String),
}

impl ClusterState {
    /// Whether container `id` on `node` is a copy a reschedule left behind.
    pub fn is_stale(&self, node: &str, id: &str) -> bool {
        self.stale.get(node).is_some_and(|ids| ids.contains(id))
    }

    /// Whether `command` would change nothing: an observation of what the
    /// state already holds, a node's list overtaken by a newer change (its
    /// apply refuses it as stale), or the removal of a container it does
    /// not know. Such commands are not replicated (see `Cluster::propose`):
    /// at 200 containers a node, every list read while containers are
    /// being placed there was a Raft entry of 200 records, applied on every
    /// manager only to be refused.
    pub fn is_noop(&self, command: &Command) -> bool {
        match command {
            Command::ContainersObserved {
                node,
                containers,
                version,
            } => {
                self.nodes.get(node).is_some_and(|n| n.version != *version)
                    || self.node_containers_match(node, containers)
            }
            Command::ContainerObserved(container) => {
                self.containers.get(&container.id) == Some(container)
            }
            Command::ContainerRemoved { id } => !self.containers.contains_key(id),
            Command::ContainerStateChanged { id, node, state } => !self
                .containers
                .get(id)
                .is_some_and(|c| c.node == *node && c.state != *state),
            Command::ImagesObserved { node, images } => self.node_images_match(node, images),
            _ => false,
        }
    }

    /// Whether `observed` (a node's full container list) says nothing new:
    /// the same containers with the same name, image, state and labels (and
    /// resources, where the list carries them).
    pub fn node_containers_match(&self, node: &str, observed: &[Container]) -> bool {
        let Some(entry) = self.nodes.get(node) else {
            return false;
        };
        entry.containers.len() == observed.len()
            && observed.iter().all(|o| {
                self.containers.get(&o.id).is_some_and(|c| {
                    c.node == node
                        && c.name == o.name
                        && c.image == o.image
                        && c.state == o.state
                        && c.labels == o.labels
                        && (o.resources.is_none() || o.resources == c.resources)
                })
            })
    }

    /// Whether `images` are what the node holds already.
    pub fn node_images_match(&self, node: &str, images: &[ImageRef]) -> bool {
        self.nodes.get(node).is_some_and(|n| n.images == images)
    }

    /// The container or reservation holding `name`, if any.
    pub fn name_holder(&self, name: &str) -> Option<String> {
        self.name_holder_except(name, None)
    }

    /// [`Self::name_holder`], not counting container `except` (the copy
    /// being replaced by a reschedule).
    pub(super) fn name_holder_except(&self, name: &str, except: Option<&str>) -> Option<String> {
        if let Some(c) = self
            .containers
            .named(name)
            .find(|c| Some(c.id.as_str()) != except)
        {
            return Some(c.id.clone());
        }
        self.reservations
            .values()
            .find(|r| r.name.as_deref() == Some(name))
            .map(|r| r.id.clone())
    }

    /// The node called `name` (its cluster-unique name) or with ID `name`.
    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes
            .named(name)
            .or_else(|| self.nodes.get(name).map(|n| &**n))
    }

    /// Finds one container by full ID, name, `node/name`, or unique ID prefix,
    /// in that order (the engine's own order, plus the `node/name` form).
    pub fn resolve_container(&self, reference: &str) -> Result<&Container, LookupError> {
        let reference = reference.trim_start_matches('/');
        if reference.is_empty() {
            return Err(LookupError::NotFound(reference.to_string()));
        }
        if let Some(c) = self.containers.get(reference) {
            return Ok(c);
        }
        let by_name: Vec<&Container> = self.containers.named(reference).collect();
        match by_name.as_slice() {
            [one] => return Ok(one),
            [] => {}
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|c| format!("{}/{}", self.node_name(&c.node), c.name))
                    .collect();
                return Err(LookupError::Ambiguous(format!(
                    "container name {reference} is used on several nodes, name one of: {}",
                    names.join(", ")
                )));
            }
        }
        if let Some((node_name, name)) = reference.split_once('/') {
            if let Some(node) = self.node_by_name(node_name) {
                if let Some(c) = self.containers.named(name).find(|c| c.node == node.info.id) {
                    return Ok(c);
                }
            }
        }
        // A swarm id (the `com.docker.swarm.id` label) names its container,
        // as in classic.
        let swarm_id = |c: &&Container| c.labels.get(super::SWARM_ID_LABEL) == Some(reference);
        if reference.len() >= 32 {
            if let Some(c) = self.containers.values().find(swarm_id) {
                return Ok(c);
            }
        }
        let mut by_prefix = self
            .containers
            .values()
            .filter(|c| c.id.starts_with(reference));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(one), None) => Ok(one),
            (Some(_), Some(_)) => Err(LookupError::Ambiguous(format!(
                "multiple IDs found with provided prefix: {reference}"
            ))),
            _ => Err(LookupError::NotFound(reference.to_string())),
        }
    }

    /// The cluster-unique name of a node, or its ID when unknown.
    pub fn node_name(&self, id: &str) -> String {
        self.nodes
            .get(id)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// A name for a new node that no other node uses: its host name, or
    /// the host name with the shortest ID suffix that is free.
    pub(super) fn unique_node_name(&self, hostname: &str, id: &str) -> String {
        let base = if hostname.is_empty() {
            "node"
        } else {
            hostname
        };
        let taken = |candidate: &str| self.nodes.name_taken(candidate, id);
        if !taken(base) {
            return base.to_string();
        }
        let short: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let mut len = 4.min(short.len());
        loop {
            let candidate = format!("{base}-{}", &short[..len]);
            if !taken(&candidate) || len >= short.len() {
                return candidate;
            }
            len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::{engine, listed, two_nodes};
    use crate::cluster::{ApplyError, ContainerState};

    #[test]
    fn same_hostname_gets_distinct_names() {
        let s = two_nodes();
        let names: Vec<&str> = s.nodes.values().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["host", "host-bbbb"]);
    }

    #[test]
    fn re_observing_keeps_the_name() {
        let mut s = two_nodes();
        s.apply(Command::NodeObserved(engine("BBBB:2222", "host")))
            .unwrap();
        assert_eq!(s.nodes["BBBB:2222"].name, "host-bbbb");
    }

    #[test]
    fn resolves_by_id_name_node_name_and_prefix() {
        let mut s = two_nodes();
        s.apply(Command::ContainerObserved(listed(
            "abc123",
            "AAAA:1111",
            "web",
        )))
        .unwrap();
        s.apply(Command::ContainerObserved(listed(
            "abd456",
            "BBBB:2222",
            "db",
        )))
        .unwrap();
        assert_eq!(s.resolve_container("abc123").unwrap().name, "web");
        assert_eq!(s.resolve_container("web").unwrap().id, "abc123");
        assert_eq!(s.resolve_container("/web").unwrap().id, "abc123");
        assert_eq!(s.resolve_container("host-bbbb/db").unwrap().id, "abd456");
        assert_eq!(s.resolve_container("abd").unwrap().id, "abd456");
        assert!(matches!(
            s.resolve_container("ab"),
            Err(LookupError::Ambiguous(_))
        ));
        assert!(matches!(
            s.resolve_container("nope"),
            Err(LookupError::NotFound(_))
        ));
        assert!(matches!(
            s.resolve_container("host/db"),
            Err(LookupError::NotFound(_))
        ));
    }

    #[test]
    fn same_name_on_two_nodes_needs_the_node() {
        let mut s = two_nodes();
        s.apply(Command::ContainerObserved(listed("a1", "AAAA:1111", "web")))
            .unwrap();
        s.apply(Command::ContainerObserved(listed("b1", "BBBB:2222", "web")))
            .unwrap();
        assert!(matches!(
            s.resolve_container("web"),
            Err(LookupError::Ambiguous(_))
        ));
        assert_eq!(s.resolve_container("host/web").unwrap().id, "a1");
        assert_eq!(s.resolve_container("host-bbbb/web").unwrap().id, "b1");
    }

    #[test]
    fn unchanged_lists_are_recognized() {
        let mut s = two_nodes();
        let web = listed("c1", "AAAA:1111", "web");
        s.apply(Command::ContainersObserved {
            node: "AAAA:1111".into(),
            containers: vec![web.clone()],
            version: 0,
        })
        .unwrap();
        assert!(s.node_containers_match("AAAA:1111", std::slice::from_ref(&web)));
        assert!(!s.node_containers_match("BBBB:2222", std::slice::from_ref(&web)));
        assert!(!s.node_containers_match("AAAA:1111", &[]));
        let stopped = Container {
            state: ContainerState::Exited,
            ..web.clone()
        };
        assert!(!s.node_containers_match("AAAA:1111", &[stopped]));
        let renamed = Container {
            name: "api".into(),
            ..web.clone()
        };
        assert!(!s.node_containers_match("AAAA:1111", &[renamed]));
        let other = listed("c2", "AAAA:1111", "web");
        assert!(!s.node_containers_match("AAAA:1111", &[other]));
        // the same, as commands
        assert!(s.is_noop(&Command::ContainerObserved(web.clone())));
        let running_elsewhere = Container {
            state: ContainerState::Paused,
            ..web.clone()
        };
        assert!(!s.is_noop(&Command::ContainerObserved(running_elsewhere)));
        assert!(s.is_noop(&Command::ContainerRemoved { id: "gone".into() }));
        assert!(!s.is_noop(&Command::ContainerRemoved { id: "c1".into() }));
        assert!(s.is_noop(&Command::ImagesObserved {
            node: "AAAA:1111".into(),
            images: Vec::new(),
        }));
        assert!(!s.is_noop(&Command::Release { id: "r".into() }));
        // A changed list read at the node's version is news; the same list
        // read before a newer change is not (its apply is refused).
        let version = s.nodes["AAAA:1111"].version;
        let changed = |version| Command::ContainersObserved {
            node: "AAAA:1111".into(),
            containers: vec![web.clone(), listed("c3", "AAAA:1111", "db")],
            version,
        };
        assert!(!s.is_noop(&changed(version)));
        assert!(s.is_noop(&changed(version + 1)));
        assert!(matches!(
            s.apply(changed(version + 1)),
            Err(ApplyError::Stale(_))
        ));
    }
}
