//! A campaign run as four shards and merged (`cargo sim --shard K/4 --json FILE`, then
//! `cargo sim merge`) prints the verdict and tables of the same campaign run at once, with the
//! same exit code; a merge missing a shard is refused and names it. The storage scenario is
//! a pure function of its seed and takes milliseconds a seed, so this runs in both builds.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the simulator binary; its exit code and stdout (stderr on failure to help reading).
fn sim(args: &[String]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rill-sim"))
        .args(args)
        .output()
        .expect("the simulator binary runs");
    let code = output
        .status
        .code()
        .expect("the simulator exits, not killed");
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    (code, stdout, stderr)
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// The lines of a summary that are functions of the seeds: without wall-clock figures and the
/// lines that name the shard files.
fn tables(stdout: &str) -> Vec<&str> {
    const CLOCKED: [&str; 5] = [
        "wall time",
        "simulated/wall",
        "seeds per hour",
        "merged ",
        "results written",
    ];
    stdout
        .lines()
        .filter(|line| !CLOCKED.iter().any(|c| line.contains(c)))
        .collect()
}

/// Runs `settings` at once and as four shards; checks the merge against the single run and
/// returns the exit code.
fn same_as_one_run(settings: &str, dir: &Path) -> i32 {
    let (code, whole, stderr) = sim(&words(&format!("{settings} --jobs 2")));
    assert!(whole.contains("verdict: "), "{whole}\n{stderr}");
    let files: Vec<PathBuf> = (1..=4)
        .map(|k| dir.join(format!("shard-{k}.json")))
        .collect();
    for (k, file) in (1..=4).zip(&files) {
        let mut args = words(&format!("{settings} --jobs 2 --shard {k}/4 --json"));
        args.push(file.to_string_lossy().into_owned());
        let (shard_code, stdout, stderr) = sim(&args);
        assert!(shard_code == 0 || shard_code == 1, "{stdout}\n{stderr}");
    }
    // Any order: the merge sorts by seed.
    let mut merge = vec!["merge".to_string()];
    for k in [2, 0, 3, 1] {
        merge.push(files[k].to_string_lossy().into_owned());
    }
    let (merged_code, merged, stderr) = sim(&merge);
    assert_eq!(tables(&merged), tables(&whole), "{stderr}");
    assert_eq!(merged_code, code, "{merged}\n{stderr}");

    // Three of the four: refused, naming the missing shard.
    let (missing_code, _, stderr) = sim(&merge[..4]);
    assert_eq!(missing_code, 2, "{stderr}");
    assert!(stderr.contains("1 of 4 shards missing: 2/4"), "{stderr}");
    code
}

#[test]
fn four_shards_give_the_verdict_and_tables_of_one_run() {
    let dir = std::env::temp_dir().join(format!("rill-shards-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temp dir is writable");
    let passing = same_as_one_run(
        "--scenario storage --start 5 --seeds 14 --check-determinism",
        &dir,
    );
    assert_eq!(passing, 0, "the storage campaign passes");
    // A deliberately broken disk: failed seeds, their violations and replay lines.
    let failing = same_as_one_run("--scenario storage --seeds 14 --bug lying-fsync", &dir);
    assert_eq!(failing, 1, "lying fsyncs lose acknowledged records");
    std::fs::remove_dir_all(&dir).expect("the temp dir can be removed");
}
