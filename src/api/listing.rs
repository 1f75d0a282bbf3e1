//! The merged container list (`GET /containers/json`) without owned trees.
//!
//! Every engine's answer is parsed in place as it arrives: only `Created`
//! (the sort key) is decoded; `Names` is checked to be an array of strings
//! and rewritten as `/node/name`; every other field of the Engine API's
//! container summary is kept as a slice of the engine's body and written
//! back verbatim. The result, a [`NodeListing`], holds the node's
//! containers as the reply writes them, in one buffer (nothing is
//! allocated per container), and can be kept for the next request
//! ([`super::list_cache`]). A [`Reply`] sorts an index of `(Created,
//! container)` over the listings (newest first, stable), cuts it to
//! `limit`, and copies the objects into the body chunk by chunk as the
//! client reads it.
//!
//! Fields and their order are those of bollard's `ContainerSummary`, so
//! clients see what the typed merge answered before: absent and `null`
//! top-level fields stay absent, unknown top-level fields are dropped.
//! Nested values are now passed as the engine wrote them (the typed model
//! dropped their unknown members and `null`s, and re-escaped strings).

use std::cmp::Reverse;
use std::fmt;

use axum::http::StatusCode;
use bollard::models::ContainerSummary;
use serde::de::{self, DeserializeSeed, Deserializer as _, SeqAccess, Visitor};
use serde::ser::Serializer as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::proxy::engine_error;
use super::ApiError;

/// One node's successful answer to `GET /containers/json`.
#[derive(Debug, Clone)]
pub struct NodeList {
    /// The node's name, prefixed to every container name (`/node/name`).
    pub node_name: String,
    /// The engine's JSON body (an array of container summaries).
    pub body: bytes::Bytes,
}

/// Sorts one node's answer: a success is kept, a `400` is the client's
/// error (every node answers the same, so the whole list fails with it),
/// any other failure is logged and the node skipped (`Ok(None)`).
pub fn accept(
    node_name: String,
    answer: Result<(StatusCode, bytes::Bytes), ApiError>,
) -> Result<Option<NodeList>, ApiError> {
    let error = match answer {
        Ok((status, body)) if status.is_success() => {
            return Ok(Some(NodeList { node_name, body }));
        }
        Ok((status, body)) if status == StatusCode::BAD_REQUEST => {
            return Err(engine_error(status, &body));
        }
        Ok((status, body)) => engine_error(status, &body).message,
        Err(e) => e.message,
    };
    tracing::warn!(node = %node_name, error = %error, "container list failed on a node");
    Ok(None)
}

/// One container of an engine's answer, borrowed from the engine's body.
///
/// The fields of bollard's `ContainerSummary` (Engine API 1.53), in its
/// order. `null` reads as absent, as it did through the typed model.
#[derive(Deserialize)]
struct Borrowed<'a> {
    #[serde(rename = "Id", borrow)]
    id: Option<&'a RawValue>,
    #[serde(rename = "Names", borrow)]
    names: Option<Names<'a>>,
    #[serde(rename = "Image", borrow)]
    image: Option<&'a RawValue>,
    #[serde(rename = "ImageID", borrow)]
    image_id: Option<&'a RawValue>,
    #[serde(rename = "ImageManifestDescriptor", borrow)]
    image_manifest_descriptor: Option<&'a RawValue>,
    #[serde(rename = "Command", borrow)]
    command: Option<&'a RawValue>,
    #[serde(rename = "Created")]
    created: Option<i64>,
    #[serde(rename = "Ports", borrow)]
    ports: Option<&'a RawValue>,
    #[serde(rename = "SizeRw", borrow)]
    size_rw: Option<&'a RawValue>,
    #[serde(rename = "SizeRootFs", borrow)]
    size_root_fs: Option<&'a RawValue>,
    #[serde(rename = "Labels", borrow)]
    labels: Option<&'a RawValue>,
    #[serde(rename = "State", borrow)]
    state: Option<&'a RawValue>,
    #[serde(rename = "Status", borrow)]
    status: Option<&'a RawValue>,
    #[serde(rename = "HostConfig", borrow)]
    host_config: Option<&'a RawValue>,
    #[serde(rename = "NetworkSettings", borrow)]
    network_settings: Option<&'a RawValue>,
    #[serde(rename = "Mounts", borrow)]
    mounts: Option<&'a RawValue>,
    #[serde(rename = "Health", borrow)]
    health: Option<&'a RawValue>,
}

