//! The ACL authorizer: Kafka's `StandardAuthorizer` rules over the bindings in the metadata
//! image.
//!
//! A request's principal may perform an operation on a resource when it is a super user, or no
//! DENY binding matches and an ALLOW binding matches. A binding matches when its resource type is
//! the resource's, its pattern matches the name (literal: equal, or `*`; prefixed: the name
//! starts with it), its principal is the request's or `User:*`, its host the client's or `*`, and
//! its operation the one asked or ALL. As in Kafka, DESCRIBE is allowed by an ALLOW of READ,
//! WRITE, DELETE or ALTER, and DESCRIBE_CONFIGS by ALTER_CONFIGS. A DENY of ALL denies every
//! operation. Without any binding for a resource, `allow_everyone_if_no_acl_found` decides
//! (false by default, as in Kafka).

use std::collections::BTreeSet;

use controller::security::{PATTERN_LITERAL, PATTERN_PREFIXED, PERMISSION_ALLOW, PERMISSION_DENY};
use controller::AclBinding;

/// Kafka's resource type codes.
pub mod resource {
    /// ANY (filters only).
    pub const ANY: i8 = 1;
    /// TOPIC.
    pub const TOPIC: i8 = 2;
    /// GROUP.
    pub const GROUP: i8 = 3;
    /// CLUSTER (its one name is `kafka-cluster`).
    pub const CLUSTER: i8 = 4;
    /// TRANSACTIONAL_ID.
    pub const TRANSACTIONAL_ID: i8 = 5;
}

/// Kafka's operation codes.
pub mod op {
    /// ANY (filters only).
    pub const ANY: i8 = 1;
    /// ALL.
    pub const ALL: i8 = 2;
    /// READ.
    pub const READ: i8 = 3;
    /// WRITE.
    pub const WRITE: i8 = 4;
    /// CREATE.
    pub const CREATE: i8 = 5;
    /// DELETE.
    pub const DELETE: i8 = 6;
    /// ALTER.
    pub const ALTER: i8 = 7;
    /// DESCRIBE.
    pub const DESCRIBE: i8 = 8;
    /// CLUSTER_ACTION.
    pub const CLUSTER_ACTION: i8 = 9;
    /// DESCRIBE_CONFIGS.
    pub const DESCRIBE_CONFIGS: i8 = 10;
    /// ALTER_CONFIGS.
    pub const ALTER_CONFIGS: i8 = 11;
    /// IDEMPOTENT_WRITE.
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// The name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Who asks, from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    /// `User:name`.
    pub principal: String,
    /// The client's IP address as text.
    pub host: String,
    /// Super users and brokers skip every check.
    pub is_super: bool,
}

/// What the authorizer decides from.
#[derive(Clone, Copy, Debug)]
pub struct Authorizer<'a> {
    /// The bindings.
    pub acls: &'a BTreeSet<AclBinding>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

fn pattern_matches(binding: &AclBinding, name: &str) -> bool {
    match binding.pattern_type {
        PATTERN_LITERAL => binding.resource_name == name || binding.resource_name == "*",
        PATTERN_PREFIXED => name.starts_with(&binding.resource_name),
        _ => false,
    }
}

