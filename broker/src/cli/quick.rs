//! `rill topic|produce|consume`: quick use of a cluster through rill's own client.

use std::io::{BufRead, Write};
use std::time::Duration;

use bytes::Bytes;
use client::consumer::{Consumer, ConsumerConfig};
use client::producer::{Producer, ProducerConfig};
use client::{admin::Admin, ClientConfig};

/// Where the cluster is, and how to connect.
#[derive(Debug, clap::Args)]
pub struct Bootstrap {
    /// Comma-separated host:port of any brokers.
    #[arg(long, short = 'b', default_value = "127.0.0.1:19100")]
    pub bootstrap: String,
    /// Kafka client properties (`key=value` lines: `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`, ...), as kcat's `-F`; its
    /// `bootstrap.servers` wins over `-b`. `rill cluster up --secure` writes one.
    #[arg(long = "config", short = 'F')]
    pub properties: Option<std::path::PathBuf>,
}

impl Bootstrap {
    fn config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new(self.bootstrap.split(',').map(str::to_string).collect());
        if let Some(path) = &self.properties {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            config
                .apply_properties(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        Ok(config)
    }
}

/// `rill topic`.
#[derive(Debug, clap::Args)]
pub struct TopicArgs {
    /// The cluster.
    #[command(flatten)]
    pub bootstrap: Bootstrap,
    /// create, list or delete.
    #[command(subcommand)]
    pub action: TopicAction,
}

/// Topic actions.
#[derive(Debug, clap::Subcommand)]
pub enum TopicAction {
    /// Create a topic.
    Create {
        /// Name.
        name: String,
        /// Partitions.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Replication factor.
        #[arg(long, default_value_t = 3)]
        replication_factor: i16,
        /// Topic configs, key=value (min.insync.replicas, unclean.leader.election.enable).
        #[arg(long = "config")]
        configs: Vec<String>,
    },
    /// List topics with their partitions, leaders and ISRs.
    List,
    /// Delete a topic.
    Delete {
        /// Name.
        name: String,
    },
}

/// `rill produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// The cluster.
    #[command(flatten)]
    pub bootstrap: Bootstrap,
    /// Topic.
    pub topic: String,
    /// One value to send; without it, each stdin line is a record (`key<TAB>value` with --keyed).
    #[arg(long)]
    pub value: Option<String>,
    /// Lines are `key<TAB>value`.
    #[arg(long)]
    pub keyed: bool,
    /// acks: 0, 1 or -1 (all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub acks: i16,
}

/// `rill consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The cluster.
    #[command(flatten)]
    pub bootstrap: Bootstrap,
    /// Topic.
    pub topic: String,
    /// Consumer group (subscribe and commit); without it, read every partition from the start.
    #[arg(long)]
    pub group: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    pub count: Option<usize>,
    /// Stop after this long without records (ms).
    #[arg(long, default_value_t = 5_000)]
    pub idle_ms: u64,
    /// `client.rack`: on a cluster with `replica_selector_class = "rack-aware"`, read from a
    /// follower in this rack (KIP-392).
    #[arg(long)]
    pub client_rack: Option<String>,
}

/// Runs `rill topic`.
pub async fn topic(args: &TopicArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let admin = Admin::new(args.bootstrap.config()?)?;
    match &args.action {
        TopicAction::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs: Vec<(String, String)> = configs
                .iter()
                .map(|c| {
                    c.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect::<Option<_>>()
                .ok_or_else(|| anyhow::anyhow!("--config takes key=value"))?;
            admin
                .create_topic(name, *partitions, *replication_factor, &configs)
                .await?;
            writeln!(out, "created {name}")?;
        }
        TopicAction::List => {
            let metadata = admin.metadata(None).await?;
            for (name, topic) in &metadata.topics {
                for (index, p) in &topic.partitions {
                    let isr: Vec<i32> = p.isr.iter().map(|b| b.0).collect();
                    let replicas: Vec<i32> = p.replicas.iter().map(|b| b.0).collect();
                    writeln!(
                        out,
                        "{name}-{index}\tleader {:?}\tepoch {}\treplicas {replicas:?}\tisr {isr:?}",
                        p.leader.map(|b| b.0),
                        p.leader_epoch
                    )?;
                }
            }
        }
        TopicAction::Delete { name } => {
            admin.delete_topic(name).await?;
            writeln!(out, "deleted {name}")?;
        }
    }
    Ok(())
}

/// Runs `rill produce`.
pub async fn produce(args: &ProduceArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let config = ProducerConfig {
        acks: args.acks,
        idempotence: args.acks == -1,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(args.bootstrap.config()?, config).await?;
    let lines: Vec<String> = match &args.value {
        Some(value) => vec![value.clone()],
        None => std::io::stdin().lock().lines().collect::<Result<_, _>>()?,
    };
    for line in lines {
        let (key, value) = match (args.keyed, line.split_once('\t')) {
            (true, Some((k, v))) => (Some(Bytes::from(k.to_string())), v.to_string()),
            _ => (None, line),
        };
        let sent = producer
            .send(&args.topic, None, key, Bytes::from(value))
            .await?;
        writeln!(out, "{}-{}@{}", sent.topic, sent.partition, sent.offset)?;
    }
    producer.close().await;
    Ok(())
}

/// Runs `rill consume`.
pub async fn consume(args: &ConsumeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut consumer = Consumer::new(
        args.bootstrap.config()?,
        ConsumerConfig {
            client_rack: args.client_rack.clone(),
            ..ConsumerConfig::new(args.group.clone())
        },
    )?;
    if args.group.is_some() {
        consumer.subscribe(vec![args.topic.clone()])?;
    } else {
        let metadata = Admin::new(args.bootstrap.config()?)?
            .metadata(Some(std::slice::from_ref(&args.topic)))
            .await?;
        let topic = metadata
            .topics
            .get(&args.topic)
            .ok_or_else(|| anyhow::anyhow!("no topic {}", args.topic))?;
        consumer.assign(
            topic
                .partitions
                .keys()
                .map(|p| (args.topic.clone(), *p))
                .collect(),
        );
    }
    let mut seen = 0_usize;
    let mut idle = tokio::time::Instant::now();
    while args.count.is_none_or(|c| seen < c)
        && idle.elapsed() < Duration::from_millis(args.idle_ms)
    {
        let records = consumer.poll(500).await?;
        if !records.is_empty() {
            idle = tokio::time::Instant::now();
        }
        for record in records {
            let value = record
                .value
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            writeln!(
                out,
                "{}-{}@{}\t{value}",
                record.topic, record.partition, record.offset
            )?;
            seen += 1;
        }
        if args.group.is_some() {
            consumer.commit_sync().await?;
        }
    }
    consumer.close().await?;
    Ok(())
}
