//! rill's own client (`client/`) against a real node over real TCP with SASL_PLAINTEXT and
//! SASL_SSL listeners: each mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER with
//! unsecured and JWKS-signed tokens) authenticates and serves admin, produce and consume;
//! expired, wrongly addressed, forged and unsigned tokens are refused; a wrong password, a mechanism for another user's hash, an
//! unknown CA and a missing SASL are refused with `ClientError::Authentication`; a SASL session
//! past its lifetime (KIP-368) is replaced by a fresh connection. Production build only (TLS is a
//! plain stream under the simulator; the campaign runs the SASL path on its SASL seeds).
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use broker::node::config::{
    ExtraListener, SecuritySettings, StaticScramUser, Timing, TopicDefaults,
};
use broker::node::{self, NodeOptions};
use broker::security::SecurityProtocol as ListenerProtocol;
use bytes::Bytes;
use client::admin::Admin;
use client::consumer::{Consumer, ConsumerConfig};
use client::producer::{Producer, ProducerConfig};
use client::{ClientConfig, ClientError, SaslMechanism};
use controller::ScramMechanism;
use log_core::MemDisk;
use node_support::{free_port, ready, single_node_config, Connection};

const ALICE: &str = "alice"; // SCRAM-SHA-256, a super user
const BOB: &str = "bob"; // SCRAM-SHA-512, a super user
const PASSWORD: &str = "correct horse battery staple";

/// A node's listeners: PLAINTEXT (readiness), SASL_PLAINTEXT and SASL_SSL.
struct SecureNode {
    _handle: node::NodeHandle,
    /// Its certificates and data, removed when the node goes.
    _dir: tempfile::TempDir,
    sasl_plaintext: String,
    sasl_ssl: String,
    plaintext: String,
    /// The CA that signed the node's certificate.
    ca_file: PathBuf,
}

/// A fresh directory under the system's temporary one, removed with the guard.
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("rill-{name}-"))
        .tempdir()
        .unwrap()
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it: (ca.pem, node.pem, node.key).
fn certificates(dir: &Path, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (paths, _) = certificates_and_ca(dir, tag);
    paths
}

/// A client certificate for `CN=common_name` signed by `ca`: (cert.pem, key.pem).
fn client_certificate(
    dir: &Path,
    ca: &(rcgen::Certificate, rcgen::KeyPair),
    common_name: &str,
) -> (PathBuf, PathBuf) {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
    let paths = (
        dir.join(format!("client-{common_name}.pem")),
        dir.join(format!("client-{common_name}.key")),
    );
    std::fs::write(&paths.0, cert.pem()).unwrap();
    std::fs::write(&paths.1, key.serialize_pem()).unwrap();
    paths
}

/// [`certificates`] and the CA with its key, to sign more.
#[allow(clippy::type_complexity)]
fn certificates_and_ca(
    dir: &Path,
    tag: &str,
) -> (
    (PathBuf, PathBuf, PathBuf),
    (rcgen::Certificate, rcgen::KeyPair),
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("test CA {tag}"));
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "test node");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join(format!("ca-{tag}.pem")),
        dir.join(format!("node-{tag}.pem")),
        dir.join(format!("node-{tag}.key")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    (paths, (ca, ca_key))
}

async fn start(name: &str, reauth_ms: u64) -> SecureNode {
    start_with(name, reauth_ms, |_| {}).await
}

