//! One entry of a key-value store URL's server list (`etcd://`, `zk://`):
//! `HOST`, `HOST:PORT`, `[IPV6]` or `[IPV6]:PORT`, as `HOST:PORT`.

/// `text` as `HOST:PORT` (`[IPV6]:PORT`), with `default_port` when it
/// gives none; `what` names an entry in the errors (`endpoint`,
/// `server`), which say what is wrong.
pub(crate) fn host_port(text: &str, default_port: u16, what: &str) -> Result<String, String> {
    let text = text.trim();
    let bad = |why: String| format!("{what} {text:?}: {why}");
    if text.is_empty() {
        return Err(format!(
            "an empty {what} (two commas in a row, or one at an end)"
        ));
    }
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let (ip, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("'[' without ']'".into()))?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad(format!("{ip:?} is not an IPv6 address")))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("expected [IPV6]:PORT".into()))?,
            ),
        };
        (format!("[{ip}]"), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(bad(format!(
                "an IPv6 address goes in brackets, [::1]:{default_port}"
            )));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if host.is_empty() || !host.chars().all(valid) {
            return Err(bad(format!("{host:?} is not a host name or IP address")));
        }
        (host.to_string(), port)
    };
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad(format!("{p:?} is not a port (1 to 65535)")))?,
    };
    Ok(format!("{host}:{port}"))
}
