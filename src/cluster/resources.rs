//! What a container reserves on its node ([`Resources`]: CPU, memory and
//! the [`HostPort`]s it binds), and how that is read from its Engine API
//! host config: [`requested`] for a create, which refuses what is no port
//! (the port filter must understand every port to keep them from being
//! booked twice), [`from_host_config`] for a container an engine reports,
//! which takes what it understands.

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

/// Largest `CpuShares` (Docker's maximum on Linux). Swarm reserves that
/// many CPUs, as classic did.
pub const MAX_CPU_SHARES: i64 = 262_144;

/// What a create asks for that no engine could give, or that swarm could
/// not account for (Docker's messages where Docker has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// A container port, host port, port range or protocol that is none.
    #[error("invalid port specification: {0:?}")]
    Port(String),
    /// A host port range too wide to reserve port by port.
    #[error(
        "invalid port specification: {0:?}: ranges of more than {MAX_RANGE} host ports are not reserved"
    )]
    Range(String),
    /// A host IP that is no IP address.
    #[error("invalid IP address: {0}")]
    HostIp(String),
    /// `CpuShares` out of Docker's range.
    #[error("invalid CpuShares {0}: must be between 0 and {MAX_CPU_SHARES}")]
    CpuShares(i64),
}

/// What a create with `host_config` and `exposed_ports` reserves, once
/// every port, host IP and CPU share in it is checked: a port Docker
/// would refuse (`70000`, `-1`, `abc`, `80/xyz`, container port 0), a
/// host IP that is no IP, `CpuShares` past [`MAX_CPU_SHARES`] are
/// refused rather than left out of the reservation.
pub fn requested(
    host_config: Option<&HostConfig>,
    exposed_ports: &[String],
) -> Result<Resources, ResourceError> {
    for key in exposed_ports {
        container_port(key)?;
    }
    if let Some(hc) = host_config {
        if let Some(shares) = hc.cpu_shares {
            if !(0..=MAX_CPU_SHARES).contains(&shares) {
                return Err(ResourceError::CpuShares(shares));
            }
        }
        for (key, list) in hc.port_bindings.iter().flatten() {
            container_port(key)?;
            for binding in list.iter().flatten() {
                if let Some(ip) = binding.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                    let bare = ip.trim_start_matches('[').trim_end_matches(']');
                    if bare.parse::<std::net::IpAddr>().is_err() {
                        return Err(ResourceError::HostIp(ip.to_string()));
                    }
                }
                host_ports(binding.host_port.as_deref().unwrap_or(""))?;
            }
        }
    }
    Ok(from_host_config(host_config, exposed_ports))
}