/// [`start`] with its security settings changed by `adjust`.
async fn start_with(
    name: &str,
    reauth_ms: u64,
    adjust: impl FnOnce(&mut SecuritySettings),
) -> SecureNode {
    let dir_guard = temp_dir(name);
    let dir = dir_guard.path().to_path_buf();
    let (ca_file, cert_file, key_file) = certificates(&dir, "a");
    let (kafka, controller, sasl, ssl) = (free_port(), free_port(), free_port(), free_port());
    let mut config = single_node_config(
        kafka,
        controller,
        TopicDefaults::default(),
        Timing::default(),
    );
    let listener = |name: &str, port: u16, protocol| ExtraListener {
        name: name.into(),
        address: format!("127.0.0.1:{port}"),
        advertised: None,
        protocol,
    };
    config.listeners.extra = vec![
        listener("SASL_PLAINTEXT", sasl, ListenerProtocol::SaslPlaintext),
        listener("SASL_SSL", ssl, ListenerProtocol::SaslSsl),
    ];
    config.security = SecuritySettings {
        cluster_secret: Some("client-security-test-secret".into()),
        super_users: vec![format!("User:{ALICE}"), format!("User:{BOB}")],
        scram_users: vec![
            StaticScramUser::from_password(ALICE, ScramMechanism::Sha256, PASSWORD, b"salt-a"),
            StaticScramUser::from_password(BOB, ScramMechanism::Sha512, PASSWORD, b"salt-b"),
        ],
        connections_max_reauth_ms: reauth_ms,
        tls_cert_file: Some(cert_file),
        tls_key_file: Some(key_file),
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
    SecureNode {
        _handle: handle,
        _dir: dir_guard,
        sasl_plaintext: format!("127.0.0.1:{sasl}"),
        sasl_ssl: format!("127.0.0.1:{ssl}"),
        plaintext,
        ca_file,
    }
}

/// Client settings for `address` as librdkafka would take them.
fn client(
    address: &str,
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    ca: Option<&Path>,
) -> ClientConfig {
    let mut config = ClientConfig::new(vec![address.to_string()]);
    config.request_timeout_ms = 5_000;
    config.set("security.protocol", protocol).unwrap();
    config.set("sasl.mechanism", mechanism).unwrap();
    config.set("sasl.username", user).unwrap();
    config.set("sasl.password", password).unwrap();
    if let Some(ca) = ca {
        config.set("ssl.ca.location", ca.to_str().unwrap()).unwrap();
    }
    config
}

/// The brokers a Metadata request over `config` lists.
async fn metadata_of(config: ClientConfig) -> Result<usize, ClientError> {
    let admin = Admin::new(config).unwrap();
    admin.metadata(None).await.map(|m| m.brokers.len())
}

/// The node still serves alice over SASL_SSL with SCRAM-SHA-256 (after a test's refusals).
async fn assert_serves_alice(node: &SecureNode, ca: Option<&Path>) {
    let good = client(
        &node.sasl_ssl,
        "SASL_SSL",
        "SCRAM-SHA-256",
        ALICE,
        PASSWORD,
        ca,
    );
    assert_eq!(metadata_of(good).await.unwrap(), 1);
}

fn assert_refused(result: Result<impl std::fmt::Debug, ClientError>, what: &str) {
    match result {
        Err(ClientError::Authentication { reason, .. }) => {
            eprintln!("{what}: refused: {reason}");
        }
        other => panic!("{what}: expected an authentication refusal, got {other:?}"),
    }
}

/// Produces `count` records to partition 0 of `topic` and reads them back, all through `config`.
async fn produce_and_consume(config: &ClientConfig, topic: &str, count: usize) {
    let admin = Admin::new(config.clone()).unwrap();
    admin.create_topic(topic, 1, 1, &[]).await.unwrap();
    let producer = Producer::new(config.clone(), ProducerConfig::default())
        .await
        .unwrap();
    for i in 0..count {
        producer
            .send(topic, Some(0), None, Bytes::from(format!("v{i}")))
            .await
            .unwrap();
    }
    producer.close().await;
    let mut consumer = Consumer::new(config.clone(), ConsumerConfig::new(None)).unwrap();
    consumer.assign(vec![(topic.to_string(), 0)]);
    let mut values = Vec::new();
    for _ in 0..100 {
        for record in consumer.poll(200).await.unwrap() {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
        if values.len() >= count {
            break;
        }
    }
    let expected: Vec<String> = (0..count).map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected, "{topic}");
}

#[tokio::test]
async fn every_mechanism_authenticates_over_sasl_plaintext_and_sasl_ssl() {
    let node = start("client-mechanisms", 0).await;
    let ca = Some(node.ca_file.as_path());
    let cases = [
        (
            &node.sasl_plaintext,
            "SASL_PLAINTEXT",
            "PLAIN",
            ALICE,
            "p-plain",
        ),
        (
            &node.sasl_plaintext,
            "SASL_PLAINTEXT",
            "SCRAM-SHA-256",
            ALICE,
            "p-256",
        ),
        (
            &node.sasl_plaintext,
            "SASL_PLAINTEXT",
            "SCRAM-SHA-512",
            BOB,
            "p-512",
        ),
        (&node.sasl_ssl, "SASL_SSL", "SCRAM-SHA-256", ALICE, "s-256"),
        (&node.sasl_ssl, "SASL_SSL", "SCRAM-SHA-512", BOB, "s-512"),
        (&node.sasl_ssl, "SASL_SSL", "PLAIN", BOB, "s-plain"),
    ];
    for (address, protocol, mechanism, user, topic) in cases {
        let config = client(address, protocol, mechanism, user, PASSWORD, ca);
        produce_and_consume(&config, topic, 20).await;
        // Metadata over this listener names this listener's endpoint only.
        let metadata = Admin::new(config).unwrap().metadata(None).await.unwrap();
        let hosts: Vec<String> = metadata.brokers.values().cloned().collect();
        assert_eq!(hosts, [address.to_string()], "{protocol} {mechanism}");
    }
}

#[tokio::test]
async fn wrong_credentials_certificates_and_protocols_are_refused() {
    let node = start("client-refusals", 0).await;
    let ca = Some(node.ca_file.as_path());
    for (protocol, address) in [
        ("SASL_PLAINTEXT", &node.sasl_plaintext),
        ("SASL_SSL", &node.sasl_ssl),
    ] {
        for mechanism in SaslMechanism::WITH_PASSWORD {
            let wrong = client(address, protocol, mechanism.name(), ALICE, "wrong", ca);
            assert_refused(metadata_of(wrong).await, "a wrong password");
        }
        // bob has a SHA-512 credential only: SCRAM-SHA-256 cannot prove him.
        let other_hash = client(address, protocol, "SCRAM-SHA-256", BOB, PASSWORD, ca);
        assert_refused(
            metadata_of(other_hash).await,
            "a mechanism the user has no key for",
        );
        let unknown = client(address, protocol, "SCRAM-SHA-512", "mallory", PASSWORD, ca);
        assert_refused(metadata_of(unknown).await, "an unknown user");
    }
    // A CA that did not sign the node's certificate: the client refuses the broker.
    let refusals = temp_dir("client-refusals");
    let (other_ca, _, _) = certificates(refusals.path(), "other");
    let config = client(
        &node.sasl_ssl,
        "SASL_SSL",
        "SCRAM-SHA-256",
        ALICE,
        PASSWORD,
        Some(&other_ca),
    );
    assert_refused(metadata_of(config).await, "a certificate from another CA");
    // SASL_SSL settings need a CA file.
    let mut config = client(&node.sasl_ssl, "SASL_SSL", "PLAIN", ALICE, PASSWORD, None);
    assert!(matches!(
        Admin::new(config.clone()),
        Err(ClientError::Config(_))
    ));
    // A plain client on the SASL listener is closed before Metadata is served.
    config.security = Default::default();
    config.bootstrap = vec![node.sasl_plaintext.clone()];
    config.request_timeout_ms = 2_000;
    assert!(
        metadata_of(config.clone()).await.is_err(),
        "no SASL, no Metadata"
    );
    // The same client on the PLAINTEXT listener is anonymous: the authorizer (on, as SASL is)
    // lets it see the broker list and nothing more; it is not refused at the connection.
    config.bootstrap = vec![node.plaintext.clone()];
    assert_eq!(metadata_of(config).await.unwrap(), 1);
    // And the node serves on.
    assert_serves_alice(&node, ca).await;
}

#[tokio::test]
async fn a_session_near_its_lifetime_is_replaced_by_a_fresh_connection() {
    // The node closes a connection whose 1.5 s session ended at its next request (KIP-368);
    // the client stops using it at 90% of the lifetime and authenticates a new one.
    let node = start("client-reauth", 1_500).await;
    let mut config = client(
        &node.sasl_plaintext,
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        BOB,
        PASSWORD,
        None,
    );
    config.retry_backoff_ms = 10;
    let admin = Admin::new(config.clone()).unwrap();
    for _ in 0..4 {
        assert_eq!(admin.metadata(None).await.unwrap().brokers.len(), 1);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // One connection by hand: its session deadline passes and it stops being usable.
    let connection = client::connection::Connection::open(&node.sasl_plaintext, &config)
        .await
        .unwrap();
    assert!(connection.is_usable());
    tokio::time::sleep(Duration::from_millis(1_400)).await;
    assert!(!connection.is_usable(), "past 90% of the session");
    assert!(!connection.is_closed());
}

#[tokio::test]
async fn mutual_tls_names_the_client_by_its_certificate_subject() {
    use broker::node::config::TlsClientAuth;
    let dir_guard = temp_dir("client-mtls");
    let dir = dir_guard.path().to_path_buf();
    let ((ca_file, cert_file, key_file), ca) = certificates_and_ca(&dir, "m");
    let (carol_cert, carol_key) = client_certificate(&dir, &ca, "carol");
    let (dave_cert, dave_key) = client_certificate(&dir, &ca, "dave");
    let (_, strangers) = certificates_and_ca(&dir, "stranger");
    // eve's certificate says CN=carol, from a CA the node does not trust.
    let eve_dir = dir.join("eve");
    std::fs::create_dir_all(&eve_dir).unwrap();
    let (eve_cert, eve_key) = client_certificate(&eve_dir, &strangers, "carol");
    let (kafka, controller, ssl) = (free_port(), free_port(), free_port());
    let mut config = single_node_config(
        kafka,
        controller,
        TopicDefaults::default(),
        Timing::default(),
    );
    config.listeners.extra = vec![ExtraListener {
        name: "SSL".into(),
        address: format!("127.0.0.1:{ssl}"),
        advertised: None,
        protocol: ListenerProtocol::Ssl,
    }];
    config.security = SecuritySettings {
        cluster_secret: Some("client-security-test-secret".into()),
        // Kafka's default principal builder: `User:` and the subject's RFC 2253 name.
        super_users: vec!["User:CN=carol".into()],
        authorizer: Some(true),
        tls_cert_file: Some(cert_file),
        tls_key_file: Some(key_file),
        tls_client_auth: TlsClientAuth::Required,
        tls_client_ca_file: Some(ca_file.clone()),
        ..SecuritySettings::default()
    };
    let disk: Arc<dyn log_core::Disk> = MemDisk::new(1).as_disk();
    let _handle = node::start(config, disk, NodeOptions::default())
        .await
        .unwrap();
    let mut connection = Connection::open(&format!("127.0.0.1:{kafka}")).await;
    ready(&mut connection).await;
    let address = format!("127.0.0.1:{ssl}");
    let ssl_client = |cert: Option<&Path>, key: Option<&Path>| {
        let mut config = ClientConfig::new(vec![address.clone()]);
        config.request_timeout_ms = 5_000;
        config.set("security.protocol", "SSL").unwrap();
        config
            .set("ssl.ca.location", ca_file.to_str().unwrap())
            .unwrap();
        if let (Some(cert), Some(key)) = (cert, key) {
            config
                .set("ssl.certificate.location", cert.to_str().unwrap())
                .unwrap();
            config
                .set("ssl.key.location", key.to_str().unwrap())
                .unwrap();
        }
        config
    };
    // carol, a super user by her certificate's subject, produces and consumes.
    let carol = ssl_client(Some(&carol_cert), Some(&carol_key));
    produce_and_consume(&carol, "mtls", 10).await;
    // dave has a valid certificate but no ACL: authenticated, then refused by the authorizer.
    let dave = Admin::new(ssl_client(Some(&dave_cert), Some(&dave_key))).unwrap();
    let refused = dave.create_topic("dave", 1, 1, &[]).await;
    let code = refused.as_ref().err().and_then(ClientError::kafka_code);
    assert!(
        matches!(code, Some(29 | 31)),
        "dave is User:CN=dave, not a super user: {refused:?}"
    );
    // No certificate, or one from another CA: the TLS handshake fails.
    for (what, config) in [
        ("no certificate", ssl_client(None, None)),
        ("another CA", ssl_client(Some(&eve_cert), Some(&eve_key))),
    ] {
        let admin = Admin::new(config).unwrap();
        let result = admin.metadata(None).await;
        assert!(
            matches!(
                result,
                Err(ClientError::Authentication { .. } | ClientError::Connect { .. })
            ),
            "{what}: {result:?}"
        );
    }
    // carol again: the node serves on.
    let admin = Admin::new(carol).unwrap();
    assert_eq!(admin.metadata(None).await.unwrap().brokers.len(), 1);
}

/// A client certificate with the subject `dn` (RDNs in issue order, the first is the DN's last)
/// signed by `ca`: (cert.pem, key.pem).
fn client_certificate_with(
    dir: &Path,
    ca: &(rcgen::Certificate, rcgen::KeyPair),
    tag: &str,
    dn: &[(rcgen::DnType, &str)],
) -> (PathBuf, PathBuf) {
    use rcgen::{CertificateParams, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in dn {
        params.distinguished_name.push(kind.clone(), *value);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
    let paths = (
        dir.join(format!("client-{tag}.pem")),
        dir.join(format!("client-{tag}.key")),
    );
    std::fs::write(&paths.0, cert.pem()).unwrap();
    std::fs::write(&paths.1, key.serialize_pem()).unwrap();
    paths
}

/// `ssl.principal.mapping.rules` (KIP-371) on a mutual-TLS listener: the mapped name is the
/// principal ACLs name, and a certificate no rule maps is refused.
#[tokio::test]
async fn principal_mapping_rules_name_mutual_tls_clients_for_acls() {
    use broker::node::config::TlsClientAuth;
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{
        ApiKey, CreateAclsRequest, MetadataRequest, RequestKind, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use rcgen::DnType;
    let dir_guard = temp_dir("client-mapping");
    let dir = dir_guard.path().to_path_buf();
    let ((ca_file, cert_file, key_file), ca) = certificates_and_ca(&dir, "p");
    let subject = |cn: &'static str, ou: &'static str| {
        vec![
            (DnType::OrganizationName, "Rill"),
            (DnType::OrganizationalUnitName, ou),
            (DnType::CommonName, cn),
        ]
    };
    // CN=Root,OU=Admins,O=Rill -> root; CN=Alice,OU=ServiceUsers,O=Rill -> alice (lower case);
    // CN=Bob,OU=ServiceUsers,O=Rill -> bob; CN=Carol,OU=People,O=Rill: no rule, no DEFAULT.
    let root = client_certificate_with(&dir, &ca, "root", &subject("Root", "Admins"));
    let alice = client_certificate_with(&dir, &ca, "alice", &subject("Alice", "ServiceUsers"));
    let bob = client_certificate_with(&dir, &ca, "bob", &subject("Bob", "ServiceUsers"));
    let carol = client_certificate_with(&dir, &ca, "carol", &subject("Carol", "People"));
    let (kafka, controller, ssl) = (free_port(), free_port(), free_port());
    let mut config = single_node_config(
        kafka,
        controller,
        TopicDefaults::default(),
        Timing::default(),
    );
    config.listeners.extra = vec![ExtraListener {
        name: "SSL".into(),
        address: format!("127.0.0.1:{ssl}"),
        advertised: None,
        protocol: ListenerProtocol::Ssl,
    }];
    config.security = SecuritySettings {
        cluster_secret: Some("client-security-test-secret".into()),
        super_users: vec!["User:root".into()],
        authorizer: Some(true),
        tls_cert_file: Some(cert_file),
        tls_key_file: Some(key_file),
        tls_client_auth: TlsClientAuth::Required,
        tls_client_ca_file: Some(ca_file.clone()),
        ssl_principal_mapping_rules: Some(
            "RULE:^CN=(.*?),OU=ServiceUsers,.*$/$1/L,\n RULE:^CN=(.*?),OU=Admins,.*$/$1/L".into(),
        ),
        ..SecuritySettings::default()
    };
    // A rule the config refuses: the node does not start.
    let mut bad = config.clone();
    bad.security.ssl_principal_mapping_rules = Some("RULE:^CN=(.*)$/$1/L/U".into());
    let refused = node::start(bad, MemDisk::new(1).as_disk(), NodeOptions::default()).await;
    let error = refused
        .err()
        .expect("a bad rule refuses the config")
        .to_string();
    assert!(
        error.contains("ssl_principal_mapping_rules") && error.contains("unmatched substring"),
        "{error}"
    );
    let disk: Arc<dyn log_core::Disk> = MemDisk::new(1).as_disk();
    let _handle = node::start(config, disk, NodeOptions::default())
        .await
        .unwrap();
    let mut connection = Connection::open(&format!("127.0.0.1:{kafka}")).await;
    ready(&mut connection).await;
    let address = format!("127.0.0.1:{ssl}");
    let ssl_client = |(cert, key): &(PathBuf, PathBuf)| {
        let mut config = ClientConfig::new(vec![address.clone()]);
        config.request_timeout_ms = 5_000;
        config.set("security.protocol", "SSL").unwrap();
        for (name, path) in [
            ("ssl.ca.location", ca_file.as_path()),
            ("ssl.certificate.location", cert.as_path()),
            ("ssl.key.location", key.as_path()),
        ] {
            config.set(name, path.to_str().unwrap()).unwrap();
        }
        config
    };
    // root (User:root, a super user by its mapped name) creates the topic and lets alice write.
    let root = ssl_client(&root);
    Admin::new(root.clone())
        .unwrap()
        .create_topic("mapped", 1, 1, &[])
        .await
        .unwrap();
    let mut admin = client::connection::Connection::open(&address, &root)
        .await
        .unwrap();
    let creation = AclCreation::default()
        .with_resource_type(2) // TOPIC
        .with_resource_name(StrBytes::from_static_str("mapped"))
        .with_resource_pattern_type(3) // LITERAL
        .with_principal(StrBytes::from_static_str("User:alice"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(4) // WRITE
        .with_permission_type(3); // ALLOW
    let reply = admin
        .call(ApiKey::CreateAcls, 5_000, |_| {
            Ok(RequestKind::CreateAcls(
                CreateAclsRequest::default().with_creations(vec![creation]),
            ))
        })
        .await
        .unwrap();
    let ResponseKind::CreateAcls(reply) = reply else {
        panic!("{reply:?}");
    };
    assert_eq!(reply.results[0].error_code, 0, "{reply:?}");
    // alice (CN=Alice,OU=ServiceUsers,... -> alice) may write to the topic.
    let producer = Producer::new(ssl_client(&alice), ProducerConfig::default())
        .await
        .unwrap();
    for i in 0..5 {
        producer
            .send("mapped", Some(0), None, Bytes::from(format!("v{i}")))
            .await
            .unwrap();
    }
    producer.close().await;
    // bob (-> bob) has no ACL: Metadata answers TOPIC_AUTHORIZATION_FAILED for the topic
    // (rill's producer reports that as an unknown topic) and his produce fails.
    let metadata_error = |config: ClientConfig| async move {
        let bootstrap = config.bootstrap.clone();
        let mut connection = client::connection::Connection::open(&bootstrap[0], &config)
            .await
            .unwrap();
        let reply = connection
            .call(ApiKey::Metadata, 5_000, |_| {
                Ok(RequestKind::Metadata(
                    MetadataRequest::default()
                        .with_topics(Some(vec![MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_static_str("mapped"))))])),
                ))
            })
            .await
            .unwrap();
        let ResponseKind::Metadata(reply) = reply else {
            panic!("{reply:?}");
        };
        reply.topics[0].error_code
    };
    assert_eq!(metadata_error(ssl_client(&alice)).await, 0, "alice may");
    assert_eq!(
        metadata_error(ssl_client(&bob)).await,
        29,
        "bob is User:bob, without an ACL: TOPIC_AUTHORIZATION_FAILED"
    );
    let producer = Producer::new(
        ssl_client(&bob),
        ProducerConfig {
            idempotence: false,
            acks: 1,
            max_in_flight: 1,
            delivery_timeout_ms: 3_000,
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let refused = producer
        .send("mapped", Some(0), None, Bytes::from_static(b"no"))
        .await;
    assert!(refused.is_err(), "bob may not write: {refused:?}");
    producer.close().await;
    // carol's subject matches no rule and there is no DEFAULT: the connection is refused.
    let result = Admin::new(ssl_client(&carol)).unwrap().metadata(None).await;
    assert!(result.is_err(), "carol has no principal: {result:?}");
    // The node serves on.
    let admin = Admin::new(root).unwrap();
    assert_eq!(admin.metadata(None).await.unwrap().brokers.len(), 1);
}

/// Runs the openssl CLI (OpenSSL 3's defaults: what operators make their stores with).
fn openssl(args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Keys and stores as Kafka configures them: the node reads its certificate and key from a
/// PKCS#12 keystore and the client CA from a PKCS#12 truststore; one client presents a PKCS#12
/// keystore and trusts a PKCS#12 truststore, another an encrypted PKCS#8 PEM key with
/// `ssl.key.password`. Wrong passwords are clear errors, at the node's start and the client's
/// connection.
#[tokio::test]
async fn pkcs12_stores_and_encrypted_keys_as_kafka_configures_them() {
    use broker::node::config::TlsClientAuth;
    use client::security::StoreType;
    let dir_guard = temp_dir("client-stores");
    let dir = dir_guard.path().to_path_buf();
    let ((ca_file, cert_file, key_file), ca) = certificates_and_ca(&dir, "s");
    let (erin_cert, erin_key) = client_certificate(&dir, &ca, "erin");
    let (frank_cert, frank_key) = client_certificate(&dir, &ca, "frank");
    let path = |name: &str| dir.join(name);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // The node's keystore (key, certificate, CA) and the truststore of client certificates' CA.
    let node_p12 = path("node.p12");
    openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        &s(&key_file),
        "-in",
        &s(&cert_file),
        "-certfile",
        &s(&ca_file),
        "-passout",
        "pass:node-store-pw",
        "-out",
        &s(&node_p12),
    ]);
    let trust_p12 = path("trust.p12");
    openssl(&[
        "pkcs12",
        "-export",
        "-nokeys",
        "-in",
        &s(&ca_file),
        "-passout",
        "pass:trust-pw",
        "-out",
        &s(&trust_p12),
    ]);
    // erin: a PKCS#12 keystore; frank: an encrypted PKCS#8 key.
    let erin_p12 = path("erin.p12");
    openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        &s(&erin_key),
        "-in",
        &s(&erin_cert),
        "-passout",
        "pass:erin-pw",
        "-out",
        &s(&erin_p12),
    ]);
    let frank_encrypted = path("frank.enc.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &s(&frank_key),
        "-passout",
        "pass:frank-pw",
        "-out",
        &s(&frank_encrypted),
    ]);
    let (kafka, controller, ssl) = (free_port(), free_port(), free_port());
    let mut config = single_node_config(
        kafka,
        controller,
        TopicDefaults::default(),
        Timing::default(),
    );
    config.listeners.extra = vec![ExtraListener {
        name: "SSL".into(),
        address: format!("127.0.0.1:{ssl}"),
        advertised: None,
        protocol: ListenerProtocol::Ssl,
    }];
    config.security = SecuritySettings {
        cluster_secret: Some("client-security-test-secret".into()),
        super_users: vec!["User:CN=erin".into(), "User:CN=frank".into()],
        authorizer: Some(true),
        ssl_keystore_type: StoreType::Pkcs12,
        ssl_keystore_location: Some(node_p12.clone()),
        ssl_keystore_password: Some("node-store-pw".into()),
        tls_client_auth: TlsClientAuth::Required,
        ssl_truststore_type: StoreType::Pkcs12,
        ssl_truststore_location: Some(trust_p12.clone()),
        ssl_truststore_password: Some("trust-pw".into()),
        ..SecuritySettings::default()
    };
    // Wrong passwords: the node does not start, and says which file. (Each attempt on ports
    // of its own: a start that fails after binding its listeners leaves them to the process,
    // which exits on such an error.)
    for (what, file) in [("keystore", "node.p12"), ("truststore", "trust.p12")] {
        let mut bad = config.clone();
        bad.listeners.kafka = Some(format!("127.0.0.1:{}", free_port()));
        bad.listeners.controller = Some(format!("127.0.0.1:{}", free_port()));
        bad.controller_voters = vec![format!(
            "{}@{}",
            bad.node_id,
            bad.listeners.controller.clone().unwrap()
        )];
        bad.listeners.extra[0].address = format!("127.0.0.1:{}", free_port());
        if what == "keystore" {
            bad.security.ssl_keystore_password = Some("wrong".into());
        } else {
            bad.security.ssl_truststore_password = Some("wrong".into());
        }
        let refused = node::start(bad, MemDisk::new(1).as_disk(), NodeOptions::default()).await;
        let error = refused
            .err()
            .expect("a wrong password refuses the start")
            .to_string();
        assert!(
            error.contains(file) && error.contains("wrong password"),
            "{what}: {error}"
        );
    }
    let disk: Arc<dyn log_core::Disk> = MemDisk::new(1).as_disk();
    let _handle = node::start(config, disk, NodeOptions::default())
        .await
        .unwrap();
    let mut connection = Connection::open(&format!("127.0.0.1:{kafka}")).await;
    ready(&mut connection).await;
    let address = format!("127.0.0.1:{ssl}");
    let with = |properties: &[(&str, String)]| {
        let mut config = ClientConfig::new(vec![address.clone()]);
        config.request_timeout_ms = 5_000;
        config.set("security.protocol", "SSL").unwrap();
        for (name, value) in properties {
            config.set(name, value).unwrap();
        }
        config
    };
    // erin: PKCS#12 keystore and truststore, as a Java client's settings name them.
    let erin = with(&[
        ("ssl.keystore.type", "PKCS12".into()),
        ("ssl.keystore.location", s(&erin_p12)),
        ("ssl.keystore.password", "erin-pw".into()),
        ("ssl.truststore.type", "PKCS12".into()),
        ("ssl.truststore.location", s(&trust_p12)),
        ("ssl.truststore.password", "trust-pw".into()),
    ]);
    produce_and_consume(&erin, "stores", 10).await;
    // frank: an encrypted PKCS#8 key with ssl.key.password.
    let frank = |password: &str| {
        with(&[
            ("ssl.ca.location", s(&ca_file)),
            ("ssl.certificate.location", s(&frank_cert)),
            ("ssl.key.location", s(&frank_encrypted)),
            ("ssl.key.password", password.into()),
        ])
    };
    let admin = Admin::new(frank("frank-pw")).unwrap();
    assert_eq!(admin.metadata(None).await.unwrap().brokers.len(), 1);
    // Wrong client passwords: configuration errors naming the file, before any connection.
    for (what, config) in [
        ("key password", frank("wrong")),
        (
            "keystore password",
            with(&[
                ("ssl.keystore.location", s(&erin_p12)),
                ("ssl.keystore.password", "wrong".into()),
                ("ssl.ca.location", s(&ca_file)),
            ]),
        ),
    ] {
        let result = Admin::new(config).unwrap().metadata(None).await;
        match result {
            Err(ClientError::Config(reason)) => {
                assert!(reason.contains("wrong"), "{what}: {reason}");
            }
            other => panic!("{what}: expected a configuration error, got {other:?}"),
        }
    }
}

/// OAUTHBEARER settings for `address`: a token given by the caller, or (`None`) librdkafka's
/// unsecured-JWT settings for `principal`.
fn oauth_client(
    address: &str,
    protocol: &str,
    token: Option<&str>,
    principal: &str,
    ca: Option<&Path>,
) -> ClientConfig {
    let mut config = ClientConfig::new(vec![address.to_string()]);
    config.request_timeout_ms = 5_000;
    config.set("security.protocol", protocol).unwrap();
    config.set("sasl.mechanism", "OAUTHBEARER").unwrap();
    match token {
        Some(token) => {
            config.security.sasl.oauthbearer.token =
                Some(client::security::Password(token.to_string()))
        }
        None => {
            config
                .set("enable.sasl.oauthbearer.unsecure.jwt", "true")
                .unwrap();
            config
                .set(
                    "sasl.oauthbearer.config",
                    &format!("principal={principal} extension_traceId=abc"),
                )
                .unwrap();
        }
    }
    if let Some(ca) = ca {
        config.set("ssl.ca.location", ca.to_str().unwrap()).unwrap();
    }
    config
}

#[tokio::test]
async fn oauthbearer_unsecured_tokens_authenticate_and_expired_ones_are_refused() {
    let node = start_with("client-oauth-unsecured", 0, |security| {
        security.sasl_mechanisms.push("OAUTHBEARER".into());
        security.oauthbearer.unsecured = true;
        security.super_users.push("User:carol".into());
    })
    .await;
    let ca = Some(node.ca_file.as_path());
    for (address, protocol, topic) in [
        (&node.sasl_plaintext, "SASL_PLAINTEXT", "o-plain"),
        (&node.sasl_ssl, "SASL_SSL", "o-ssl"),
    ] {
        let config = oauth_client(address, protocol, None, "carol", ca);
        produce_and_consume(&config, topic, 20).await;
        // A caller's token, made by the client's helper.
        let now = client::clock::wall_clock_ms();
        let token = client::sasl::unsecured_jwt("carol", now, 60_000, &[]);
        assert_eq!(
            metadata_of(oauth_client(address, protocol, Some(&token), "", ca))
                .await
                .unwrap(),
            1
        );
        // Expired an hour ago; a signed-looking token; garbage.
        let expired = client::sasl::unsecured_jwt("carol", now - 7_200_000, 3_600_000, &[]);
        assert_refused(
            metadata_of(oauth_client(address, protocol, Some(&expired), "", ca)).await,
            "an expired token",
        );
        let signed = format!("{}sig", &token);
        assert_refused(
            metadata_of(oauth_client(address, protocol, Some(&signed), "", ca)).await,
            "a token with a signature on an unsecured listener",
        );
        assert_refused(
            metadata_of(oauth_client(address, protocol, Some("abc.def"), "", ca)).await,
            "garbage",
        );
        // A valid token for a user without ACLs: authenticated, then refused by the
        // authorizer (Metadata lists the broker but no topic).
        let admin = Admin::new(oauth_client(address, protocol, None, "dave", ca)).unwrap();
        let metadata = admin.metadata(None).await.unwrap();
        assert!(metadata.topics.is_empty(), "dave sees no topic");
    }
    // SCRAM still works beside OAUTHBEARER, and the node serves on.
    assert_serves_alice(&node, ca).await;
}

/// An EC P-256 key (rcgen, ring) and a JWKS with its public key as `kid`.
fn jwks(dir: &Path, kid: &str) -> (jsonwebtoken::EncodingKey, PathBuf) {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public = key.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(&public[1..33]), "y": b64(&public[33..]),
    }]});
    let path = dir.join(format!("jwks-{kid}.json"));
    std::fs::write(&path, jwks.to_string()).unwrap();
    (
        jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()),
        path,
    )
}

