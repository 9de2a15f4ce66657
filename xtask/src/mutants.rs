//! `cargo xtask mutants`: a measured mutation score.
//!
//! The mutants live in `mutants/`: `manifest.txt` says what each one plants, which function it
//! targets and which checks should kill it (cheapest first); `NAME.patch` holds its hunks. Each
//! mutant is planted alone in a scratch copy of the workspace (`<target>/mutants/workspace`),
//! never in the working tree, so an interrupted run leaves nothing behind: the next run's sync
//! puts the scratch copy back first. The scratch copy builds into the normal target directory and
//! the madsim one (its crates get their own artifacts there, the registry dependencies are
//! shared), and a file is only rewritten when its content changes, so a mutant rebuilds only the
//! crates it touches and their dependents.
//!
//! For each mutant the killers run in order until one fails: `test ARGS` (`cargo test ARGS`,
//! built first, then run under a timeout) and `sim ARGS` (the simulator in chunks of seeds, so
//! the first failing chunk ends it). The result is a table, `results.json` and `results.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{madsim_cargo, normal_cargo, normal_target_dir, sim_target_dir, workspace_root};

/// Seeds per simulator run of a `sim` killer: a failing chunk ends the killer.
const SIM_CHUNK_SEEDS: u64 = 25;
/// A killer's run (not its build) is stopped after this long and counted as a kill by timeout:
/// a hang is something the checks notice.
const KILLER_TIMEOUT: Duration = Duration::from_secs(900);

/// One mutant of the manifest.
#[derive(Clone, Debug, Default)]
struct Mutant {
    name: String,
    area: String,
    file: String,
    anchor: String,
    plants: String,
    expect: String,
    killers: Vec<String>,
    quick: bool,
}

/// One hunk of a patch: lines to find (trimmed) and lines to put in their place.
#[derive(Clone, Debug, Default)]
struct Hunk {
    find: Vec<String>,
    replace: Vec<String>,
}

/// What happened to one mutant.
#[derive(Clone, Debug)]
enum Verdict {
    /// A killer failed: which one and what it saw.
    Killed { killer: String, by: String },
    /// Every killer passed.
    Survived,
    /// The patch did not apply or the mutant did not compile: the patch needs refreshing.
    Error(String),
}

struct Outcome {
    mutant: Mutant,
    verdict: Verdict,
    seconds: f64,
    /// Per killer tried: the killer, its result in a few words, seconds.
    tried: Vec<(String, String, f64)>,
}

struct Options {
    quick: bool,
    sim_only: bool,
    only: Vec<String>,
    seeds: Option<u64>,
    out: Option<PathBuf>,
    list: bool,
    jobs: Option<u64>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        sim_only: false,
        only: Vec::new(),
        seeds: None,
        out: None,
        list: false,
        jobs: None,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--sim-only" => options.sim_only = true,
            "--list" => options.list = true,
            "--only" => {
                let names = iter.next().ok_or("--only needs NAME[,NAME...]")?;
                options
                    .only
                    .extend(names.split(',').map(|s| s.trim().to_string()));
            }
            "--seeds" => {
                let n = iter.next().ok_or("--seeds needs a number")?;
                options.seeds = Some(n.parse().map_err(|_| format!("--seeds {n}"))?);
            }
            "--jobs" => {
                let n = iter.next().ok_or("--jobs needs a number")?;
                options.jobs = Some(n.parse().map_err(|_| format!("--jobs {n}"))?);
            }
            "--out" => {
                options.out = Some(PathBuf::from(iter.next().ok_or("--out needs a directory")?));
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                options.list = true;
                options.only = vec!["--help".to_string()];
            }
            other => return Err(format!("mutants: unknown option `{other}`\n{USAGE}")),
        }
    }
    Ok(options)
}

const USAGE: &str = "\
cargo xtask mutants [--quick] [--only NAME[,NAME..]] [--sim-only] [--seeds N] [--jobs N]
                    [--out DIR] [--list]

