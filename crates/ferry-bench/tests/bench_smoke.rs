//! `ferry-bench move` runs end to end on the smallest disk it takes and
//! reports every figure issue 4 asks of it, and issue 13's trade-off for a
//! few pacing settings (the guest-paced default, one cap, none) over two
//! rounds, with each setting's medians. The
//! figures themselves are for people to read (docs/engine.md); this only
//! keeps the bench working.

use std::process::Command;

use serde_json::Value;

const FERRY_BENCH: &str = env!("CARGO_BIN_EXE_ferry-bench");

fn strings<'a>(v: &'a Value, list: &str, key: &str) -> Vec<&'a str> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {v:#}"))
        .iter()
        .filter_map(|x| x[key].as_str())
        .collect()
}

#[test]
fn bench_move_reports_every_figure() {
    let scratch = tempfile::Builder::new()
        .prefix("ferry-bench-")
        .tempdir_in(ferry_testkit::scratch_root())
        .expect("a scratch directory");
    let dir = scratch.path().join("bench");
    // Panics if the guest is not built; the bench finds it by the same
    // rule (ferry_qemu::guest_dir) from next to its executable.
    ferry_testkit::guest::artifacts();
    // The guest writes in bursts (the path of a guest-aware copy that has
    // rests to use); every figure below holds for a steady writer too.
    let out = Command::new(FERRY_BENCH)
        .args([
            "move",
            "--base-gib",
            "1",
            "--json",
            "--writer-duty",
            "500/500",
        ])
        .args([
            "--settings",
            "fixed-400,default,fixed-none",
            "--rounds",
            "2",
        ])
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("run ferry-bench move");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ferry-bench move failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the bench's --json is not JSON ({e}): {stderr}"));

    assert_eq!(
        report["writer"]["duty"],
        serde_json::json!([500, 500]),
        "{:#}",
        report["writer"]
    );

    let methods = strings(&report, "rows", "method");
    for want in [
        "ferry live move (whole job)",
        "ferry live move, fixed 400 MiB/s",
        "ferry live move, fixed, no cap",
        "cp --sparse=always",
        "qemu-img convert -W -m 16",
        "proxmox way: blockdev-mirror full write-blocking",
    ] {
        assert!(methods.contains(&want), "no row {want:?}: {methods:?}");
    }
    let ratio = report["ratio"]["ratio"].as_f64().unwrap_or(f64::NAN);
    assert!(ratio.is_finite() && ratio > 0.0, "{:#}", report["ratio"]);
    // The ratio is of the fastest setting's copy, whichever that was.
    let fastest = report["ratio"]["setting"].as_str().unwrap_or_default();
    assert!(
        strings(&report, "tradeoff", "setting").contains(&fastest),
        "{:#}",
        report["ratio"]
    );

    let rows = report["rows"].as_array().expect("rows");
    let pauses = |method: &str| -> Vec<String> {
        rows.iter()
            .find(|r| r["method"] == method)
            .and_then(|r| r["pauses"].as_array())
            .map(|p| {
                p.iter()
                    .filter(|x| x["ms"].as_f64().is_some_and(|ms| ms >= 0.0))
                    .filter_map(|x| x["switch"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        pauses("ferry live move (whole job)"),
        ["snapshot", "reopen", "commit pivot"],
        "{rows:#?}"
    );
    assert_eq!(
        pauses("proxmox way: blockdev-mirror full write-blocking"),
        ["pivot"]
    );
    let acks = |method: &str| {
        rows.iter()
            .find(|r| r["method"] == method)
            .and_then(|r| r["writer_acks_per_s"].as_f64())
            .unwrap_or(0.0)
    };
    assert!(
        acks("ferry live move (whole job)") > 0.0,
        "the guest wrote during the move: {rows:#?}"
    );

    // The main table has one row per setting, round 1's move, whatever
    // the rounds.
    assert_eq!(
        methods
            .iter()
            .filter(|m| m.starts_with("ferry live move"))
            .count(),
        3,
        "{methods:?}"
    );

    // The trade-off: every setting once per round, the default first
    // however they were given, each with its time, the writer's share and
    // a pause at every switch.
    assert_eq!(
        strings(&report, "tradeoff", "setting"),
        [
            "default",
            "fixed-400",
            "fixed-none",
            "default",
            "fixed-400",
            "fixed-none"
        ]
    );
    let rounds: Vec<u64> = report["tradeoff"]
        .as_array()
        .expect("tradeoff")
        .iter()
        .filter_map(|t| t["round"].as_u64())
        .collect();
    assert_eq!(rounds, [1, 1, 1, 2, 2, 2]);
    // Each setting's medians over its two rounds lie within its runs.
    assert_eq!(
        strings(&report, "medians", "setting"),
        ["default", "fixed-400", "fixed-none"]
    );
    for m in report["medians"].as_array().expect("medians") {
        assert_eq!(m["runs"], 2, "{m:#}");
        let s = &m["seconds"];
        let (median, min, max) = (
            s["median"].as_f64().unwrap_or(f64::NAN),
            s["min"].as_f64().unwrap_or(f64::NAN),
            s["max"].as_f64().unwrap_or(f64::NAN),
        );
        assert!(min > 0.0 && min <= median && median <= max, "{m:#}");
    }
    assert!(
        report["medians"][0]["guest_kept_estimate_pct"]["median"]
            .as_f64()
            .is_some(),
        "the guest-paced default's estimate: {:#}",
        report["medians"][0]
    );
    for t in report["tradeoff"].as_array().expect("tradeoff") {
        for figure in ["seconds", "copy_mib_per_s", "writer_percent_of_idle"] {
            let v = t[figure].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{figure} of {t:#}");
        }
        assert!(t["worst_switch_pause_ms"].as_f64().is_some(), "{t:#}");
        let switches: Vec<&str> = t["pauses"]
            .as_array()
            .map(|p| p.iter().filter_map(|x| x["switch"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(switches, ["snapshot", "reopen", "commit pivot"], "{t:#}");
        assert!(
            methods.contains(&t["method"].as_str().unwrap_or("")),
            "{t:#}"
        );
    }
    let default = &report["tradeoff"][0];
    assert_eq!(default["pace"], "guest");
    assert!(default["bandwidth_mib_s"].is_null(), "{default:#}");
    let fixed = &report["tradeoff"][1];
    assert_eq!(fixed["pace"], "fixed");
    assert_eq!(fixed["bandwidth_mib_s"], 400);
    assert_eq!(report["tradeoff"][2]["bandwidth_mib_s"], Value::Null);

    let steps = strings(&report["ferry"], "steps", "name");
    assert_eq!(
        steps,
        [
            "prepare",
            "createVolumeCrossSD",
            "blockMigrate",
            "cloneInternalVolumes",
            "finalizeBlockMigrate",
            "merge",
            "cleanup",
            "source space released (after the job)"
        ]
    );
    // The source's space comes back after the job, and the report says
    // how long that took and what the guest felt of it.
    let release = &report["ferry"]["steps"][7];
    for figure in ["seconds", "max_stall_ms"] {
        assert!(
            release[figure].as_f64().is_some_and(|v| v >= 0.0),
            "{figure} of {release:#}"
        );
    }
    assert!(!dir.exists(), "the bench left {}", dir.display());
}

/// Runs `ferry-bench move OPTION VALUE` for each of `bad` and checks each
/// is refused with an error naming `names`, before the bench makes its
/// directory.
fn assert_refused(option: &str, bad: &[&str], names: &str) {
    let scratch = tempfile::tempdir_in(ferry_testkit::scratch_root()).expect("a scratch directory");
    let dir = scratch.path().join("bench");
    for bad in bad {
        let out = Command::new(FERRY_BENCH)
            .args(["move", option, bad, "--dir"])
            .arg(&dir)
            .output()
            .expect("run ferry-bench move");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{option} {bad} was taken");
        assert!(stderr.contains(names), "{option} {bad}: {stderr}");
        assert!(
            !dir.exists(),
            "{option} {bad}: the bench made {}",
            dir.display()
        );
    }
}

#[test]
fn a_writer_duty_that_is_not_two_numbers_of_ms_is_refused_before_anything_runs() {
    assert_refused(
        "--writer-duty",
        &["2000", "0/100", "100/x", "100/3600001"],
        "BUSY_MS/QUIET_MS",
    );
}

#[test]
fn rounds_outside_one_to_twenty_are_refused_before_anything_runs() {
    assert_refused("--rounds", &["0", "21", "x"], "--rounds");
}

#[test]
fn bench_copy_runs_from_a_relative_directory_and_prints_its_ratio() {
    let scratch = tempfile::Builder::new()
        .prefix("ferry-bench-copy-")
        .tempdir_in(ferry_testkit::scratch_root())
        .expect("a scratch directory");
    // A relative --dir (the default is one): the storage domains the
    // bench makes in it must still get absolute roots.
    let out = Command::new(FERRY_BENCH)
        .current_dir(scratch.path())
        .args(["copy", "--base-gib", "1", "--runs", "1", "--dir", "bench"])
        .output()
        .expect("run ferry-bench copy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ferry-bench copy failed: {stderr}");
    for want in [
        "ferry layer-exact copy",
        "cp --sparse=always",
        "qemu-img convert -W -m 16",
        // Measured, or said not to be where the filesystem refuses O_DIRECT.
        "qemu-img convert -W -m 16 -t none -T none",
        "ratio full copy_chain",
        "as a live move copies with the guest idle (direct, 512 KiB requests",
        "as a live move copies with the guest idle (direct, 2 MiB requests",
        "as a live move copies with the guest idle (direct, whole 8 MiB chunks",
    ] {
        assert!(stdout.contains(want), "no {want:?} in: {stdout}");
    }
    let left: Vec<_> = std::fs::read_dir(scratch.path().join("bench"))
        .expect("the bench's directory")
        .collect();
    assert!(left.is_empty(), "the bench leaves its run behind: {left:?}");
}
