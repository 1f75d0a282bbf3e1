//! Machine-wide TCP figures of a benchmark run (connections opened, SYN
//! retransmits, the connection tracking table), to tell a slow manager
//! from a congested kernel.

use std::fs;

use serde::Serialize;

/// Machine-wide TCP counters, to tell a slow manager from a congested
/// kernel: `ActiveOpens` (/proc/net/snmp), `TCPSynRetrans`
/// (/proc/net/netstat) and the netfilter connection tracking table, which,
/// when full, drops new connections, loopback included ("nf_conntrack:
/// table full, dropping packet"): their SYNs are retried after 1 s, 3 s...
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NetCounters {
    /// TCP connections opened so far (connect() calls that sent a SYN).
    pub active_opens: u64,
    /// SYNs sent again for want of an answer.
    pub syn_retransmits: u64,
    /// Entries in the connection tracking table, if netfilter tracks.
    pub conntrack_count: Option<u64>,
    /// Its size.
    pub conntrack_max: Option<u64>,
}

impl NetCounters {
    /// Reads the counters now (missing ones are 0 or None).
    pub fn read() -> NetCounters {
        let snmp = fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        let netstat = fs::read_to_string("/proc/net/netstat").unwrap_or_default();
        let number = |path: &str| {
            fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        NetCounters {
            active_opens: proc_net_field(&snmp, "Tcp:", "ActiveOpens").unwrap_or(0),
            syn_retransmits: proc_net_field(&netstat, "TcpExt:", "TCPSynRetrans").unwrap_or(0),
            conntrack_count: number("/proc/sys/net/netfilter/nf_conntrack_count"),
            conntrack_max: number("/proc/sys/net/netfilter/nf_conntrack_max"),
        }
    }

    /// The counters' growth from `before` to `self` (table figures as now).
    pub fn since(&self, before: &NetCounters) -> NetCounters {
        NetCounters {
            active_opens: self.active_opens.saturating_sub(before.active_opens),
            syn_retransmits: self.syn_retransmits.saturating_sub(before.syn_retransmits),
            ..*self
        }
    }

    /// Whether the tracking table is at least 90% full.
    pub fn conntrack_nearly_full(&self) -> bool {
        match (self.conntrack_count, self.conntrack_max) {
            (Some(n), Some(max)) if max > 0 => n * 10 >= max * 9,
            _ => false,
        }
    }
}

/// A field of a /proc/net/snmp-style file: a header line `PREFIX names...`
/// followed by a line `PREFIX values...`.
fn proc_net_field(text: &str, prefix: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let column = names.split_whitespace().position(|n| n == name);
        if let Some(column) = column {
            return values.split_whitespace().nth(column)?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_net_fields() {
        let text = "Ip: Forwarding X\nIp: 1 2\nTcp: RtoAlgorithm ActiveOpens\nTcp: 1 646268\n";
        assert_eq!(proc_net_field(text, "Tcp:", "ActiveOpens"), Some(646268));
        assert_eq!(proc_net_field(text, "Tcp:", "Nope"), None);
        let now = NetCounters::read();
        assert!(now.active_opens >= now.since(&now).active_opens);
    }
}
