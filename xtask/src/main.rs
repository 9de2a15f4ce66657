//! rill's build tasks. Two commands matter on a fresh machine:
//!
//! - `cargo sim [ARGS]`: build the simulator with `RUSTFLAGS="--cfg madsim"` in its own target
//!   directory (RUSTFLAGS reach every crate and build script, so sharing a directory with the
//!   normal build would rebuild everything twice per switch) and run it with `ARGS`.
//! - `cargo xtask ci`: everything CI runs, in order, both builds.
//! - `cargo xtask jepsen [ARGS]`: Jepsen on the production build (tests/jepsen/run.py): real
//!   processes in network namespaces under real faults, judged by rill's queue checker.
//!
//! - `cargo xtask mutants [ARGS]`: the mutation score (xtask/src/mutants.rs, mutants/).
//!
//! xtask has no dependencies on purpose: it is compiled before anything else on a cold machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod mutants;

/// Storage seeds the CI determinism check runs (each twice). Bounded so CI stays within its budget.
const CI_SIM_SEEDS: u32 = 1000;
/// Cluster seeds CI runs, each twice (about a minute on 2 cores; the nightly soak runs more).
const CI_CLUSTER_SEEDS: u32 = 300;
/// The safety phase of CI's real-process Jepsen run, seconds: with the cluster's start, the
/// liveness phase, the final read and the check the step stays under 4 minutes on 2 cores.
const CI_JEPSEN_SECONDS: u32 = 90;
/// CI's Jepsen seed: its 90 s schedule draws all seven families of the mix (13 episodes: two
/// rolling restarts, a kill, a leader killed with a follower, an isolated node and leader,
/// packet loss, two wiped disks, a full disk, three pauses).
const CI_JEPSEN_SEED: u32 = 27;
/// CI's Jepsen row and fault mix: the strong row, where any anomaly is a failure.
const CI_JEPSEN_ROW: &str = "acks=all,min-isr=2,idempotence=on";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match command {
        "sim" => sim(rest),
        "ci" => ci(rest),
        "jepsen" => jepsen(rest),
        "mutants" => mutants::mutants(rest),
        "help" | "--help" | "-h" => {
            print_help();
            Ok(())
        }
        other => Err(format!(
            "unknown xtask command `{other}`; try `cargo xtask help`"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <command>\n\n\
         commands:\n  \
         sim [ARGS]   build the simulator under --cfg madsim and run it (same as `cargo sim`)\n  \
         jepsen [ARGS]  build the release `rill` and run Jepsen on real processes in network\n               \
         namespaces (root; `cargo xtask jepsen --help` lists ARGS)\n  \
         mutants [ARGS] plant each mutant of mutants/manifest.txt in a scratch copy, run its\n               \
         killers, print the mutation score (`cargo xtask mutants --help`)\n  \
         ci [--skip STEP]...  run everything CI runs: fmt, clippy, tests, the quick mutants, the\n               \
         sharded-campaign manifests' schemas, real Kafka clients against a local cluster,\n               \
         librdkafka's own test suite, Jepsen on real processes, madsim tests, the\n               \
         determinism check and the TLA+ model checks\n\n\
         environment:\n  \
         CARGO_TARGET_DIR      normal build directory (the madsim build uses <it>-madsim)\n  \
         RILL_SIM_TARGET_DIR   override the madsim build directory"
    );
}

/// The workspace root, found at run time: the nearest directory at or above the current one
/// whose `Cargo.toml` declares a workspace and that holds `xtask/`. (Taking it from the
/// compile-time `CARGO_MANIFEST_DIR` made a copied checkout, whose target directory came along,
/// run the *other* checkout's simulator without rebuilding.) The compile-time path is only the
/// fallback when run from outside any checkout.
fn workspace_root() -> PathBuf {
    let found = std::env::current_dir().ok().and_then(|dir| {
        dir.ancestors()
            .find(|d| {
                d.join("xtask").join("Cargo.toml").exists()
                    && std::fs::read_to_string(d.join("Cargo.toml"))
                        .is_ok_and(|manifest| manifest.contains("[workspace]"))
            })
            .map(Path::to_path_buf)
    });
    let root = found.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives inside the workspace")
            .to_path_buf()
    });
    assert!(
        root.join("Cargo.toml").exists(),
        "workspace root has a Cargo.toml: {root:?}"
    );
    root
}

/// The normal build's target directory, as cargo would pick it.
fn normal_target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root.join("target"),
    }
}