/// The raw `Names` array, checked to hold only strings (as the typed
/// model's `Vec<String>` required), rewritten when the reply is written.
struct Names<'a>(&'a RawValue);

impl<'de: 'a, 'a> Deserialize<'de> for Names<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        let mut check = serde_json::Deserializer::from_str(raw.get());
        check
            .deserialize_seq(NamesVisitor(None))
            .map_err(de::Error::custom)?;
        Ok(Names(raw))
    }
}

/// Where names are written: the reply, and the node they are prefixed with.
struct NameWriter<'o> {
    out: &'o mut Vec<u8>,
    node: &'o Prefix,
}

/// Visits `Names`: checks each element is a string, and with a writer
/// writes each as `"/node<name>"`, comma-separated.
struct NamesVisitor<'o>(Option<NameWriter<'o>>);

impl<'de> Visitor<'de> for NamesVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of container names")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut first = true;
        loop {
            let element = NameSeed {
                writer: self.0.as_mut().map(|w| NameWriter {
                    out: &mut *w.out,
                    node: w.node,
                }),
                first,
            };
            if seq.next_element_seed(element)?.is_none() {
                return Ok(());
            }
            first = false;
        }
    }
}

/// One element of `Names`.
struct NameSeed<'o> {
    writer: Option<NameWriter<'o>>,
    first: bool,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a container name")
    }

    fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<(), E> {
        // Borrowed from the body: serde_json found no escape in it, so it
        // holds nothing serde_json would escape and is copied as it is.
        if let Some(w) = self.writer {
            if !self.first {
                w.out.push(b',');
            }
            w.out.push(b'"');
            w.out.extend_from_slice(&w.node.escaped);
            w.out.extend_from_slice(name.as_bytes());
            w.out.push(b'"');
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<(), E> {
        // Unescaped by serde_json: escape it again as serde_json would.
        if let Some(w) = self.writer {
            if !self.first {
                w.out.push(b',');
            }
            serde_json::Serializer::new(&mut *w.out)
                .collect_str(&format_args!("/{}{name}", w.node.name))
                .map_err(E::custom)?;
        }
        Ok(())
    }
}

/// A node's name, as written before its containers' names.
struct Prefix {
    /// The node's name.
    name: String,
    /// `/name` escaped as a JSON string's contents (no quotes).
    escaped: Vec<u8>,
}

impl Prefix {
    fn new(name: &str) -> serde_json::Result<Prefix> {
        let quoted = serde_json::to_vec(&format!("/{name}"))?;
        let escaped = quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default()
            .to_vec();
        Ok(Prefix {
            name: name.to_string(),
            escaped,
        })
    }
}

/// One node's containers, ready to be listed: each container's JSON object
/// as the reply writes it (names as `/node/name`), back to back in one
/// buffer, with its creation time and where its ID is. Kept by the
/// [`super::list_cache`] between requests.
#[derive(Debug, Default)]
pub struct NodeListing {
    json: Vec<u8>,
    items: Vec<Item>,
}

/// One container of a [`NodeListing`].
#[derive(Debug, Clone, Copy)]
struct Item {
    /// `Created`, the sort key (0 when absent).
    created: i64,
    /// Its object: `json[start..end]`.
    start: usize,
    end: usize,
    /// Its `Id` as written (a JSON value): `json[id.0..id.1]`, empty when
    /// absent.
    id: (usize, usize),
}

impl NodeListing {
    /// Parses one engine's answer (an array of container summaries) and
    /// writes its containers for node `node_name`.
    pub fn parse(node_name: &str, body: &[u8]) -> serde_json::Result<NodeListing> {
        let containers = serde_json::from_slice::<Vec<Borrowed<'_>>>(body)?;
        let prefix = Prefix::new(node_name)?;
        let mut listing = NodeListing {
            json: Vec::with_capacity(body.len() + containers.len() * (node_name.len() + 1)),
            items: Vec::with_capacity(containers.len()),
        };
        for c in &containers {
            let start = listing.json.len();
            let id = write_container(&mut listing.json, &prefix, c)?;
            listing.items.push(Item {
                created: c.created.unwrap_or(0),
                start,
                end: listing.json.len(),
                id,
            });
        }
        listing.json.shrink_to_fit();
        Ok(listing)
    }

    /// Containers taken from the state (those of unreachable nodes).
    pub fn of_summaries(summaries: &[ContainerSummary]) -> serde_json::Result<NodeListing> {
        let mut listing = NodeListing::default();
        for summary in summaries {
            let start = listing.json.len();
            serde_json::to_writer(&mut listing.json, summary)?;
            listing.items.push(Item {
                created: summary.created.unwrap_or(0),
                start,
                end: listing.json.len(),
                id: (start, start),
            });
        }
        Ok(listing)
    }

    /// How many containers it lists.
    pub fn containers(&self) -> usize {
        self.items.len()
    }

    /// Bytes it holds.
    pub fn size(&self) -> usize {
        self.json.capacity() + self.items.capacity() * std::mem::size_of::<Item>()
    }

    fn object(&self, item: &Item) -> &[u8] {
        &self.json[item.start..item.end]
    }

    /// The container's ID without quotes (IDs hold nothing JSON escapes).
    fn id(&self, item: &Item) -> &[u8] {
        let raw = &self.json[item.id.0..item.id.1];
        raw.strip_prefix(b"\"")
            .and_then(|r| r.strip_suffix(b"\""))
            .unwrap_or(raw)
    }
}

/// One node's part of a reply: its containers, minus `hidden` (copies a
/// reschedule left behind, being removed from the node).
pub struct Shown {
    /// The node's containers.
    pub listing: std::sync::Arc<NodeListing>,
    /// IDs to leave out.
    pub hidden: Vec<String>,
}

/// Bytes per chunk of a reply's body.
const CHUNK: usize = 256 << 10;

/// A reply's JSON array, written chunk by chunk from the listings it
/// shares (nothing is copied before the client reads it).
pub struct Reply {
    parts: Vec<std::sync::Arc<NodeListing>>,
    /// `(part, item)`, in the order written.
    order: Vec<(u32, u32)>,
    next: usize,
    opened: bool,
    closed: bool,
    len: usize,
}

impl Reply {
    /// The whole body's length in bytes.
    pub fn content_length(&self) -> usize {
        self.len
    }
}

impl Iterator for Reply {
    type Item = bytes::Bytes;

    fn next(&mut self) -> Option<bytes::Bytes> {
        if self.closed {
            return None;
        }
        let mut out = Vec::with_capacity(CHUNK + CHUNK / 8);
        if !self.opened {
            out.push(b'[');
            self.opened = true;
        }
        while out.len() < CHUNK {
            let Some(&(part, item)) = self.order.get(self.next) else {
                break;
            };
            if self.next > 0 {
                out.push(b',');
            }
            let listing = &self.parts[part as usize];
            out.extend_from_slice(listing.object(&listing.items[item as usize]));
            self.next += 1;
        }
        if self.next == self.order.len() {
            out.push(b']');
            self.closed = true;
        }
        Some(bytes::Bytes::from(out))
    }
}

/// Merges the nodes' containers and those of unreachable nodes (taken from
/// the state) into one reply: newest first (stable: ties keep the nodes'
/// order, then the unreachable ones), at most `limit`.
pub fn reply(
    nodes: Vec<Shown>,
    unreachable: &[ContainerSummary],
    limit: Option<usize>,
) -> Result<Reply, ApiError> {
    let mut parts = Vec::with_capacity(nodes.len() + 1);
    let mut order: Vec<(i64, (u32, u32))> = Vec::with_capacity(
        nodes.iter().map(|n| n.listing.containers()).sum::<usize>() + unreachable.len(),
    );
    let mut add = |listing: std::sync::Arc<NodeListing>, hidden: &[String]| {
        let part = parts.len() as u32;
        order.extend(
            listing
                .items
                .iter()
                .enumerate()
                .filter(|(_, item)| {
                    hidden.is_empty() || !hidden.iter().any(|h| listing.id(item) == h.as_bytes())
                })
                .map(|(i, item)| (item.created, (part, i as u32))),
        );
        parts.push(listing);
    };
    for node in nodes {
        add(node.listing, &node.hidden);
    }
    if !unreachable.is_empty() {
        add(
            std::sync::Arc::new(NodeListing::of_summaries(unreachable).map_err(internal)?),
            &[],
        );
    }
    order.sort_by_key(|(created, _)| Reverse(*created));
    if let Some(limit) = limit {
        order.truncate(limit);
    }
    let len = 2
        + order.len().saturating_sub(1)
        + order
            .iter()
            .map(|(_, (part, item))| {
                let item = &parts[*part as usize].items[*item as usize];
                item.end - item.start
            })
            .sum::<usize>();
    Ok(Reply {
        parts,
        order: order.into_iter().map(|(_, source)| source).collect(),
        next: 0,
        opened: false,
        closed: false,
        len,
    })
}

impl NodeList {
    /// Its containers, ready to be listed; `None` (logged) when the answer
    /// does not parse.
    pub fn listing(&self) -> Option<NodeListing> {
        match NodeListing::parse(&self.node_name, &self.body) {
            Ok(listing) => Some(listing),
            Err(e) => {
                tracing::warn!(
                    node = %self.node_name,
                    error = %e,
                    "container list failed on a node: unreadable answer"
                );
                None
            }
        }
    }
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::internal(format!("writing the container list: {e}"))
}

/// Writes one engine container as a JSON object, fields in the order of
/// bollard's `ContainerSummary`, absent ones skipped; where its `Id` value
/// went (an empty range when absent).
fn write_container(
    out: &mut Vec<u8>,
    node: &Prefix,
    c: &Borrowed<'_>,
) -> serde_json::Result<(usize, usize)> {
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, key: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
    };
    let raw = |out: &mut Vec<u8>, value: &RawValue| out.extend_from_slice(value.get().as_bytes());

    out.push(b'{');
    let mut id = (out.len(), out.len());
    if let Some(v) = c.id {
        key(out, "Id");
        id.0 = out.len();
        raw(out, v);
        id.1 = out.len();
    }
    if let Some(names) = &c.names {
        key(out, "Names");
        out.push(b'[');
        serde_json::Deserializer::from_str(names.0.get())
            .deserialize_seq(NamesVisitor(Some(NameWriter { out, node })))?;
        out.push(b']');
    }
    for (name, value) in [
        ("Image", c.image),
        ("ImageID", c.image_id),
        ("ImageManifestDescriptor", c.image_manifest_descriptor),
        ("Command", c.command),
    ] {
        if let Some(v) = value {
            key(out, name);
            raw(out, v);
        }
    }
    if let Some(created) = c.created {
        key(out, "Created");
        serde_json::to_writer(&mut *out, &created)?;
    }
    for (name, value) in [
        ("Ports", c.ports),
        ("SizeRw", c.size_rw),
        ("SizeRootFs", c.size_root_fs),
        ("Labels", c.labels),
        ("State", c.state),
        ("Status", c.status),
        ("HostConfig", c.host_config),
        ("NetworkSettings", c.network_settings),
        ("Mounts", c.mounts),
        ("Health", c.health),
    ] {
        if let Some(v) = value {
            key(out, name);
            raw(out, v);
        }
    }
    out.push(b'}');
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, body: &str) -> NodeList {
        NodeList {
            node_name: name.into(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn hidden_containers_left_out() {
        let list = node(
            "n1",
            r#"[{"Id":"aa","Names":["/web"],"Created":2},{"Id":"bb","Names":["/db"],"Created":1}]"#,
        );
        let shown = Shown {
            listing: std::sync::Arc::new(list.listing().expect("parses")),
            hidden: vec!["aa".into()],
        };
        let out = written(reply(vec![shown], &[], None).expect("reply"));
        assert!(!out.contains("\"aa\""), "{out}");
        assert!(out.contains("\"/n1/db\""), "{out}");
    }

    /// The whole body, checked against the length announced.
    fn written(reply: Reply) -> String {
        let len = reply.content_length();
        let chunks: Vec<bytes::Bytes> = reply.collect();
        let body: Vec<u8> = chunks.concat();
        assert_eq!(body.len(), len, "announced length");
        String::from_utf8(body).expect("utf-8")
    }

    /// The reply for these answers, each node's parsed on its own.
    fn merged(
        lists: &[NodeList],
        unreachable: &[ContainerSummary],
        limit: Option<usize>,
    ) -> String {
        let shown = lists
            .iter()
            .filter_map(NodeList::listing)
            .map(|l| Shown {
                listing: std::sync::Arc::new(l),
                hidden: Vec::new(),
            })
            .collect();
        written(reply(shown, unreachable, limit).expect("reply"))
    }

    #[test]
    fn long_replies_come_in_chunks() {
        let body = format!(
            "[{}]",
            (0..3_000)
                .map(|i| created(i, &format!("c{i:04}-{}", "x".repeat(100))))
                .collect::<Vec<_>>()
                .join(",")
        );
        let listing = node("n1", &body).listing().expect("parses");
        assert_eq!(listing.containers(), 3_000);
        let shown = Shown {
            listing: std::sync::Arc::new(listing),
            hidden: Vec::new(),
        };
        let reply = reply(vec![shown], &[], None).expect("reply");
        assert!(
            reply.content_length() > 2 * CHUNK,
            "{}",
            reply.content_length()
        );
        let chunks: Vec<bytes::Bytes> = reply.collect();
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        let out = String::from_utf8(chunks.concat()).expect("utf-8");
        let ids = ids(&out);
        assert_eq!(ids.len(), 3_000);
        assert!(ids[0].starts_with("c2999-"), "{}", ids[0]);
        assert!(ids[2_999].starts_with("c0000-"), "{}", ids[2_999]);
    }

    fn values(json: &str) -> Vec<serde_json::Value> {
        serde_json::from_str(json).expect("valid JSON")
    }

    /// Every field of the summary, nested values in unusual shapes (key
    /// order, escapes, big numbers) that a typed round trip would change.
    const FULL: &str = r#"{"Id":"abc","Names":["/web","/db/web"],"Image":"busybox:1","ImageID":"sha256:1","ImageManifestDescriptor":{"mediaType":"m","digest":"sha256:2","size":3,"x-extra":[1,2]},"Command":"sh -c 'a \u0026\u0026 b'","Created":1700000000,"Ports":[{"PrivatePort":80,"Type":"tcp","IP":"0.0.0.0","PublicPort":8080}],"SizeRw":12,"SizeRootFs":34,"Labels":{"z":"1","a":"\u00e9"},"State":"running","Status":"Up 2 minutes","HostConfig":{"NetworkMode":"bridge","Annotations":{"k":"v"}},"NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2","Aliases":null}}},"Mounts":[{"Type":"volume","Name":"v","RW":true}],"Health":{"Status":"healthy","FailingStreak":0}}"#;

    #[test]
    fn names_prefixed_and_fields_passed_through() {
        let out = merged(&[node("n1", &format!("[{FULL}]"))], &[], None);
        let expected = FULL.replacen(r#"["/web","/db/web"]"#, r#"["/n1/web","/n1/db/web"]"#, 1);
        assert_eq!(out, format!("[{expected}]"));
    }

    #[test]
    fn names_escaped() {
        let out = merged(
            &[node("n\"1", r#"[{"Names":["/a\\b","/\u00e9\n"]}]"#)],
            &[],
            None,
        );
        assert_eq!(out, r#"[{"Names":["/n\"1/a\\b","/n\"1/é\n"]}]"#);
        assert_eq!(values(&out)[0]["Names"][1], "/n\"1/é\n");
    }

    #[test]
    fn absent_and_null_fields_stay_absent_unknown_dropped() {
        let out = merged(
            &[node(
                "n1",
                r#"[{"Id":"x","Labels":null,"Names":null,"Created":null,"Extra":{"a":1}},{}]"#,
            )],
            &[],
            None,
        );
        assert_eq!(out, r#"[{"Id":"x"},{}]"#);
    }

    #[test]
    fn same_as_typed_merge() {
        // The typed model's answer for the same input, minus what it
        // cannot keep (unknown nested fields, null members).
        let body = r#"[{"Id":"a","Names":["/x"],"Image":"i","Command":"c","Created":5,"Ports":[],"Labels":{"k":"v"},"State":"exited","Status":"Exited (0)","HostConfig":{"NetworkMode":"default"},"Mounts":[]}]"#;
        let mut typed: Vec<ContainerSummary> = serde_json::from_str(body).expect("typed");
        typed[0].names = Some(vec!["/n1/x".into()]);
        let out = merged(&[node("n1", body)], &[], None);
        assert_eq!(out, serde_json::to_string(&typed).expect("serialize"));
    }

    fn created(n: i64, name: &str) -> String {
        format!(r#"{{"Id":"{name}","Names":["/{name}"],"Created":{n}}}"#)
    }

    fn ids(out: &str) -> Vec<String> {
        values(out)
            .iter()
            .map(|c| c["Id"].as_str().unwrap_or("-").to_string())
            .collect()
    }

    #[test]
    fn newest_first_stable_then_limit() {
        let a = node(
            "a",
            &format!(
                "[{},{},{}]",
                created(1, "a1"),
                created(3, "a3"),
                created(2, "a2")
            ),
        );
        let b = node("b", &format!("[{},{}]", created(2, "b2"), r#"{"Id":"b0"}"#));
        let down = ContainerSummary {
            id: Some("d".into()),
            names: Some(vec!["/c/d".into()]),
            status: Some("Host Down".into()),
            created: Some(0),
            ..Default::default()
        };
        let lists = [a, b];
        let out = merged(&lists, std::slice::from_ref(&down), None);
        assert_eq!(ids(&out), ["a3", "a2", "b2", "a1", "b0", "d"]);
        let d = &values(&out)[5];
        assert_eq!(d, &serde_json::to_value(&down).expect("value"));
        assert_eq!(ids(&merged(&lists, &[down], Some(2))), ["a3", "a2"]);
        assert_eq!(ids(&merged(&lists, &[], Some(100))).len(), 5);
    }

    #[test]
    fn malformed_body_skipped() {
        let lists = [
            node("bad", r#"[{"Id":"x","Created":"yesterday"}]"#),
            node("worse", "not json"),
            node("empty", ""),
            node("null", "null"),
            node("good", &format!("[{}]", created(1, "g"))),
        ];
        let out = merged(&lists, &[], None);
        assert_eq!(out, r#"[{"Id":"g","Names":["/good/g"],"Created":1}]"#);
        assert_eq!(merged(&[], &[], None), "[]");
    }

    #[test]
    fn answers_sorted() {
        let ok = accept(
            "n".into(),
            Ok((StatusCode::OK, bytes::Bytes::from_static(b"[]"))),
        );
        assert!(matches!(ok, Ok(Some(NodeList { .. }))));
        let bad = accept(
            "n".into(),
            Ok((
                StatusCode::BAD_REQUEST,
                bytes::Bytes::from_static(br#"{"message":"invalid filter"}"#),
            )),
        );
        assert_eq!(bad.err(), Some(ApiError::bad_request("invalid filter")));
        let failed = accept(
            "n".into(),
            Ok((StatusCode::INTERNAL_SERVER_ERROR, bytes::Bytes::new())),
        );
        assert!(matches!(failed, Ok(None)));
        let unreachable = accept("n".into(), Err(ApiError::internal("refused")));
        assert!(matches!(unreachable, Ok(None)));
    }
}
