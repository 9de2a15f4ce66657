//! SASL/OAUTHBEARER on the Kafka listeners: RFC 7628 as Kafka speaks it (KIP-255, with KIP-342's
//! extensions), sans-IO.
//!
//! ```text
//! client → server  n,[a=authzid],^Aauth=Bearer <JWT>^A[key=value^A]*^A
//! server → client  (empty)                                  the token is valid: authenticated
//!                  {"status":"invalid_token"}               else RFC 7628's error, and then
//! client → server  ^A                                       the client's kvsep ends the exchange
//! server           SASL_AUTHENTICATION_FAILED               with that error as the message
//! ```
//!
//! Two validators, as Kafka has (`[security.oauthbearer]`, docs/security.md):
//!
//! - [`Validator::Unsecured`], Kafka's `OAuthBearerUnsecuredValidatorCallbackHandler`, for
//!   development: an unsigned JWS (`alg` `none`, empty signature) whose principal claim (`sub`
//!   unless configured) is a string, `exp` a number in the future and `iat`, if present, not in
//!   the future, each within the allowed clock skew; optionally a required scope.
//! - [`Validator::Jwks`], Kafka's `OAuthBearerValidatorCallbackHandler` (KIP-768): a JWS signed
//!   with an asymmetric algorithm (RS*, PS*, ES256/384, EdDSA) by a key of a JWKS read at start
//!   (chosen by `kid`, else the first key of the algorithm's family), `exp` and `iat` required,
//!   `nbf` honoured, the expected audience and issuer if configured; principal from the
//!   `sub.claim.name` claim.
//!
//! Time is the caller's `now_ms` (the node's [`crate::runtime::wall_clock_ms`]: the simulated,
//! possibly skewed clock under madsim). No token content panics; tokens are never logged (only
//! why they were refused).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The mechanism's SASL name.
pub const MECHANISM: &str = "OAUTHBEARER";
/// Longest client first message accepted (a JWT of a few kilobytes is usual; Azure AD's are
/// 2–4 KiB).
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024;
/// The RFC 7628 key-value separator (`^A`).
pub const KVSEP: u8 = 0x01;

/// The client's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The GS2 authorization id (`a=`), empty when absent.
    pub authzid: String,
    /// The bearer token (never logged).
    pub token: String,
    /// KIP-342 extensions: every key but `auth`.
    pub extensions: BTreeMap<String, String>,
}

fn is_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn is_saslname(name: &str) -> bool {
    // (?:[\x01-\x7F&&[^=,]]|=2C|=3D)+
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' => {
                let escape = bytes.get(i + 1..i + 3);
                if escape != Some(b"2C") && escape != Some(b"3D") {
                    return false;
                }
                i += 3;
            }
            b',' | 0 | 0x80..=0xff => return false,
            _ => i += 1,
        }
    }
    !bytes.is_empty()
}

/// Parses the client's first message as Kafka's `OAuthBearerClientInitialResponse` does.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, String> {
    let invalid = |why: &str| format!("Invalid OAUTHBEARER client first message: {why}");
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(invalid("too long"));
    }
    let text = std::str::from_utf8(message).map_err(|_| invalid("not UTF-8"))?;
    let rest = text
        .strip_prefix("n,")
        .ok_or_else(|| invalid("no n, GS2 header"))?;
    let (authzid, rest) = match rest.strip_prefix("a=") {
        Some(after) => {
            let end = after.find(',').ok_or_else(|| invalid("authorization id"))?;
            let name = &after[..end];
            if !is_saslname(name) {
                return Err(invalid("authorization id"));
            }
            (name.to_string(), &after[end..])
        }
        None => (String::new(), rest),
    };
    let pairs = rest
        .strip_prefix(",\u{1}")
        .and_then(|r| r.strip_suffix('\u{1}'))
        .ok_or_else(|| invalid("separators"))?;
    let mut properties = BTreeMap::new();
    if !pairs.is_empty() {
        let body = pairs
            .strip_suffix('\u{1}')
            .ok_or_else(|| invalid("separators"))?;
        for pair in body.split('\u{1}') {
            let (key, value) = pair.split_once('=').ok_or_else(|| invalid("key=value"))?;
            if !is_key(key) || !is_value(value) {
                return Err(invalid("key=value"));
            }
            // Kafka's Utils.parseMap: a repeated key keeps its last value.
            properties.insert(key.to_string(), value.to_string());
        }
    }
    let auth = properties
        .remove("auth")
        .ok_or_else(|| invalid("'auth' not specified"))?;
    // (?<scheme>[\w]+)[ ]+(?<token>[-_~+/\.a-zA-Z0-9]+([=]*))
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or_else(|| invalid("invalid 'auth' format"))?;
    let token = token.trim_start_matches(' ');
    let scheme_ok = !scheme.is_empty() && scheme.chars().all(|c| c.is_alphanumeric() || c == '_');
    let body = token.trim_end_matches('=');
    let token_ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_~+/.".contains(&b));
    if !scheme_ok || !token_ok {
        return Err(invalid("invalid 'auth' format"));
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid("scheme is not Bearer"));
    }
    Ok(ClientFirst {
        authzid,
        token: token.to_string(),
        extensions: properties,
    })
}