#[tokio::test]
async fn oauthbearer_signed_tokens_are_checked_against_the_jwks() {
    let dir_guard = temp_dir("client-oauth-jwks");
    let dir = dir_guard.path().to_path_buf();
    let (key, jwks_file) = jwks(&dir, "k1");
    let (other_key, _) = jwks(&dir, "k2");
    let node = start_with("client-oauth-jwks", 0, |security| {
        security.sasl_mechanisms = vec!["OAUTHBEARER".into()];
        security.oauthbearer.jwks_endpoint_url = Some(format!("file:{}", jwks_file.display()));
        security.oauthbearer.expected_audience = vec!["rill".into()];
        security.oauthbearer.expected_issuer = Some("https://idp.test".into());
        security.super_users.push("User:erin".into());
    })
    .await;
    let ca = Some(node.ca_file.as_path());
    let now_s = client::clock::wall_clock_ms() / 1000;
    let claims = |adjust: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = serde_json::json!({
            "sub": "erin", "aud": "rill", "iss": "https://idp.test",
            "iat": now_s, "exp": now_s + 600,
        });
        adjust(&mut claims);
        claims
    };
    let sign = |claims: &serde_json::Value, key: &jsonwebtoken::EncodingKey| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    };
    let good = sign(&claims(&|_| {}), &key);
    for (address, protocol, topic) in [
        (&node.sasl_plaintext, "SASL_PLAINTEXT", "j-plain"),
        (&node.sasl_ssl, "SASL_SSL", "j-ssl"),
    ] {
        let config = oauth_client(address, protocol, Some(&good), "", ca);
        produce_and_consume(&config, topic, 20).await;
        let refusals = [
            (
                "an expired token",
                sign(&claims(&|c| c["exp"] = (now_s - 60).into()), &key),
            ),
            (
                "a wrong audience",
                sign(&claims(&|c| c["aud"] = "kafka".into()), &key),
            ),
            (
                "a wrong issuer",
                sign(&claims(&|c| c["iss"] = "https://evil.test".into()), &key),
            ),
            ("a key not in the JWKS", sign(&claims(&|_| {}), &other_key)),
            (
                "a bad signature",
                format!(
                    "{}.{}",
                    &good[..good.rfind('.').unwrap()],
                    &sign(&claims(&|c| c["sub"] = "mallory".into()), &key)
                        [good.rfind('.').unwrap() + 1..]
                ),
            ),
            (
                "an unsigned token",
                client::sasl::unsecured_jwt("erin", now_s * 1000, 600_000, &[]),
            ),
        ];
        for (what, token) in refusals {
            assert_refused(
                metadata_of(oauth_client(address, protocol, Some(&token), "", ca)).await,
                what,
            );
        }
        // Nothing else affected: the good token still works on a new connection.
        assert_eq!(
            metadata_of(oauth_client(address, protocol, Some(&good), "", ca))
                .await
                .unwrap(),
            1
        );
    }
    // A node whose JWKS file is missing does not start.
    let (kafka, controller) = (free_port(), free_port());
    let mut config = single_node_config(
        kafka,
        controller,
        TopicDefaults::default(),
        Timing::default(),
    );
    config.security.sasl_mechanisms = vec!["OAUTHBEARER".into()];
    config.security.oauthbearer.jwks_endpoint_url =
        Some(format!("file:{}", dir.join("missing.json").display()));
    let disk: Arc<dyn log_core::Disk> = MemDisk::new(1).as_disk();
    assert!(node::start(config, disk, NodeOptions::default())
        .await
        .is_err());
}
