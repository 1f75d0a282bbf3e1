//! The merged container list (`GET /containers/json`) without owned trees.
//!
//! Every engine's answer is parsed in place: only `Created` (the sort key)
//! is decoded; `Names` is checked to be an array of strings and rewritten
//! as `/node/name` while the reply is written; every other field of the
//! Engine API's container summary is kept as a slice of the engine's body
//! and written back verbatim. Nothing is allocated per container. The
//! bodies stay alive while the reply is written; an index of `(Created,
//! container)` is sorted (newest first, stable), cut to `limit`, and the
//! reply is written into one pre-sized buffer.
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
    /// Containers of this node to leave out: copies a reschedule left
    /// behind, being removed from the node (they live elsewhere now).
    pub hidden: Vec<String>,
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
            return Ok(Some(NodeList {
                node_name,
                body,
                hidden: Vec::new(),
            }));
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

/// Where one listed container comes from.
#[derive(Clone, Copy)]
enum Source {
    /// Container `item` of the parsed answer `node`.
    Engine { node: u32, item: u32 },
    /// The `i`th of the unreachable nodes' containers.
    Unreachable(u32),
}

/// Bytes reserved per container taken from the state (a typed summary).
const UNREACHABLE_ESTIMATE: usize = 320;

/// Merges the nodes' answers and the containers of unreachable nodes into
/// the reply's JSON array: names as `/node/name`, newest first (stable:
/// ties keep the nodes' order, then the unreachable ones), at most `limit`.
/// A node whose body does not parse is logged and skipped.
pub fn merge(
    lists: &[NodeList],
    unreachable: &[ContainerSummary],
    limit: Option<usize>,
) -> Result<Vec<u8>, ApiError> {
    let mut parsed: Vec<(Prefix, Vec<Borrowed<'_>>, usize, &[String])> =
        Vec::with_capacity(lists.len());
    let mut count = unreachable.len();
    for list in lists {
        match serde_json::from_slice::<Vec<Borrowed<'_>>>(&list.body) {
            Ok(containers) => {
                // Average size of one container in this answer, for sizing.
                let each = list.body.len() / containers.len().max(1) + list.node_name.len() + 1;
                count += containers.len();
                let prefix = Prefix::new(&list.node_name).map_err(internal)?;
                parsed.push((prefix, containers, each, &list.hidden));
            }
            Err(e) => tracing::warn!(
                node = %list.node_name,
                error = %e,
                "container list failed on a node: unreadable answer"
            ),
        }
    }

    let mut index: Vec<(i64, Source)> = Vec::with_capacity(count);
    for (node, (_, containers, _, hidden)) in parsed.iter().enumerate() {
        let shown = |c: &Borrowed<'_>| {
            hidden.is_empty()
                || c.id
                    .is_none_or(|id| !hidden.iter().any(|h| id.get().trim_matches('"') == h))
        };
        index.extend(
            containers
                .iter()
                .enumerate()
                .filter(|(_, c)| shown(c))
                .map(|(item, c)| {
                    (
                        c.created.unwrap_or(0),
                        Source::Engine {
                            node: node as u32,
                            item: item as u32,
                        },
                    )
                }),
        );
    }
    index.extend(
        unreachable
            .iter()
            .enumerate()
            .map(|(i, c)| (c.created.unwrap_or(0), Source::Unreachable(i as u32))),
    );
    index.sort_by_key(|(created, _)| Reverse(*created));
    if let Some(limit) = limit {
        index.truncate(limit);
    }

    let size = 2 + index
        .iter()
        .map(|(_, source)| match *source {
            Source::Engine { node, .. } => parsed[node as usize].2,
            Source::Unreachable(_) => UNREACHABLE_ESTIMATE,
        })
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(b'[');
    for (i, (_, source)) in index.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let written = match *source {
            Source::Engine { node, item } => {
                let (prefix, containers, _, _) = &parsed[node as usize];
                write_container(&mut out, prefix, &containers[item as usize])
            }
            Source::Unreachable(i) => serde_json::to_writer(&mut out, &unreachable[i as usize]),
        };
        written.map_err(internal)?;
    }
    out.push(b']');
    Ok(out)
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::internal(format!("writing the container list: {e}"))
}

/// Writes one engine container as a JSON object, fields in the order of
/// bollard's `ContainerSummary`, absent ones skipped.
fn write_container(out: &mut Vec<u8>, node: &Prefix, c: &Borrowed<'_>) -> serde_json::Result<()> {
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
    if let Some(v) = c.id {
        key(out, "Id");
        raw(out, v);
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, body: &str) -> NodeList {
        NodeList {
            node_name: name.into(),
            body: bytes::Bytes::from(body.to_string()),
            hidden: Vec::new(),
        }
    }

    #[test]
    fn hidden_containers_left_out() {
        let mut list = node(
            "n1",
            r#"[{"Id":"aa","Names":["/web"],"Created":2},{"Id":"bb","Names":["/db"],"Created":1}]"#,
        );
        list.hidden = vec!["aa".into()];
        let out = merged(&[list], &[], None);
        assert!(!out.contains("\"aa\""), "{out}");
        assert!(out.contains("\"/n1/db\""), "{out}");
    }

    fn merged(
        lists: &[NodeList],
        unreachable: &[ContainerSummary],
        limit: Option<usize>,
    ) -> String {
        String::from_utf8(merge(lists, unreachable, limit).expect("merge")).expect("utf-8")
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