Plants each mutant of mutants/manifest.txt in a scratch copy of the workspace, runs its killers
(cheapest first, stopping at the first kill) and prints which are killed and by what. Writes
DIR/results.json and DIR/results.md (default DIR: <target>/mutants). Exits non-zero when a
mutant survives or a patch no longer applies.
  --quick      only the mutants marked `quick: yes` (what CI runs)
  --only       only these mutants (names or their number prefixes, e.g. 03)
  --sim-only   run only the `sim` killers: what the simulation campaign alone catches
  --seeds N    override the seed count of every `sim` killer
  --jobs N     simulator jobs (default: the simulator's, the cores)
  --list       list the mutants and check that every patch applies, run nothing";

/// `cargo xtask mutants ARGS`.
pub fn mutants(args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    if options.only.first().is_some_and(|o| o == "--help") {
        return Ok(());
    }
    let root = workspace_root();
    let all = parse_manifest(&root.join("mutants"))?;
    let selected: Vec<Mutant> = all
        .into_iter()
        .filter(|m| !options.quick || m.quick)
        .filter(|m| {
            options.only.is_empty()
                || options
                    .only
                    .iter()
                    .any(|o| m.name == *o || m.name.starts_with(&format!("{o}-")))
        })
        .collect();
    if selected.is_empty() {
        return Err("mutants: no mutant selected".to_string());
    }
    let target = normal_target_dir(&root);
    let scratch = target.join("mutants").join("workspace");
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| target.join("mutants"));
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {out:?}: {e}"))?;
    let logs = target.join("mutants").join("logs");
    fs::create_dir_all(&logs).map_err(|e| format!("cannot create {logs:?}: {e}"))?;
    let files = sync_scratch(&root, &scratch)?;
    println!(
        "mutants: scratch workspace {} ({files} files in sync)",
        scratch.display()
    );
    if options.list {
        let mut broken = 0;
        for mutant in &selected {
            let status = match plant(&root, &scratch, mutant) {
                Ok(()) => "applies".to_string(),
                Err(e) => {
                    broken += 1;
                    format!("DOES NOT APPLY: {e}")
                }
            };
            restore(&root, &scratch, mutant)?;
            println!(
                "{:<44} {:<22} {}",
                mutant.name,
                mutant.area.split(' ').next().unwrap_or(""),
                status
            );
        }
        return if broken == 0 {
            Ok(())
        } else {
            Err(format!("{broken} patch(es) need refreshing"))
        };
    }

    let started = Instant::now();
    let mut outcomes = Vec::new();
    for mutant in &selected {
        println!("\n==> mutant {} ({})", mutant.name, mutant.area);
        let outcome = run_mutant(&root, &scratch, &logs, mutant, &options);
        // Whatever happened, the scratch copy goes back to the working tree's content.
        restore(&root, &scratch, mutant)?;
        let verdict = match &outcome.verdict {
            Verdict::Killed { killer, by } => format!("killed by `{killer}`: {by}"),
            Verdict::Survived => "SURVIVED".to_string(),
            Verdict::Error(e) => format!("ERROR: {e}"),
        };
        println!(
            "<== {} {verdict} ({:.0} s)",
            outcome.mutant.name, outcome.seconds
        );
        outcomes.push(outcome);
        // Written after every mutant, so an interrupted run keeps what it measured.
        write_results(&out, &outcomes, started.elapsed().as_secs_f64(), &options)?;
    }
    let total = started.elapsed().as_secs_f64();
    write_results(&out, &outcomes, total, &options)?;
    print!("{}", table(&outcomes, total));
    println!(
        "results: {} and {}",
        out.join("results.md").display(),
        out.join("results.json").display()
    );
    let survived: Vec<&str> = outcomes
        .iter()
        .filter(|o| !matches!(o.verdict, Verdict::Killed { .. }))
        .map(|o| o.mutant.name.as_str())
        .collect();
    if survived.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} mutant(s) not killed: {}",
            survived.len(),
            survived.join(", ")
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The manifest and the patches.

