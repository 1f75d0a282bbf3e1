//! The part of a `zk://` URL after the scheme: `HOST[:PORT],...[/PATH]`,
//! as classic's (`zk://10.0.0.1:2181,10.0.0.2:2181/swarm`). A port left
//! out is ZooKeeper's 2181; an IPv6 host goes in brackets (`[::1]:2181`);
//! the path, optional and possibly nested (`a/b`), prefixes the keys.

/// ZooKeeper's client port, for a server given without one.
pub const DEFAULT_PORT: u16 = 2181;

/// A parsed `zk://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkUrl {
    /// The servers, each `HOST:PORT` (`[V6]:PORT`), without duplicates.
    pub servers: Vec<String>,
    /// The path's segments, without slashes (empty without a path).
    pub path: Vec<String>,
}

impl ZkUrl {
    /// Parses `rest`, the URL after `zk://`; the error says what is wrong.
    pub fn parse(rest: &str) -> Result<ZkUrl, String> {
        let (hosts, path) = match rest.split_once('/') {
            Some((hosts, path)) => (hosts, path),
            None => (rest, ""),
        };
        if hosts.trim().is_empty() {
            return Err("no server: expected zk://HOST[:PORT],...[/PATH]".into());
        }
        let mut servers = Vec::new();
        for entry in hosts.split(',').map(str::trim) {
            let server = crate::discovery::endpoint::host_port(entry, DEFAULT_PORT, "server")?;
            if !servers.contains(&server) {
                servers.push(server);
            }
        }
        Ok(ZkUrl {
            servers,
            path: parse_path(path)?,
        })
    }

    /// The URL again, normalized: `zk://HOST:PORT,...[/PATH]`.
    pub fn to_url(&self) -> String {
        let mut url = format!("zk://{}", self.servers.join(","));
        for segment in &self.path {
            url.push('/');
            url.push_str(segment);
        }
        url
    }
}

/// The path's segments: slashes at either end are dropped; ZooKeeper
/// refuses empty, `.` and `..` segments and control characters, and
/// `/zookeeper` is its own.
fn parse_path(path: &str) -> Result<Vec<String>, String> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let segments: Vec<String> = path.split('/').map(str::to_string).collect();
    for segment in &segments {
        if segment.is_empty() {
            return Err(format!("path {path:?} has an empty segment (//)"));
        }
        if segment == "." || segment == ".." {
            return Err(format!(
                "path {path:?}: ZooKeeper refuses . and .. segments"
            ));
        }
        if segment.chars().any(char::is_control) {
            return Err(format!("path {path:?} holds a control character"));
        }
    }
    if segments[0] == "zookeeper" {
        return Err("path /zookeeper is ZooKeeper's own: choose another".into());
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rest: &str) -> (Vec<String>, Vec<String>, String) {
        let url = ZkUrl::parse(rest).unwrap_or_else(|e| panic!("{rest}: {e}"));
        let text = url.to_url();
        (url.servers, url.path, text)
    }

    #[test]
    fn servers_ports_and_paths() {
        let (servers, path, url) = ok("10.0.0.1:2181,10.0.0.2:2182/swarm");
        assert_eq!(servers, ["10.0.0.1:2181", "10.0.0.2:2182"]);
        assert_eq!(path, ["swarm"]);
        assert_eq!(url, "zk://10.0.0.1:2181,10.0.0.2:2182/swarm");

        let (servers, path, url) = ok("zk1,zk-2.example.com:2000");
        assert_eq!(servers, ["zk1:2181", "zk-2.example.com:2000"]);
        assert!(path.is_empty());
        assert_eq!(url, "zk://zk1:2181,zk-2.example.com:2000");

        let (servers, path, _) = ok("[::1]:2181,[fe80::1], h:1/a/b/");
        assert_eq!(servers, ["[::1]:2181", "[fe80::1]:2181", "h:1"]);
        assert_eq!(path, ["a", "b"]);

        let (servers, path, url) = ok("h:1,h:1/");
        assert_eq!(servers, ["h:1"]);
        assert!(path.is_empty());
        assert_eq!(url, "zk://h:1");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (rest, expect) in [
            ("", "no server"),
            ("/path", "no server"),
            (" ,h/p", "an empty server"),
            ("h1,,h2", "an empty server"),
            ("h:0", "\"0\" is not a port"),
            ("h:99999", "\"99999\" is not a port"),
            ("h:x", "\"x\" is not a port"),
            ("h:", "\"\" is not a port"),
            (":2181", "\"\" is not a host"),
            ("h h:2181", "is not a host"),
            ("::1:2181", "goes in brackets"),
            ("[::1", "'[' without ']'"),
            ("[nope]:1", "is not an IPv6 address"),
            ("[::1]2181", "expected [IPV6]:PORT"),
            ("h/a//b", "empty segment"),
            ("h/a/../b", ". and .."),
            ("h/a\u{7}b", "control character"),
            ("h/zookeeper/x", "ZooKeeper's own"),
        ] {
            let err = ZkUrl::parse(rest).expect_err(rest);
            assert!(err.contains(expect), "{rest:?}: {err}");
        }
    }
}
