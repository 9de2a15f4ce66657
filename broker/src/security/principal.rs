//! The principal of a TLS client certificate, as Kafka's default principal builder makes it
//! (`DefaultKafkaPrincipalBuilder` with `ssl.principal.mapping.rules=DEFAULT`): `User:` and the
//! certificate's subject distinguished name in RFC 2253 form, as Java's
//! `X500Principal.getName()` writes it — the last RDN first, `CN`, `C`, `L`, `ST`, `STREET`,
//! `O`, `OU`, `DC`, `UID` by keyword, other attributes as a dotted OID with `#` and the value's
//! DER in hex, and `,+"\<>;` escaped. A certificate whose subject is `CN=alice` is
//! `User:CN=alice`.
//!
//! DER is read with yasna (already in the tree through rcgen); the certificate was verified by
//! rustls before this runs, so a parse failure means a certificate rill cannot name, and the
//! connection is refused.

use yasna::{Tag, TagClass};

/// Most RDNs and attributes read from one subject: a name, not a document.
const ATTRIBUTES_MAX: usize = 64;

/// The RFC 2253 subject of a DER certificate.
pub fn subject_dn(certificate_der: &[u8]) -> Result<String, String> {
    let error = |e: yasna::ASN1Error| format!("client certificate: {e}");
    let tbs = yasna::parse_der(certificate_der, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_der()?;
            let _algorithm = r.next().read_der()?;
            let _signature = r.next().read_der()?;
            Ok(tbs)
        })
    })
    .map_err(error)?;
    let subject = yasna::parse_der(&tbs, |r| {
        r.read_sequence(|r| {
            let _version = r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
            let _serial = r.next().read_der()?;
            let _algorithm = r.next().read_der()?;
            let _issuer = r.next().read_der()?;
            let _validity = r.next().read_der()?;
            let subject = r.next().read_der()?;
            // The key, unique ids and extensions.
            for _ in 0..8 {
                if r.read_optional(|r| r.read_der())?.is_none() {
                    break;
                }
            }
            Ok(subject)
        })
    })
    .map_err(error)?;
    rfc2253(&subject)
}

/// A DER `Name` in RFC 2253 form.
pub fn rfc2253(name_der: &[u8]) -> Result<String, String> {
    let rdns: Vec<Vec<String>> = yasna::parse_der(name_der, |r| {
        r.collect_sequence_of(|r| {
            r.collect_set_of(|r| {
                r.read_sequence(|r| {
                    let oid = r.next().read_oid()?;
                    let value = r.next().read_tagged_der()?;
                    Ok(attribute(oid.components(), &value))
                })
            })
        })
    })
    .map_err(|e| format!("certificate subject: {e}"))?;
    if rdns.iter().map(Vec::len).sum::<usize>() > ATTRIBUTES_MAX {
        return Err("certificate subject: too many attributes".into());
    }
    Ok(rdns
        .iter()
        .rev()
        .map(|rdn| rdn.join("+"))
        .collect::<Vec<_>>()
        .join(","))
}

fn keyword(oid: &[u64]) -> Option<&'static str> {
    Some(match oid {
        [2, 5, 4, 3] => "CN",
        [2, 5, 4, 6] => "C",
        [2, 5, 4, 7] => "L",
        [2, 5, 4, 8] => "ST",
        [2, 5, 4, 9] => "STREET",
        [2, 5, 4, 10] => "O",
        [2, 5, 4, 11] => "OU",
        [0, 9, 2342, 19200300, 100, 1, 25] => "DC",
        [0, 9, 2342, 19200300, 100, 1, 1] => "UID",
        _ => return None,
    })
}

/// One `type=value`.
fn attribute(oid: &[u64], value: &yasna::models::TaggedDerValue) -> String {
    let dotted = || oid.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
    let text = string_value(value);
    match (keyword(oid), text) {
        (Some(keyword), Some(text)) => format!("{keyword}={}", escape(&text)),
        (keyword, _) => {
            // RFC 2253 §2.4: `#` and the hex of the value's whole DER encoding.
            let mut der = Vec::new();
            let tag = value.tag();
            let tag_number = u8::try_from(tag.tag_number).unwrap_or(0x1f);
            let class = match tag.tag_class {
                TagClass::Universal => 0x00,
                TagClass::Application => 0x40,
                TagClass::ContextSpecific => 0x80,
                TagClass::Private => 0xc0,
            };
            der.push(class | tag_number.min(0x1e));
            let length = value.value().len();
            if length < 0x80 {
                der.push(u8::try_from(length).expect("small"));
            } else {
                let bytes = length.to_be_bytes();
                let skip = bytes.iter().take_while(|b| **b == 0).count();
                der.push(0x80 | u8::try_from(bytes.len() - skip).expect("at most 8"));
                der.extend_from_slice(&bytes[skip..]);
            }
            der.extend_from_slice(value.value());
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}=#{hex}", keyword.map_or_else(dotted, str::to_string))
        }
    }
}

/// The text of a directory string, if it is one.
fn string_value(value: &yasna::models::TaggedDerValue) -> Option<String> {
    let tag = value.tag();
    if tag.tag_class != TagClass::Universal {
        return None;
    }
    let bytes = value.value();
    match tag.tag_number {
        // UTF8String, PrintableString, IA5String, TeletexString (as Latin-1 would be wrong for
        // some; every real one is ASCII), VisibleString.
        12 | 19 | 22 | 20 | 26 => String::from_utf8(bytes.to_vec()).ok(),
        // BMPString: UTF-16BE.
        30 if bytes.len().is_multiple_of(2) => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 2253 §2.4's escapes, as Java writes them.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Key generation draws OS randomness: the normal build only.
    #[cfg(not(madsim))]
    fn certificate(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in dn {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[cfg(not(madsim))]
    #[test]
    fn subjects_read_as_java_writes_them() {
        use rcgen::DnType;
        assert_eq!(
            subject_dn(&certificate(&[(DnType::CommonName, "alice")])).unwrap(),
            "CN=alice"
        );
        // RFC 2253 puts the last RDN first: a subject issued as C, O, OU, CN.
        let der = certificate(&[
            (DnType::CountryName, "NZ"),
            (DnType::OrganizationName, "Rill, Inc."),
            (DnType::OrganizationalUnitName, "ops"),
            (DnType::CommonName, " bob+1 "),
        ]);
        assert_eq!(
            subject_dn(&der).unwrap(),
            "CN=\\ bob\\+1\\ ,OU=ops,O=Rill\\, Inc.,C=NZ"
        );
        let der = certificate(&[(
            DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            "a@b",
        )]);
        assert_eq!(
            subject_dn(&der).unwrap(),
            "1.2.840.113549.1.9.1=#0c03614062"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x00", &[0xff; 40]] {
            assert!(subject_dn(input).is_err(), "{input:?}");
        }
    }
}