/// The client's first message (what rill's client sends).
pub use client::sasl::oauthbearer_first as client_first;

/// `[security.oauthbearer]`: how OAUTHBEARER tokens are validated. Exactly one of
/// `unsecured = true` and `jwks_endpoint_url` when the mechanism is enabled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthBearerSettings {
    /// Accept unsigned (`alg` `none`) tokens: Kafka's default unsecured validator, for
    /// development only.
    pub unsecured: bool,
    /// `unsecuredValidatorPrincipalClaimName` (default `sub`).
    pub unsecured_principal_claim_name: String,
    /// `unsecuredValidatorScopeClaimName` (default `scope`).
    pub unsecured_scope_claim_name: String,
    /// `unsecuredValidatorRequiredScope`: every one must be in the token's scope.
    pub unsecured_required_scope: Vec<String>,
    /// `unsecuredValidatorAllowableClockSkewMs` (default 0).
    pub unsecured_allowable_clock_skew_ms: u64,
    /// `sasl.oauthbearer.jwks.endpoint.url`: `file:/path/jwks.json` (or a plain path), read at
    /// start.
    pub jwks_endpoint_url: Option<String>,
    /// `sasl.oauthbearer.expected.audience`: the token's `aud` must name one of them (unset:
    /// not checked).
    pub expected_audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`: the token's `iss` must be it (unset: not checked).
    pub expected_issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name` (default `sub`).
    pub sub_claim_name: String,
    /// `sasl.oauthbearer.clock.skew.seconds` (default 30).
    pub clock_skew_seconds: u64,
}

impl Default for OAuthBearerSettings {
    fn default() -> Self {
        OAuthBearerSettings {
            unsecured: false,
            unsecured_principal_claim_name: "sub".into(),
            unsecured_scope_claim_name: "scope".into(),
            unsecured_required_scope: Vec::new(),
            unsecured_allowable_clock_skew_ms: 0,
            jwks_endpoint_url: None,
            expected_audience: Vec::new(),
            expected_issuer: None,
            sub_claim_name: "sub".into(),
            clock_skew_seconds: 30,
        }
    }
}

/// Longest allowed clock skew (a day): larger values are configuration mistakes.
const CLOCK_SKEW_MS_MAX: u64 = 86_400_000;

impl OAuthBearerSettings {
    /// The validator these settings describe (reads the JWKS file).
    pub fn validator(&self) -> Result<Validator, String> {
        if self.unsecured_principal_claim_name.trim().is_empty()
            || self.unsecured_scope_claim_name.trim().is_empty()
            || self.sub_claim_name.trim().is_empty()
        {
            return Err("claim names must not be blank".into());
        }
        if self.unsecured_allowable_clock_skew_ms > CLOCK_SKEW_MS_MAX
            || self.clock_skew_seconds.saturating_mul(1000) > CLOCK_SKEW_MS_MAX
        {
            return Err("clock skew above a day".into());
        }
        match (&self.jwks_endpoint_url, self.unsecured) {
            (Some(_), true) => Err("set unsecured = true or jwks_endpoint_url, not both".into()),
            (None, false) => Err(
                "OAUTHBEARER needs jwks_endpoint_url (signed tokens) or unsecured = true \
                 (unsigned development tokens)"
                    .into(),
            ),
            (None, true) => Ok(Validator::Unsecured(UnsecuredValidator {
                principal_claim: self.unsecured_principal_claim_name.trim().to_string(),
                scope_claim: self.unsecured_scope_claim_name.trim().to_string(),
                required_scope: self
                    .unsecured_required_scope
                    .iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                clock_skew_ms: i64::try_from(self.unsecured_allowable_clock_skew_ms)
                    .expect("bounded above"),
            })),
            (Some(url), false) => {
                let path = jwks_path(url)?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("jwks_endpoint_url {url}: {e}"))?;
                let keys =
                    parse_jwks(&text).map_err(|e| format!("jwks_endpoint_url {url}: {e}"))?;
                Ok(Validator::Jwks(Box::new(JwksValidator {
                    keys,
                    audience: self.expected_audience.clone(),
                    issuer: self.expected_issuer.clone(),
                    sub_claim: self.sub_claim_name.trim().to_string(),
                    clock_skew_ms: i64::try_from(self.clock_skew_seconds * 1000)
                        .expect("bounded above"),
                })))
            }
        }
    }
}

