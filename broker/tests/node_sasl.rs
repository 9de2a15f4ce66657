//! Client SASL and ACLs over real TCP on a single node with a SASL_PLAINTEXT listener: requests
//! before authentication, garbage SASL bytes, a SCRAM exchange with a wrong proof, PLAIN against
//! the SCRAM store, KIP-368 session lifetime, OAUTHBEARER's error challenge and token-bounded
//! sessions, and ACL enforcement — each refused with Kafka's
//! code, the connection closed where Kafka closes it, and the node serving on. Real TCP and
//! tokio's runtime: the production build only (the campaign runs the inter-node mechanism of
//! the same SASL state machine).
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use std::sync::Arc;
use std::time::Duration;

use broker::node::config::{
    ExtraListener, SecuritySettings, StaticScramUser, Timing, TopicDefaults,
};
use broker::node::{self, NodeOptions};
use broker::security::SecurityProtocol;
use bytes::Bytes;
use client::sasl::{ScramClient, ScramHash};
use controller::ScramMechanism;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use log_core::MemDisk;
use node_support::{free_port, ready, single_node_config, Connection};

const ALICE: &str = "alice"; // a super user
const BOB: &str = "bob"; // an ordinary user
const PASSWORD: &str = "correct horse battery staple";

/// A node with a PLAINTEXT listener (to wait for readiness) and a SASL_PLAINTEXT one; alice
/// (SCRAM-SHA-256) is a super user, bob (SCRAM-SHA-512) is not. Returns (node, plaintext, sasl).
async fn start(reauth_ms: u64) -> (node::NodeHandle, String, String) {
    start_with(reauth_ms, |_| {}).await
}

/// [`start`] with its security settings changed by `adjust`.
async fn start_with(
    reauth_ms: u64,
    adjust: impl FnOnce(&mut SecuritySettings),
) -> (node::NodeHandle, String, String) {
    let (kafka, sasl, controller) = (free_port(), free_port(), free_port());
    let users = vec![
        StaticScramUser::from_password(ALICE, ScramMechanism::Sha256, PASSWORD, b"alice-salt"),
        StaticScramUser::from_password(BOB, ScramMechanism::Sha512, PASSWORD, b"bob-salt"),
    ];
    let mut config = single_node_config(
        kafka,
        controller,
        TopicDefaults::default(),
        Timing::default(),
    );
    config.listeners.extra = vec![ExtraListener {
        name: "SASL_PLAINTEXT".into(),
        address: format!("127.0.0.1:{sasl}"),
        advertised: None,
        protocol: SecurityProtocol::SaslPlaintext,
    }];
    config.security = SecuritySettings {
        cluster_secret: Some("node-sasl-test-cluster-secret".into()),
        super_users: vec![format!("User:{ALICE}")],
        scram_users: users,
        connections_max_reauth_ms: reauth_ms,
        ..SecuritySettings::default()
    };
    adjust(&mut config.security);
    let disk: Arc<dyn log_core::Disk> = MemDisk::new(1).as_disk();
    let handle = node::start(config, disk, NodeOptions::default())
        .await
        .unwrap();
    let plaintext = format!("127.0.0.1:{kafka}");
    let mut connection = Connection::open(&plaintext).await;
    ready(&mut connection).await;
    (handle, plaintext, format!("127.0.0.1:{sasl}"))
}

async fn handshake(connection: &mut Connection, mechanism: &str) -> SaslHandshakeResponse {
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into()));
    let mut body = connection.call(ApiKey::SaslHandshake, 1, &request).await;
    SaslHandshakeResponse::decode(&mut body, 1).unwrap()
}

async fn authenticate(connection: &mut Connection, token: &[u8]) -> SaslAuthenticateResponse {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    let mut body = connection.call(ApiKey::SaslAuthenticate, 2, &request).await;
    SaslAuthenticateResponse::decode(&mut body, 2).unwrap()
}

/// The server closes the connection: EOF (or a reset) within 5 s, no further frame.
async fn assert_closed(connection: &mut Connection) {
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        connection.reader.read_frame(&mut connection.stream),
    )
    .await
    .expect("the server closes the connection");
    assert!(
        !matches!(read, Ok(Some(_))),
        "no frame after the refusal: {read:?}"
    );
}

