//! TLS keys and certificates as Kafka configures them, for this client and the broker's
//! listeners alike: PEM files (certificates; private keys in PKCS#8, PKCS#1 or SEC1, or
//! encrypted PKCS#8 — `-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2 — with `ssl.key.password`)
//! and PKCS#12 stores (`ssl.keystore.type=PKCS12`, `ssl.truststore.type=PKCS12`).
//!
//! Decryption is RustCrypto's `pkcs8` (PBES2: PBKDF2 or scrypt with AES-CBC) and
//! `p12-keystore` (PBES2 with AES, and the legacy PBE-SHA1-3DES and RC2 of older Java and
//! `openssl pkcs12 -legacy` stores; one password for the store and its key). A wrong password,
//! a file that is not what its type says, or a store without a key is an error naming the file:
//! never a panic. Not compiled under the simulator (no TLS there: `crate::tls`).

use std::path::Path;

use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::security::{IdentitySource, Password, StoreFile, StoreType};

/// Most bytes of a certificate, key or store file (a chain of a few certificates).
pub const FILE_BYTES_MAX: u64 = 1 << 20;

/// A certificate chain (leaf first) and its private key.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Reads a file of at most [`FILE_BYTES_MAX`] bytes.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > FILE_BYTES_MAX {
        return Err(format!(
            "{}: {size} bytes, not a certificate or key file",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The certificates of a PEM file.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The private key of a PEM file: an encrypted PKCS#8 key opened with `password`, else the
/// first plain key (a password is then not needed, as OpenSSL ignores it).
pub fn pem_private_key(
    pem: &[u8],
    password: Option<&Password>,
) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem);
    if let Some(start) = text.find(ENCRYPTED_BEGIN) {
        let end = text[start..]
            .find(ENCRYPTED_END)
            .map(|end| start + end + ENCRYPTED_END.len())
            .ok_or("an ENCRYPTED PRIVATE KEY without its END line")?;
        let password = password.ok_or("the private key is encrypted: set ssl.key.password")?;
        let (_, der) = pkcs8::der::pem::decode_vec(text[start..end].as_bytes())
            .map_err(|e| format!("encrypted private key: {e}"))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| format!("encrypted private key: {e}"))?;
        let plain = encrypted.decrypt(password.0.as_bytes()).map_err(|e| {
            format!("cannot decrypt the private key (wrong ssl.key.password?): {e}")
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        )));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "a key in OpenSSL's legacy encrypted format: convert it to encrypted PKCS#8 \
             (openssl pkcs8 -topk8 -v2 aes-256-cbc)"
                .into(),
        );
    }
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no private key".to_string())
}

/// The key of a PKCS#12 store and its certificate chain: the certificate whose local key id is
/// the key's first, then the store's other certificates (its CA chain).
pub fn pkcs12_identity(der: &[u8], password: &Password) -> Result<Identity, String> {
    let archive = open_pkcs12(der, password)?;
    let key = archive
        .keys
        .first()
        .ok_or("no private key in the PKCS#12 store")?;
    let leaf = archive
        .certs
        .iter()
        .position(|c| {
            key.local_key_id.is_some()
                && c.local_key_id.as_deref() == key.local_key_id.as_ref().map(|id| id.0.as_slice())
        })
        .or(if archive.certs.len() == 1 {
            Some(0)
        } else {
            None
        })
        .ok_or("no certificate for the private key in the PKCS#12 store")?;
    let mut chain = vec![CertificateDer::from(
        archive.certs[leaf].cert.as_der().to_vec(),
    )];
    for (i, bag) in archive.certs.iter().enumerate() {
        if i != leaf {
            chain.push(CertificateDer::from(bag.cert.as_der().to_vec()));
        }
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key.as_der().to_vec()));
    Ok((chain, key))
}

/// Every certificate of a PKCS#12 store (a truststore).
pub fn pkcs12_certificates(
    der: &[u8],
    password: &Password,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let archive = open_pkcs12(der, password)?;
    Ok(archive
        .certs
        .iter()
        .map(|bag| CertificateDer::from(bag.cert.as_der().to_vec()))
        .collect())
}

fn open_pkcs12(der: &[u8], password: &Password) -> Result<p12_keystore::Pkcs12Archive, String> {
    p12_keystore::Pkcs12Archive::from_pkcs12(der, &password.0)
        .map_err(|e| format!("cannot open the PKCS#12 store (wrong password?): {e}"))
}

/// An error about a file, the file named.
fn in_file(path: &Path) -> impl Fn(String) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Reads an identity from its files.
pub fn read_identity(source: &IdentitySource) -> Result<Identity, String> {
    let (chain, key) = match source {
        IdentitySource::PemFiles {
            cert,
            key,
            key_password,
        } => {
            let chain = pem_certificates(&read_file(cert)?).map_err(in_file(cert))?;
            let key =
                pem_private_key(&read_file(key)?, key_password.as_ref()).map_err(in_file(key))?;
            (chain, key)
        }
        IdentitySource::Store {
            store,
            key_password,
        } => {
            let path = &store.path;
            let bytes = read_file(path)?;
            match store.kind {
                StoreType::Pem => {
                    let chain = pem_certificates(&bytes).map_err(in_file(path))?;
                    let key =
                        pem_private_key(&bytes, key_password.as_ref()).map_err(in_file(path))?;
                    (chain, key)
                }
                StoreType::Pkcs12 => {
                    let password = store
                        .password
                        .as_ref()
                        .ok_or_else(|| format!("{}: needs its password", path.display()))?;
                    pkcs12_identity(&bytes, password).map_err(in_file(path))?
                }
            }
        }
    };
    let path = match source {
        IdentitySource::PemFiles { cert, .. } => cert,
        IdentitySource::Store { store, .. } => &store.path,
    };
    if chain.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok((chain, key))
}

/// Reads trusted certificates from a truststore (PEM: `ssl.ca.location`'s format).
pub fn read_trust(store: &StoreFile) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = &store.path;
    let bytes = read_file(path)?;
    let certificates = match store.kind {
        StoreType::Pem => pem_certificates(&bytes),
        StoreType::Pkcs12 => {
            let password = store
                .password
                .as_ref()
                .ok_or_else(|| format!("{}: needs its password", path.display()))?;
            pkcs12_certificates(&bytes, password)
        }
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no CA certificate", path.display()));
    }
    Ok(certificates)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let password = Password("pw".into());
        for input in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x00", &[0xff; 64]] {
            assert!(pkcs12_identity(input, &password).is_err(), "{input:?}");
            assert!(pkcs12_certificates(input, &password).is_err(), "{input:?}");
            assert!(
                pem_private_key(input, Some(&password)).is_err(),
                "{input:?}"
            );
        }
        let encrypted =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(pem_private_key(encrypted, Some(&password)).is_err());
        let error = pem_private_key(encrypted, None).unwrap_err();
        assert!(error.contains("ssl.key.password"), "{error}");
        let unterminated = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n";
        assert!(pem_private_key(unterminated, Some(&password)).is_err());
        let legacy = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let error = pem_private_key(legacy, Some(&password)).unwrap_err();
        assert!(error.contains("openssl pkcs8 -topk8"), "{error}");
    }
}