fn parse_manifest(dir: &Path) -> Result<Vec<Mutant>, String> {
    let path = dir.join("manifest.txt");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let mut mutants: Vec<Mutant> = Vec::new();
    let mut last_key = String::new();
    for (number, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), number + 1);
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            mutants.push(Mutant {
                name: name.to_string(),
                ..Mutant::default()
            });
            last_key.clear();
            continue;
        }
        let mutant = mutants
            .last_mut()
            .ok_or_else(|| format!("{}: a key before the first [section]", at()))?;
        if line.starts_with(' ') || line.starts_with('\t') {
            // A continuation of the previous key's text.
            let field = match last_key.as_str() {
                "plants" => &mut mutant.plants,
                "expect" => &mut mutant.expect,
                _ => return Err(format!("{}: a continuation line after `{last_key}`", at())),
            };
            field.push(' ');
            field.push_str(line.trim());
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("{}: expected `key: value`", at()))?;
        let value = value.trim().to_string();
        match key.trim() {
            "area" => mutant.area = value,
            "target" => {
                let (file, anchor) = value
                    .split_once("::")
                    .ok_or_else(|| format!("{}: target is `FILE :: ANCHOR`", at()))?;
                mutant.file = file.trim().to_string();
                mutant.anchor = anchor.trim().to_string();
            }
            "plants" => mutant.plants = value,
            "expect" => mutant.expect = value,
            "kill" => {
                if !(value.starts_with("test ") || value.starts_with("sim ")) {
                    return Err(format!("{}: a killer is `test ARGS` or `sim ARGS`", at()));
                }
                mutant.killers.push(value);
            }
            "quick" => mutant.quick = value == "yes",
            other => return Err(format!("{}: unknown key `{other}`", at())),
        }
        last_key = key.trim().to_string();
    }
    for mutant in &mutants {
        if mutant.file.is_empty() || mutant.killers.is_empty() {
            return Err(format!(
                "{}: mutant {} needs a target and a killer",
                path.display(),
                mutant.name
            ));
        }
    }
    Ok(mutants)
}

fn parse_patch(path: &Path) -> Result<Vec<Hunk>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let mut hunks = Vec::new();
    let mut current: Option<Hunk> = None;
    let mut in_replace = false;
    for line in text.lines() {
        match line.trim_end() {
            "--- find" => {
                current = Some(Hunk::default());
                in_replace = false;
            }
            "+++ replace" => in_replace = true,
            "=== end" => {
                let hunk = current.take().ok_or(format!("{path:?}: `=== end` alone"))?;
                if hunk.find.is_empty() {
                    return Err(format!("{path:?}: a hunk finds nothing"));
                }
                hunks.push(hunk);
            }
            _ => match current.as_mut() {
                Some(hunk) if in_replace => hunk.replace.push(line.to_string()),
                Some(hunk) => hunk.find.push(line.trim().to_string()),
                None if line.starts_with('#') || line.trim().is_empty() => {}
                None => return Err(format!("{path:?}: text outside a hunk: {line}")),
            },
        }
    }
    if hunks.is_empty() {
        return Err(format!("{path:?}: no hunk"));
    }
    Ok(hunks)
}

/// Whether `line` (trimmed) starts a function definition.
fn starts_fn(line: &str) -> bool {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    rest.starts_with("fn ")
}

/// Whether `text` contains `anchor` at `at` as a whole token.
fn token_at(text: &str, at: usize, anchor: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let before_ok = text[..at].chars().next_back().is_none_or(|c| !ident(c));
    let after_ok = text[at + anchor.len()..]
        .chars()
        .next()
        .is_none_or(|c| !ident(c));
    before_ok && after_ok
}

/// `original` with the hunks applied inside the function `anchor` names.
fn apply_hunks(original: &str, anchor: &str, hunks: &[Hunk]) -> Result<String, String> {
    let starts: Vec<usize> = original
        .match_indices(anchor)
        .map(|(i, _)| i)
        .filter(|&i| token_at(original, i, anchor))
        .collect();
    let start = match starts.as_slice() {
        [one] => *one,
        [] => return Err(format!("anchor `{anchor}` not found")),
        _ => return Err(format!("anchor `{anchor}` found {} times", starts.len())),
    };
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    let anchor_line = original[..start].matches('\n').count();
    let end_line = (anchor_line + 1..lines.len())
        .find(|&i| starts_fn(&lines[i]))
        .unwrap_or(lines.len());
    for (n, hunk) in hunks.iter().enumerate() {
        // Searched again per hunk, as earlier hunks may change the function's length.
        let end = end_line.min(lines.len());
        let found = (anchor_line..end.saturating_sub(hunk.find.len() - 1)).find(|&i| {
            hunk.find
                .iter()
                .enumerate()
                .all(|(k, want)| lines.get(i + k).is_some_and(|l| l.trim() == want))
        });
        let Some(at) = found else {
            return Err(format!(
                "hunk {} (`{}`) not found in `{anchor}`",
                n + 1,
                hunk.find[0]
            ));
        };
        let indent: String = lines[at]
            .chars()
            .take_while(|c| c.is_whitespace())
            .collect();
        let replacement: Vec<String> = hunk
            .replace
            .iter()
            .map(|l| {
                if l.trim().is_empty() {
                    String::new()
                } else {
                    format!("{indent}{l}")
                }
            })
            .collect();
        lines.splice(at..at + hunk.find.len(), replacement);
    }
    let mut out = lines.join("\n");
    if original.ends_with('\n') {
        out.push('\n');
    }
    if out == original {
        return Err("the patch changes nothing".to_string());
    }
    Ok(out)
}

