//! [`ClusterState::apply`]: the one way the state changes.
//!
//! `apply` hands each [`Command`] to one method of its own (`reserve`,
//! `node_observed`, ...), then checks in debug builds that what the nodes
//! are said to hold still equals a recount. Every method validates before
//! it writes, so a refused command leaves the state untouched, and none
//! reads a clock, draws a random number or does I/O: every replica that
//! applies the same commands holds the same state.
//!
//! The bookkeeping below the commands keeps the indexes current: a node's
//! container IDs, its `version` (bumped by every single-container change,
//! so that an older full list is refused as stale) and its [`Usage`],
//! which is charged and taken back command by command rather than recounted
//! ([`ClusterState::usage_drift`] compares the two).

use std::collections::{BTreeMap, BTreeSet};

use super::command::{ApplyError, Command};
use super::container::{
    Container, ContainerState, RescheduleSpec, Rescheduling, Reservation, SWARM_ID_LABEL,
};
use super::image::{name_hash, normalize_image_name, ImageRef};
use super::node::{parse_slots, Checks, Node, NodeHealth, NodeId, NodeInfo, OvercommitPpm, Usage};
use super::ClusterState;
use crate::cluster::resources::Resources;

impl ClusterState {
    /// Applies one command. Validation happens before any write, so a
    /// refused command leaves the state untouched.
    pub fn apply(&mut self, command: Command) -> Result<(), ApplyError> {
        let result = self.apply_command(command);
        debug_assert_eq!(self.usage_drift(), Vec::<NodeId>::new(), "usage drifted");
        debug_assert_eq!(self.nodes.drift(), None, "the nodes' index drifted");
        result
    }

    /// [`ClusterState::apply`] without the drift checks.
    fn apply_command(&mut self, command: Command) -> Result<(), ApplyError> {
        match command {
            Command::NodeJoined {
                info,
                containers,
                version,
                images,
            } => self.node_joined(info, containers, version, images),
            Command::NodeObserved(info) => self.node_observed(info),
            Command::NodeFailed {
                id,
                error,
                unhealthy,
                at,
            } => self.node_failed(id, error, unhealthy, at),
            Command::NodeRemoved { id } => self.node_removed(id),
            Command::ContainersObserved {
                node,
                containers,
                version,
            } => self.containers_observed(node, containers, version),
            Command::ContainerObserved(container) => self.container_observed(container),
            Command::ContainerStateChanged { id, node, state } => {
                self.container_state_changed(id, node, state)
            }
            Command::ContainerCreated {
                reservation,
                container,
            } => self.container_created(reservation, container),
            Command::ContainerRemoved { id } => self.container_removed(id),
            Command::ImagesObserved { node, images } => self.images_observed(node, images),
            Command::Reserve {
                reservation,
                overcommit,
                checks,
            } => self.reserve(reservation, overcommit, checks),
            Command::Release { id } => self.release(id),
            Command::SpecRecorded {
                swarm_id,
                body,
                name,
            } => self.spec_recorded(swarm_id, body, name),
            Command::RescheduleStarted { id } => self.reschedule_started(id),
            Command::RescheduleDone { swarm_id } => self.reschedule_done(swarm_id),
            Command::StaleRemoved { node, id } => self.stale_removed(node, id),
            Command::TokenCreated { token, at_ms } => self.token_created(token, at_ms),
            Command::TokenRegistered {
                token,
                addr,
                at_ms,
                ttl_ms,
            } => self.token_registered(token, addr, at_ms, ttl_ms),
            Command::TokenDeleted { token } => self.token_deleted(token),
            Command::DiscoverySet { url } => self.discovery_set(url),
            Command::ClusterIdSet { id } => {
                self.cluster_id.get_or_insert(id);
                Ok(())
            }
        }
    }

    // -- Nodes ---------------------------------------------------------------

