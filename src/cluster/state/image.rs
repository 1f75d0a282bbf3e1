//! Images: what a node holds ([`ImageRef`]) and how a reference given at
//! create (`busybox`, `docker.io/library/busybox:1`, an ID prefix) is
//! matched against them. Names are normalized once and hashed
//! ([`name_hash`]) so that placement, which asks every node, compares a
//! string only when a hash matches.

use serde::{Deserialize, Serialize};

use super::node::Node;

/// An image present on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// `sha256:...` image ID.
    pub id: String,
    /// Its names: `repo:tag` tags and `repo@sha256:...` digests (an image
    /// pulled by digest or pushed answers to `repo@sha256:...`).
    pub tags: Vec<String>,
}

impl Node {
    /// Whether the node holds `reference` (a name such as `busybox`,
    /// `busybox:local`, `docker.io/library/busybox:1`, or an image ID or ID prefix).
    pub fn has_image(&self, reference: &str) -> bool {
        self.has_image_query(&ImageQuery::new(reference))
    }

    /// [`Node::has_image`] for a reference prepared once (placement asks every node).
    pub fn has_image_query(&self, query: &ImageQuery) -> bool {
        self.names_hashed(query.hash)
            .any(|name| name == query.normalized)
            || self.has_image_id(query)
    }

    /// [`Node::has_image_query`] up to name hashes: true when a name of the
    /// node has the reference's hash (almost surely the same name), or an
    /// image ID starts with the reference. Never false when `has_image_query`
    /// is true.
    pub fn may_have_image(&self, query: &ImageQuery) -> bool {
        self.names_hashed(query.hash).next().is_some() || self.has_image_id(query)
    }

    /// The node's normalized image names whose `name_hash` is `hash`.
    fn names_hashed(&self, hash: u64) -> impl Iterator<Item = &str> + '_ {
        let first = self.image_names.partition_point(|(h, _)| *h < hash);
        self.image_names[first..]
            .iter()
            .take_while(move |(h, _)| *h == hash)
            .map(|(_, name)| name.as_str())
    }

    /// Whether an image ID of the node starts with the query's ID prefix.
    fn has_image_id(&self, query: &ImageQuery) -> bool {
        query.id_prefix.as_deref().is_some_and(|prefix| {
            self.images
                .iter()
                .any(|image| image.id.trim_start_matches("sha256:").starts_with(prefix))
        })
    }
}

/// An image reference prepared for matching against many nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageQuery {
    /// `normalize_image_name(reference)`.
    pub normalized: String,
    /// The bare hex digits when the reference can be an image ID (prefix).
    pub id_prefix: Option<String>,
    /// `name_hash(normalized)`.
    pub hash: u64,
}

/// A stable 64-bit hash of a name (FNV-1a): the same on every replica and run.
pub fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl ImageQuery {
    /// Prepares `reference`.
    pub fn new(reference: &str) -> Self {
        let bare = reference.trim().trim_start_matches("sha256:");
        let normalized = normalize_image_name(reference.trim());
        ImageQuery {
            hash: name_hash(&normalized),
            normalized,
            id_prefix: (bare.len() >= 4 && bare.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| bare.to_string()),
        }
    }
}

/// Whether `image` answers to `reference`.
pub fn image_matches(image: &ImageRef, reference: &str) -> bool {
    let reference = reference.trim();
    if reference.is_empty() {
        return false;
    }
    let bare_id = image.id.trim_start_matches("sha256:");
    let bare_ref = reference.trim_start_matches("sha256:");
    if bare_ref.len() >= 4
        && bare_ref.chars().all(|c| c.is_ascii_hexdigit())
        && bare_id.starts_with(bare_ref)
    {
        return true;
    }
    let wanted = normalize_image_name(reference);
    image
        .tags
        .iter()
        .any(|tag| normalize_image_name(tag) == wanted)
}

/// `busybox` → `busybox:latest`; `docker.io/library/x:1` → `x:1`, as
/// Docker names them: Docker Hub's names (`docker.io/`, and the legacy
/// `index.docker.io/`) and its `library/` namespace are left out.
pub fn normalize_image_name(name: &str) -> String {
    let name = name
        .strip_prefix("docker.io/")
        .or_else(|| name.strip_prefix("index.docker.io/"))
        .unwrap_or(name);
    let name = name.strip_prefix("library/").unwrap_or(name);
    if let Some((repo, digest)) = name.split_once('@') {
        // `app:1@sha256:..` is `app@sha256:..`: a digest overrides the tag.
        let tag_at = repo.rfind(':').filter(|at| !repo[at + 1..].contains('/'));
        return format!("{}@{digest}", &repo[..tag_at.unwrap_or(repo.len())]);
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_normalize() {
        let image = ImageRef {
            id: "sha256:0123456789abcdef".into(),
            tags: vec!["busybox:local".into(), "alpine:latest".into()],
        };
        assert!(image_matches(&image, "busybox:local"));
        assert!(image_matches(&image, "alpine"));
        assert!(image_matches(&image, "docker.io/library/alpine:latest"));
        assert!(image_matches(&image, "0123"));
        assert!(image_matches(&image, "sha256:0123456789abcdef"));
        assert!(!image_matches(&image, "busybox"));
        assert!(!image_matches(&image, "012"));
        assert!(!image_matches(&image, ""));
        assert_eq!(normalize_image_name("reg:5000/x"), "reg:5000/x:latest");
        for hub in [
            "busybox",
            "library/busybox",
            "docker.io/busybox",
            "docker.io/library/busybox:latest",
            "index.docker.io/library/busybox",
            "index.docker.io/busybox:latest",
        ] {
            assert_eq!(normalize_image_name(hub), "busybox:latest", "{hub}");
        }
        assert_eq!(normalize_image_name("docker.io/me/app:1"), "me/app:1");
        let pinned = ImageRef {
            id: "sha256:fedcba9876543210".into(),
            tags: vec!["reg:5000/app:1".into(), "reg:5000/app@sha256:beef".into()],
        };
        assert!(image_matches(&pinned, "reg:5000/app@sha256:beef"));
        assert!(image_matches(&pinned, "reg:5000/app:1@sha256:beef"));
        assert!(!image_matches(&pinned, "reg:5000/app@sha256:bee"));
        assert_eq!(
            normalize_image_name("reg:5000/app@sha256:1"),
            "reg:5000/app@sha256:1"
        );
        assert_eq!(normalize_image_name("library/x:2@sha256:1"), "x@sha256:1");
    }
}