/// Plants `mutant` in the scratch copy (from the working tree's content of its file).
fn plant(root: &Path, scratch: &Path, mutant: &Mutant) -> Result<(), String> {
    let patch = root.join("mutants").join(format!("{}.patch", mutant.name));
    let hunks = parse_patch(&patch)?;
    let source = root.join(&mutant.file);
    let original =
        fs::read_to_string(&source).map_err(|e| format!("cannot read {}: {e}", mutant.file))?;
    let mutated = apply_hunks(&original, &mutant.anchor, &hunks).map_err(|e| {
        format!(
            "{} :: {}: {e}; refresh mutants/{}.patch",
            mutant.file, mutant.anchor, mutant.name
        )
    })?;
    let target = scratch.join(&mutant.file);
    fs::write(&target, mutated).map_err(|e| format!("cannot write {target:?}: {e}"))
}

/// Puts the working tree's content of the mutant's file back into the scratch copy, and marks
/// the working tree's file as changed. The scratch copy's crates have the working tree's names
/// and versions, so cargo gives them the same unit hashes in the shared target directories: the
/// mutant's build replaced the working tree's artifacts (the simulator binary among them), and
/// cargo, which goes by mtimes, would take them as fresh, so `cargo sim` or `cargo test` run
/// afterwards would run the mutant. A newer mtime on the real source makes cargo rebuild it.
fn restore(root: &Path, scratch: &Path, mutant: &Mutant) -> Result<(), String> {
    copy_if_changed(&root.join(&mutant.file), &scratch.join(&mutant.file))?;
    let source = root.join(&mutant.file);
    fs::File::options()
        .write(true)
        .open(&source)
        .and_then(|file| file.set_modified(std::time::SystemTime::now()))
        .map_err(|e| format!("cannot mark {source:?} changed: {e}"))
}

/// Writes `to` with `from`'s content unless it already has it (so cargo, which goes by mtimes,
/// rebuilds only what changed). Returns whether it wrote.
fn copy_if_changed(from: &Path, to: &Path) -> Result<bool, String> {
    let content = fs::read(from).map_err(|e| format!("cannot read {from:?}: {e}"))?;
    if fs::read(to).is_ok_and(|existing| existing == content) {
        return Ok(false);
    }
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("cannot create {parent:?}: {e}"))?;
    }
    fs::write(to, content).map_err(|e| format!("cannot write {to:?}: {e}"))?;
    Ok(true)
}

