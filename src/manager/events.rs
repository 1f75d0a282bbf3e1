//! The cluster's event stream (`GET /events`): every engine's container and
//! image events, each with the `node` it happened on (as Swarm classic
//! added), plus the manager's own: a node declared unhealthy
//! (`engine_disconnect`) or healthy again (`engine_reconnect`), and each
//! step of a reschedule (`reschedule`, `reschedule_failed`).
//!
//! Events are broadcast to the current subscribers, and the newest
//! [`HISTORY`] are kept for `since` (`docker events --since 10m`), as an
//! engine keeps its own. A subscriber that falls more than [`CAPACITY`]
//! events behind misses the oldest ones.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::broadcast;

/// Events kept for a slow subscriber.
pub const CAPACITY: usize = 4096;

/// Past events kept for subscribers that ask for them (`since`).
pub const HISTORY: usize = 1024;

/// Where events are published and subscribed to.
#[derive(Debug)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Event>>,
    /// The newest events, oldest first. Its lock also orders publishing
    /// against subscribing, so that a new subscriber sees every event once:
    /// from the history or from the channel.
    history: Mutex<VecDeque<Arc<Event>>>,
}

/// One event as it was published. An engine's is kept as the engine sent
/// it and turned into JSON only for a subscriber: most are never asked for.
#[derive(Debug)]
pub enum Event {
    /// An engine's event, and the node it came from.
    Engine(bollard::models::EventMessage, Arc<NodeRef>),
    /// One of the manager's own, as JSON already.
    Swarm(Value),
}

impl Event {
    /// The event as `GET /events` writes it.
    pub fn to_json(&self) -> Value {
        match self {
            Event::Swarm(value) => value.clone(),
            Event::Engine(message, node) => {
                let mut value = serde_json::to_value(message).unwrap_or(Value::Null);
                if let Some(object) = value.as_object_mut() {
                    object.insert("node".into(), node.to_json());
                }
                value
            }
        }
    }

    /// When it happened, in Unix seconds: `timeNano`, else `time`.
    pub fn time(&self) -> f64 {
        let (nanos, seconds) = match self {
            Event::Engine(message, _) => (message.time_nano, message.time.map(|t| t as f64)),
            Event::Swarm(value) => (
                value.get("timeNano").and_then(Value::as_i64),
                value.get("time").and_then(Value::as_f64),
            ),
        };
        match nanos {
            Some(nanos) if nanos > 0 => nanos as f64 / 1e9,
            _ => seconds.unwrap_or(0.0),
        }
    }
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: broadcast::channel(CAPACITY).0,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
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
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.subscribe_since(None).1
    }

    /// A new subscription, and the kept events at or after `since` (Unix
    /// seconds; none without it), oldest first.
    pub fn subscribe_since(
        &self,
        since: Option<f64>,
    ) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        let past = match since {
            Some(since) => history
                .iter()
                .filter(|e| e.time() >= since)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (past, rx)
    }

    fn publish(&self, event: Event) {
        let event = Arc::new(event);
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(event.clone());
        let _ = self.tx.send(event);
    }

    /// How many subscribers there are (`NEventsListener` in `info`).
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Publishes an engine's event, with the node it came from.
    pub fn engine_event(&self, event: bollard::models::EventMessage, node: Arc<NodeRef>) {
        self.publish(Event::Engine(event, node));
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
        self.publish(Event::Swarm(value));
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
        hub.engine_event(event, Arc::new(node()));
        let got = rx.recv().await.expect("event").to_json();
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
    async fn kept_events_are_replayed_since_a_time_then_live_ones_follow() {
        let hub = EventHub::default();
        let at = |seconds: i64| {
            serde_json::json!({"Type": "container", "Action": "start", "time": seconds,
                "timeNano": seconds * 1_000_000_000})
        };
        for t in [100, 200] {
            hub.publish(Event::Swarm(at(t)));
        }
        // An engine's event is kept as it came, with its own time.
        let engine = bollard::models::EventMessage {
            action: Some("die".into()),
            time: Some(300),
            time_nano: Some(300_000_000_000),
            ..Default::default()
        };
        hub.engine_event(engine, Arc::new(node()));
        let (past, mut rx) = hub.subscribe_since(Some(200.0));
        let times: Vec<f64> = past.iter().map(|e| e.time()).collect();
        assert_eq!(times, [200.0, 300.0]);
        assert_eq!(past[1].to_json()["node"]["Name"], "n1");
        assert!(
            hub.subscribe_since(None).0.is_empty(),
            "no since: live only"
        );
        assert!(hub.subscribe_since(Some(301.0)).0.is_empty());
        hub.publish(Event::Swarm(at(400)));
        assert_eq!(rx.recv().await.expect("live").to_json()["time"], 400);
        // Only the newest HISTORY are kept.
        for t in 0..HISTORY as i64 {
            hub.publish(Event::Swarm(at(1_000 + t)));
        }
        let (all, _) = hub.subscribe_since(Some(0.0));
        assert_eq!(all.len(), HISTORY);
        assert_eq!(all[0].time(), 1_000.0);
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
        let got = rx.recv().await.expect("event").to_json();
        assert_eq!(got["Type"], "node");
        assert_eq!(got["Action"], "engine_disconnect");
        assert_eq!(got["Actor"]["Attributes"]["error"], "refused");
        assert!(EventFilter::parse(Some(r#"{"node":["n1"]}"#))
            .expect("filter")
            .matches(&got));
    }
}
