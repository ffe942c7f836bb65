//! `ferry` behaves as the command-line tools its users know: a reader that
//! goes away ends it quietly, exit codes say what happened (0 done, 1
//! refused or failed, 2 a wrong command line), and shell completions and
//! man pages come from the same definitions as `--help`.

use std::process::{Command, Stdio};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    // The reading end is closed before ferry writes a byte, as `| head`
    // leaves it once it has read its lines.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(FERRY)
        .args(["completions", "bash"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run ferry");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "ferry complained: {stderr}");
}

#[test]
fn exit_codes_tell_a_wrong_command_line_from_a_refusal() {
    let usage = Command::new(FERRY)
        .args(["disk", "frobnicate"])
        .output()
        .expect("run ferry");
    assert_eq!(usage.status.code(), Some(2), "a wrong command line");
    // Nothing listens on port 9 of localhost: the request cannot be made.
    let refused = Command::new(FERRY)
        .args([
            "disk",
            "list",
            "--engine",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ])
        .output()
        .expect("run ferry");
    assert_eq!(refused.status.code(), Some(1), "a request that failed");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.starts_with("ferry: error:"), "{stderr}");
}

#[test]
fn completions_and_man_pages_come_from_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(FERRY)
            .args(["completions", shell])
            .output()
            .expect("run ferry");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("ferry") && script.contains("move"),
            "{shell}: {script}"
        );
    }
    let dir = tempfile::tempdir().expect("a directory");
    let out = Command::new(FERRY)
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .expect("run ferry");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(dir.path().join("ferry-disk-move.1"))
        .expect("a page for disk move");
    assert!(
        page.contains(".TH") && page.contains("\\-\\-correlation\\-id"),
        "{page}"
    );
    assert!(dir.path().join("ferry.1").is_file());
}
