//! The client's stream: plain TCP, or rustls (ring provider, TLS 1.2 and 1.3) over it for the
//! SSL and SASL_SSL protocols. The broker's certificate must chain to `ssl.ca.location` and name
//! the host dialled (a DNS name or an IP address, as librdkafka's default
//! `ssl.endpoint.identification.algorithm=https`); with `ssl.certificate.location` and
//! `ssl.key.location` the client presents its own certificate (mutual TLS).
//!
//! This module is the client's one `cfg(madsim)` site for TLS, as `broker/src/tls.rs` is the
//! broker's: under the simulator the handshake hands the plain stream back (madsim has no TLS,
//! and the broker's simulated TLS listener is plain too), so what follows the handshake — SASL,
//! the Kafka protocol — is the same code in both worlds.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[cfg(not(madsim))]
use crate::error::ClientError;
use crate::error::Result;
use crate::security::SecurityConfig;

/// A connection's byte stream.
#[derive(Debug)]
pub enum Stream {
    /// PLAINTEXT and SASL_PLAINTEXT (and, under the simulator, the TLS protocols).
    Plain(TcpStream),
    /// SSL and SASL_SSL.
    #[cfg(not(madsim))]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            #[cfg(not(madsim))]
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            #[cfg(not(madsim))]
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            #[cfg(not(madsim))]
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            #[cfg(not(madsim))]
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The host part of "host:port" ("[::1]:9092" gives "::1").
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// rustls' client settings for `security`: the CA certificates (`ssl.ca.location` or
/// `ssl.truststore.location`) as the only trust anchors, and the client's certificate and key if
/// configured (PEM files or `ssl.keystore.location`; `crate::keystore`).
#[cfg(not(madsim))]
fn client_config(security: &SecurityConfig) -> Result<tokio_rustls::rustls::ClientConfig> {
    use tokio_rustls::rustls;
    let trust = security.trust_source().ok_or_else(|| {
        ClientError::Config("TLS needs ssl.ca.location or ssl.truststore.location".into())
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::keystore::read_trust(&trust).map_err(ClientError::Config)? {
        roots
            .add(cert)
            .map_err(|e| ClientError::Config(format!("{}: {e}", trust.path.display())))?;
    }
    // ring, as the broker (broker/src/tls.rs says why).
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(e.to_string()))?
        .with_root_certificates(roots);
    match security.identity_source() {
        Some(source) => {
            let (chain, key) =
                crate::keystore::read_identity(&source).map_err(ClientError::Config)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Config(format!("client certificate and key: {e}")))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The TLS handshake over `tcp` to `addr`, verifying the broker's certificate. A certificate
/// that does not verify is [`ClientError::Authentication`]; a broken connection is
/// [`ClientError::Connect`].
#[cfg(not(madsim))]
pub async fn handshake(tcp: TcpStream, addr: &str, security: &SecurityConfig) -> Result<Stream> {
    use tokio_rustls::rustls::pki_types::ServerName;
    let config = client_config(security)?;
    let host = host_of(addr);
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| ClientError::Config(format!("{host}: not a host name for TLS: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    match connector.connect(name, tcp).await {
        Ok(stream) => Ok(Stream::Tls(Box::new(stream))),
        // rustls reports a refused certificate or a TLS alert as invalid data.
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
            Err(ClientError::Authentication {
                addr: addr.to_string(),
                reason: format!("TLS handshake: {error}"),
            })
        }
        Err(error) => Err(ClientError::Connect {
            addr: addr.to_string(),
            reason: format!("TLS handshake: {error}"),
        }),
    }
}

/// Under the simulator: the plain stream (see the module's documentation).
#[cfg(madsim)]
pub async fn handshake(tcp: TcpStream, addr: &str, security: &SecurityConfig) -> Result<Stream> {
    let _ = (addr, security, host_of);
    Ok(Stream::Plain(tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_the_port_and_brackets() {
        assert_eq!(host_of("localhost:9092"), "localhost");
        assert_eq!(host_of("127.0.0.1:9092"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9092"), "::1");
        assert_eq!(host_of("broker"), "broker");
    }
}