/// A SCRAM exchange up to the server's final answer.
async fn scram(
    address: &str,
    mechanism: ScramMechanism,
    user: &str,
    password: &str,
) -> (Connection, SaslAuthenticateResponse) {
    let mut connection = Connection::open(address).await;
    assert_eq!(
        handshake(&mut connection, mechanism.name())
            .await
            .error_code,
        0
    );
    let hash = match mechanism {
        ScramMechanism::Sha256 => ScramHash::Sha256,
        ScramMechanism::Sha512 => ScramHash::Sha512,
    };
    let (client, first) = ScramClient::start(hash, user, password, "fyko+d2lbbFgONRv9qkxdawL");
    let server_first = authenticate(&mut connection, &first).await;
    assert_eq!(server_first.error_code, 0);
    let (_, last) = client.on_server_first(&server_first.auth_bytes).unwrap();
    let answer = authenticate(&mut connection, &last).await;
    (connection, answer)
}

/// An ALLOW binding for bob on topics: `pattern` 3 literal, 4 prefixed; `operation` a code.
fn acl_for_bob(name: &str, pattern: i8, operation: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(name.into()))
        .with_resource_pattern_type(pattern)
        .with_principal(StrBytes::from_static_str("User:bob"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(operation)
        .with_permission_type(3)
}

async fn create_acl(connection: &mut Connection, creation: AclCreation) -> CreateAclsResponse {
    let request = CreateAclsRequest::default().with_creations(vec![creation]);
    let mut body = connection.call(ApiKey::CreateAcls, 3, &request).await;
    CreateAclsResponse::decode(&mut body, 3).unwrap()
}

fn metadata_of(topic: &str) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]))
        .with_allow_auto_topic_creation(true)
}

/// The operations Metadata v12 says the connection's principal may perform on `topic`
/// (KIP-430's `topic_authorized_operations`, asked for).
async fn topic_operations(connection: &mut Connection, topic: &str) -> i32 {
    let request = metadata_of(topic).with_include_topic_authorized_operations(true);
    let mut body = connection.call(ApiKey::Metadata, 12, &request).await;
    MetadataResponse::decode(&mut body, 12).unwrap().topics[0].topic_authorized_operations
}

async fn metadata_topic_error(connection: &mut Connection, topic: &str) -> i16 {
    let mut body = connection
        .call(ApiKey::Metadata, 12, &metadata_of(topic))
        .await;
    MetadataResponse::decode(&mut body, 12).unwrap().topics[0].error_code
}

#[tokio::test]
async fn requests_before_authentication_close_the_connection() {
    let (node, _, sasl) = start(0).await;
    let mut connection = Connection::open(&sasl).await;
    // ApiVersions is served before authentication (clients ask it first).
    let mut body = connection
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(
        ApiVersionsResponse::decode(&mut body, 3)
            .unwrap()
            .error_code,
        0
    );
    // Metadata is not: the connection closes without an answer.
    let request = node_support::framed(ApiKey::Metadata, 12, 99, &metadata_of("t"));
    tokio::io::AsyncWriteExt::write_all(&mut connection.stream, &request)
        .await
        .unwrap();
    assert_closed(&mut connection).await;
    // SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE, then closed.
    let mut connection = Connection::open(&sasl).await;
    let answer = authenticate(&mut connection, b"n,,n=alice,r=abc").await;
    assert_eq!(answer.error_code, E::IllegalSaslState.code());
    assert_closed(&mut connection).await;
    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the list, the connection stays.
    let mut connection = Connection::open(&sasl).await;
    let refused = handshake(&mut connection, "GSSAPI").await;
    assert_eq!(refused.error_code, E::UnsupportedSaslMechanism.code());
    let offered: Vec<String> = refused.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        offered,
        [
            "SCRAM-SHA-256",
            "SCRAM-SHA-512",
            "PLAIN",
            "RILL-CLUSTER-HMAC-SHA256"
        ]
    );
    node.shutdown();
}

