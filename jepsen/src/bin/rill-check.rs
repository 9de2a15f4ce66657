//! `rill-check FILE.jsonl [...]`: the `rill check` subcommand as a standalone binary.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = jepsen::cli::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