    /// [`Command::NodeJoined`]: `NodeObserved`, then `ContainersObserved`
    /// (skipped if stale), then `ImagesObserved`.
    fn node_joined(
        &mut self,
        info: NodeInfo,
        containers: Vec<Container>,
        version: u64,
        images: Vec<ImageRef>,
    ) -> Result<(), ApplyError> {
        let node = info.id.clone();
        self.node_observed(info)?;
        match self.containers_observed(node.clone(), containers, version) {
            Ok(()) | Err(ApplyError::Stale(_)) => {}
            Err(e) => return Err(e),
        }
        self.images_observed(node, images)
    }

    /// [`Command::NodeObserved`]: upserts the node, healthy.
    fn node_observed(&mut self, info: NodeInfo) -> Result<(), ApplyError> {
        let at = info.observed_at.clone();
        if let Some(mut node) = self.nodes.get_mut(&info.id) {
            node.slots = parse_slots(&info);
            node.info = info;
            node.health = NodeHealth::Healthy;
            node.error = None;
            node.updated_at = at;
            // What it holds is kept command by command; only its capacity,
            // and so how full it is, may have changed. (A recount walked
            // its containers: at a million containers, a fifth of a
            // follower's CPU went to these, one per node refresh.)
            node.refresh_fullness();
            return Ok(());
        }
        let id = info.id.clone();
        let name = self.unique_node_name(&info.hostname, &info.id);
        self.nodes.insert(
            info.id.clone(),
            Node {
                slots: parse_slots(&info),
                image_names: Vec::new(),
                info,
                name,
                health: NodeHealth::Healthy,
                error: None,
                updated_at: at,
                images: Vec::new(),
                containers: BTreeSet::new(),
                usage: Usage::default(),
                version: 0,
            },
        );
        self.recompute_usage(&id);
        Ok(())
    }

    /// [`Command::NodeFailed`]: records the error; the node turns unhealthy
    /// when `unhealthy`.
    fn node_failed(
        &mut self,
        id: NodeId,
        error: String,
        unhealthy: bool,
        at: String,
    ) -> Result<(), ApplyError> {
        let mut node = self.nodes.get_mut(&id).ok_or(ApplyError::UnknownNode(id))?;
        node.error = Some(error);
        node.updated_at = at;
        if unhealthy {
            node.health = NodeHealth::Unhealthy;
        }
        Ok(())
    }

    /// [`Command::NodeRemoved`]: the node goes with its containers,
    /// reservations and stale copies.
    fn node_removed(&mut self, id: NodeId) -> Result<(), ApplyError> {
        if let Some(node) = self.nodes.remove(&id) {
            for container in node.containers {
                self.containers.remove(&container);
            }
        }
        self.reservations.retain(|_, r| r.node != id);
        self.stale.remove(&id);
        Ok(())
    }