#[tokio::test]
async fn a_scram_proof_for_a_wrong_password_is_refused_and_nothing_is_served() {
    let (node, _, sasl) = start(0).await;
    for (user, mechanism) in [
        (ALICE, ScramMechanism::Sha256),
        (BOB, ScramMechanism::Sha512),
    ] {
        let (mut connection, answer) = scram(&sasl, mechanism, user, "wrong password").await;
        assert_eq!(
            answer.error_code,
            E::SaslAuthenticationFailed.code(),
            "{user}"
        );
        assert_closed(&mut connection).await;
        // An unknown user gets a challenge too and fails at the proof, the same way.
        let (mut connection, answer) = scram(&sasl, mechanism, "mallory", PASSWORD).await;
        assert_eq!(answer.error_code, E::SaslAuthenticationFailed.code());
        assert_closed(&mut connection).await;
        // The right password: the server proves itself, requests are served.
        let (mut connection, answer) = scram(&sasl, mechanism, user, PASSWORD).await;
        assert_eq!(answer.error_code, 0, "{user}: {answer:?}");
        assert!(String::from_utf8_lossy(&answer.auth_bytes).starts_with("v="));
        assert_eq!(answer.session_lifetime_ms, 0, "no lifetime configured");
        let metadata = connection.metadata().await;
        assert_eq!(metadata.brokers.len(), 1);
        // The broker is the SASL listener's endpoint, not the PLAINTEXT one.
        assert_eq!(
            metadata.brokers[0].port.to_string(),
            sasl.rsplit(':').next().unwrap()
        );
    }
    node.shutdown();
}

#[tokio::test]
async fn garbage_sasl_bytes_are_refused_and_the_node_serves_on() {
    let (node, plaintext, sasl) = start(0).await;
    let garbage: [&[u8]; 6] = [
        b"",
        b"\x00\xff\x10garbage",
        b"n,,n=alice",
        b"p=tls-server-end-point,,n=alice,r=x",
        &[b'a'; 5000],
        b"n,,n=alice,r=x,tokenauth=true",
    ];
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        for bytes in garbage {
            let mut connection = Connection::open(&sasl).await;
            assert_eq!(handshake(&mut connection, mechanism).await.error_code, 0);
            let answer = authenticate(&mut connection, bytes).await;
            assert_eq!(
                answer.error_code,
                E::SaslAuthenticationFailed.code(),
                "{mechanism} {bytes:?}"
            );
            assert_closed(&mut connection).await;
        }
    }
    // A SCRAM final message that is not one, after a good first message.
    let mut connection = Connection::open(&sasl).await;
    assert_eq!(
        handshake(&mut connection, "SCRAM-SHA-256").await.error_code,
        0
    );
    let first = authenticate(&mut connection, b"n,,n=alice,r=abcdef").await;
    assert_eq!(first.error_code, 0);
    let answer = authenticate(&mut connection, b"c=biws,r=abcdef,p=!!!").await;
    assert_eq!(answer.error_code, E::SaslAuthenticationFailed.code());
    assert_closed(&mut connection).await;
    // The node still serves both listeners.
    let mut connection = Connection::open(&plaintext).await;
    assert_eq!(connection.metadata().await.brokers.len(), 1);
    let (_, answer) = scram(&sasl, ScramMechanism::Sha256, ALICE, PASSWORD).await;
    assert_eq!(answer.error_code, 0);
    node.shutdown();
}

#[tokio::test]
async fn plain_passwords_are_checked_against_the_scram_credentials() {
    let (node, _, sasl) = start(0).await;
    for (token, ok) in [
        (format!("\0{ALICE}\0{PASSWORD}"), true),
        (format!("{BOB}\0{BOB}\0{PASSWORD}"), true),
        (format!("\0{ALICE}\0not it"), false),
        (format!("{BOB}\0{ALICE}\0{PASSWORD}"), false), // another authorisation id
        (format!("\0nobody\0{PASSWORD}"), false),
    ] {
        let mut connection = Connection::open(&sasl).await;
        assert_eq!(handshake(&mut connection, "PLAIN").await.error_code, 0);
        let answer = authenticate(&mut connection, token.as_bytes()).await;
        if ok {
            assert_eq!(answer.error_code, 0, "{token:?}");
            assert_eq!(connection.metadata().await.brokers.len(), 1);
        } else {
            assert_eq!(
                answer.error_code,
                E::SaslAuthenticationFailed.code(),
                "{token:?}"
            );
            assert_closed(&mut connection).await;
        }
    }
    node.shutdown();
}