/// The command that runs the simulator binary. Its allocator (mimalloc) keeps freed memory
/// instead of returning it to the system after 10 ms: every seed builds and drops a cluster, and
/// the pages given back were zeroed again by the kernel for the next one (7 % of the CPU time,
/// for 5 % more memory). An explicit `MIMALLOC_PURGE_DELAY` in the environment wins.
fn sim_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    if env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        command.env("MIMALLOC_PURGE_DELAY", "-1");
    }
    command
}

/// The madsim build's own target directory.
fn sim_target_dir(root: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("RILL_SIM_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let normal = normal_target_dir(root);
    let name = normal.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_else(|| "target".to_string());
    normal.with_file_name(format!("{name}-madsim"))
}

/// A `cargo` command configured for the madsim build.
fn madsim_cargo(root: &Path) -> Command {
    let mut command = normal_cargo(root);
    let rustflags = with_cfg_madsim("RUSTFLAGS");
    // rustdoc compiles doctests with RUSTDOCFLAGS, not RUSTFLAGS: without the cfg there, doctests
    // of the madsim build would compile the production branches against madsim-tokio.
    let rustdocflags = with_cfg_madsim("RUSTDOCFLAGS");
    command
        .env("RUSTFLAGS", rustflags)
        .env("RUSTDOCFLAGS", rustdocflags)
        .env("CARGO_TARGET_DIR", sim_target_dir(root));
    command
}

/// The flags in environment variable `name` plus `--cfg madsim` (once).
fn with_cfg_madsim(name: &str) -> String {
    match env::var(name) {
        Ok(existing) if !existing.contains("--cfg madsim") => format!("{existing} --cfg madsim"),
        Ok(existing) => existing,
        Err(_) => "--cfg madsim".to_string(),
    }
}

/// A `cargo` command (the one running xtask, if known) in the workspace root.
fn normal_cargo(root: &Path) -> Command {
    let mut command = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    command.current_dir(root);
    command
}

/// `cargo sim ARGS`: build the simulator binary under madsim, then run it with `ARGS`.
fn sim(args: &[String]) -> Result<(), String> {
    let root = workspace_root();
    let mut build = madsim_cargo(&root);
    // Cargo's own progress (not --quiet): a first build compiles the whole workspace under
    // madsim for several minutes, and silence would look like a hang.
    eprintln!(
        "cargo sim: building the simulator (--cfg madsim) in {} (the first build takes minutes)",
        sim_target_dir(&root).display()
    );
    build.args([
        "build",
        "--profile",
        "sim",
        "--package",
        "sim",
        "--bin",
        "rill-sim",
    ]);
    run_checked(&mut build, "building the simulator (--cfg madsim)")?;
    let binary = sim_target_dir(&root).join("sim").join("rill-sim");
    let mut run = sim_command(&binary);
    run.current_dir(&root).args(args);
    let status = run
        .status()
        .map_err(|e| format!("cannot start {binary:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the simulation failed ({status})"))
    }
}

/// `cargo xtask jepsen ARGS`: build the release `rill`, then run the real-process harness with it
/// (tests/jepsen/run.py, in the venv that has confluent-kafka).
fn jepsen(args: &[String]) -> Result<(), String> {
    let root = workspace_root();
    // A negative control (`--bug NAME`) needs the historic bugs compiled in: that binary is
    // kept apart (`rill-bug-switches`) so that no other step ever runs it by mistake.
    let bug = args.iter().any(|a| a == "--bug");
    let release = normal_target_dir(&root).join("release");
    let mut rill = release.join("rill");
    if !args.iter().any(|a| a == "--help" || a == "-h") {
        let mut build = normal_cargo(&root);
        build.args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "broker",
            "--bin",
            "rill",
        ]);
        if bug {
            build.args(["--features", "broker/bug-switches"]);
        }
        run_checked(&mut build, "building the release rill")?;
        if bug {
            let with_bugs = release.join("rill-bug-switches");
            std::fs::copy(&rill, &with_bugs)
                .map_err(|e| format!("cannot copy {rill:?} to {with_bugs:?}: {e}"))?;
            rill = with_bugs;
            // Put the plain binary back at release/rill (cargo keeps both builds apart by
            // their feature sets, so this relinks rather than recompiles).
            let mut plain = normal_cargo(&root);
            plain.args([
                "build",
                "--quiet",
                "--release",
                "--package",
                "broker",
                "--bin",
                "rill",
            ]);
            run_checked(&mut plain, "restoring the plain release rill")?;
        }
    }
    let status = jepsen_command(&root, &rill, args)
        .status()
        .map_err(|e| format!("cannot start the jepsen harness: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("jepsen: {status}"))
    }
}

