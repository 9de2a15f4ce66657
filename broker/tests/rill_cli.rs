//! The `rill` binary end to end: `rill check` answers with the documented exit codes.

use std::process::Command;

fn rill(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(args)
        .output()
        .expect("rill runs");
    let code = output.status.code().expect("rill exits normally");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("rill prints UTF-8");
    (code, text(output.stdout), text(output.stderr))
}

/// The history in a file of its own directory, removed with the guard.
fn write_history(name: &str, lines: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("rill-cli-test-")
        .tempdir()
        .expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write history");
    (dir, path)
}

const SEND_INVOKE: &str =
    r#"{"index":0,"type":"invoke","process":0,"time":1,"f":"send","value":[["send","t-0",1]]}"#;
const SEND_OK: &str =
    r#"{"index":1,"type":"ok","process":0,"time":2,"f":"send","value":[["send","t-0",[0,1]]]}"#;
const POLL_INVOKE: &str =
    r#"{"index":2,"type":"invoke","process":1,"time":3,"f":"poll","value":[["poll"]]}"#;

#[test]
fn a_valid_history_exits_zero() {
    let poll_ok = r#"{"index":3,"type":"ok","process":1,"time":4,"f":"poll","value":[["poll",{"t-0":[[0,1]]}]]}"#;
    let (_dir, path) = write_history("valid.jsonl", &[SEND_INVOKE, SEND_OK, POLL_INVOKE, poll_ok]);
    let (code, stdout, stderr) = rill(&["check", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
}

#[test]
fn a_lost_write_exits_one() {
    let send2 =
        r#"{"index":3,"type":"invoke","process":0,"time":4,"f":"send","value":[["send","t-0",2]]}"#;
    let send2_ok =
        r#"{"index":4,"type":"ok","process":0,"time":5,"f":"send","value":[["send","t-0",[1,2]]]}"#;
    let poll_ok = r#"{"index":5,"type":"ok","process":1,"time":6,"f":"poll","value":[["poll",{"t-0":[[1,2]]}]]}"#;
    let lines = [SEND_INVOKE, SEND_OK, POLL_INVOKE, send2, send2_ok, poll_ok];
    let (_dir, path) = write_history("lost.jsonl", &lines);
    let (code, stdout, _) = rill(&["check", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("lost-write"), "{stdout}");
}

#[test]
fn bad_input_names_the_line_and_exits_three() {
    let (_dir, path) = write_history("bad.jsonl", &[SEND_INVOKE, "{not json"]);
    let (code, _, stderr) = rill(&["check", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn an_unknown_command_is_a_clear_error() {
    let (code, _, stderr) = rill(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
}

/// A base port whose nine cluster ports (base+10N+{0,1,2}, N = 1..3) are free: from
/// `RILL_CLI_TEST_BASE_PORT` (default 41700), else the next hundreds.
#[cfg(not(madsim))]
fn free_base_port() -> u16 {
    let first: u16 = std::env::var("RILL_CLI_TEST_BASE_PORT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(41_700);
    (0..10)
        .map(|step| first + step * 100)
        .find(|base| {
            (1..=3u16).all(|n| {
                (0..3u16).all(|offset| {
                    std::net::TcpListener::bind(("127.0.0.1", base + 10 * n + offset)).is_ok()
                })
            })
        })
        .expect("a free base port")
}

/// Stops the cluster in `dir` however the test ends.
#[cfg(not(madsim))]
struct ClusterGuard(std::path::PathBuf);

#[cfg(not(madsim))]
impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let dir = self.0.to_str().expect("utf-8 path");
        let _ = rill(&["cluster", "down", "--dir", dir]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Ready means ready (issue 13): once `rill cluster up` returns, every broker lists all three
/// brokers and a controller, and an admin call succeeds at its first attempt: a replication
/// factor 1 topic, below the cluster's min ISR 2, is created (as Kafka creates it) and takes
/// acks=all writes. Before, the first CreateTopics timed out "waiting for controller" for a few
/// seconds, and a replication factor below min ISR was refused with an empty INVALID_TOPIC.
#[cfg(not(madsim))]
#[test]
fn cluster_up_returns_ready_for_an_admin_call() {
    let base = free_base_port();
    let dir = std::env::temp_dir().join(format!("rill-cli-up-{}-{base}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _guard = ClusterGuard(dir.clone());
    let dir_arg = dir.to_str().expect("utf-8 path").to_string();
    let base_arg = base.to_string();
    let (code, stdout, stderr) = rill(&[
        "cluster",
        "up",
        "--brokers",
        "3",
        "--dir",
        &dir_arg,
        "--base-port",
        &base_arg,
        "--partitions",
        "4",
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let bootstrap: Vec<String> = stdout.trim().split(',').map(str::to_string).collect();
    assert_eq!(bootstrap.len(), 3, "{stdout}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        for address in &bootstrap {
            let admin = client::admin::Admin::new(client::ClientConfig::new(vec![address.clone()]))
                .expect("valid config");
            let metadata = admin.metadata(Some(&[])).await.expect("metadata");
            assert_eq!(metadata.brokers.len(), 3, "{address}: {metadata:?}");
            assert!(metadata.controller.is_some(), "{address}: {metadata:?}");
        }
    });
    let bootstrap_arg = bootstrap.join(",");
    let (code, stdout, stderr) = rill(&[
        "topic",
        "-b",
        &bootstrap_arg,
        "create",
        "rf1",
        "--partitions",
        "2",
        "--replication-factor",
        "1",
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let (code, stdout, stderr) = rill(&[
        "produce",
        "-b",
        &bootstrap_arg,
        "rf1",
        "--value",
        "v",
        "--acks",
        "-1",
    ]);
    assert_eq!(
        code, 0,
        "acks=all to RF 1: stdout: {stdout}\nstderr: {stderr}"
    );
    let (_, listing, _) = rill(&["topic", "-b", &bootstrap_arg, "list"]);
    let rf1: Vec<&str> = listing.lines().filter(|l| l.starts_with("rf1-")).collect();
    assert_eq!(rf1.len(), 2, "{listing}");
    assert!(rf1.iter().all(|l| !l.contains("leader None")), "{listing}");
}