/// The resources a container with `host_config` (and `exposed_ports`, which
/// bind host ports under `--net=host`) holds on its node; ports that do
/// not parse are left out (see [`requested`] for a create).
///
/// CPU follows Swarm classic: `-c N` (CpuShares) reserves N CPUs;
/// `--cpus X` (NanoCpus) reserves X CPUs and takes precedence.
pub fn from_host_config(host_config: Option<&HostConfig>, exposed_ports: &[String]) -> Resources {
    let Some(hc) = host_config else {
        return Resources::default();
    };
    let cpus_milli = match (hc.nano_cpus, hc.cpu_shares) {
        (Some(nano), _) if nano > 0 => (nano as u64).div_ceil(1_000_000),
        (_, Some(shares)) if shares > 0 => (shares as u64).saturating_mul(1000),
        _ => 0,
    };
    let mut ports = Vec::new();
    if let Some(bindings) = &hc.port_bindings {
        for (key, list) in bindings {
            let Ok((_, proto)) = container_port(key) else {
                continue;
            };
            for binding in list.iter().flatten() {
                let ip = binding.host_ip.clone().unwrap_or_default();
                let spec = binding.host_port.as_deref().unwrap_or("");
                for port in host_ports(spec).unwrap_or_default() {
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
            if let Ok((port, proto)) = container_port(key) {
                ports.push(HostPort {
                    ip: String::new(),
                    port,
                    proto,
                });
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

/// A container port key, `80/tcp` or `80` (tcp): its number (1-65535)
/// and protocol.
fn container_port(key: &str) -> Result<(u16, Proto), ResourceError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = Proto::parse(proto).ok_or_else(|| ResourceError::Port(key.to_string()))?;
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok((port, proto)),
        _ => Err(ResourceError::Port(port.to_string())),
    }
}

/// A host port: `8080` → [8080]; `8000-8002` → [8000, 8001, 8002];
/// ``/`0` (a port the engine picks) → []. An optional `/proto` suffix is
/// ignored, as Docker does.
fn host_ports(spec: &str) -> Result<Vec<u16>, ResourceError> {
    let invalid = || ResourceError::Port(spec.to_string());
    let bare = spec.trim();
    let bare = bare.split_once('/').map(|(p, _)| p).unwrap_or(bare);
    if bare.is_empty() {
        return Ok(Vec::new());
    }
    let (from, to) = bare.split_once('-').unwrap_or((bare, bare));
    let from: u16 = from.trim().parse().map_err(|_| invalid())?;
    let to: u16 = to.trim().parse().map_err(|_| invalid())?;
    match (from, to) {
        (0, 0) => Ok(Vec::new()),
        (0, _) => Err(invalid()),
        (from, to) if from > to => Err(invalid()),
        (from, to) if u32::from(to - from) >= MAX_RANGE => {
            Err(ResourceError::Range(spec.to_string()))
        }
        (from, to) => Ok((from..=to).collect()),
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
        assert_eq!(host_ports("80"), Ok(vec![80]));
        assert_eq!(host_ports(" 80/tcp"), Ok(vec![80]));
        assert_eq!(host_ports("0"), Ok(vec![]));
        assert_eq!(host_ports(""), Ok(vec![]));
        assert_eq!(host_ports("8000-8002"), Ok(vec![8000, 8001, 8002]));
        for bad in [
            "5-3",
            "x",
            "-1",
            "65536",
            "70000",
            "65000-70000",
            "0-5",
            "1-",
        ] {
            assert_eq!(
                host_ports(bad),
                Err(ResourceError::Port(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            host_ports("1-5000"),
            Err(ResourceError::Range("1-5000".into()))
        );
        assert_eq!(container_port("80/udp"), Ok((80, Proto::Udp)));
        assert_eq!(container_port("80"), Ok((80, Proto::Tcp)));
        assert_eq!(
            container_port("99999/tcp"),
            Err(ResourceError::Port("99999".into()))
        );
        assert_eq!(
            container_port("80/xyz"),
            Err(ResourceError::Port("80/xyz".into()))
        );
        assert_eq!(
            container_port("abc"),
            Err(ResourceError::Port("abc".into()))
        );
        assert_eq!(
            container_port("0/tcp"),
            Err(ResourceError::Port("0".into()))
        );
    }

    #[test]
    fn creates_with_what_is_no_port_are_refused() {
        let with_binding = |key: &str, ip: &str, port: &str| HostConfig {
            port_bindings: Some([(key.to_string(), binding(ip, port))].into()),
            ..Default::default()
        };
        for (hc, exposed, message) in [
            (
                with_binding("80/tcp", "", "70000"),
                vec![],
                r#"invalid port specification: "70000""#,
            ),
            (
                with_binding("80/tcp", "", "-1"),
                vec![],
                r#"invalid port specification: "-1""#,
            ),
            (
                with_binding("80/tcp", "", "abc"),
                vec![],
                r#"invalid port specification: "abc""#,
            ),
            (
                with_binding("80/tcp", "", "65530-65540"),
                vec![],
                r#"invalid port specification: "65530-65540""#,
            ),
            (
                with_binding("0/tcp", "", "8080"),
                vec![],
                r#"invalid port specification: "0""#,
            ),
            (
                with_binding("80/tcp", "not-an-ip", "8080"),
                vec![],
                "invalid IP address: not-an-ip",
            ),
            (
                HostConfig::default(),
                vec!["99999/tcp".to_string()],
                r#"invalid port specification: "99999""#,
            ),
            (
                HostConfig::default(),
                vec!["80/xyz".to_string()],
                r#"invalid port specification: "80/xyz""#,
            ),
            (
                HostConfig::default(),
                vec!["abc".to_string()],
                r#"invalid port specification: "abc""#,
            ),
            (
                HostConfig {
                    cpu_shares: Some(1 << 40),
                    ..Default::default()
                },
                vec![],
                "invalid CpuShares 1099511627776: must be between 0 and 262144",
            ),
        ] {
            let e = requested(Some(&hc), &exposed).unwrap_err();
            assert_eq!(e.to_string(), message);
        }
        let hc = HostConfig {
            cpu_shares: Some(2),
            ..with_binding("80/tcp", "[::1]", "8080")
        };
        let r = requested(Some(&hc), &["53/udp".into()]).unwrap();
        assert_eq!(r.cpus_milli, 2000);
        assert_eq!(r.ports[0].to_string(), "[::1]:8080/tcp");
        // What an engine reports is read as far as it goes.
        let odd = HostConfig {
            cpu_shares: Some(i64::MAX),
            ..with_binding("80/tcp", "", "70000")
        };
        let r = from_host_config(Some(&odd), &[]);
        assert!(r.ports.is_empty());
        assert_eq!(r.cpus_milli, u64::MAX);
    }
}