/// The file a `file:` JWKS URL (or a plain path) names; other schemes are refused.
fn jwks_path(url: &str) -> Result<PathBuf, String> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Ok(PathBuf::from(rest));
    }
    if let Some(rest) = url.strip_prefix("file:") {
        return Ok(PathBuf::from(rest));
    }
    if url.contains("://") {
        return Err(format!(
            "jwks_endpoint_url {url}: only file: URLs are read (write the identity provider's \
             JWKS to a file)"
        ));
    }
    Ok(Path::new(url).to_path_buf())
}

/// The usable keys of a JWKS document.
fn parse_jwks(text: &str) -> Result<Vec<JwksKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if let Some(key) = JwksKey::from_jwk(jwk) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err("no RSA, EC or OKP public key in the JWKS".into());
    }
    Ok(keys)
}

/// One verification key.
#[derive(Clone)]
struct JwksKey {
    kid: Option<String>,
    family: Family,
    key: DecodingKey,
}

impl std::fmt::Debug for JwksKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

impl JwksKey {
    fn from_jwk(jwk: &Jwk) -> Option<JwksKey> {
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(_) => Family::Ec,
            AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
            // Symmetric keys would let a token choose HS256 with a shared secret: never.
            AlgorithmParameters::OctetKey(_) => return None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(JwksKey {
            kid: jwk.common.key_id.clone(),
            family,
            key,
        })
    }
}

/// The family of an asymmetric algorithm; `None` for HMAC (refused).
fn family_of(algorithm: Algorithm) -> Option<Family> {
    match algorithm {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(Family::Ec),
        Algorithm::EdDSA => Some(Family::Ed),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
    }
}

/// How tokens are validated.
#[derive(Debug)]
pub enum Validator {
    /// Unsigned development tokens.
    Unsecured(UnsecuredValidator),
    /// Signed tokens against a JWKS.
    Jwks(Box<JwksValidator>),
}

/// Kafka's unsecured validator's options.
#[derive(Debug)]
pub struct UnsecuredValidator {
    principal_claim: String,
    scope_claim: String,
    required_scope: Vec<String>,
    clock_skew_ms: i64,
}

/// KIP-768's validator.
#[derive(Debug)]
pub struct JwksValidator {
    keys: Vec<JwksKey>,
    audience: Vec<String>,
    issuer: Option<String>,
    sub_claim: String,
    clock_skew_ms: i64,
}

/// A valid token: who it names and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// The principal's name (`User:<name>`).
    pub principal: String,
    /// The token's `exp`, in ms since the epoch.
    pub expires_at_ms: i64,
}

/// Why a token was refused: RFC 7628's error status and Kafka's reason (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// `invalid_token` or `insufficient_scope`.
    pub status: &'static str,
    /// The required scope, for `insufficient_scope`.
    pub scope: Option<String>,
    /// Why (no token content).
    pub reason: String,
}

impl TokenError {
    fn invalid(reason: impl Into<String>) -> TokenError {
        TokenError {
            status: "invalid_token",
            scope: None,
            reason: reason.into(),
        }
    }

