//! `rill cluster up|down`: a local multi-process cluster on 127.0.0.1 for trying rill with real
//! clients. Each node is a combined broker+controller `rill broker` process with its own
//! config and data directory under `DIR/node-N`; `DIR/cluster.json` records pids and addresses so
//! `down` can stop them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::node::config::{Listeners, NodeConfig, Role, SecuritySettings, TopicDefaults};

/// Most nodes `cluster up` starts.
pub const NODES_MAX: usize = 9;
/// The cluster secret's file in the cluster directory (written by `up`, readable by its owner
/// only); every node's config names it.
pub const SECRET_FILE: &str = "cluster.secret";
/// How long `up` waits for every node to accept connections.
const STARTUP_WAIT: Duration = Duration::from_secs(30);
/// How long `down` waits for processes to exit after SIGTERM before SIGKILL.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// What `up` records for `down`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterFile {
    /// Process ids, by node.
    pub pids: Vec<u32>,
    /// Kafka bootstrap addresses, by node.
    pub bootstrap: Vec<String>,
}

/// What `rill cluster up` starts: how many nodes, where, and the topic defaults it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Number of nodes (the first three are controller voters).
    pub nodes: usize,
    /// First port; node N uses base+10N (Kafka), +1 (controller), +2 (metrics).
    pub base_port: u16,
    /// Partitions of a topic created without a count (`num.partitions`).
    pub partitions: i32,
    /// A SASL_SSL listener at base+10N+3, an SSL listener requiring client certificates at
    /// base+10N+5, generated certificates, a SCRAM user, the authorizer.
    pub secure: bool,
    /// With `secure`: a SASL_PLAINTEXT listener at base+10N+4 too.
    pub sasl_plaintext: bool,
    /// With `secure`: OAUTHBEARER on the SASL listeners too, validated as this says:
    /// `unsecured` (unsigned development tokens), or a JWKS file (`file:/path` or a path).
    pub oauthbearer: Option<String>,
    /// Node N in rack `RACK<N>` (`broker_rack`) with the rack-aware replica selector, as
    /// librdkafka's test clusters (trivup) run: consumers with a `client.rack` fetch from
    /// followers (KIP-392).
    pub racks: bool,
    /// The ACL authorizer on every listener with `allow_everyone_if_no_acl_found`: ACLs bind
    /// where they exist, everything else stays open (`--secure` turns the authorizer on too,
    /// without the open default).
    pub authorizer: bool,
}

/// The CA certificate clients trust for a `--secure` cluster.
pub const CA_FILE: &str = "ca.pem";
/// The librdkafka client settings `--secure` writes (mode 0600: it holds the password).
pub const CLIENT_PROPERTIES_FILE: &str = "client.properties";
/// The SCRAM user `--secure` creates, a super user.
pub const SECURE_USER: &str = "admin";
/// The client certificate `--secure` writes (`CN=admin`, a super user on the mutual-TLS SSL
/// listeners), and its key (mode 0600).
pub const CLIENT_CERT_FILE: &str = "client.pem";
/// See [`CLIENT_CERT_FILE`].
pub const CLIENT_KEY_FILE: &str = "client.key";

/// The SSL (mutual TLS) address of node `id` of a `--secure` cluster.
pub fn mtls_address(id: usize, spec: &ClusterSpec) -> String {
    let port = spec.base_port + u16::try_from(id * 10).expect("small") + 5;
    format!("127.0.0.1:{port}")
}

/// The SASL_SSL address of node `id` of a `--secure` cluster.
pub fn secure_address(id: usize, spec: &ClusterSpec) -> String {
    let port = spec.base_port + u16::try_from(id * 10).expect("small") + 3;
    format!("127.0.0.1:{port}")
}

