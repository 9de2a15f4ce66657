//! `rill-sim`: the simulator's command line. Run it through `cargo sim`, which builds it with
//! `--cfg madsim` in its own target directory.

use sim::cli::{parse, Command, USAGE};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a simulated cluster allocates and frees small objects
/// (frames, futures, batches) at a high rate, and glibc's allocator was an eighth of the
/// simulator's CPU time. Allocation never decides a run's course, so traces are unchanged.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("rill-sim: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if matches!(command, Command::Help) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    // Injected faults make the cores log errors on purpose: quiet unless asked.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "off".to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    match sim::cli::execute(command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("rill-sim: {message}");
            ExitCode::from(2)
        }
    }
}
