//! The text of an `etcd://` discovery URL: `HOST[:PORT],...[/PATH]`.

/// The port of an endpoint written without one: etcd's client port.
pub const DEFAULT_PORT: u16 = 2379;

/// Where classic Swarm's libkv discovery keeps the engines, under the
/// URL's path.
pub const NODES_PATH: &str = "docker/swarm/nodes";

/// An `etcd://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// The endpoints, `HOST:PORT` (IPv6 in brackets), in the URL's order.
    pub endpoints: Vec<String>,
    /// The key prefix of the engines: `PATH/docker/swarm/nodes/`, the path's
    /// empty components dropped (no leading `/`).
    pub prefix: String,
}

/// Parses `rest`, the URL after `etcd://`; the error says what is wrong.
pub fn parse(rest: &str) -> Result<StoreUrl, String> {
    if rest.contains("://") {
        return Err("endpoints are HOST:PORT, without a scheme".into());
    }
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    if hosts.trim().is_empty() {
        return Err("no etcd endpoint: expected etcd://HOST:PORT[,HOST:PORT...][/PATH]".into());
    }
    let endpoints = hosts
        .split(',')
        .map(|e| crate::discovery::endpoint::host_port(e, DEFAULT_PORT, "endpoint"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("path component {part:?} holds white space"));
        }
        prefix.push_str(part);
        prefix.push('/');
    }
    prefix.push_str(NODES_PATH);
    prefix.push('/');
    Ok(StoreUrl { endpoints, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rest: &str) -> StoreUrl {
        parse(rest).unwrap_or_else(|e| panic!("{rest}: {e}"))
    }

    #[test]
    fn endpoints_and_paths() {
        assert_eq!(
            ok("10.0.0.1:2379"),
            StoreUrl {
                endpoints: vec!["10.0.0.1:2379".into()],
                prefix: "docker/swarm/nodes/".into()
            }
        );
        assert_eq!(
            ok("h1:2379, h2:22379/swarm"),
            StoreUrl {
                endpoints: vec!["h1:2379".into(), "h2:22379".into()],
                prefix: "swarm/docker/swarm/nodes/".into()
            }
        );
        assert_eq!(ok("etcd.local/a/b/").prefix, "a/b/docker/swarm/nodes/");
        assert_eq!(ok("etcd.local//a//b").prefix, "a/b/docker/swarm/nodes/");
        assert_eq!(ok("h:1/").prefix, "docker/swarm/nodes/");
        assert_eq!(ok("etcd.local").endpoints, vec!["etcd.local:2379"]);
        assert_eq!(
            ok("[::1]:2380,[fe80::1]/p").endpoints,
            vec!["[::1]:2380", "[fe80::1]:2379"]
        );
    }

    #[test]
    fn bad_urls_say_why() {
        for (rest, expect) in [
            ("", "no etcd endpoint"),
            ("/path", "no etcd endpoint"),
            (" ,/path", "an empty endpoint"),
            ("h1:2379,,h2:2379", "an empty endpoint"),
            ("h1:2379,", "an empty endpoint"),
            ("http://h:2379", "without a scheme"),
            ("h:0", "\"h:0\": \"0\" is not a port"),
            ("h:99999", "\"99999\" is not a port"),
            ("h:abc/p", "\"abc\" is not a port"),
            ("h:", "\"\" is not a port"),
            (":2379", "not a host name"),
            ("my host:2379", "not a host name"),
            ("::1:2379", "IPv6 address goes in brackets"),
            ("[::1:2379", "without ']'"),
            ("[nope]:2379", "not an IPv6 address"),
            ("[::1]2379", "expected [IPV6]:PORT"),
            ("h:2379/a b", "white space"),
        ] {
            let err = parse(rest).expect_err(rest);
            assert!(err.contains(expect), "{rest:?}: {err}");
        }
    }
}