    /// RFC 7628 §3.2.2's error JSON, as Kafka's `OAuthBearerSaslServer` writes it.
    pub fn json(&self) -> String {
        let mut object = serde_json::Map::new();
        object.insert("status".into(), Value::String(self.status.to_string()));
        if let Some(scope) = &self.scope {
            object.insert("scope".into(), Value::String(scope.clone()));
        }
        Value::Object(object).to_string()
    }
}

impl Validator {
    /// Validates `token` at `now_ms` (ms since the epoch).
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, TokenError> {
        if token.len() > MESSAGE_BYTES_MAX {
            return Err(TokenError::invalid("token too long"));
        }
        match self {
            Validator::Unsecured(v) => v.validate(token, now_ms),
            Validator::Jwks(v) => v.validate(token, now_ms),
        }
    }
}

/// A JWS part: base64url (padding tolerated) of a JSON object.
fn json_part(part: &str) -> Result<serde_json::Map<String, Value>, TokenError> {
    let trimmed = part.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .map_err(|_| TokenError::invalid("malformed Base64 URL encoded value"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::invalid("malformed JSON")),
    }
}

/// A claim's seconds as ms, if it is a finite number; `Err` if present with another type.
fn time_claim(
    claims: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(seconds) if seconds.is_finite() => Ok(Some(seconds * 1000.0)),
            _ => Err(TokenError::invalid(format!(
                "the {name} claim is not a time"
            ))),
        },
        Some(_) => Err(TokenError::invalid(format!(
            "the {name} claim had the incorrect type"
        ))),
    }
}

/// ms as i64, saturating (a float outside i64 is clamped, NaN is refused earlier).
fn ms(value: f64) -> i64 {
    if value >= i64::MAX as f64 {
        i64::MAX
    } else if value <= i64::MIN as f64 {
        i64::MIN
    } else {
        value.round() as i64
    }
}

/// A string claim's value, non-blank.
fn principal_claim(
    claims: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<String, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(TokenError::invalid(format!(
            "Required claim missing: {name}"
        ))),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(TokenError::invalid(format!(
            "No principal name in JWT claim: {name}"
        ))),
        Some(_) => Err(TokenError::invalid(format!(
            "The {name} claim had the incorrect type"
        ))),
    }
}

/// The `exp` and `iat` checks both validators make: `exp` required and after now minus the
/// skew, `iat` (when present) not after now plus the skew, `exp` after `iat`.
fn check_times(
    claims: &serde_json::Map<String, Value>,
    now_ms: i64,
    skew_ms: i64,
    iat_required: bool,
) -> Result<i64, TokenError> {
    let exp = time_claim(claims, "exp")?
        .ok_or_else(|| TokenError::invalid("Required claim missing: exp"))?;
    let iat = time_claim(claims, "iat")?;
    if iat_required && iat.is_none() {
        return Err(TokenError::invalid("Required claim missing: iat"));
    }
    let now = now_ms as f64;
    let skew = skew_ms as f64;
    if now - skew >= exp {
        return Err(TokenError::invalid(
            "the token expired (exp is before now minus the allowed clock skew)",
        ));
    }
    if let Some(iat) = iat {
        if iat > now + skew {
            return Err(TokenError::invalid(
                "the Issued At value is after now plus the allowed clock skew",
            ));
        }
        if exp <= iat {
            return Err(TokenError::invalid(
                "the Expiration Time is not after the Issued At time",
            ));
        }
    }
    if let Some(nbf) = time_claim(claims, "nbf")? {
        if nbf > now + skew {
            return Err(TokenError::invalid("the token is not valid yet (nbf)"));
        }
    }
    Ok(ms(exp))
}