/// The configuration of node `id` (1-based) of the cluster `spec` with its files under `dir`.
pub fn node_config(id: usize, spec: &ClusterSpec, dir: &Path) -> NodeConfig {
    let (n, base_port) = (spec.nodes, spec.base_port);
    let port =
        |node: usize, offset: u16| base_port + u16::try_from(node * 10).expect("small") + offset;
    let voters = (1..=n.min(3))
        .map(|v| format!("{v}@127.0.0.1:{}", port(v, 1)))
        .collect();
    let is_voter = id <= 3;
    let mut roles = vec![Role::Broker];
    if is_voter {
        roles.push(Role::Controller);
    }
    NodeConfig {
        node_id: i32::try_from(id).expect("small"),
        roles,
        data_dir: dir.join(format!("node-{id}")),
        controller_voters: voters,
        broker_rack: spec.racks.then(|| format!("RACK{id}")),
        replica_selector_class: spec
            .racks
            .then(|| crate::node::config::REPLICA_SELECTOR_RACK_AWARE.to_string()),
        listeners: Listeners {
            kafka: Some(format!("127.0.0.1:{}", port(id, 0))),
            advertised_kafka: None,
            controller: is_voter.then(|| format!("127.0.0.1:{}", port(id, 1))),
            metrics: Some(format!("127.0.0.1:{}", port(id, 2))),
            ..Listeners::default()
        },
        topics: TopicDefaults {
            replication_factor: i32::try_from(n.min(3)).expect("small"),
            partitions: spec.partitions,
            min_insync_replicas: i32::try_from(n.min(2)).expect("small"),
            unclean_leader_election: false,
            auto_create: true,
        },
        log: Default::default(),
        timing: Default::default(),
        connections: Default::default(),
        security: SecuritySettings {
            cluster_secret_file: Some(dir.join(SECRET_FILE)),
            authorizer: spec.authorizer.then_some(true),
            allow_everyone_if_no_acl_found: spec.authorizer,
            ..SecuritySettings::default()
        },
    }
}

/// Makes node configs of a `--secure` cluster: an extra SASL_SSL listener with the node's
/// certificate, the SCRAM user's salted credential, `User:admin` a super user.
fn secure_config(
    mut config: NodeConfig,
    id: usize,
    spec: &ClusterSpec,
    dir: &Path,
    user: &crate::node::config::StaticScramUser,
) -> NodeConfig {
    config
        .listeners
        .extra
        .push(crate::node::config::ExtraListener {
            name: "SASL_SSL".into(),
            address: secure_address(id, spec),
            advertised: None,
            protocol: crate::security::SecurityProtocol::SaslSsl,
        });
    if spec.sasl_plaintext {
        let port = spec.base_port + u16::try_from(id * 10).expect("small") + 4;
        config
            .listeners
            .extra
            .push(crate::node::config::ExtraListener {
                name: "SASL_PLAINTEXT".into(),
                address: format!("127.0.0.1:{port}"),
                advertised: None,
                protocol: crate::security::SecurityProtocol::SaslPlaintext,
            });
    }
    // Mutual TLS: an SSL listener that requires a certificate from the cluster's CA; the
    // generated client certificate's principal is `User:CN=admin`.
    config
        .listeners
        .extra
        .push(crate::node::config::ExtraListener {
            name: "SSL".into(),
            address: mtls_address(id, spec),
            advertised: None,
            protocol: crate::security::SecurityProtocol::Ssl,
        });
    config.security.tls_client_auth = crate::node::config::TlsClientAuth::Required;
    config.security.tls_client_ca_file = Some(dir.join(CA_FILE));
    config.security.tls_cert_file = Some(dir.join(format!("node-{id}.pem")));
    config.security.tls_key_file = Some(dir.join(format!("node-{id}.key")));
    config.security.scram_users = vec![user.clone()];
    config.security.super_users = vec![
        format!("User:{SECURE_USER}"),
        format!("User:CN={SECURE_USER}"),
    ];
    config.security.authorizer = Some(true);
    match spec.oauthbearer.as_deref() {
        None => {}
        Some(how) => {
            config.security.sasl_mechanisms.push("OAUTHBEARER".into());
            if how == "unsecured" {
                config.security.oauthbearer.unsecured = true;
            } else {
                config.security.oauthbearer.jwks_endpoint_url = Some(how.to_string());
            }
        }
    }
    config
}

