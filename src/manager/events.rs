//! The cluster's event stream (`GET /events`): every engine's container and
//! image events, each with the `node` it happened on (as Swarm classic
//! added), plus the manager's own: a node declared unhealthy
//! (`engine_disconnect`) or healthy again (`engine_reconnect`), and each
//! step of a reschedule (`reschedule`, `reschedule_failed`).
//!
//! Events are broadcast to the current subscribers only (no history): a
//! subscriber that falls more than [`CAPACITY`] events behind misses the
//! oldest ones.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast;

/// Events kept for a slow subscriber.
pub const CAPACITY: usize = 4096;

/// Where events are published and subscribed to.
#[derive(Debug)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Value>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

/// The node an event happened on, as Swarm classic's events carry it.
#[derive(Debug, Clone)]
pub struct NodeRef {
    /// Node name.
    pub name: String,
    /// Engine ID.
    pub id: String,
    /// Engine address.
    pub addr: String,
    /// Engine IP.
    pub ip: String,
}

impl NodeRef {
    fn to_json(&self) -> Value {
        json!({"Name": self.name, "Id": self.id, "Addr": self.addr, "Ip": self.ip})
    }
}

impl EventHub {
    /// A new subscription: the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Value>> {
        self.tx.subscribe()
    }

    /// How many subscribers there are (`NEventsListener` in `info`).
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Publishes an engine's event, adding the node it came from.
    pub fn engine_event(&self, event: &bollard::models::EventMessage, node: &NodeRef) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let Ok(mut value) = serde_json::to_value(event) else {
            return;
        };
        if let Some(object) = value.as_object_mut() {
            object.insert("node".into(), node.to_json());
        }
        let _ = self.tx.send(Arc::new(value));
    }

    /// Publishes one of the manager's own events: `typ` (`node`,
    /// `container`), `action`, the actor's ID and attributes.
    pub fn swarm_event(
        &self,
        typ: &str,
        action: &str,
        actor: &str,
        attributes: HashMap<String, String>,
        node: Option<&NodeRef>,
    ) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let now = chrono::Utc::now();
        let mut value = json!({
            "status": action,
            "id": actor,
            "from": "swarm",
            "Type": typ,
            "Action": action,
            "Actor": {"ID": actor, "Attributes": attributes},
            "scope": "swarm",
            "time": now.timestamp(),
            "timeNano": now.timestamp_nanos_opt().unwrap_or(0),
        });
        if let (Some(object), Some(node)) = (value.as_object_mut(), node) {
            object.insert("node".into(), node.to_json());
        }
        let _ = self.tx.send(Arc::new(value));
    }
}

/// What a subscriber asked for: Docker's `filters` (`type`, `event`,
/// `container`, `image`, `node`, `label`); an event passes when it matches
/// one value of every filter given.
#[derive(Debug, Default)]
pub struct EventFilter {
    filters: HashMap<String, Vec<String>>,
}

impl EventFilter {
    /// Parses the `filters` query parameter (`{"type":["container"]}`, or
    /// the older `{"type":{"container":true}}`).
    pub fn parse(text: Option<&str>) -> Result<EventFilter, String> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(EventFilter::default());
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("invalid filter: {e}"))?;
        let Some(object) = value.as_object() else {
            return Err("invalid filter: expected an object".into());
        };
        let mut filters = HashMap::new();
        for (key, values) in object {
            let list: Vec<String> = match values {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                Value::Object(o) => o.keys().cloned().collect(),
                _ => return Err(format!("invalid filter {key:?}")),
            };
            match key.as_str() {
                "type" | "event" | "container" | "image" | "node" | "label" => {}
                other => return Err(format!("invalid filter '{other}'")),
            }
            filters.insert(key.clone(), list);
        }
        Ok(EventFilter { filters })
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Value) -> bool {
        let text = |path: &[&str]| -> Option<&str> {
            let mut v = event;
            for key in path {
                v = v.get(key)?;
            }
            v.as_str()
        };
        let attributes = event.pointer("/Actor/Attributes");
        self.filters.iter().all(|(key, wanted)| {
            wanted.is_empty()
                || wanted.iter().any(|w| match key.as_str() {
                    "type" => text(&["Type"]) == Some(w),
                    "event" => text(&["Action"])
                        .is_some_and(|a| a == w || a.split(':').next() == Some(w.as_str())),
                    "container" => {
                        text(&["Type"]) == Some("container")
                            && (text(&["Actor", "ID"]).is_some_and(|id| id.starts_with(w.as_str()))
                                || attributes
                                    .and_then(|a| a.get("name"))
                                    .and_then(Value::as_str)
                                    == Some(w))
                    }
                    "image" => {
                        attributes
                            .and_then(|a| a.get("image"))
                            .and_then(Value::as_str)
                            == Some(w)
                            || (text(&["Type"]) == Some("image")
                                && text(&["Actor", "ID"]) == Some(w))
                    }
                    "node" => {
                        text(&["node", "Name"]) == Some(w) || text(&["node", "Id"]) == Some(w)
                    }
                    "label" => {
                        let (k, v) = w.split_once('=').unwrap_or((w, ""));
                        attributes
                            .and_then(|a| a.get(k))
                            .and_then(Value::as_str)
                            .is_some_and(|got| v.is_empty() || got == v)
                    }
                    _ => true,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeRef {
        NodeRef {
            name: "n1".into(),
            id: "ID1".into(),
            addr: "10.0.0.1:2375".into(),
            ip: "10.0.0.1".into(),
        }
    }

    #[tokio::test]
    async fn subscribers_get_engine_events_with_their_node() {
        let hub = EventHub::default();
        let mut rx = hub.subscribe();
        let event = bollard::models::EventMessage {
            typ: Some(bollard::models::EventMessageTypeEnum::CONTAINER),
            action: Some("start".into()),
            actor: Some(bollard::models::EventActor {
                id: Some("abc".into()),
                attributes: Some(HashMap::from([("name".to_string(), "web".to_string())])),
            }),
            ..Default::default()
        };
        hub.engine_event(&event, &node());
        let got = rx.recv().await.expect("event");
        assert_eq!(got["node"]["Name"], "n1");
        assert_eq!(got["Action"], "start");
        let filter =
            EventFilter::parse(Some(r#"{"container":["web"],"event":["start"]}"#)).expect("filter");
        assert!(filter.matches(&got));
        let other = EventFilter::parse(Some(r#"{"type":{"image":true}}"#)).expect("filter");
        assert!(!other.matches(&got));
        assert!(EventFilter::parse(Some(r#"{"bogus":["x"]}"#)).is_err());
    }

    #[tokio::test]
    async fn swarm_events_name_the_node() {
        let hub = EventHub::default();
        let mut rx = hub.subscribe();
        hub.swarm_event(
            "node",
            "engine_disconnect",
            "ID1",
            HashMap::from([("error".to_string(), "refused".to_string())]),
            Some(&node()),
        );
        let got = rx.recv().await.expect("event");
        assert_eq!(got["Type"], "node");
        assert_eq!(got["Action"], "engine_disconnect");
        assert_eq!(got["Actor"]["Attributes"]["error"], "refused");
        assert!(EventFilter::parse(Some(r#"{"node":["n1"]}"#))
            .expect("filter")
            .matches(&got));
    }
}
