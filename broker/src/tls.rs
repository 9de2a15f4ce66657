//! TLS on SSL and SASL_SSL listeners: rustls (ring provider) over the accepted TCP stream, with
//! the node's certificate chain and key from PEM files (`security.tls_cert_file`,
//! `security.tls_key_file`).
//!
//! This module is rill's one `cfg(madsim)` site for TLS: under the simulator the acceptor hands
//! the plain stream back (madsim has no TLS and the campaign needs no encryption), so everything
//! after the TLS handshake — SASL, the authorizer, the Kafka protocol — is the same code in both
//! worlds.

use std::path::Path;

use tokio::net::TcpStream;

/// The stream a TLS listener serves.
#[cfg(not(madsim))]
pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;
/// The stream a TLS listener serves (plain under the simulator).
#[cfg(madsim)]
pub type TlsStream = TcpStream;

/// Accepts TLS connections with one certificate.
#[derive(Clone)]
pub struct TlsAcceptor {
    #[cfg(not(madsim))]
    inner: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

/// Most bytes of a certificate or key file (a chain of a few certificates).
const PEM_FILE_BYTES_MAX: u64 = 1 << 20;

fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > PEM_FILE_BYTES_MAX {
        return Err(format!("{}: {size} bytes, not a PEM file", path.display()));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl TlsAcceptor {
    /// An acceptor for the certificate chain and key in these PEM files that asks clients for
    /// no certificate.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
        TlsAcceptor::with_client_auth(cert, key, None)
    }

    /// An acceptor for the certificate chain and key in these PEM files. With `client_auth`
    /// (the CA file client certificates must chain to, and whether one is required) clients
    /// are asked for a certificate (mutual TLS; [`TlsAcceptor::peer_subject`] names them).
    #[cfg(not(madsim))]
    pub fn with_client_auth(
        cert: &Path,
        key: &Path,
        client_auth: Option<(&Path, bool)>,
    ) -> Result<TlsAcceptor, String> {
        use tokio_rustls::rustls;
        let cert_pem = read_pem(cert)?;
        let key_pem = read_pem(key)?;
        let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no certificate", cert.display()));
        }
        let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|e| format!("{}: {e}", key.display()))?
            .ok_or_else(|| format!("{}: no private key", key.display()))?;
        // ring builds with a C compiler only (aws-lc-rs wants more of the machine); rustls
        // deprecates its default set for lacking post-quantum key exchange, which no Kafka
        // client asks for yet.
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match client_auth {
            None => builder.with_no_client_auth(),
            Some((ca, required)) => {
                let ca_pem = read_pem(ca)?;
                let mut roots = rustls::RootCertStore::empty();
                for ca_cert in rustls_pemfile::certs(&mut ca_pem.as_slice()) {
                    let ca_cert = ca_cert.map_err(|e| format!("{}: {e}", ca.display()))?;
                    roots
                        .add(ca_cert)
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!("{}: no CA certificate", ca.display()));
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    std::sync::Arc::new(roots),
                    provider,
                );
                let verifier = if required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key_der)
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        Ok(TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        })
    }

    /// Under the simulator: reads no file and does no TLS.
    #[cfg(madsim)]
    pub fn with_client_auth(
        cert: &Path,
        key: &Path,
        client_auth: Option<(&Path, bool)>,
    ) -> Result<TlsAcceptor, String> {
        let _ = (cert, key, client_auth, read_pem);
        Ok(TlsAcceptor {})
    }

    /// The subject (RFC 2253) of the certificate the client presented, if it presented one:
    /// `Some(Err(_))` for one rill cannot read.
    #[cfg(not(madsim))]
    pub fn peer_subject(stream: &TlsStream) -> Option<Result<String, String>> {
        let certificates = stream.get_ref().1.peer_certificates()?;
        let leaf = certificates.first()?;
        Some(crate::security::principal::subject_dn(leaf.as_ref()))
    }

    /// Under the simulator: no client presents a certificate.
    #[cfg(madsim)]
    pub fn peer_subject(stream: &TlsStream) -> Option<Result<String, String>> {
        let _ = stream;
        None
    }

    /// The TLS handshake on an accepted connection.
    #[cfg(not(madsim))]
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TlsStream> {
        self.inner.accept(tcp).await
    }

    /// Under the simulator: the plain stream.
    #[cfg(madsim)]
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TlsStream> {
        Ok(tcp)
    }
}
