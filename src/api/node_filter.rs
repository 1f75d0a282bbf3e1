//! Classic's `node` filter of `docker ps` and `docker images`
//! (`--filter node=node-1`): taken out of the `filters` the engines get,
//! and applied by asking only the nodes it names.

use super::{query_param, ApiError};

/// The nodes a `node` filter names (by name or ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Only(Vec<String>);

impl Only {
    /// Whether node `id`, named `name`, is one of them.
    pub fn matches(&self, id: &str, name: &str) -> bool {
        self.0.iter().any(|n| n == id || n == name)
    }

    /// The names and IDs it was given.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

/// The values of one filter in Docker's JSON (`{"v1": true}`, or the
/// older `["v1"]`); `None` for anything else.
pub fn filter_values(filter: &serde_json::Value) -> Option<Vec<String>> {
    match filter {
        serde_json::Value::Object(values) => Some(values.keys().cloned().collect()),
        serde_json::Value::Array(values) => Some(
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// `query` without the `node` filter, and the nodes it named (`None`
/// without one). The filter is Docker's JSON map of filter names to their
/// values (`{"node": {"node-1": true}}`, or the older `{"node": ["node-1"]}`).
pub fn take(query: &str) -> Result<(String, Option<Only>), ApiError> {
    let Some(filters) = query_param(query, "filters").filter(|f| !f.trim().is_empty()) else {
        return Ok((query.to_string(), None));
    };
    let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&filters)
        .map_err(|e| ApiError::bad_request(format!("invalid filters {filters:?}: {e}")))?;
    let Some(node) = map.remove("node") else {
        return Ok((query.to_string(), None));
    };
    let Some(names) = filter_values(&node) else {
        return Err(ApiError::bad_request(format!(
            "invalid node filter {node}: expected node names"
        )));
    };
    let rest = serde_json::Value::Object(map).to_string();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| {
            if k == "filters" {
                (k, rest.clone().into())
            } else {
                (k, v)
            }
        }))
        .finish();
    Ok((query, Some(Only(names))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(filters: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("all", "1")
            .append_pair("filters", filters)
            .finish()
    }

    #[test]
    fn the_node_filter_is_taken_out() {
        let (rest, only) = take(&query(
            r#"{"node":{"node-1":true},"status":{"exited":true}}"#,
        ))
        .expect("parsed");
        let only = only.expect("a node filter");
        assert!(only.matches("ID1", "node-1") && !only.matches("ID2", "node-2"));
        assert_eq!(
            query_param(&rest, "filters").as_deref(),
            Some(r#"{"status":{"exited":true}}"#)
        );
        assert_eq!(query_param(&rest, "all").as_deref(), Some("1"));
        let (_, only) = take(&query(r#"{"node":["ID2"]}"#)).expect("old format");
        assert!(only.expect("filter").matches("ID2", "node-2"));
        let plain = query(r#"{"status":{"exited":true}}"#);
        assert_eq!(take(&plain).expect("no node"), (plain.clone(), None));
        assert!(take(&query("{")).is_err());
        assert!(take(&query(r#"{"node":3}"#)).is_err());
    }
}