/// A random string of `n` hex digits (runtime randomness).
fn random_hex(digits: usize) -> String {
    let mut text = String::new();
    while text.len() < digits {
        text.push_str(&format!("{:016x}", crate::runtime::random_u64()));
    }
    text.truncate(digits);
    text
}

/// Writes `text` to a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Generates a CA (`DIR/ca.pem`) and a certificate per node for `localhost` and 127.0.0.1
/// (`DIR/node-N.pem`, key `DIR/node-N.key`), with rcgen.
fn write_certificates(dir: &Path, nodes: usize) -> anyhow::Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rill local cluster CA");
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    std::fs::write(dir.join(CA_FILE), ca.pem())?;
    for id in 1..=nodes {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("rill node {id}"));
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        std::fs::write(dir.join(format!("node-{id}.pem")), cert.pem())?;
        write_private(&dir.join(format!("node-{id}.key")), &key.serialize_pem())?;
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, SECURE_USER);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    std::fs::write(dir.join(CLIENT_CERT_FILE), cert.pem())?;
    write_private(&dir.join(CLIENT_KEY_FILE), &key.serialize_pem())?;
    Ok(())
}

/// librdkafka's settings for the `--secure` cluster's SASL_SSL listeners.
fn client_properties(bootstrap: &str, dir: &Path, password: &str) -> String {
    format!(
        "bootstrap.servers={bootstrap}\nsecurity.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-256\n\
         sasl.username={SECURE_USER}\nsasl.password={password}\nssl.ca.location={}\n",
        dir.join(CA_FILE).display()
    )
}