    /// [`Command::ImagesObserved`]: replaces the node's images and their
    /// normalized, hashed names.
    fn images_observed(&mut self, node: NodeId, images: Vec<ImageRef>) -> Result<(), ApplyError> {
        let mut entry = self
            .nodes
            .get_mut(&node)
            .ok_or(ApplyError::UnknownNode(node))?;
        let mut names: Vec<(u64, String)> = images
            .iter()
            .flat_map(|i| i.tags.iter())
            .map(|t| {
                let name = normalize_image_name(t);
                (name_hash(&name), name)
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        entry.image_names = names;
        entry.images = images;
        Ok(())
    }

    // -- Containers ----------------------------------------------------------

    /// [`Command::ContainersObserved`]: replaces what was known of the
    /// node's containers, unless the list is older than the node's
    /// `version`.
    fn containers_observed(
        &mut self,
        node: NodeId,
        containers: Vec<Container>,
        version: u64,
    ) -> Result<(), ApplyError> {
        let entry = self
            .nodes
            .get(&node)
            .ok_or_else(|| ApplyError::UnknownNode(node.clone()))?;
        if entry.version != version {
            return Err(ApplyError::Stale(node));
        }
        let mut known: BTreeMap<String, Container> = entry
            .containers
            .iter()
            .filter_map(|id| self.containers.remove(id))
            .map(|c| (c.id.clone(), c))
            .collect();
        let mut ids = BTreeSet::new();
        for mut container in containers {
            if self.is_stale(&node, &container.id) {
                continue;
            }
            container.node = node.clone();
            if let Some(older) = known.remove(&container.id) {
                container.keep_observed(&older);
            }
            ids.insert(container.id.clone());
            let moved = container
                .labels
                .get(SWARM_ID_LABEL)
                .filter(|s| self.rescheduling.contains_key(*s))
                .map(|s| (s.to_string(), container.id.clone()));
            if let Some(old) = self.containers.insert(container) {
                // The same ID was on another node: it is here now.
                self.detach(&old);
            }
            if let Some((swarm_id, id)) = moved {
                self.retire_rescheduled(&swarm_id, &id);
            }
        }
        if let Some(mut entry) = self.nodes.get_mut(&node) {
            entry.containers = ids;
        }
        self.recompute_usage(&node);
        Ok(())
    }

    /// [`Command::ContainerObserved`]: upserts one container (not a stale
    /// copy).
    fn container_observed(&mut self, container: Container) -> Result<(), ApplyError> {
        if !self.nodes.contains_key(&container.node) {
            return Err(ApplyError::UnknownNode(container.node));
        }
        if self.is_stale(&container.node, &container.id) {
            return Ok(());
        }
        self.upsert_container(container);
        Ok(())
    }

    /// [`Command::ContainerStateChanged`]: only the run state changes.
    fn container_state_changed(
        &mut self,
        id: String,
        node: NodeId,
        state: ContainerState,
    ) -> Result<(), ApplyError> {
        // What it holds does not depend on its state: usage stays.
        let here = self.containers.get(&id).is_some_and(|c| c.node == node);
        if here && !self.is_stale(&node, &id) && self.containers.set_state(&id, state) {
            if let Some(mut n) = self.nodes.get_mut(&node) {
                n.version += 1;
            }
        }
        Ok(())
    }

    /// [`Command::ContainerCreated`]: the container replaces its
    /// reservation.
    fn container_created(
        &mut self,
        reservation: String,
        container: Container,
    ) -> Result<(), ApplyError> {
        if !self.nodes.contains_key(&container.node) {
            return Err(ApplyError::UnknownNode(container.node));
        }
        if let Some(r) = self.reservations.remove(&reservation) {
            self.charge(&r.node, Some(&r.resources), false);
        }
        self.upsert_container(container);
        Ok(())
    }

    /// [`Command::ContainerRemoved`]: the container goes, and with it a
    /// create body nothing refers to any more and any stale copy record.
    fn container_removed(&mut self, id: String) -> Result<(), ApplyError> {
        if let Some(container) = self.containers.remove(&id) {
            self.detach(&container);
            if let Some(swarm_id) = container.labels.get(SWARM_ID_LABEL) {
                self.forget_spec_if_unused(swarm_id);
            }
        }
        for ids in self.stale.values_mut() {
            ids.remove(&id);
        }
        self.stale.retain(|_, ids| !ids.is_empty());
        Ok(())
    }

    // -- Creates in flight ---------------------------------------------------

    /// [`Command::Reserve`]: refused unless the node is healthy, the name
    /// free and the resources fit next to what the node holds now.
    fn reserve(
        &mut self,
        reservation: Reservation,
        overcommit: OvercommitPpm,
        checks: Checks,
    ) -> Result<(), ApplyError> {
        if self.reservations.contains_key(&reservation.id) {
            return Err(ApplyError::DuplicateReservation(reservation.id));
        }
        let node = self
            .nodes
            .get(&reservation.node)
            .ok_or_else(|| ApplyError::UnknownNode(reservation.node.clone()))?;
        if node.health != NodeHealth::Healthy {
            return Err(ApplyError::NodeUnhealthy(node.name.clone()));
        }
        if let Some(name) = &reservation.name {
            let replaced = reservation
                .swarm_id
                .as_ref()
                .and_then(|s| self.rescheduling.get(s))
                .map(|r| r.old_id.as_str());
            if let Some(holder) = self.name_holder_except(name, replaced) {
                return Err(ApplyError::NameInUse {
                    name: name.clone(),
                    holder,
                });
            }
        }
        node.fits_checking(&reservation.resources, overcommit, checks)
            .map_err(|reason| ApplyError::Unfit {
                node: node.name.clone(),
                reason,
            })?;
        self.charge(&reservation.node, Some(&reservation.resources), true);
        self.reservations
            .insert(reservation.id.clone(), reservation);
        Ok(())
    }

    /// [`Command::Release`]: drops the reservation and what it held.
    fn release(&mut self, id: String) -> Result<(), ApplyError> {
        if let Some(r) = self.reservations.remove(&id) {
            self.charge(&r.node, Some(&r.resources), false);
            if let Some(swarm_id) = &r.swarm_id {
                self.forget_spec_if_unused(swarm_id);
            }
        }
        Ok(())
    }

    // -- Reschedules ---------------------------------------------------------

    /// [`Command::SpecRecorded`]: keeps a create body for a reschedule.
    fn spec_recorded(
        &mut self,
        swarm_id: String,
        body: String,
        name: Option<String>,
    ) -> Result<(), ApplyError> {
        self.reschedule_specs
            .insert(swarm_id, RescheduleSpec { body, name });
        Ok(())
    }

    /// [`Command::RescheduleStarted`]: refused unless the container's node
    /// is unhealthy and its create body known; a no-op when started
    /// already.
    fn reschedule_started(&mut self, id: String) -> Result<(), ApplyError> {
        let refuse = |why: &str| ApplyError::NotReschedulable {
            id: id.clone(),
            why: why.to_string(),
        };
        let container = self
            .containers
            .get(&id)
            .ok_or_else(|| refuse("no such container"))?;
        let swarm_id = container
            .labels
            .get(SWARM_ID_LABEL)
            .ok_or_else(|| refuse("not created through swarm"))?;
        if self.rescheduling.contains_key(swarm_id) {
            return Ok(());
        }
        if !self.reschedule_specs.contains_key(swarm_id) {
            return Err(refuse("its create body is not known"));
        }
        let healthy = self
            .nodes
            .get(&container.node)
            .is_some_and(|n| n.health == NodeHealth::Healthy);
        if healthy {
            return Err(refuse("its node is healthy"));
        }
        let entry = Rescheduling {
            old_id: container.id.clone(),
            old_node: container.node.clone(),
            name: container.name.clone(),
            was_running: matches!(
                container.state,
                ContainerState::Running | ContainerState::Restarting
            ),
        };
        self.rescheduling.insert(swarm_id.to_string(), entry);
        Ok(())
    }

    /// [`Command::RescheduleDone`]: the reschedule is over.
    fn reschedule_done(&mut self, swarm_id: String) -> Result<(), ApplyError> {
        self.rescheduling.remove(&swarm_id);
        Ok(())
    }

    /// [`Command::StaleRemoved`]: a stale copy is gone from its node.
    fn stale_removed(&mut self, node: NodeId, id: String) -> Result<(), ApplyError> {
        if let Some(ids) = self.stale.get_mut(&node) {
            ids.remove(&id);
            if ids.is_empty() {
                self.stale.remove(&node);
            }
        }
        Ok(())
    }

    // -- Bookkeeping ---------------------------------------------------------

    /// Drops the create body kept for `swarm_id` once no container,
    /// reservation or reschedule refers to it any more.
    fn forget_spec_if_unused(&mut self, swarm_id: &str) {
        if !self.reschedule_specs.contains_key(swarm_id) || self.rescheduling.contains_key(swarm_id)
        {
            return;
        }
        let used = self
            .containers
            .label_nodes(SWARM_ID_LABEL, swarm_id)
            .next()
            .is_some()
            || self
                .reservations
                .values()
                .any(|r| r.swarm_id.as_deref() == Some(swarm_id));
        if !used {
            self.reschedule_specs.remove(swarm_id);
        }
    }

    /// The copy of a rescheduled container now lives on `new_node`: the
    /// one left on the failed node leaves the state and is remembered as
    /// stale, to be removed from the node when it answers again.
    fn retire_rescheduled(&mut self, swarm_id: &str, new_id: &str) {
        let Some(entry) = self.rescheduling.get(swarm_id) else {
            return;
        };
        if entry.old_id == new_id {
            return;
        }
        let (old_id, old_node) = (entry.old_id.clone(), entry.old_node.clone());
        if let Some(old) = self.containers.remove(&old_id) {
            self.detach(&old);
        }
        if self.nodes.contains_key(&old_node) {
            self.stale.entry(old_node).or_default().insert(old_id);
        }
    }

    /// Inserts or replaces one container, keeping indexes and usage current.
    /// A reservation made for it (same swarm id) ends here: the container
    /// holds its name and resources from now on, never both at once.
    fn upsert_container(&mut self, mut container: Container) {
        let node = container.node.clone();
        if let Some(swarm_id) = container.labels.get(SWARM_ID_LABEL) {
            let swarm_id = swarm_id.to_string();
            self.retire_rescheduled(&swarm_id, &container.id);
            let done: Vec<String> = self
                .reservations
                .values()
                .filter(|r| r.swarm_id.as_deref() == Some(swarm_id.as_str()))
                .map(|r| r.id.clone())
                .collect();
            for id in done {
                if let Some(r) = self.reservations.remove(&id) {
                    self.charge(&r.node, Some(&r.resources), false);
                }
            }
        }
        if let Some(old) = self.containers.remove(&container.id) {
            if old.node == node {
                container.keep_observed(&old);
                // Still indexed on the node, whose version moves below.
                self.charge(&old.node, old.resources.as_ref(), false);
            } else {
                self.detach(&old);
            }
        }
        if let Some(mut n) = self.nodes.get_mut(&node) {
            n.containers.insert(container.id.clone());
            n.version += 1;
        }
        self.charge(&node, container.resources.as_ref(), true);
        self.containers.insert(container);
    }

    /// Takes `old`, just removed from the container table, off its node:
    /// the node's index, version and usage.
    fn detach(&mut self, old: &Container) {
        if let Some(mut n) = self.nodes.get_mut(&old.node) {
            n.containers.remove(&old.id);
            n.version += 1;
        }
        self.charge(&old.node, old.resources.as_ref(), false);
    }

    /// Recomputes what a node holds from its containers and reservations.
    fn recompute_usage(&mut self, node: &str) {
        if let Some(usage) = self.computed_usage(node) {
            if let Some(mut entry) = self.nodes.get_mut(node) {
                entry.usage = usage;
            }
        }
    }

    /// What `node` holds, counted from its containers and reservations.
    fn computed_usage(&self, node: &str) -> Option<Usage> {
        let entry = self.nodes.get(node)?;
        let mut usage = Usage::default();
        let reservations = self.reservations.values().filter(|r| r.node == node);
        let resources = entry
            .containers
            .iter()
            .filter_map(|id| self.containers.get(id))
            .map(|c| c.resources.as_ref())
            .chain(reservations.map(|r| Some(&r.resources)));
        for r in resources {
            usage.add(r);
        }
        usage.fullness_bp = entry.fullness_bp(&usage);
        Some(usage)
    }

    /// Counts one container or reservation holding `resources` on `node`
    /// (`add`), or takes it back: what [`ClusterState::recompute_usage`]
    /// would find, without walking the node's containers.
    fn charge(&mut self, node: &str, resources: Option<&Resources>, add: bool) {
        if let Some(mut entry) = self.nodes.get_mut(node) {
            if add {
                entry.usage.add(resources);
            } else {
                entry.usage.remove(resources);
            }
            entry.refresh_fullness();
        }
    }

    /// Nodes whose kept usage differs from a recomputation (debug checks
    /// and tests: the two must always agree).
    pub fn usage_drift(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(id, node)| self.computed_usage(id).as_ref() != Some(&node.usage))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