/// The harness command: the venv's python (confluent-kafka) on tests/jepsen/run.py.
fn jepsen_command(root: &Path, rill: &Path, args: &[String]) -> Command {
    let venv = match env::var_os("RILL_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/rill/venv"),
    };
    let mut command = Command::new(venv.join("bin").join("python"));
    command
        .current_dir(root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(root.join("tests").join("jepsen").join("run.py"))
        .arg("--rill")
        .arg(rill)
        .args(args);
    command
}

fn run_checked(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {status}"))
    }
}

/// One CI step: a name and the command that performs it.
struct Step {
    name: &'static str,
    command: Command,
}

/// Steps run a second time when the first run fails, and which count as passed only if the
/// second run passes: the real-clients step (third-party clients against a real cluster on real
/// time, where one check out of 73 failed in one run of twelve, cause not yet known). A regression
/// fails both runs; the first run's failure stays in the log (its failed checks are printed
/// last) and the timing table says "ok after a retry".
const RETRIED_ONCE: [&str; 1] = ["real-clients"];

fn ci_steps(root: &Path, skip: &[&str]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut fmt = normal_cargo(root);
    fmt.args(["fmt", "--all", "--", "--check"]);
    steps.push(Step {
        name: "fmt",
        command: fmt,
    });

    let mut clippy = normal_cargo(root);
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    steps.push(Step {
        name: "clippy",
        command: clippy,
    });

    let mut test = normal_cargo(root);
    test.args(["test", "--workspace", "--all-targets"]);
    steps.push(Step {
        name: "test",
        command: test,
    });

    // The mutation score's quick subset (mutants/manifest.txt, `quick: yes`): each mutant planted
    // in a scratch copy of the workspace must be killed by its unit tests. ~10 s warm (the scratch
    // crates rebuild in the test step's target directory; the first run builds them once).
    let mut mutants = normal_cargo(root);
    mutants.args([
        "run",
        "--quiet",
        "--package",
        "xtask",
        "--",
        "mutants",
        "--quick",
    ]);
    steps.push(Step {
        name: "mutants-quick",
        command: mutants,
    });

    // The sharded-campaign manifests (deploy/sim/k8s-indexed-job.yaml, the GitHub Actions
    // workflow), validated against their schemas, not run. ~4 s warm; the script installs its
    // two PyPI validators into a venv outside the clone when missing (~75 s once).
    let mut manifests = Command::new("bash");
    manifests
        .current_dir(root)
        .arg(root.join("deploy").join("sim").join("validate.sh"));
    steps.push(Step {
        name: "manifests",
        command: manifests,
    });

    // Real Kafka clients (kcat, confluent-kafka, kafka-python) against a real 3-node cluster.
    // The `test` step has just built the debug `rill` (broker's CLI test needs it): reuse it
    // rather than compile a third time; without that step the script builds it itself.
    let mut real_clients = Command::new("bash");
    real_clients
        .current_dir(root)
        .arg(root.join("tests").join("real-clients").join("run.sh"));
    if !skip.contains(&"test") {
        let rill = normal_target_dir(root).join("debug").join("rill");
        real_clients.env("RILL_BIN", rill);
    }
    steps.push(Step {
        name: "real-clients",
        command: real_clients,
    });

    // librdkafka's own integration tests (its broker tests, quick mode) against a 3-node cluster
    // of the release `rill`, compared with tests/librdkafka/expectations.txt. The script builds
    // the test runner once into a cache outside the clone and the release binary with cargo.
    let mut librdkafka = Command::new("bash");
    librdkafka
        .current_dir(root)
        .env("CARGO_TARGET_DIR", normal_target_dir(root))
        .arg(root.join("tests").join("librdkafka").join("run.sh"));
    steps.push(Step {
        name: "librdkafka-suite",
        command: librdkafka,
    });

    // Jepsen on real processes: the strong row under mixed real faults (partitions, kills,
    // pauses, packet loss and a slow link, a full disk); any anomaly the row forbids, a liveness
    // failure or a crash fails the step. `xtask jepsen` builds the release `rill` first (the
    // librdkafka step has just built it, so that is a check).
    let mut jepsen = normal_cargo(root);
    jepsen.args(["run", "--quiet", "--package", "xtask", "--", "jepsen"]);
    jepsen.args(["--row", CI_JEPSEN_ROW, "--faults", "mixed"]);
    jepsen.args(["--seed", &CI_JEPSEN_SEED.to_string()]);
    jepsen.args(["--time-limit", &CI_JEPSEN_SECONDS.to_string()]);
    steps.push(Step {
        name: "jepsen",
        command: jepsen,
    });

    // The crates whose code runs in both worlds: built and tested again under the simulator.
    let madsim_packages = [
        "--package",
        "sim",
        "--package",
        "broker",
        "--package",
        "client",
    ];
    let mut sim_clippy = madsim_cargo(root);
    sim_clippy.args(["clippy", "--profile", "sim", "--all-targets"]);
    sim_clippy.args(madsim_packages);
    sim_clippy.args(["--", "-D", "warnings"]);
    steps.push(Step {
        name: "madsim-clippy",
        command: sim_clippy,
    });

    let mut sim_test = madsim_cargo(root);
    sim_test
        .args(["test", "--profile", "sim"])
        .args(madsim_packages);
    steps.push(Step {
        name: "madsim-test",
        command: sim_test,
    });

    let mut determinism = normal_cargo(root);
    determinism.args(["run", "--quiet", "--package", "xtask", "--", "sim"]);
    determinism.args(["--scenario", "storage", "--ci"]);
    determinism.args(["--seeds", &CI_SIM_SEEDS.to_string()]);
    steps.push(Step {
        name: "sim-determinism",
        command: determinism,
    });

    // The default campaign (the cluster scenario), a bounded batch, each seed twice.
    let mut cluster = normal_cargo(root);
    cluster.args(["run", "--quiet", "--package", "xtask", "--", "sim"]);
    cluster.args(["--ci", "--seeds", &CI_CLUSTER_SEEDS.to_string()]);
    steps.push(Step {
        name: "sim-cluster",
        command: cluster,
    });

    let tla = root.join("tla").join("check");
    if tla.exists() {
        let mut command = Command::new("bash");
        command.current_dir(root).arg(tla);
        steps.push(Step {
            name: "tla",
            command,
        });
    }
    steps
}

