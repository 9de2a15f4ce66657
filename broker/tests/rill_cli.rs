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

fn write_history(name: &str, lines: &[&str]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rill-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write history");
    path
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
    let path = write_history("valid.jsonl", &[SEND_INVOKE, SEND_OK, POLL_INVOKE, poll_ok]);
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
    let path = write_history("lost.jsonl", &lines);
    let (code, stdout, _) = rill(&["check", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("lost-write"), "{stdout}");
}

#[test]
fn bad_input_names_the_line_and_exits_three() {
    let path = write_history("bad.jsonl", &[SEND_INVOKE, "{not json"]);
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