impl UnsecuredValidator {
    fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, TokenError> {
        if token.contains("..") {
            return Err(TokenError::invalid(
                "Malformed compact serialization contains '..'",
            ));
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [header, claims, signature] = parts[..] else {
            return Err(TokenError::invalid(
                "an unsecured JWS has three dot-separated parts",
            ));
        };
        let header = json_part(header)?;
        if header.get("alg") != Some(&Value::String("none".into())) {
            return Err(TokenError::invalid(
                "Unsecured JWS must have 'none' for an algorithm",
            ));
        }
        if !signature.is_empty() {
            return Err(TokenError::invalid(
                "Unsecured JWS must not contain a digital signature",
            ));
        }
        let claims = json_part(claims)?;
        let principal = principal_claim(&claims, &self.principal_claim)?;
        let expires_at_ms = check_times(&claims, now_ms, self.clock_skew_ms, false)?;
        let scope: Vec<String> = match claims.get(&self.scope_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.trim().to_string()],
            Some(Value::Array(items)) => {
                let mut scope = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => scope.push(s.trim().to_string()),
                        _ => {
                            return Err(TokenError::invalid(format!(
                                "the {} claim had the incorrect type",
                                self.scope_claim
                            )))
                        }
                    }
                }
                scope
            }
            Some(_) => {
                return Err(TokenError::invalid(format!(
                    "the {} claim had the incorrect type",
                    self.scope_claim
                )))
            }
        };
        if let Some(missing) = self
            .required_scope
            .iter()
            .find(|required| !scope.contains(required))
        {
            return Err(TokenError {
                status: "insufficient_scope",
                scope: Some(format!("[{}]", self.required_scope.join(", "))),
                reason: format!("the token's scope is missing a required scope ({missing})"),
            });
        }
        Ok(ValidToken {
            principal,
            expires_at_ms,
        })
    }
}

impl JwksValidator {
    fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, TokenError> {
        let refused = |e: jsonwebtoken::errors::Error| {
            TokenError::invalid(format!("Could not validate the access token: {e}"))
        };
        let header = jsonwebtoken::decode_header(token).map_err(refused)?;
        let family = family_of(header.alg).ok_or_else(|| {
            TokenError::invalid("Could not validate the access token: a symmetric algorithm")
        })?;
        let key = self
            .keys
            .iter()
            .filter(|k| k.family == family)
            .find(|k| match &header.kid {
                Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                None => true,
            })
            .ok_or_else(|| {
                TokenError::invalid(
                    "Could not validate the access token: no key of the JWKS matches its kid \
                     and algorithm",
                )
            })?;
        let mut validation = Validation::new(header.alg);
        // Times are checked below against the node's clock, never the OS's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audience);
            validation.set_required_spec_claims(&["aud"]);
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_string());
        }
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.key, &validation)
                .map_err(refused)?;
        let claims = data.claims;
        let expires_at_ms = check_times(&claims, now_ms, self.clock_skew_ms, true)?;
        let principal = principal_claim(&claims, &self.sub_claim)?;
        Ok(ValidToken {
            principal,
            expires_at_ms,
        })
    }
}

