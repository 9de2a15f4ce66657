//! `rill`: the one command a user runs.
//!
//! Today it checks histories (`rill check`, from the `jepsen` crate); the broker, the local
//! cluster and the quick produce/consume commands arrive with the broker issue.

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "\
rill <command> [ARGS]

commands:
  check FILE.jsonl [--subscribe] [--json] [--linearizable] ...
      check a Jepsen-style history; exit 0 valid, 1 invalid, 2 unknown, 3 bad input
      (`rill check --help` for every option)
  help
      this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let code = match args.first().map(String::as_str) {
        Some("check") => jepsen::cli::run(&args[1..], &mut out, &mut err),
        None | Some("help" | "--help" | "-h") => {
            let _ = writeln!(out, "{USAGE}");
            0
        }
        Some(other) => {
            let _ = writeln!(err, "rill: unknown command `{other}`\n\n{USAGE}");
            2
        }
    };
    let _ = out.flush();
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}