#[tokio::test]
async fn a_session_past_its_lifetime_is_closed_kip_368() {
    let (node, _, sasl) = start(300).await;
    let (mut connection, answer) = scram(&sasl, ScramMechanism::Sha256, ALICE, PASSWORD).await;
    assert_eq!(answer.error_code, 0);
    assert_eq!(answer.session_lifetime_ms, 300);
    assert_eq!(connection.metadata().await.brokers.len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let request = node_support::framed(ApiKey::Metadata, 12, 77, &metadata_of("t"));
    tokio::io::AsyncWriteExt::write_all(&mut connection.stream, &request)
        .await
        .unwrap();
    assert_closed(&mut connection).await;
    node.shutdown();
}

#[tokio::test]
async fn acls_are_enforced_with_kafkas_codes_and_managed_by_a_super_user() {
    let (node, plaintext, sasl) = start(0).await;
    let (mut alice, answer) = scram(&sasl, ScramMechanism::Sha256, ALICE, PASSWORD).await;
    assert_eq!(answer.error_code, 0);
    let (mut bob, answer) = scram(&sasl, ScramMechanism::Sha512, BOB, PASSWORD).await;
    assert_eq!(answer.error_code, 0);
    // The super user creates a topic (auto-created by Metadata); bob may not even see it.
    assert_eq!(metadata_topic_error(&mut alice, "orders").await, 0);
    assert_eq!(
        metadata_topic_error(&mut bob, "orders").await,
        E::TopicAuthorizationFailed.code()
    );
    // Nor may an anonymous client of the PLAINTEXT listener (the authorizer is on with SASL).
    let mut anonymous = Connection::open(&plaintext).await;
    assert_eq!(
        metadata_topic_error(&mut anonymous, "orders").await,
        E::TopicAuthorizationFailed.code()
    );
    // bob may not manage ACLs.
    let mut body = bob
        .call(
            ApiKey::DescribeAcls,
            3,
            &DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        )
        .await;
    assert_eq!(
        DescribeAclsResponse::decode(&mut body, 3)
            .unwrap()
            .error_code,
        E::ClusterAuthorizationFailed.code()
    );
    // alice lets bob read topics starting with "ord".
    let created = create_acl(&mut alice, acl_for_bob("ord", 4, 3)).await;
    assert_eq!(created.results.len(), 1);
    assert_eq!(created.results[0].error_code, 0, "{created:?}");
    // READ implies DESCRIBE: bob sees "orders" now, still not "other".
    assert_eq!(metadata_topic_error(&mut bob, "orders").await, 0);
    // KIP-430: asked for, Metadata lists what each may do: bob READ and (implied) DESCRIBE;
    // the super user all eight topic operations (READ 3 .. ALTER_CONFIGS 11, not 9 or 2).
    assert_eq!(topic_operations(&mut bob, "orders").await, 1 << 3 | 1 << 8);
    let all_topic_operations = [3, 4, 5, 6, 7, 8, 10, 11]
        .iter()
        .fold(0, |field, operation| field | 1 << operation);
    assert_eq!(
        topic_operations(&mut alice, "orders").await,
        all_topic_operations
    );
    // Not asked for: Kafka's "absent" value.
    let mut body = bob.call(ApiKey::Metadata, 12, &metadata_of("orders")).await;
    let topic = &MetadataResponse::decode(&mut body, 12).unwrap().topics[0];
    assert_eq!(topic.topic_authorized_operations, i32::MIN);
    assert_eq!(metadata_topic_error(&mut alice, "other").await, 0);
    assert_eq!(
        metadata_topic_error(&mut bob, "other").await,
        E::TopicAuthorizationFailed.code()
    );
    // An invalid binding (operation ANY) is refused with INVALID_REQUEST, nothing stored.
    let refused = create_acl(&mut alice, acl_for_bob("x", 3, 1)).await;
    assert_eq!(refused.results[0].error_code, E::InvalidRequest.code());
    assert_eq!(node.broker.as_ref().unwrap().image().acls().len(), 1);
    node.shutdown();
}

/// OAUTHBEARER on the wire, as Kafka's OAuthBearerSaslServer: a refused token gets RFC 7628's
/// error JSON as a challenge, and the client's `^A` then fails the exchange with it; a
/// malformed message fails at once; a valid token's session lasts min(its remaining lifetime,
/// connections.max.reauth.ms); the node serves on.
#[tokio::test]
async fn oauthbearer_refusals_follow_rfc_7628_and_sessions_end_with_the_token() {
    let (_node, _plaintext, sasl) = start_with(60_000, |security| {
        security.sasl_mechanisms.push("OAUTHBEARER".into());
        security.oauthbearer.unsecured = true;
        security.oauthbearer.unsecured_required_scope = vec!["kafka".into()];
        security.super_users.push("User:carol".into());
    })
    .await;
    let now = client::clock::wall_clock_ms();
    let scope = vec!["kafka".to_string()];
    let first = |token: &str| client::sasl::oauthbearer_first(token, &[]);
    // An expired token: the error challenge, then the refusal after ^A, then closed.
    let expired = client::sasl::unsecured_jwt("carol", now - 7_200_000, 3_600_000, &scope);
    let mut connection = Connection::open(&sasl).await;
    let offered = handshake(&mut connection, "OAUTHBEARER").await;
    assert_eq!(offered.error_code, 0);
    assert!(offered
        .mechanisms
        .iter()
        .any(|m| m.as_str() == "OAUTHBEARER"));
    let challenge = authenticate(&mut connection, &first(&expired)).await;
    assert_eq!(challenge.error_code, 0);
    assert_eq!(&challenge.auth_bytes[..], br#"{"status":"invalid_token"}"#);
    let refusal = authenticate(&mut connection, b"\x01").await;
    assert_eq!(refusal.error_code, E::SaslAuthenticationFailed.code());
    assert_eq!(
        refusal.error_message.as_deref(),
        Some(r#"{"status":"invalid_token"}"#)
    );
    assert_closed(&mut connection).await;
    // A token without the required scope: insufficient_scope.
    let unscoped = client::sasl::unsecured_jwt("carol", now, 60_000, &[]);
    let mut connection = Connection::open(&sasl).await;
    handshake(&mut connection, "OAUTHBEARER").await;
    let challenge = authenticate(&mut connection, &first(&unscoped)).await;
    assert_eq!(
        &challenge.auth_bytes[..],
        br#"{"scope":"[kafka]","status":"insufficient_scope"}"#
    );
    // Anything but ^A after the challenge is refused too.
    let refusal = authenticate(&mut connection, &first(&unscoped)).await;
    assert_eq!(refusal.error_code, E::SaslAuthenticationFailed.code());
    assert_closed(&mut connection).await;
    // A malformed message: refused at once.
    let mut connection = Connection::open(&sasl).await;
    handshake(&mut connection, "OAUTHBEARER").await;
    let refusal = authenticate(&mut connection, b"n,,\x01auth=Basic abc\x01\x01").await;
    assert_eq!(refusal.error_code, E::SaslAuthenticationFailed.code());
    assert_closed(&mut connection).await;
    // An authorization id other than the token's principal.
    let good = client::sasl::unsecured_jwt("carol", now, 20_000, &scope);
    let mut connection = Connection::open(&sasl).await;
    handshake(&mut connection, "OAUTHBEARER").await;
    let message = format!("n,a=dave,\x01auth=Bearer {good}\x01\x01");
    let refusal = authenticate(&mut connection, message.as_bytes()).await;
    assert_eq!(refusal.error_code, E::SaslAuthenticationFailed.code());
    // A valid token living 20 s: the session lasts at most that (below the 60 s
    // connections.max.reauth.ms), and Metadata is served.
    let mut connection = Connection::open(&sasl).await;
    handshake(&mut connection, "OAUTHBEARER").await;
    let done = authenticate(&mut connection, &first(&good)).await;
    assert_eq!(done.error_code, 0);
    assert!(done.auth_bytes.is_empty());
    assert!(
        (10_000..=20_000).contains(&done.session_lifetime_ms),
        "{}",
        done.session_lifetime_ms
    );
    let metadata = connection.metadata().await;
    assert_eq!(metadata.brokers.len(), 1);
    // A long-lived token: connections.max.reauth.ms bounds the session.
    let long = client::sasl::unsecured_jwt("carol", now, 3_600_000, &scope);
    let mut connection = Connection::open(&sasl).await;
    handshake(&mut connection, "OAUTHBEARER").await;
    let done = authenticate(&mut connection, &first(&long)).await;
    assert_eq!(done.session_lifetime_ms, 60_000);
}
