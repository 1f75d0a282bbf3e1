//! What a container reserves on its node ([`Resources`]: CPU, memory and
//! the [`HostPort`]s it binds), and how that is read from its Engine API
//! host config ([`from_host_config`]).

use bollard::models::HostConfig;
use serde::{Deserialize, Serialize};

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// Parses `tcp`, `udp`, `sctp` (empty means tcp).
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// A host port a container binds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostPort {
    /// Host IP; empty, `0.0.0.0` or `::` mean every address.
    pub ip: String,
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
}

impl HostPort {
    fn all_addresses(&self) -> bool {
        matches!(self.ip.as_str(), "" | "0.0.0.0" | "::" | "[::]")
    }

    /// Whether both cannot be bound on one host at once.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.proto == other.proto
            && (self.all_addresses() || other.all_addresses() || self.ip == other.ip)
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        };
        if self.all_addresses() {
            write!(f, "{}/{proto}", self.port)
        } else {
            write!(f, "{}:{}/{proto}", self.ip, self.port)
        }
    }
}

/// What a container reserves on its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in thousandths (`-c N` counts N CPUs as in classic; `--cpus 1.5` is 1500).
    pub cpus_milli: u64,
    /// Memory in bytes (`-m`).
    pub memory: i64,
    /// Host ports (`-p`, and exposed ports under `--net=host`).
    pub ports: Vec<HostPort>,
}

/// Largest port range expanded from one binding (`8000-8100`).
const MAX_RANGE: u32 = 1024;

/// The resources a container with `host_config` (and `exposed_ports`, which
/// bind host ports under `--net=host`) reserves on its node.
///
/// CPU follows Swarm classic: `-c N` (CpuShares) reserves N CPUs;
/// `--cpus X` (NanoCpus) reserves X CPUs and takes precedence.
pub fn from_host_config(host_config: Option<&HostConfig>, exposed_ports: &[String]) -> Resources {
    let Some(hc) = host_config else {
        return Resources::default();
    };
    let cpus_milli = match (hc.nano_cpus, hc.cpu_shares) {
        (Some(nano), _) if nano > 0 => (nano as u64).div_ceil(1_000_000),
        (_, Some(shares)) if shares > 0 => shares as u64 * 1000,
        _ => 0,
    };
    let mut ports = Vec::new();
    if let Some(bindings) = &hc.port_bindings {
        for (key, list) in bindings {
            let proto = key.split_once('/').map(|(_, p)| p).unwrap_or("tcp");
            let Some(proto) = Proto::parse(proto) else {
                continue;
            };
            for binding in list.iter().flatten() {
                let ip = binding.host_ip.clone().unwrap_or_default();
                for port in parse_ports(binding.host_port.as_deref().unwrap_or("")) {
                    ports.push(HostPort {
                        ip: ip.clone(),
                        port,
                        proto,
                    });
                }
            }
        }
    }
    if hc.network_mode.as_deref() == Some("host") {
        for key in exposed_ports {
            let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            if let (Ok(port), Some(proto)) = (port.parse::<u16>(), Proto::parse(proto)) {
                if port > 0 {
                    ports.push(HostPort {
                        ip: String::new(),
                        port,
                        proto,
                    });
                }
            }
        }
    }
    ports.sort();
    ports.dedup();
    Resources {
        cpus_milli,
        memory: hc.memory.unwrap_or(0).max(0),
        ports,
    }
}

/// `8080` → [8080]; `8000-8002` → [8000, 8001, 8002]; ``/`0` (a port the
/// engine picks) → [].
fn parse_ports(spec: &str) -> Vec<u16> {
    let spec = spec.trim();
    let (from, to) = spec.split_once('-').unwrap_or((spec, spec));
    match (from.trim().parse::<u16>(), to.trim().parse::<u16>()) {
        (Ok(from), Ok(to)) if from > 0 && from <= to && u32::from(to - from) < MAX_RANGE => {
            (from..=to).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::PortBinding;

    fn binding(ip: &str, port: &str) -> Option<Vec<PortBinding>> {
        Some(vec![PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        }])
    }

    #[test]
    fn cpus_memory_and_ports() {
        let hc = HostConfig {
            memory: Some(512 << 20),
            cpu_shares: Some(2),
            port_bindings: Some(
                [
                    ("80/tcp".to_string(), binding("", "8080")),
                    ("53/udp".to_string(), binding("127.0.0.1", "5353")),
                    ("90/tcp".to_string(), binding("", "")),
                    ("91/tcp".to_string(), binding("", "9000-9002")),
                    ("92/tcp".to_string(), None),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let r = from_host_config(Some(&hc), &[]);
        assert_eq!(r.cpus_milli, 2000);
        assert_eq!(r.memory, 512 << 20);
        let shown: Vec<String> = r.ports.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "8080/tcp",
                "9000/tcp",
                "9001/tcp",
                "9002/tcp",
                "127.0.0.1:5353/udp"
            ]
        );
    }

    #[test]
    fn nano_cpus_win_and_host_network_binds_exposed_ports() {
        let hc = HostConfig {
            nano_cpus: Some(1_500_000_000),
            cpu_shares: Some(512),
            network_mode: Some("host".into()),
            ..Default::default()
        };
        let r = from_host_config(
            Some(&hc),
            &["80/tcp".into(), "53/udp".into(), "x/tcp".into()],
        );
        assert_eq!(r.cpus_milli, 1500);
        assert_eq!(r.ports.len(), 2);
        assert_eq!(
            from_host_config(None, &["80/tcp".into()]),
            Resources::default()
        );
    }

    #[test]
    fn port_specs() {
        assert_eq!(parse_ports("80"), vec![80]);
        assert_eq!(parse_ports("0"), Vec::<u16>::new());
        assert_eq!(parse_ports("5-3"), Vec::<u16>::new());
        assert_eq!(parse_ports("1-5000"), Vec::<u16>::new());
        assert_eq!(parse_ports("x"), Vec::<u16>::new());
    }
}