/// An unsecured (`alg` `none`) JWT for `principal`, issued at `now_ms` and valid for
/// `lifetime_ms`: what librdkafka's `enable.sasl.oauthbearer.unsecure.jwt` makes. For tests.
pub fn unsecured_token(principal: &str, now_ms: i64, lifetime_ms: i64) -> String {
    client::sasl::unsecured_jwt(principal, now_ms, lifetime_ms, &[])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    fn unsecured(settings: impl FnOnce(&mut OAuthBearerSettings)) -> Validator {
        let mut s = OAuthBearerSettings {
            unsecured: true,
            ..Default::default()
        };
        settings(&mut s);
        s.validator().unwrap()
    }

    fn jws(claims: &str) -> String {
        format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims))
    }

    #[test]
    fn the_client_first_message_parses_as_kafka_parses_it() {
        let first = parse_client_first(b"n,,\x01auth=Bearer abc.def.\x01\x01").unwrap();
        assert_eq!(first.token, "abc.def.");
        assert!(first.extensions.is_empty());
        let first =
            parse_client_first(b"n,a=us=3Der,\x01auth=bearer  t0k~+/=\x01traceId=1 2\x01\x01")
                .unwrap();
        assert_eq!(first.authzid, "us=3Der");
        assert_eq!(first.token, "t0k~+/=");
        assert_eq!(first.extensions["traceId"], "1 2");
        let built = client_first("x.y.", &[("logicalCluster".into(), "lkc-1".into())]);
        let back = parse_client_first(&built).unwrap();
        assert_eq!(back.token, "x.y.");
        assert_eq!(back.extensions["logicalCluster"], "lkc-1");
        for bad in [
            &b""[..],
            b"n,,",
            b"y,,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer t\x01",
            b"n,,\x01\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01auth=Bearer\x01\x01",
            b"n,,\x01auth=Bearer t t\x01\x01",
            b"n,,\x01auth=Bearer t\x01k1=v\x01\x01",
            b"n,,\x01auth=Bearer t\x01k=\x7f\x01\x01",
            b"n,,\x01auth=Bearer t\x01=v\x01\x01",
            b"n,a=x=,\x01auth=Bearer t\x01\x01",
            b"n,a=,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer \xff\x01\x01",
            b"n,,\x01auth=Bearer t\x01\x01\x01",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
        let huge = client_first(&"a".repeat(MESSAGE_BYTES_MAX), &[]);
        assert!(parse_client_first(&huge).is_err());
    }

    #[test]
    fn the_unsecured_validator_checks_what_kafkas_checks() {
        let v = unsecured(|_| {});
        let exp = NOW / 1000 + 60;
        let ok = v
            .validate(&jws(&format!(r#"{{"sub":"alice","exp":{exp}}}"#)), NOW)
            .unwrap();
        assert_eq!(ok.principal, "alice");
        assert_eq!(ok.expires_at_ms, exp * 1000);
        // What rill's client makes.
        let made = unsecured_token("bob", NOW, 10_000);
        assert_eq!(v.validate(&made, NOW).unwrap().expires_at_ms, NOW + 10_000);
        let refused = |token: String| v.validate(&token, NOW).unwrap_err();
        // Expired, and exactly at exp.
        assert_eq!(
            refused(jws(&format!(r#"{{"sub":"a","exp":{}}}"#, NOW / 1000))).status,
            "invalid_token"
        );
        // No exp, exp a string, iat in the future, exp before iat.
        refused(jws(r#"{"sub":"a"}"#));
        refused(jws(&format!(r#"{{"sub":"a","exp":"{exp}"}}"#)));
        refused(jws(&format!(
            r#"{{"sub":"a","exp":{exp},"iat":{}}}"#,
            NOW / 1000 + 5
        )));
        refused(jws(&format!(
            r#"{{"sub":"a","exp":{exp},"iat":{}}}"#,
            exp + 1
        )));
        // No sub, a blank one, a number; another principal claim name.
        refused(jws(&format!(r#"{{"exp":{exp}}}"#)));
        refused(jws(&format!(r#"{{"sub":" ","exp":{exp}}}"#)));
        refused(jws(&format!(r#"{{"sub":7,"exp":{exp}}}"#)));
        let by_email = unsecured(|s| s.unsecured_principal_claim_name = "email".into());
        assert_eq!(
            by_email
                .validate(&jws(&format!(r#"{{"email":"e@x","exp":{exp}}}"#)), NOW)
                .unwrap()
                .principal,
            "e@x"
        );
        // A signature, another algorithm, no algorithm.
        refused(format!(
            "{}x",
            jws(&format!(r#"{{"sub":"a","exp":{exp}}}"#))
        ));
        refused(format!(
            "{}.{}.",
            b64(r#"{"alg":"HS256"}"#),
            b64(&format!(r#"{{"sub":"a","exp":{exp}}}"#))
        ));
        refused(format!(
            "{}.{}.",
            b64("{}"),
            b64(&format!(r#"{{"sub":"a","exp":{exp}}}"#))
        ));
        // The clock skew lets an expired token by.
        let lenient = unsecured(|s| s.unsecured_allowable_clock_skew_ms = 120_000);
        lenient
            .validate(
                &jws(&format!(r#"{{"sub":"a","exp":{}}}"#, NOW / 1000 - 60)),
                NOW,
            )
            .unwrap();
    }

    #[test]
    fn a_required_scope_is_insufficient_scope() {
        let v = unsecured(|s| s.unsecured_required_scope = vec!["write".into()]);
        let exp = NOW / 1000 + 60;
        v.validate(
            &jws(&format!(
                r#"{{"sub":"a","exp":{exp},"scope":["read","write"]}}"#
            )),
            NOW,
        )
        .unwrap();
        v.validate(
            &jws(&format!(r#"{{"sub":"a","exp":{exp},"scope":"write"}}"#)),
            NOW,
        )
        .unwrap();
        let error = v
            .validate(
                &jws(&format!(r#"{{"sub":"a","exp":{exp},"scope":["read"]}}"#)),
                NOW,
            )
            .unwrap_err();
        assert_eq!(error.status, "insufficient_scope");
        assert_eq!(
            error.json(),
            r#"{"scope":"[write]","status":"insufficient_scope"}"#
        );
        assert_eq!(
            TokenError::invalid("x").json(),
            r#"{"status":"invalid_token"}"#
        );
    }

    /// Garbage, truncated base64, huge tokens, wrong types, deep JSON, huge numbers: refused,
    /// never a panic, by both validators.
    #[test]
    fn no_token_content_panics() {
        let exp = NOW / 1000 + 60;
        let good = jws(&format!(r#"{{"sub":"a","exp":{exp}}}"#));
        let mut tokens: Vec<String> = vec![
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            "a.b.c.d".into(),
            good[..good.len() / 2].to_string(),
            good[..good.len() - 3].to_string(),
            format!("{}!.x.", b64(r#"{"alg":"none"}"#)),
            "a".repeat(MESSAGE_BYTES_MAX + 1),
            format!("{}.{}.", b64(r#"{"alg":"none"}"#), "A".repeat(100_000)),
            jws(&format!(
                r#"{}{{"sub":"a"}}{}"#,
                "[".repeat(5000),
                "]".repeat(5000)
            )),
            jws(r#"{"sub":"a","exp":1e400}"#),
            jws(r#"{"sub":"a","exp":-1e300,"iat":1e300}"#),
            jws(r#"{"sub":"a","exp":18446744073709551616}"#),
            jws(r#"{"sub":"a","exp":[1],"iat":{}}"#),
            jws(r#"{"sub":"a","exp":9e18,"nbf":"x"}"#),
            jws(r#"{"sub":"a","exp":9e18,"scope":7}"#),
            jws(r#"{"sub":"a","exp":9e18,"scope":[7]}"#),
            jws(r#"[1,2]"#),
            jws("null"),
            format!("{}.{}.", b64("\"alg\""), b64("{}")),
            format!("{}.{}.", b64(r#"{"alg":["none"]}"#), b64("{}")),
            format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"RS256","kid":"nope"}"#),
                b64(r#"{"sub":"a"}"#)
            ),
            format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"ES256"}"#),
                b64(r#"{"sub":"a"}"#)
            ),
            format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"HS256"}"#),
                b64(r#"{"sub":"a"}"#)
            ),
            format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"EdDSA"}"#),
                b64(r#"{"sub":"a"}"#)
            ),
            format!(
                "{}.{}.!!!",
                b64(r#"{"alg":"RS256"}"#),
                b64(r#"{"sub":"a"}"#)
            ),
        ];
        // Every prefix and single-byte corruption of a good token.
        for cut in 0..good.len() {
            tokens.push(good[..cut].to_string());
            let mut bytes = good.clone().into_bytes();
            bytes[cut] = b"A.=_-~"[cut % 6];
            tokens.push(String::from_utf8(bytes).unwrap());
        }
        let validators = [unsecured(|_| {}), jwks_validator(|_| {})];
        for v in &validators {
            for token in &tokens {
                let _ = v.validate(token, NOW);
                let _ = v.validate(token, i64::MAX);
                let _ = v.validate(token, i64::MIN);
            }
        }
        for token in &tokens[..6] {
            assert!(validators[0].validate(token, NOW).is_err());
        }
        // And the message parser, with the same garbage inside.
        for token in &tokens {
            let _ = parse_client_first(&client_first(token, &[]));
        }
    }

    // Signed tokens: an EC P-256 key made with rcgen (ring), its JWK written by hand.
    fn ec_key() -> (jsonwebtoken::EncodingKey, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let public = key.public_key_raw();
        assert_eq!(public.len(), 65, "uncompressed point");
        let jwk = format!(
            r#"{{"keys":[{{"kty":"oct","kid":"k1","k":"c2VjcmV0"}},{{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","x":"{}","y":"{}"}}]}}"#,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&public[1..33]),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&public[33..])
        );
        (
            jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()),
            jwk,
        )
    }

    thread_local! {
        static KEY: (jsonwebtoken::EncodingKey, String) = ec_key();
    }

    fn jwks_validator(settings: impl FnOnce(&mut OAuthBearerSettings)) -> Validator {
        let dir = std::env::temp_dir().join(format!(
            "rill-jwks-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jwks.json");
        KEY.with(|(_, jwk)| std::fs::write(&path, jwk).unwrap());
        let mut s = OAuthBearerSettings {
            jwks_endpoint_url: Some(format!("file:{}", path.display())),
            expected_audience: vec!["rill".into()],
            expected_issuer: Some("https://idp.example".into()),
            ..Default::default()
        };
        settings(&mut s);
        let v = s.validator().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        v
    }

    fn signed(claims: &Value, kid: Option<&str>) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = kid.map(String::from);
        KEY.with(|(key, _)| jsonwebtoken::encode(&header, claims, key).unwrap())
    }

    #[test]
    fn signed_tokens_are_checked_against_the_jwks() {
        let v = jwks_validator(|_| {});
        let exp = NOW / 1000 + 600;
        let claims = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut c = serde_json::json!({
                "sub": "carol", "aud": ["other", "rill"], "iss": "https://idp.example",
                "iat": NOW / 1000, "exp": exp
            });
            f(c.as_object_mut().unwrap());
            c
        };
        let ok = v
            .validate(&signed(&claims(&|_| {}), Some("k1")), NOW)
            .unwrap();
        assert_eq!(ok.principal, "carol");
        assert_eq!(ok.expires_at_ms, exp * 1000);
        v.validate(&signed(&claims(&|_| {}), None), NOW).unwrap();
        let refused = |token: String| v.validate(&token, NOW).unwrap_err();
        refused(signed(&claims(&|_| {}), Some("k2")));
        refused(signed(
            &claims(&|c| {
                c.insert("aud".into(), "else".into());
            }),
            None,
        ));
        refused(signed(
            &claims(&|c| {
                c.remove("aud");
            }),
            None,
        ));
        refused(signed(
            &claims(&|c| {
                c.insert("iss".into(), "https://evil".into());
            }),
            None,
        ));
        refused(signed(
            &claims(&|c| {
                c.remove("iat");
            }),
            None,
        ));
        refused(signed(
            &claims(&|c| {
                c.remove("exp");
            }),
            None,
        ));
        refused(signed(
            &claims(&|c| {
                c.insert("exp".into(), (NOW / 1000 - 31).into());
            }),
            None,
        ));
        refused(signed(
            &claims(&|c| {
                c.insert("nbf".into(), (NOW / 1000 + 31).into());
            }),
            None,
        ));
        // Within the 30 s default skew.
        v.validate(
            &signed(
                &claims(&|c| {
                    c.insert("iat".into(), (NOW / 1000 - 60).into());
                    c.insert("exp".into(), (NOW / 1000 - 29).into());
                }),
                None,
            ),
            NOW,
        )
        .unwrap();
        // A bad signature: another token's signature on these claims.
        let token = signed(&claims(&|_| {}), None);
        let other = signed(
            &claims(&|c| {
                c.insert("sub".into(), "mallory".into());
            }),
            None,
        );
        let forged = format!(
            "{}.{}",
            &other[..other.rfind('.').unwrap()],
            &token[token.rfind('.').unwrap() + 1..]
        );
        refused(forged);
        // An unsigned token on a JWKS validator; a symmetric one with the JWKS's oct key.
        refused(jws(&format!(r#"{{"sub":"a","exp":{exp}}}"#)));
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims(&|_| {}),
            &jsonwebtoken::EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        refused(hs);
        // Another sub claim name.
        let by_email = jwks_validator(|s| s.sub_claim_name = "email".into());
        let token = signed(
            &claims(&|c| {
                c.insert("email".into(), "c@x".into());
            }),
            None,
        );
        assert_eq!(by_email.validate(&token, NOW).unwrap().principal, "c@x");
    }

    #[test]
    fn settings_are_checked_at_start() {
        let err = |s: OAuthBearerSettings| s.validator().unwrap_err();
        err(OAuthBearerSettings::default());
        err(OAuthBearerSettings {
            unsecured: true,
            jwks_endpoint_url: Some("file:/x".into()),
            ..Default::default()
        });
        assert!(err(OAuthBearerSettings {
            jwks_endpoint_url: Some("https://idp/jwks".into()),
            ..Default::default()
        })
        .contains("only file:"));
        err(OAuthBearerSettings {
            jwks_endpoint_url: Some("file:/nonexistent/rill/jwks.json".into()),
            ..Default::default()
        });
        assert!(parse_jwks("{}").is_err());
        assert!(parse_jwks(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(parse_jwks(r#"{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}"#).is_err());
    }
}
