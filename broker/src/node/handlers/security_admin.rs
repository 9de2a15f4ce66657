//! The security admin APIs: DescribeUserScramCredentials, AlterUserScramCredentials (KIP-554),
//! CreateAcls, DescribeAcls, DeleteAcls. Changes go to the controller as one
//! `Request::AlterSecurity` and are answered once this broker's image shows them, as topic
//! changes are. Kafka's rules: DESCRIBE on the cluster to read, ALTER to change; the ACL APIs
//! answer SECURITY_DISABLED while the authorizer is off.

use std::collections::BTreeMap;

use controller::security::SCRAM_ITERATIONS_MAX;
use controller::{AclBinding, ScramMechanism, SecurityChange};
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::metadata::{controller_refusal, wait_for_image};
use crate::node::shared::Shared;
use crate::security::acl::{op, Access, AclFilter};
use crate::security::scram;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Sends `changes` to the controller and waits until this broker's image shows them; the
/// error code and message on failure.
async fn apply(
    shared: &Shared,
    changes: Vec<SecurityChange>,
    applied: impl Fn(&controller::MetadataImage) -> bool,
) -> Result<(), (i16, String)> {
    if changes.is_empty() {
        return Ok(());
    }
    match shared
        .controller
        .request(controller::Request::AlterSecurity(changes))
        .await
    {
        Ok(controller::Reply::SecurityAltered) => {
            wait_for_image(shared, applied).await;
            Ok(())
        }
        Ok(other) => {
            tracing::warn!(
                ?other,
                "the controller answered AlterSecurity with another reply"
            );
            Err((
                E::UnknownServerError.code(),
                "unexpected controller reply".into(),
            ))
        }
        Err(error) => {
            let refusal = controller_refusal(&error);
            Err((refusal.code, refusal.message))
        }
    }
}

