//! `--discovery-opt`: TLS to a key-value store.

use std::path::PathBuf;

/// The value of `KEY=...` in `opts`, the last if repeated.
pub(super) fn discovery_opt(opts: &[String], key: &str) -> Option<String> {
    opts.iter()
        .filter_map(|o| o.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .next_back()
}

/// TLS to a key-value store from classic's `--discovery-opt
/// kv.cacertfile=... kv.certfile=... kv.keyfile=...`; a certificate or key
/// without the CA is refused.
pub fn kv_tls(opts: &[String]) -> Result<Option<crate::discovery::etcd::KvTls>, String> {
    let (ca, cert, key) = (
        discovery_opt(opts, "kv.cacertfile"),
        discovery_opt(opts, "kv.certfile"),
        discovery_opt(opts, "kv.keyfile"),
    );
    match ca {
        Some(ca) => Ok(Some(crate::discovery::etcd::KvTls {
            ca: ca.into(),
            cert: cert.map(PathBuf::from),
            key: key.map(PathBuf::from),
        })),
        None if cert.is_some() || key.is_some() => {
            Err("--discovery-opt kv.certfile/kv.keyfile need kv.cacertfile (the store's CA)".into())
        }
        None => Ok(None),
    }
}
