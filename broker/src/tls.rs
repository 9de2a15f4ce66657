//! TLS on SSL and SASL_SSL listeners: rustls (ring provider) over the accepted TCP stream, with
//! the node's certificate chain and key from PEM files (`security.tls_cert_file`,
//! `security.tls_key_file`).
//!
//! This module is rill's one `cfg(madsim)` site for TLS: under the simulator the acceptor hands
//! the plain stream back (madsim has no TLS and the campaign needs no encryption), so everything
//! after the TLS handshake — SASL, the authorizer, the Kafka protocol — is the same code in both
//! worlds.

use client::security::{IdentitySource, StoreFile};

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

impl TlsAcceptor {
    /// An acceptor for this identity (PEM files or a keystore: `client::keystore`) that asks
    /// clients for no certificate.
    pub fn new(identity: &IdentitySource) -> Result<TlsAcceptor, String> {
        TlsAcceptor::with_client_auth(identity, None)
    }

    /// An acceptor for this identity. With `client_auth` (the truststore client certificates
    /// must chain to, and whether one is required) clients are asked for a certificate (mutual
    /// TLS; [`TlsAcceptor::peer_subject`] names them). Every file is read here: a wrong
    /// password or a bad file is an error naming it.
    #[cfg(not(madsim))]
    pub fn with_client_auth(
        identity: &IdentitySource,
        client_auth: Option<(&StoreFile, bool)>,
    ) -> Result<TlsAcceptor, String> {
        use tokio_rustls::rustls;
        let (chain, key_der) = client::keystore::read_identity(identity)?;
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
            Some((trust, required)) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca_cert in client::keystore::read_trust(trust)? {
                    roots
                        .add(ca_cert)
                        .map_err(|e| format!("{}: {e}", trust.path.display()))?;
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
                    .map_err(|e| format!("{}: {e}", trust.path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key_der)
            .map_err(|e| format!("certificate and key: {e}"))?;
        Ok(TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        })
    }

    /// Under the simulator: reads no file and does no TLS.
    #[cfg(madsim)]
    pub fn with_client_auth(
        identity: &IdentitySource,
        client_auth: Option<(&StoreFile, bool)>,
    ) -> Result<TlsAcceptor, String> {
        let _ = (identity, client_auth);
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