/// Operations an ALLOW of `granted` also allows (Kafka's implied operations).
fn allows(granted: i8, asked: i8) -> bool {
    granted == op::ALL
        || granted == asked
        || (asked == op::DESCRIBE
            && matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (asked == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

impl Authorizer<'_> {
    /// May `requester` perform `operation` on the resource `(resource_type, name)`?
    pub fn authorize(
        &self,
        requester: &Requester,
        resource_type: i8,
        name: &str,
        operation: i8,
    ) -> bool {
        assert!(resource_type > resource::ANY && operation > op::ANY);
        if requester.is_super {
            return true;
        }
        let mut any_for_resource = false;
        let mut allowed = false;
        for binding in self.acls {
            if binding.resource_type != resource_type || !pattern_matches(binding, name) {
                continue;
            }
            any_for_resource = true;
            let who = binding.principal == requester.principal || binding.principal == "User:*";
            let from = binding.host == requester.host || binding.host == "*";
            if !who || !from {
                continue;
            }
            match binding.permission_type {
                PERMISSION_DENY
                    if binding.operation == operation || binding.operation == op::ALL =>
                {
                    return false
                }
                PERMISSION_ALLOW if allows(binding.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_for_resource && self.allow_if_no_acl)
    }
}

/// One request's view of security: the listener it came in on (Metadata's endpoints) and
/// whether its principal may do what it asks.
#[derive(Clone, Debug)]
pub struct Access {
    /// The listener's name.
    pub listener: String,
    /// The requester.
    pub requester: Requester,
    /// Is the authorizer on? Off: everything is allowed.
    pub enabled: bool,
    /// The bindings, from the image the request is served with.
    pub acls: std::sync::Arc<controller::MetadataImage>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

impl Access {
    /// May the requester perform `operation` on `(resource_type, name)`?
    pub fn may(&self, resource_type: i8, name: &str, operation: i8) -> bool {
        !self.enabled
            || Authorizer {
                acls: self.acls.acls(),
                allow_if_no_acl: self.allow_if_no_acl,
            }
            .authorize(&self.requester, resource_type, name, operation)
    }

    /// May the requester perform `operation` on the topic `name`?
    pub fn may_topic(&self, name: &str, operation: i8) -> bool {
        self.may(resource::TOPIC, name, operation)
    }

    /// May the requester perform `operation` on the group `name`?
    pub fn may_group(&self, name: &str, operation: i8) -> bool {
        self.may(resource::GROUP, name, operation)
    }

    /// May the requester perform `operation` on the cluster?
    pub fn may_cluster(&self, operation: i8) -> bool {
        self.may(resource::CLUSTER, CLUSTER_NAME, operation)
    }

    /// The operations the requester may perform on `(resource_type, name)` as Kafka's
    /// `authorizedOperations` answers them (KIP-430): a 32-bit field with bit `op` set for each
    /// of the resource type's supported operations that is allowed; every supported operation
    /// with the authorizer off. Metadata, DescribeCluster and DescribeGroups carry it when asked.
    pub fn authorized_operations(&self, resource_type: i8, name: &str) -> i32 {
        supported_operations(resource_type)
            .iter()
            .filter(|operation| self.may(resource_type, name, **operation))
            .fold(0, |field, operation| field | (1 << operation))
    }

    /// Everything allowed, on the first listener (tests and internal callers).
    pub fn unrestricted(listener: &str) -> Access {
        Access {
            listener: listener.to_string(),
            requester: Requester {
                principal: "User:ANONYMOUS".into(),
                host: String::new(),
                is_super: true,
            },
            enabled: false,
            acls: std::sync::Arc::new(controller::MetadataImage::new()),
            allow_if_no_acl: true,
        }
    }
}

/// The operations an ACL can name for a resource type (Kafka's `AclEntry.supportedOperations`);
/// the authorized-operations fields list only these.
pub fn supported_operations(resource_type: i8) -> &'static [i8] {
    match resource_type {
        resource::TOPIC => &[
            op::READ,
            op::WRITE,
            op::CREATE,
            op::DESCRIBE,
            op::DELETE,
            op::ALTER,
            op::DESCRIBE_CONFIGS,
            op::ALTER_CONFIGS,
        ],
        resource::GROUP => &[op::READ, op::DESCRIBE, op::DELETE],
        resource::CLUSTER => &[
            op::CREATE,
            op::CLUSTER_ACTION,
            op::DESCRIBE_CONFIGS,
            op::ALTER_CONFIGS,
            op::IDEMPOTENT_WRITE,
            op::ALTER,
            op::DESCRIBE,
        ],
        resource::TRANSACTIONAL_ID => &[op::DESCRIBE, op::WRITE],
        _ => &[],
    }
}

/// A DescribeAcls/DeleteAcls filter (Kafka's `AclBindingFilter`): `None` fields match anything,
/// codes ANY (1) and MATCH (pattern 2) as Kafka defines them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    /// Resource type or ANY.
    pub resource_type: i8,
    /// Name, or `None` for any.
    pub resource_name: Option<String>,
    /// 1 ANY, 2 MATCH, 3 LITERAL, 4 PREFIXED.
    pub pattern_type: i8,
    /// Principal, or `None`.
    pub principal: Option<String>,
    /// Host, or `None`.
    pub host: Option<String>,
    /// Operation or ANY.
    pub operation: i8,
    /// Permission or ANY.
    pub permission_type: i8,
}

/// Kafka's `PatternType.ANY`.
pub const PATTERN_ANY: i8 = 1;
/// Kafka's `PatternType.MATCH`.
pub const PATTERN_MATCH: i8 = 2;

impl AclFilter {
    /// Is this a filter Kafka accepts (known codes; UNKNOWN is 0)?
    pub fn is_valid(&self) -> bool {
        (1..=7).contains(&self.resource_type)
            && (1..=4).contains(&self.pattern_type)
            && (1..=14).contains(&self.operation)
            && (1..=3).contains(&self.permission_type)
    }

    /// Does `binding` match the filter?
    pub fn matches(&self, binding: &AclBinding) -> bool {
        let code = |filter: i8, value: i8| filter == 1 || filter == value;
        let text =
            |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        let pattern = match self.pattern_type {
            PATTERN_ANY => text(&self.resource_name, &binding.resource_name),
            // MATCH: bindings that would apply to the named resource.
            PATTERN_MATCH => match &self.resource_name {
                None => true,
                Some(name) => pattern_matches(binding, name),
            },
            exact => {
                binding.pattern_type == exact && text(&self.resource_name, &binding.resource_name)
            }
        };
        code(self.resource_type, binding.resource_type)
            && pattern
            && text(&self.principal, &binding.principal)
            && text(&self.host, &binding.host)
            && code(self.operation, binding.operation)
            && code(self.permission_type, binding.permission_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(name: &str, pattern: i8, principal: &str, operation: i8, permission: i8) -> AclBinding {
        AclBinding {
            resource_type: resource::TOPIC,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission_type: permission,
        }
    }

    fn alice() -> Requester {
        Requester {
            principal: "User:alice".into(),
            host: "127.0.0.1".into(),
            is_super: false,
        }
    }

    #[test]
    fn authorized_operations_are_the_supported_operations_allowed() {
        let field = |ops: &[i8]| ops.iter().fold(0, |f, o| f | 1 << o);
        // The authorizer off: every operation the resource type supports (Kafka's answer
        // without an authorizer), never ALL (2) or ANY (1).
        let open = Access::unrestricted("PLAINTEXT");
        assert_eq!(
            open.authorized_operations(resource::GROUP, "g"),
            field(&[op::READ, op::DESCRIBE, op::DELETE])
        );
        assert_eq!(
            open.authorized_operations(resource::CLUSTER, CLUSTER_NAME),
            field(&[5, 7, 8, 9, 10, 11, 12])
        );
        assert_eq!(open.authorized_operations(resource::ANY, "x"), 0);
        // On, with no ACL at all: nothing, unless `allow.everyone.if.no.acl.found`.
        let acls = std::sync::Arc::new(controller::MetadataImage::new());
        let mut access = Access {
            requester: alice(),
            enabled: true,
            acls,
            allow_if_no_acl: false,
            ..open
        };
        assert_eq!(access.authorized_operations(resource::TOPIC, "orders"), 0);
        access.allow_if_no_acl = true;
        assert_eq!(
            access.authorized_operations(resource::TOPIC, "orders"),
            field(supported_operations(resource::TOPIC))
        );
    }

    #[test]
    fn literal_prefixed_deny_and_implied_operations() {
        let acls: BTreeSet<AclBinding> = [
            bind(
                "orders",
                PATTERN_LITERAL,
                "User:alice",
                op::WRITE,
                PERMISSION_ALLOW,
            ),
            bind(
                "logs-",
                PATTERN_PREFIXED,
                "User:*",
                op::READ,
                PERMISSION_ALLOW,
            ),
            bind(
                "logs-secret",
                PATTERN_LITERAL,
                "User:alice",
                op::ALL,
                PERMISSION_DENY,
            ),
        ]
        .into_iter()
        .collect();
        let authorizer = Authorizer {
            acls: &acls,
            allow_if_no_acl: false,
        };
        let may = |name: &str, operation| {
            authorizer.authorize(&alice(), resource::TOPIC, name, operation)
        };
        assert!(may("orders", op::WRITE));
        assert!(may("orders", op::DESCRIBE), "WRITE implies DESCRIBE");
        assert!(!may("orders", op::READ));
        assert!(!may("orders2", op::WRITE), "a literal is the whole name");
        assert!(may("logs-app", op::READ));
        assert!(!may("logs-secret", op::READ), "DENY of ALL wins");
        assert!(!may("other", op::READ), "no binding: denied by default");
        let open = Authorizer {
            acls: &acls,
            allow_if_no_acl: true,
        };
        assert!(open.authorize(&alice(), resource::TOPIC, "other", op::READ));
        assert!(!open.authorize(&alice(), resource::TOPIC, "orders", op::READ));
        let root = Requester {
            is_super: true,
            ..alice()
        };
        assert!(authorizer.authorize(&root, resource::TOPIC, "logs-secret", op::READ));
    }

    #[test]
    fn filters_match_as_kafka_defines_any_and_match() {
        let literal = bind(
            "orders",
            PATTERN_LITERAL,
            "User:alice",
            op::WRITE,
            PERMISSION_ALLOW,
        );
        let prefixed = bind(
            "ord",
            PATTERN_PREFIXED,
            "User:bob",
            op::READ,
            PERMISSION_ALLOW,
        );
        let any = AclFilter {
            resource_type: resource::ANY,
            resource_name: None,
            pattern_type: PATTERN_ANY,
            principal: None,
            host: None,
            operation: op::ANY,
            permission_type: 1,
        };
        assert!(any.matches(&literal) && any.matches(&prefixed));
        let matching = AclFilter {
            resource_name: Some("orders".into()),
            pattern_type: PATTERN_MATCH,
            ..any.clone()
        };
        assert!(matching.matches(&literal) && matching.matches(&prefixed));
        let exact = AclFilter {
            resource_name: Some("orders".into()),
            pattern_type: PATTERN_LITERAL,
            ..any.clone()
        };
        assert!(exact.matches(&literal) && !exact.matches(&prefixed));
        let bob = AclFilter {
            principal: Some("User:bob".into()),
            ..any
        };
        assert!(!bob.matches(&literal) && bob.matches(&prefixed));
    }
}
