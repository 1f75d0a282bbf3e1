//! Docker-style TLS flags of `swarm manage`.

use std::path::PathBuf;

/// Docker's TLS flags, as `dockerd` and the `docker` CLI take them.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Serve the API over TLS; a client certificate is optional (but must
    /// be the CA's when shown). Managers still authenticate each other.
    #[arg(long)]
    pub tls: bool,
    /// Serve the API over TLS and require a client certificate signed by
    /// the CA (implies --tls).
    #[arg(long)]
    pub tlsverify: bool,
    /// The CA's certificate [default: $DOCKER_CERT_PATH/ca.pem, else
    /// ~/.docker/ca.pem].
    #[arg(long, value_name = "PATH")]
    pub tlscacert: Option<PathBuf>,
    /// This manager's certificate, of kind manager [default: cert.pem
    /// beside the CA's default].
    #[arg(long, value_name = "PATH")]
    pub tlscert: Option<PathBuf>,
    /// This manager's private key [default: key.pem beside the CA's
    /// default].
    #[arg(long, value_name = "PATH")]
    pub tlskey: Option<PathBuf>,
}

impl TlsArgs {
    /// Whether the API speaks TLS (`--tls` or `--tlsverify`).
    pub fn enabled(&self) -> bool {
        self.tls || self.tlsverify
    }

    /// The files named, with Docker's defaults for those that are not.
    pub fn files(&self) -> crate::tls::TlsFiles {
        crate::tls::TlsFiles::given_or_in(
            &crate::tls::default_cert_dir(),
            self.tlscacert.as_deref(),
            self.tlscert.as_deref(),
            self.tlskey.as_deref(),
        )
    }
}