/// Starts the nodes of `spec`, waits until they are ready (every broker registered and unfenced,
/// a controller known) and prints the bootstrap servers. `rill` is this executable.
pub fn up(spec: &ClusterSpec, dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let n = spec.nodes;
    anyhow::ensure!(
        (1..=NODES_MAX).contains(&n),
        "--brokers must be 1..={NODES_MAX}"
    );
    anyhow::ensure!(
        (1..=i32::try_from(controller::image::PARTITIONS_PER_TOPIC_MAX).expect("small"))
            .contains(&spec.partitions),
        "--partitions must be 1..={}",
        controller::image::PARTITIONS_PER_TOPIC_MAX
    );
    std::fs::create_dir_all(dir)?;
    let cluster_file = dir.join("cluster.json");
    anyhow::ensure!(
        !cluster_file.exists(),
        "{} exists: run `rill cluster down --dir {}` first",
        cluster_file.display(),
        dir.display()
    );
    write_secret(&dir.join(SECRET_FILE))?;
    // --secure: certificates, a password shown once, its salted credential in every config.
    let secure = if spec.secure {
        write_certificates(dir, n)?;
        let password = random_hex(32);
        let salt = random_hex(32);
        let user = crate::node::config::StaticScramUser::from_password(
            SECURE_USER,
            controller::ScramMechanism::Sha256,
            &password,
            salt.as_bytes(),
        );
        Some((user, password))
    } else {
        None
    };
    let exe = std::env::current_exe()?;
    let mut file = ClusterFile {
        pids: Vec::new(),
        bootstrap: Vec::new(),
    };
    for id in 1..=n {
        let mut config = node_config(id, spec, dir);
        if let Some((user, _)) = &secure {
            config = secure_config(config, id, spec, dir, user);
        }
        let config_path = dir.join(format!("node-{id}.toml"));
        std::fs::write(&config_path, config.to_toml())?;
        let log = std::fs::File::create(dir.join(format!("node-{id}.log")))?;
        let child = Command::new(&exe)
            .args(["broker", "--config"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        file.pids.push(child.id());
        file.bootstrap
            .push(config.listeners.kafka.clone().expect("set above"));
    }
    std::fs::write(&cluster_file, serde_json::to_string_pretty(&file)?)?;
    wait_until_listening(&file.bootstrap)?;
    wait_until_ready(&file.bootstrap)?;
    match &secure {
        None => writeln!(out, "{}", file.bootstrap.join(","))?,
        Some((_, password)) => {
            let bootstrap: Vec<String> = (1..=n).map(|id| secure_address(id, spec)).collect();
            let bootstrap = bootstrap.join(",");
            let properties = client_properties(&bootstrap, dir, password);
            let path = dir.join(CLIENT_PROPERTIES_FILE);
            write_private(&path, &properties)?;
            writeln!(out, "{bootstrap}")?;
            writeln!(
                out,
                "# SASL_SSL client settings (also in {}):",
                path.display()
            )?;
            for line in properties.lines() {
                writeln!(out, "#   {line}")?;
            }
            writeln!(out, "# kcat -F {} -L", path.display())?;
            let mtls: Vec<String> = (1..=n).map(|id| mtls_address(id, spec)).collect();
            writeln!(
                out,
                "# mutual TLS (User:CN={SECURE_USER}): bootstrap.servers={} \
                 security.protocol=SSL ssl.ca.location={} ssl.certificate.location={} \
                 ssl.key.location={}",
                mtls.join(","),
                dir.join(CA_FILE).display(),
                dir.join(CLIENT_CERT_FILE).display(),
                dir.join(CLIENT_KEY_FILE).display()
            )?;
        }
    }
    Ok(())
}

/// Writes a fresh cluster secret (mode 0600), unless one is there: a restarted cluster keeps
/// its secret.
fn write_secret(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{}", crate::auth::ClusterSecret::generate_text())?;
    Ok(())
}

/// Polls every node's Metadata until each lists all `addresses.len()` brokers (registered and
/// unfenced) and names a controller: an admin call made once `up` returns finds one (a user's
/// first CreateTopics right after `up` timed out "waiting for controller").
#[cfg(not(madsim))]
fn wait_until_ready(addresses: &[String]) -> anyhow::Result<()> {
    /// How long `up` waits, once every node listens, for every node to be ready.
    const READY_WAIT: Duration = Duration::from_secs(45);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    runtime.block_on(async {
        let mut unready = addresses.to_vec();
        while !unready.is_empty() {
            let mut still = Vec::new();
            for address in unready {
                let mut config = client::ClientConfig::new(vec![address.clone()]);
                config.request_timeout_ms = 2_000;
                let admin = client::admin::Admin::new(config)?;
                let ready = match admin.metadata(Some(&[])).await {
                    Ok(metadata) => {
                        metadata.controller.is_some() && metadata.brokers.len() == addresses.len()
                    }
                    Err(_) => false,
                };
                if !ready {
                    still.push(address);
                }
            }
            unready = still;
            if unready.is_empty() {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < READY_WAIT,
                "{unready:?} did not list {} unfenced brokers and a controller within \
                 {READY_WAIT:?}",
                addresses.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    })
}

/// The simulator starts nodes itself; `cluster up` runs only on real tokio.
#[cfg(madsim)]
fn wait_until_ready(_addresses: &[String]) -> anyhow::Result<()> {
    Ok(())
}

/// Polls until every address accepts a TCP connection.
fn wait_until_listening(addresses: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    for address in addresses {
        while std::net::TcpStream::connect(address).is_err() {
            anyhow::ensure!(
                started.elapsed() < STARTUP_WAIT,
                "{address} did not start listening within {STARTUP_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Stops the cluster started in `dir` (SIGTERM, then SIGKILL after a grace period).
pub fn down(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let cluster_file: PathBuf = dir.join("cluster.json");
    let text = std::fs::read_to_string(&cluster_file).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (is a cluster running there?)",
            cluster_file.display()
        )
    })?;
    let file: ClusterFile = serde_json::from_str(&text)?;
    for pid in &file.pids {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let started = Instant::now();
    for pid in &file.pids {
        while process_alive(*pid) && started.elapsed() < SHUTDOWN_WAIT {
            std::thread::sleep(Duration::from_millis(100));
        }
        if process_alive(*pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
    std::fs::remove_file(&cluster_file)?;
    writeln!(out, "stopped {} nodes", file.pids.len())?;
    Ok(())
}

fn process_alive(pid: u32) -> bool {
    let stat = format!("/proc/{pid}/stat");
    match std::fs::read_to_string(stat) {
        // A zombie (state Z) has exited; its parent is gone or not reaping.
        Ok(text) => !text
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}
