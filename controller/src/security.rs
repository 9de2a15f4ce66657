//! Client security in the metadata: SCRAM credentials (salted and stored keys, never a
//! password) and ACL bindings (Kafka's model). Both are replicated through the metadata log like
//! topics, so every broker authenticates and authorises from the same image.
//!
//! Validation happens twice, as for every record: the broker refuses bad requests with Kafka's
//! error codes before proposing, and [`SecurityChange::check`] refuses a record on apply, the
//! same way on every node.

use serde::{Deserialize, Serialize};

/// Longest user or principal name (Kafka has no limit; a metadata image needs one).
pub const NAME_BYTES_MAX: usize = 1024;
/// Most SCRAM credentials (user × mechanism) the image holds.
pub const SCRAM_CREDENTIALS_MAX: usize = 10_000;
/// Most ACL bindings the image holds.
pub const ACLS_MAX: usize = 10_000;
/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations/maxIterations`).
pub const SCRAM_ITERATIONS_MIN: u32 = 4096;
/// See [`SCRAM_ITERATIONS_MIN`].
pub const SCRAM_ITERATIONS_MAX: u32 = 16384;
/// Bytes of a salt, at most.
pub const SALT_BYTES_MAX: usize = 128;

/// A SCRAM mechanism (Kafka's `ScramMechanism` codes: 1 SHA-256, 2 SHA-512).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms, in Kafka's code order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's code (DescribeUserScramCredentials, AlterUserScramCredentials).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism of a Kafka code.
    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    /// The mechanism of a SASL name.
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Bytes of the hash's output: the length of stored and server keys.
    pub fn key_bytes(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }
}

/// What a server keeps of a SCRAM password (RFC 5802 §3): enough to verify a proof and prove
/// itself, not enough to log in as the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt of the password hash.
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

/// One ACL binding (Kafka's `AclBinding`): who may or may not do what to which resources, from
/// where. Codes are Kafka's (`ResourceType`, `PatternType`, `AclOperation`, `AclPermissionType`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// 2 topic, 3 group, 4 cluster, 5 transactional id, 6 delegation token, 7 user.
    pub resource_type: i8,
    /// The name or prefix; `*` with a literal pattern matches every name.
    pub resource_name: String,
    /// 3 literal, 4 prefixed.
    pub pattern_type: i8,
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// The client's address, or `*`.
    pub host: String,
    /// 2 all, 3 read, 4 write, 5 create, 6 delete, 7 alter, 8 describe, 9 cluster action,
    /// 10 describe configs, 11 alter configs, 12 idempotent write, 13 create tokens,
    /// 14 describe tokens.
    pub operation: i8,
    /// 2 deny, 3 allow.
    pub permission_type: i8,
}

/// Kafka's `PatternType.LITERAL`.
pub const PATTERN_LITERAL: i8 = 3;
/// Kafka's `PatternType.PREFIXED`.
pub const PATTERN_PREFIXED: i8 = 4;
/// Kafka's `AclPermissionType.DENY`.
pub const PERMISSION_DENY: i8 = 2;
/// Kafka's `AclPermissionType.ALLOW`.
pub const PERMISSION_ALLOW: i8 = 3;

impl AclBinding {
    /// Is this a binding Kafka would store (concrete types, codes in range)?
    pub fn check(&self) -> Result<(), String> {
        if !(2..=7).contains(&self.resource_type) {
            return Err(format!("resource type {}", self.resource_type));
        }
        if self.pattern_type != PATTERN_LITERAL && self.pattern_type != PATTERN_PREFIXED {
            return Err(format!("pattern type {}", self.pattern_type));
        }
        if !(2..=14).contains(&self.operation) {
            return Err(format!("operation {}", self.operation));
        }
        if self.permission_type != PERMISSION_DENY && self.permission_type != PERMISSION_ALLOW {
            return Err(format!("permission type {}", self.permission_type));
        }
        if self.resource_name.is_empty() || self.principal.is_empty() || self.host.is_empty() {
            return Err("empty resource name, principal or host".into());
        }
        let longest = [&self.resource_name, &self.principal, &self.host]
            .iter()
            .map(|s| s.len())
            .max()
            .unwrap_or(0);
        if longest > NAME_BYTES_MAX {
            return Err(format!("a name of {longest} bytes"));
        }
        if !self.principal.contains(':') {
            return Err(format!("principal {:?} is not Type:name", self.principal));
        }
        Ok(())
    }
}

/// One change of the security metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityChange {
    /// Sets (adds or replaces) a user's credential for one mechanism.
    UpsertScram {
        /// The user name.
        user: String,
        /// The mechanism.
        mechanism: ScramMechanism,
        /// Salted and stored keys.
        credential: ScramCredential,
    },
    /// Removes a user's credential for one mechanism (absent: nothing changes).
    DeleteScram {
        /// The user name.
        user: String,
        /// The mechanism.
        mechanism: ScramMechanism,
    },
    /// Adds a binding (present already: nothing changes).
    CreateAcl(AclBinding),
    /// Removes a binding (absent: nothing changes).
    DeleteAcl(AclBinding),
}

impl SecurityChange {
    /// Is the change well-formed (sizes, codes, key lengths)?
    pub fn check(&self) -> Result<(), String> {
        match self {
            SecurityChange::UpsertScram {
                user,
                mechanism,
                credential,
            } => {
                check_user(user)?;
                if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&credential.iterations) {
                    return Err(format!("{} iterations", credential.iterations));
                }
                if credential.salt.is_empty() || credential.salt.len() > SALT_BYTES_MAX {
                    return Err(format!("salt of {} bytes", credential.salt.len()));
                }
                let keys = mechanism.key_bytes();
                if credential.stored_key.len() != keys || credential.server_key.len() != keys {
                    return Err(format!("keys of another length than {keys} bytes"));
                }
                Ok(())
            }
            SecurityChange::DeleteScram { user, .. } => check_user(user),
            SecurityChange::CreateAcl(binding) | SecurityChange::DeleteAcl(binding) => {
                binding.check()
            }
        }
    }
}

fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > NAME_BYTES_MAX {
        return Err(format!("user name of {} bytes", user.len()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn binding() -> AclBinding {
        AclBinding {
            resource_type: 2,
            resource_name: "orders".into(),
            pattern_type: PATTERN_LITERAL,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: 3,
            permission_type: PERMISSION_ALLOW,
        }
    }

    #[test]
    fn acl_bindings_with_wildcard_codes_or_bad_names_are_refused() {
        assert_eq!(binding().check(), Ok(()));
        let cases = [
            AclBinding {
                resource_type: 1, // ANY: a filter, not a binding
                ..binding()
            },
            AclBinding {
                pattern_type: 1, // ANY
                ..binding()
            },
            AclBinding {
                operation: 1, // ANY
                ..binding()
            },
            AclBinding {
                permission_type: 1, // ANY
                ..binding()
            },
            AclBinding {
                principal: "alice".into(),
                ..binding()
            },
            AclBinding {
                host: String::new(),
                ..binding()
            },
        ];
        for case in cases {
            assert!(case.check().is_err(), "{case:?}");
        }
    }

    #[test]
    fn scram_credentials_need_kafka_iterations_and_full_keys() {
        let credential = ScramCredential {
            salt: vec![1; 16],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
            iterations: 4096,
        };
        let upsert = |mechanism, credential| SecurityChange::UpsertScram {
            user: "alice".into(),
            mechanism,
            credential,
        };
        assert_eq!(
            upsert(ScramMechanism::Sha256, credential.clone()).check(),
            Ok(())
        );
        assert!(upsert(ScramMechanism::Sha512, credential.clone())
            .check()
            .is_err());
        let few = ScramCredential {
            iterations: 4095,
            ..credential
        };
        assert!(upsert(ScramMechanism::Sha256, few).check().is_err());
        assert_eq!(ScramMechanism::from_code(2), Some(ScramMechanism::Sha512));
        assert_eq!(
            ScramMechanism::from_name("SCRAM-SHA-256"),
            Some(ScramMechanism::Sha256)
        );
    }

    #[test]
    fn the_image_applies_security_records_and_refuses_malformed_ones() {
        use crate::{MetadataImage, MetadataRecord};
        let mut image = MetadataImage::new();
        let credential = ScramCredential {
            salt: vec![1; 16],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
            iterations: 4096,
        };
        let upsert = SecurityChange::UpsertScram {
            user: "alice".into(),
            mechanism: ScramMechanism::Sha256,
            credential: credential.clone(),
        };
        let batch = vec![
            MetadataRecord::Security(upsert),
            MetadataRecord::Security(SecurityChange::CreateAcl(binding())),
            MetadataRecord::Security(SecurityChange::CreateAcl(binding())),
        ];
        image.apply_batch(1, &batch).unwrap();
        assert_eq!(
            image.scram_credential("alice", ScramMechanism::Sha256),
            Some(&credential)
        );
        assert_eq!(image.acls().len(), 1, "a binding is stored once");
        // A malformed record is refused whole and changes nothing.
        let bad = AclBinding {
            operation: 1,
            ..binding()
        };
        let refused = vec![
            MetadataRecord::Security(SecurityChange::DeleteAcl(binding())),
            MetadataRecord::Security(SecurityChange::CreateAcl(bad)),
        ];
        assert!(image.apply_batch(2, &refused).is_err());
        assert_eq!(image.acls().len(), 1);
        // Deletions of what is there, and of what is not, both apply.
        let deletions = vec![
            MetadataRecord::Security(SecurityChange::DeleteScram {
                user: "alice".into(),
                mechanism: ScramMechanism::Sha256,
            }),
            MetadataRecord::Security(SecurityChange::DeleteScram {
                user: "nobody".into(),
                mechanism: ScramMechanism::Sha512,
            }),
            MetadataRecord::Security(SecurityChange::DeleteAcl(binding())),
        ];
        image.apply_batch(3, &deletions).unwrap();
        assert!(image.scram_credentials().is_empty() && image.acls().is_empty());
        // An image without security metadata encodes as before the fields existed.
        let encoded = serde_json::to_string(&image).unwrap();
        assert!(
            !encoded.contains("scram") && !encoded.contains("acls"),
            "{encoded}"
        );
    }
}
