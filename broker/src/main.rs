//! `rill`: the one command a user runs. `rill check` checks histories (the `jepsen` crate); the
//! rest runs and uses a cluster (`broker/src/cli`).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `rill check` keeps its own argument parser and exit codes (0/1/2/3).
    if args.first().map(String::as_str) == Some("check") {
        let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
        let (mut out, mut err) = (stdout.lock(), stderr.lock());
        let code = jepsen::cli::run(&args[1..], &mut out, &mut err);
        let _ = out.flush();
        return ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX));
    }
    let cli = broker::cli::Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rill: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RILL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _already = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(not(madsim))]
fn run(cli: broker::cli::Cli) -> anyhow::Result<()> {
    use broker::cli::{ClusterAction, Command};
    let mut out = std::io::stdout();
    if let Command::Cluster { action } = &cli.command {
        // Plain processes and files: no runtime needed.
        return match action {
            ClusterAction::Up {
                brokers,
                dir,
                base_port,
                partitions,
                secure,
                sasl_plaintext,
                oauthbearer,
                racks,
                authorizer,
            } => {
                let spec = broker::cli::cluster::ClusterSpec {
                    nodes: *brokers,
                    base_port: *base_port,
                    partitions: *partitions,
                    secure: *secure,
                    sasl_plaintext: *sasl_plaintext,
                    oauthbearer: oauthbearer.clone(),
                    racks: *racks,
                    authorizer: *authorizer,
                };
                broker::cli::cluster::up(&spec, dir, &mut out)
            }
            ClusterAction::Down { dir } => broker::cli::cluster::down(dir, &mut out),
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match &cli.command {
            Command::Broker(args) => broker::cli::run_broker(args).await,
            Command::Topic(args) => broker::cli::quick::topic(args, &mut out).await,
            Command::Produce(args) => broker::cli::quick::produce(args, &mut out).await,
            Command::Consume(args) => broker::cli::quick::consume(args, &mut out).await,
            Command::Cluster { .. } | Command::Check { .. } => {
                anyhow::bail!("handled before the runtime starts")
            }
        }
    })
}

#[cfg(madsim)]
fn run(_cli: broker::cli::Cli) -> anyhow::Result<()> {
    anyhow::bail!("the rill binary runs on real tokio; the simulator drives nodes through `sim`")
}