/// Brings the scratch copy to the working tree's content (tracked and untracked, not ignored
/// files), rewriting only files that differ. Returns how many files it holds.
fn sync_scratch(root: &Path, scratch: &Path) -> Result<usize, String> {
    let output = Command::new("git")
        .current_dir(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .map_err(|e| format!("cannot run git ls-files: {e}"))?;
    if !output.status.success() {
        return Err("git ls-files failed".to_string());
    }
    let listing = String::from_utf8(output.stdout).map_err(|_| "a non-UTF-8 path in git")?;
    let mut count = 0;
    for path in listing.split('\0').filter(|p| !p.is_empty()) {
        let from = root.join(path);
        // Deleted in the working tree but still in the index: not part of the copy.
        if !from.is_file() {
            continue;
        }
        copy_if_changed(&from, &scratch.join(path))?;
        count += 1;
    }
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// Running the killers.

fn run_mutant(
    root: &Path,
    scratch: &Path,
    logs: &Path,
    mutant: &Mutant,
    options: &Options,
) -> Outcome {
    let started = Instant::now();
    let mut tried = Vec::new();
    let finish = |verdict, tried| Outcome {
        mutant: mutant.clone(),
        verdict,
        seconds: started.elapsed().as_secs_f64(),
        tried,
    };
    if let Err(e) = plant(root, scratch, mutant) {
        return finish(Verdict::Error(e), tried);
    }
    for (k, killer) in mutant.killers.iter().enumerate() {
        if options.sim_only && !killer.starts_with("sim ") {
            continue;
        }
        let killer_started = Instant::now();
        let log = logs.join(format!("{}.{}.log", mutant.name, k + 1));
        let result = if let Some(args) = killer.strip_prefix("test ") {
            run_test_killer(root, scratch, &log, args)
        } else if let Some(args) = killer.strip_prefix("sim ") {
            run_sim_killer(root, scratch, &log, args, options)
        } else {
            Err(format!("unknown killer `{killer}`"))
        };
        let seconds = killer_started.elapsed().as_secs_f64();
        match result {
            Ok(Some(by)) => {
                println!("    {killer}: KILLED ({seconds:.0} s): {by}");
                tried.push((killer.clone(), "killed".to_string(), seconds));
                let killer = killer.clone();
                return finish(Verdict::Killed { killer, by }, tried);
            }
            Ok(None) => {
                println!("    {killer}: passed ({seconds:.0} s)");
                tried.push((killer.clone(), "passed".to_string(), seconds));
            }
            Err(e) => {
                println!("    {killer}: ERROR ({seconds:.0} s): {e}");
                tried.push((killer.clone(), "error".to_string(), seconds));
                return finish(Verdict::Error(e), tried);
            }
        }
    }
    finish(Verdict::Survived, tried)
}

/// Runs `command` with its output to `log`; after `timeout` it and every process it started are
/// killed (by id, found through /proc). It stays in our process group, so a Ctrl-C reaches it
/// too. Returns the exit status's success, or `None` on timeout.
fn run_logged(mut command: Command, log: &Path, timeout: Duration) -> Result<Option<bool>, String> {
    let file = fs::File::create(log).map_err(|e| format!("cannot create {log:?}: {e}"))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("cannot clone {log:?}: {e}"))?;
    command.stdin(Stdio::null()).stdout(file).stderr(err);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting for {command:?}: {e}"))?
        {
            return Ok(Some(status.success()));
        }
        if started.elapsed() > timeout {
            // Descendants first (the test binary cargo started), then the child itself.
            let mut doomed = descendants(child.id());
            doomed.reverse();
            for pid in doomed {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every process below `pid` (children first found, breadth first), from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        let tasks = fs::read_dir(format!("/proc/{parent}/task"))
            .into_iter()
            .flatten();
        for task in tasks.flatten() {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if !found.contains(&child) && found.len() < 10_000 {
                    found.push(child);
                    queue.push(child);
                }
            }
        }
    }
    found
}

fn read_log(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(log) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// `cargo test ARGS` in the scratch copy: built first (a build failure is the patch's error, not
/// a kill), then run. `Some(what)` when a test failed.
fn run_test_killer(
    root: &Path,
    scratch: &Path,
    log: &Path,
    args: &str,
) -> Result<Option<String>, String> {
    let (cargo_args, test_args) = match args.split_once(" -- ") {
        Some((c, t)) => (c, Some(t)),
        None => (args, None),
    };
    let mut build = normal_cargo(root);
    build
        .current_dir(scratch)
        .env("CARGO_TARGET_DIR", normal_target_dir(root))
        .args(["test", "--no-run"])
        .args(cargo_args.split_whitespace());
    build_mutant(build, log, "")?;
    let mut run = normal_cargo(root);
    run.current_dir(scratch)
        .env("CARGO_TARGET_DIR", normal_target_dir(root))
        .arg("test")
        .args(cargo_args.split_whitespace());
    if let Some(test_args) = test_args {
        run.arg("--").args(test_args.split_whitespace());
    }
    match run_logged(run, log, KILLER_TIMEOUT)? {
        Some(true) => Ok(None),
        None => Ok(Some(format!(
            "timeout after {} s (a hang)",
            KILLER_TIMEOUT.as_secs()
        ))),
        Some(false) => Ok(Some(failed_tests(&read_log(log)))),
    }
}

/// The failed tests of a `cargo test` log and the first panic message.
fn failed_tests(text: &str) -> String {
    let mut binary = String::new();
    let mut failed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("Running ") {
            // `Running tests/model.rs (target/debug/deps/model-0123abcd)`: the binary's name.
            let path = rest
                .split_once('(')
                .map_or(rest, |(_, p)| p.trim_end_matches(')'));
            binary = path
                .rsplit('/')
                .next()
                .unwrap_or("")
                .split('-')
                .next()
                .unwrap_or("")
                .to_string();
        }
        if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            failed.push(format!("{binary}::{name}"));
        }
    }
    // The first panic's message, preferring one that names a violated property over a pinned
    // count (the models pin their state counts, which any behaviour change moves).
    let lines: Vec<&str> = text.lines().collect();
    let panics: Vec<&str> = lines
        .windows(2)
        .filter(|pair| pair[0].contains("panicked at"))
        .map(|pair| pair[1].trim())
        .collect();
    let panic = panics
        .iter()
        .find(|m| !m.contains("pinned"))
        .or(panics.first())
        .map(|l| l.chars().take(160).collect::<String>());
    let mut what = if failed.is_empty() {
        "cargo test failed".to_string()
    } else {
        let shown: Vec<&str> = failed.iter().take(3).map(String::as_str).collect();
        let more = failed.len().saturating_sub(3);
        if more > 0 {
            format!("{} (+{more} more)", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    if let Some(panic) = panic {
        let _ = write!(what, " -- {panic}");
    }
    what
}

/// The simulator on the mutant: built from the scratch copy under madsim, then run in chunks of
/// seeds. `Some(what)` names the first failing seed and its violation.
fn run_sim_killer(
    root: &Path,
    scratch: &Path,
    log: &Path,
    args: &str,
    options: &Options,
) -> Result<Option<String>, String> {
    let mut build = madsim_cargo(root);
    build.current_dir(scratch).args([
        "build",
        "--profile",
        "sim",
        "--package",
        "sim",
        "--bin",
        "rill-sim",
    ]);
    build_mutant(build, log, " under madsim")?;
    let binary = sim_target_dir(root).join("sim").join("rill-sim");
    // The killer's own --seeds/--start, the rest passed through.
    let mut rest = Vec::new();
    let mut seeds: u64 = 100;
    let mut start: u64 = 1;
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        match words[i] {
            "--seeds" | "--start" if i + 1 < words.len() => {
                let n: u64 = words[i + 1]
                    .parse()
                    .map_err(|_| format!("killer `sim {args}`: bad number"))?;
                if words[i] == "--seeds" {
                    seeds = n;
                } else {
                    start = n;
                }
                i += 2;
            }
            word => {
                rest.push(word.to_string());
                i += 1;
            }
        }
    }
    if let Some(n) = options.seeds {
        seeds = n;
    }
    let mut done = 0;
    let mut text_all = String::new();
    while done < seeds {
        let chunk = SIM_CHUNK_SEEDS.min(seeds - done);
        let mut run = crate::sim_command(&binary);
        run.current_dir(scratch)
            .args(&rest)
            .args(["--seeds", &chunk.to_string()])
            .args(["--start", &(start + done).to_string()]);
        if let Some(jobs) = options.jobs {
            run.args(["--jobs", &jobs.to_string()]);
        }
        let chunk_log = log.with_extension(format!("chunk{}.log", start + done));
        let status = run_logged(run, &chunk_log, KILLER_TIMEOUT)?;
        let text = read_log(&chunk_log);
        text_all.push_str(&text);
        match status {
            Some(true) => {}
            None => {
                return Ok(Some(format!(
                    "seeds {}..{}: timeout after {} s",
                    start + done,
                    start + done + chunk - 1,
                    KILLER_TIMEOUT.as_secs()
                )))
            }
            Some(false) => return Ok(Some(sim_failure(&text, start + done, chunk))),
        }
        done += chunk;
    }
    let _ = fs::write(log, text_all);
    Ok(None)
}

/// The first failing seed of a simulator run and its violation, from its summary.
fn sim_failure(text: &str, start: u64, chunk: u64) -> String {
    let mut lines = text.lines();
    let mut failing = 0;
    let mut first = None;
    while let Some(line) = lines.next() {
        if let Some(rest) = line.trim().strip_prefix("FAILED seed ") {
            failing += 1;
            if first.is_none() {
                let seed = rest.split_whitespace().next().unwrap_or("?").to_string();
                let violation = lines
                    .clone()
                    .take(4)
                    .find_map(|l| l.trim().strip_prefix("violation: ").map(str::to_string))
                    .or_else(|| {
                        lines
                            .clone()
                            .take(4)
                            .find(|l| !l.trim().is_empty())
                            .map(|l| l.trim().to_string())
                    })
                    .unwrap_or_default();
                first = Some((seed, violation));
            }
        }
    }
    match first {
        Some((seed, violation)) => {
            let violation: String = violation.chars().take(200).collect();
            format!(
                "seed {seed} ({failing} of seeds {start}..{}): {violation}",
                start + chunk - 1
            )
        }
        None => {
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            format!(
                "seeds {start}..{}: the simulator failed: {}",
                start + chunk - 1,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results.

fn score(outcomes: &[Outcome]) -> (usize, usize) {
    let killed = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Killed { .. }))
        .count();
    let counted = outcomes
        .iter()
        .filter(|o| !matches!(o.verdict, Verdict::Error(_)))
        .count();
    (killed, counted)
}

fn verdict_words(verdict: &Verdict) -> (&'static str, String, String) {
    match verdict {
        Verdict::Killed { killer, by } => ("killed", killer.clone(), by.clone()),
        Verdict::Survived => ("SURVIVED", String::new(), String::new()),
        Verdict::Error(e) => ("ERROR", String::new(), e.clone()),
    }
}

fn table(outcomes: &[Outcome], total: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<44} {:<9} {:>6}  killed by",
        "mutant", "verdict", "sec"
    );
    for o in outcomes {
        let (verdict, killer, by) = verdict_words(&o.verdict);
        let by: String = by.chars().take(110).collect();
        let _ = writeln!(
            out,
            "{:<44} {:<9} {:>6.0}  {killer}{}{by}",
            o.mutant.name,
            verdict,
            o.seconds,
            if killer.is_empty() { "" } else { ": " }
        );
    }
    let (killed, counted) = score(outcomes);
    let _ = writeln!(
        out,
        "\nmutation score: {killed}/{counted} killed ({:.0}%), {:.0} s in all",
        100.0 * killed as f64 / counted.max(1) as f64,
        total
    );
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_results(
    out: &Path,
    outcomes: &[Outcome],
    total: f64,
    options: &Options,
) -> Result<(), String> {
    let (killed, counted) = score(outcomes);
    let mut json = String::new();
    let _ = writeln!(
        json,
        "{{\n  \"killed\": {killed},\n  \"counted\": {counted},\n  \"seconds\": {total:.1},\n  \"quick\": {},\n  \"mutants\": [",
        options.quick
    );
    for (i, o) in outcomes.iter().enumerate() {
        let (verdict, killer, by) = verdict_words(&o.verdict);
        let mut fields = BTreeMap::new();
        fields.insert("name", json_string(&o.mutant.name));
        fields.insert("area", json_string(&o.mutant.area));
        fields.insert(
            "target",
            json_string(&format!("{} :: {}", o.mutant.file, o.mutant.anchor)),
        );
        fields.insert("plants", json_string(&o.mutant.plants));
        fields.insert("verdict", json_string(verdict));
        fields.insert("killer", json_string(&killer));
        fields.insert("by", json_string(&by));
        fields.insert("seconds", format!("{:.1}", o.seconds));
        let tried: Vec<String> = o
            .tried
            .iter()
            .map(|(k, r, s)| {
                format!(
                    "{{\"killer\": {}, \"result\": {}, \"seconds\": {s:.1}}}",
                    json_string(k),
                    json_string(r)
                )
            })
            .collect();
        fields.insert("tried", format!("[{}]", tried.join(", ")));
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("      \"{k}\": {v}"))
            .collect();
        let comma = if i + 1 < outcomes.len() { "," } else { "" };
        let _ = writeln!(json, "    {{\n{}\n    }}{comma}", body.join(",\n"));
    }
    json.push_str("  ]\n}\n");
    let path = out.join("results.json");
    fs::write(&path, json).map_err(|e| format!("cannot write {path:?}: {e}"))?;

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Mutation score\n\n`cargo xtask mutants{}{}`: **{killed}/{counted} killed** ({:.0}%), {:.0} s.\n",
        if options.quick { " --quick" } else { "" },
        if options.sim_only { " --sim-only" } else { "" },
        100.0 * killed as f64 / counted.max(1) as f64,
        total
    );
    let _ = writeln!(
        md,
        "| mutant | area | plants | verdict | killed by | s |\n|---|---|---|---|---|---:|"
    );
    for o in outcomes {
        let (verdict, killer, by) = verdict_words(&o.verdict);
        let cell = |s: &str| s.replace('|', "\\|");
        let killed_by = if killer.is_empty() {
            cell(&by)
        } else {
            format!("`{}`: {}", cell(&killer), cell(&by))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {verdict} | {killed_by} | {:.0} |",
            o.mutant.name,
            cell(&o.mutant.area),
            cell(&o.mutant.plants),
            o.seconds
        );
    }
    let path = out.join("results.md");
    fs::write(&path, md).map_err(|e| format!("cannot write {path:?}: {e}"))
}

/// Builds a mutant (its log beside `log`); a failure names the first compiler error.
fn build_mutant(build: Command, log: &Path, world: &str) -> Result<(), String> {
    let build_log = log.with_extension("build.log");
    if run_logged(build, &build_log, Duration::from_secs(3 * 3600))? == Some(true) {
        return Ok(());
    }
    let text = read_log(&build_log);
    let first_error = text
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or("build failed");
    Err(format!(
        "the mutant does not build{world} ({first_error}); see {}",
        build_log.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
impl X {
    fn other(&self) {
        let flushed = a == b;
    }

    pub(crate) fn target(&self) {
        let x = 1;
        let flushed = a == b;
        if flushed {
            go();
        }
    }

    fn target_again(&self) {}
}
";

    fn hunk(find: &[&str], replace: &[&str]) -> Hunk {
        Hunk {
            find: find.iter().map(|s| s.trim().to_string()).collect(),
            replace: replace.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_hunk_applies_inside_its_function_only_with_the_found_indentation() {
        let h = hunk(&["let flushed = a == b;"], &["let flushed = true;"]);
        let out = apply_hunks(SOURCE, "fn target", &[h]).expect("applies");
        assert!(out.contains("    fn other(&self) {\n        let flushed = a == b;"));
        assert!(out.contains("        let x = 1;\n        let flushed = true;\n"));
        assert!(out.ends_with("}\n"));
    }

    #[test]
    fn a_missing_hunk_or_anchor_names_what_to_refresh() {
        let h = hunk(&["go();"], &["stop();"]);
        let e =
            apply_hunks(SOURCE, "fn other", std::slice::from_ref(&h)).expect_err("not in other");
        assert!(e.contains("not found in `fn other`"), "{e}");
        let e = apply_hunks(SOURCE, "fn gone", &[h]).expect_err("no anchor");
        assert!(e.contains("anchor `fn gone` not found"), "{e}");
    }

    #[test]
    fn multi_line_hunks_match_ignoring_indentation() {
        let h = hunk(&["if flushed {", "go();"], &["if !flushed {", "    go();"]);
        let out = apply_hunks(SOURCE, "fn target", &[h]).expect("applies");
        assert!(out.contains("        if !flushed {\n            go();\n        }"));
    }

    #[test]
    fn failures_are_summarised_from_cargo_test_and_the_simulator() {
        let log = "     Running tests/model.rs (target/debug/deps/model-abc)\n\
                   test hw_is_monotonic ... FAILED\n\
                   thread 'hw_is_monotonic' panicked at tests/model.rs:3:5:\n\
                   a committed record was lost\n";
        assert_eq!(
            failed_tests(log),
            "model::hw_is_monotonic -- a committed record was lost"
        );
        let sim =
            "summary\nFAILED seed 7 (cluster)\n  violation: lost-write: 3 records\n  replay: x\n";
        assert_eq!(
            sim_failure(sim, 1, 25),
            "seed 7 (1 of seeds 1..25): lost-write: 3 records"
        );
    }

    #[test]
    fn the_manifest_in_the_repository_parses_and_every_patch_applies() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace")
            .to_path_buf();
        let mutants = parse_manifest(&root.join("mutants")).expect("manifest parses");
        assert!(mutants.len() >= 15, "at least 15 mutants");
        assert!(mutants.iter().any(|m| m.quick), "a quick subset");
        for m in &mutants {
            let hunks = parse_patch(&root.join("mutants").join(format!("{}.patch", m.name)))
                .expect("patch parses");
            let source = fs::read_to_string(root.join(&m.file)).expect("target file");
            apply_hunks(&source, &m.anchor, &hunks).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        }
    }
}