/// DescribeUserScramCredentials: every user with a credential, or the users named.
pub fn describe_user_scram_credentials(
    shared: &Shared,
    access: &Access,
    request: &DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    use kafka_protocol::messages::describe_user_scram_credentials_response::*;
    if !access.may_cluster(op::DESCRIBE) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(E::ClusterAuthorizationFailed.code());
    }
    let image = shared.image();
    // user → mechanism → iterations: the metadata log's, then the config's bootstrap users.
    let mut known: BTreeMap<String, BTreeMap<ScramMechanism, u32>> = BTreeMap::new();
    for user in &shared.config.security.scram_users {
        for mechanism in ScramMechanism::ALL {
            if let Some(c) = shared
                .config
                .security
                .static_credential(&user.user, mechanism)
            {
                known
                    .entry(user.user.clone())
                    .or_default()
                    .insert(mechanism, c.iterations);
            }
        }
    }
    for (user, credentials) in image.scram_credentials() {
        for (mechanism, c) in credentials {
            known
                .entry(user.clone())
                .or_default()
                .insert(*mechanism, c.iterations);
        }
    }
    let info = |mechanisms: &BTreeMap<ScramMechanism, u32>| -> Vec<CredentialInfo> {
        mechanisms
            .iter()
            .map(|(m, iterations)| {
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(i32::try_from(*iterations).unwrap_or(i32::MAX))
            })
            .collect()
    };
    let results = match request.users.as_ref().filter(|users| !users.is_empty()) {
        None => known
            .iter()
            .map(|(user, mechanisms)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(text(user.clone()))
                    .with_credential_infos(info(mechanisms))
            })
            .collect(),
        Some(users) => {
            let mut count = BTreeMap::<&str, usize>::new();
            for user in users {
                *count.entry(user.name.as_str()).or_default() += 1;
            }
            users
                .iter()
                .map(|user| {
                    let name = user.name.as_str();
                    let result =
                        DescribeUserScramCredentialsResult::default().with_user(user.name.clone());
                    match known.get(name) {
                        _ if count[name] > 1 => result
                            .with_error_code(E::DuplicateResource.code())
                            .with_error_message(Some(text(format!(
                                "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                            )))),
                        Some(mechanisms) => result.with_credential_infos(info(mechanisms)),
                        None => result
                            .with_error_code(E::ResourceNotFound.code())
                            .with_error_message(Some(text(format!(
                                "Attempt to describe a user credential that does not exist: {name}"
                            )))),
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// AlterUserScramCredentials: deletions and upsertions, checked per user with Kafka's codes,
/// the valid ones applied at once. A salted password becomes its stored and server keys here:
/// nothing password-equivalent reaches the metadata log.
pub async fn alter_user_scram_credentials(
    shared: &Shared,
    access: &Access,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    use kafka_protocol::messages::alter_user_scram_credentials_response::*;
    let mut errors: BTreeMap<String, (i16, String)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut seen = BTreeMap::<(String, i8), usize>::new();
    let names = request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            request
                .upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        );
    for (name, mechanism) in names {
        if !order.contains(&name) {
            order.push(name.clone());
        }
        *seen.entry((name, mechanism)).or_default() += 1;
    }
    let mut refuse = |user: &str, code: E, message: String| {
        errors
            .entry(user.to_string())
            .or_insert((code.code(), message));
    };
    if !access.may_cluster(op::ALTER) {
        for user in &order {
            refuse(
                user,
                E::ClusterAuthorizationFailed,
                "Cluster authorization failed.".into(),
            );
        }
    }
    for ((user, _), n) in &seen {
        if *n > 1 {
            refuse(
                user,
                E::DuplicateResource,
                "A user credential cannot be altered twice in the same request".into(),
            );
        }
    }
    let image = shared.image();
    let mut changes = Vec::new();
    for deletion in &request.deletions {
        let user = deletion.name.to_string();
        let Some(mechanism) = ScramMechanism::from_code(deletion.mechanism) else {
            refuse(
                &user,
                E::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism".into(),
            );
            continue;
        };
        if user.is_empty() {
            refuse(
                &user,
                E::UnacceptableCredential,
                "Username must not be empty".into(),
            );
        } else if image.scram_credential(&user, mechanism).is_none() {
            refuse(
                &user,
                E::ResourceNotFound,
                "Attempt to delete a user credential that does not exist (credentials from a \
                 node's config change with the config)"
                    .into(),
            );
        }
        changes.push((
            user.clone(),
            SecurityChange::DeleteScram { user, mechanism },
        ));
    }
    for upsertion in &request.upsertions {
        let user = upsertion.name.to_string();
        let Some(mechanism) = ScramMechanism::from_code(upsertion.mechanism) else {
            refuse(
                &user,
                E::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism".into(),
            );
            continue;
        };
        let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
        let acceptable = !user.is_empty()
            && (controller::security::SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX)
                .contains(&iterations)
            && upsertion.salted_password.len() == mechanism.key_bytes()
            && !upsertion.salt.is_empty()
            && upsertion.salt.len() <= controller::security::SALT_BYTES_MAX;
        if !acceptable {
            refuse(
                &user,
                E::UnacceptableCredential,
                format!(
                    "Iterations must be within 4096..=16384, the user name and salt not empty, \
                     the salted password {} bytes",
                    mechanism.key_bytes()
                ),
            );
            continue;
        }
        let credential = scram::credential_from_salted(
            mechanism,
            &upsertion.salted_password,
            &upsertion.salt,
            iterations,
        );
        let change = SecurityChange::UpsertScram {
            user: user.clone(),
            mechanism,
            credential,
        };
        if let Err(why) = change.check() {
            refuse(&user, E::UnacceptableCredential, why);
            continue;
        }
        changes.push((user, change));
    }
    let valid: Vec<SecurityChange> = changes
        .into_iter()
        .filter(|(user, _)| !errors.contains_key(user))
        .map(|(_, change)| change)
        .collect();
    let users: Vec<String> = order
        .iter()
        .filter(|u| !errors.contains_key(*u))
        .cloned()
        .collect();
    let expected = valid.clone();
    let outcome = apply(shared, valid, move |image| {
        expected.iter().all(|change| match change {
            SecurityChange::UpsertScram {
                user,
                mechanism,
                credential,
            } => image.scram_credential(user, *mechanism) == Some(credential),
            SecurityChange::DeleteScram { user, mechanism } => {
                image.scram_credential(user, *mechanism).is_none()
            }
            _ => true,
        })
    })
    .await;
    if let Err(failure) = outcome {
        for user in users {
            errors.insert(user, failure.clone());
        }
    }
    let results = order
        .into_iter()
        .map(|user| {
            let result = AlterUserScramCredentialsResult::default().with_user(text(user.clone()));
            match errors.get(&user) {
                Some((code, message)) => result
                    .with_error_code(*code)
                    .with_error_message(Some(text(message.clone()))),
                None => result,
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn security_disabled() -> (i16, Option<StrBytes>) {
    (
        E::SecurityDisabled.code(),
        Some(text("No Authorizer is configured on the broker")),
    )
}

/// CreateAcls: each creation checked, the valid ones applied at once.
pub async fn create_acls(
    shared: &Shared,
    access: &Access,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    use kafka_protocol::messages::create_acls_response::AclCreationResult;
    let refusal: Option<(i16, Option<StrBytes>)> = if !access.enabled {
        Some(security_disabled())
    } else if !access.may_cluster(op::ALTER) {
        Some((E::ClusterAuthorizationFailed.code(), None))
    } else {
        None
    };
    let mut outcomes: Vec<Result<AclBinding, (i16, String)>> = request
        .creations
        .iter()
        .map(|c| {
            let binding = AclBinding {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission_type: c.permission_type,
            };
            binding.check().map(|()| binding).map_err(|why| {
                (
                    E::InvalidRequest.code(),
                    format!("Invalid ACL creation: {why}"),
                )
            })
        })
        .collect();
    if let Some((code, message)) = refusal {
        let results = outcomes
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(message.clone())
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let valid: Vec<AclBinding> = outcomes.iter().filter_map(|o| o.clone().ok()).collect();
    let changes = valid
        .iter()
        .cloned()
        .map(SecurityChange::CreateAcl)
        .collect();
    let applied = apply(shared, changes, move |image| {
        valid.iter().all(|b| image.acls().contains(b))
    })
    .await;
    if let Err(failure) = applied {
        for outcome in &mut outcomes {
            if outcome.is_ok() {
                *outcome = Err(failure.clone());
            }
        }
    }
    let results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(_) => AclCreationResult::default(),
            Err((code, message)) => AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(Some(text(message))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn filter_of(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission_type: i8,
) -> AclFilter {
    AclFilter {
        resource_type,
        resource_name: name.as_ref().map(|s| s.to_string()),
        pattern_type,
        principal: principal.as_ref().map(|s| s.to_string()),
        host: host.as_ref().map(|s| s.to_string()),
        operation,
        permission_type,
    }
}

/// DescribeAcls: the bindings matching the filter, grouped by resource pattern.
pub fn describe_acls(
    shared: &Shared,
    access: &Access,
    request: &DescribeAclsRequest,
) -> DescribeAclsResponse {
    use kafka_protocol::messages::describe_acls_response::*;
    if !access.enabled {
        let (code, message) = security_disabled();
        return DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(message);
    }
    if !access.may_cluster(op::DESCRIBE) {
        return DescribeAclsResponse::default()
            .with_error_code(E::ClusterAuthorizationFailed.code());
    }
    let filter = filter_of(
        request.resource_type_filter,
        &request.resource_name_filter,
        request.pattern_type_filter,
        &request.principal_filter,
        &request.host_filter,
        request.operation,
        request.permission_type,
    );
    if !filter.is_valid() {
        return DescribeAclsResponse::default()
            .with_error_code(E::InvalidRequest.code())
            .with_error_message(Some(text("invalid ACL filter")));
    }
    let image = shared.image();
    let mut grouped: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for binding in image.acls().iter().filter(|b| filter.matches(b)) {
        grouped
            .entry((
                binding.resource_type,
                binding.resource_name.clone(),
                binding.pattern_type,
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(text(binding.principal.clone()))
                    .with_host(text(binding.host.clone()))
                    .with_operation(binding.operation)
                    .with_permission_type(binding.permission_type),
            );
    }
    let resources = grouped
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(text(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

/// DeleteAcls: every binding matching each filter, removed at once.
pub async fn delete_acls(
    shared: &Shared,
    access: &Access,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    use kafka_protocol::messages::delete_acls_response::*;
    let refusal = if !access.enabled {
        Some(security_disabled())
    } else if !access.may_cluster(op::ALTER) {
        Some((E::ClusterAuthorizationFailed.code(), None))
    } else {
        None
    };
    let image = shared.image();
    let mut removed: Vec<AclBinding> = Vec::new();
    let mut results: Vec<DeleteAclsFilterResult> = Vec::new();
    for f in &request.filters {
        if let Some((code, message)) = &refusal {
            results.push(
                DeleteAclsFilterResult::default()
                    .with_error_code(*code)
                    .with_error_message(message.clone()),
            );
            continue;
        }
        let filter = filter_of(
            f.resource_type_filter,
            &f.resource_name_filter,
            f.pattern_type_filter,
            &f.principal_filter,
            &f.host_filter,
            f.operation,
            f.permission_type,
        );
        if !filter.is_valid() {
            results.push(
                DeleteAclsFilterResult::default()
                    .with_error_code(E::InvalidRequest.code())
                    .with_error_message(Some(text("invalid ACL filter"))),
            );
            continue;
        }
        let matching: Vec<DeleteAclsMatchingAcl> = image
            .acls()
            .iter()
            .filter(|b| filter.matches(b))
            .map(|b| {
                if !removed.contains(b) {
                    removed.push(b.clone());
                }
                DeleteAclsMatchingAcl::default()
                    .with_resource_type(b.resource_type)
                    .with_resource_name(text(b.resource_name.clone()))
                    .with_pattern_type(b.pattern_type)
                    .with_principal(text(b.principal.clone()))
                    .with_host(text(b.host.clone()))
                    .with_operation(b.operation)
                    .with_permission_type(b.permission_type)
            })
            .collect();
        results.push(DeleteAclsFilterResult::default().with_matching_acls(matching));
    }
    let gone = removed.clone();
    let changes = removed.into_iter().map(SecurityChange::DeleteAcl).collect();
    if let Err((code, message)) = apply(shared, changes, move |image| {
        gone.iter().all(|b| !image.acls().contains(b))
    })
    .await
    {
        for result in &mut results {
            if result.error_code == 0 {
                *result = DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(text(message.clone())));
            }
        }
    }
    DeleteAclsResponse::default().with_filter_results(results)
}