/// The seed of every proptest in a CI run: the caller's `PROPTEST_RNG_SEED`, else one drawn from
/// the commit (its hash's first 16 hex digits), else a constant. Each commit explores new cases,
/// and a CI run of one commit draws the same cases anywhere: a run here foretells the landing
/// run, and a failure it finds is replayed by the seed it prints.
fn proptest_seed(root: &Path) -> String {
    if let Ok(seed) = std::env::var("PROPTEST_RNG_SEED") {
        return seed;
    }
    let head = Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok());
    let from_head = head.and_then(|hash| u64::from_str_radix(hash.trim().get(..16)?, 16).ok());
    from_head.unwrap_or(0x7269_6c6c).to_string()
}

/// `cargo xtask ci`: every step in order; stops at the first failure and prints a timing table.
fn ci(args: &[String]) -> Result<(), String> {
    let skip: Vec<&str> = args
        .windows(2)
        .filter(|pair| pair[0] == "--skip")
        .map(|pair| pair[1].as_str())
        .collect();
    let root = workspace_root();
    let proptest_seed = proptest_seed(&root);
    println!(
        "ci: proptest cases drawn from PROPTEST_RNG_SEED={proptest_seed} (the commit's; set the \
         variable to draw others, `cargo test` alone draws at random)"
    );
    let mut timings: Vec<(&'static str, f64, &'static str)> = Vec::new();
    let mut failure = None;
    for mut step in ci_steps(&root, &skip) {
        step.command.env("PROPTEST_RNG_SEED", &proptest_seed);
        if skip.contains(&step.name) {
            timings.push((step.name, 0.0, "skipped"));
            continue;
        }
        println!("\n==> ci step `{}`", step.name);
        let started = Instant::now();
        let mut command = step.command;
        let mut result = run_checked(&mut command, step.name);
        let mut verdict = if result.is_ok() { "ok" } else { "FAILED" };
        if let (Err(first), true) = (&result, RETRIED_ONCE.contains(&step.name)) {
            println!(
                "\n==> ci step `{}` failed ({first}); run again once, it must pass",
                step.name
            );
            result = run_checked(&mut command, step.name);
            verdict = if result.is_ok() {
                "ok after a retry"
            } else {
                "FAILED twice"
            };
        }
        let seconds = started.elapsed().as_secs_f64();
        timings.push((step.name, seconds, verdict));
        if let Err(message) = result {
            failure = Some(message);
            break;
        }
    }
    println!("\n{:<18} {:>9}  result", "step", "seconds");
    for (name, seconds, verdict) in &timings {
        println!("{name:<18} {seconds:>9.1}  {verdict}");
    }
    match failure {
        Some(message) => Err(format!("ci failed at {message}")),
        None => Ok(()),
    }
}
