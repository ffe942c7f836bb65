//! Mutual TLS and secrets at rest, end to end with the real `ferry`
//! binary:
//!
//! - every file `ferry up`, `ferry engine` and `ferry agent` write that
//!   holds a key or a token (the database and its `-wal`/`-shm` files
//!   included) is mode 0600 in a 0700 directory, under umask 022 and 000;
//! - the CLI refuses an engine whose certificate does not chain to the CA
//!   it was given, and an `https://` engine when it was given none;
//! - a live move between two agents enrolled with the engine runs over
//!   mutual TLS while `ferry engine rotate-certs` renews every
//!   certificate, and the VM keeps every write.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ferry_api::engine::{HostStatus, Job, Step};
use ferry_testkit::engine::EngineProcess;

/// A `ferry` daemon started under a umask, its output kept, stopped with
/// SIGTERM when dropped.
struct Daemon {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Daemon {
    fn start(umask: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(FERRY)
            .args(args)
            .envs(env.iter().copied())
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferry");
        let output = common::demo::collect_output(&mut child);
        Daemon { child, output }
    }

    fn log(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Waits until its output holds `line`; returns that line.
    fn wait_for(&mut self, line: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.log().lines().find(|l| l.contains(line)) {
                return l.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ferry exited ({status}) before saying {line:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {line:?} within {WAIT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Whether a file holds a key or a token: keys and certificates (pki/),
/// the database and its side files, client.json.
fn holds_a_secret(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    p.components().any(|c| c.as_os_str() == "pki")
        || name.starts_with("engine.db")
        || name == "client.json"
        || name == "agent.json"
}

/// Asserts each of `expected` exists, and that every file under `root`
/// that holds a secret is 0600 and its directory 0700.
fn assert_private(root: &Path, expected: &[&str], umask: &str) {
    for e in expected {
        assert!(
            root.join(e).is_file(),
            "{e} missing under {}",
            root.display()
        );
    }
    let secret: Vec<PathBuf> = files(root)
        .into_iter()
        .filter(|p| holds_a_secret(p))
        .collect();
    assert!(secret.len() >= expected.len(), "{secret:?}");
    for f in &secret {
        assert_eq!(mode(f), 0o600, "{} under umask {umask}", f.display());
        let dir = f.parent().expect("a directory");
        assert_eq!(mode(dir), 0o700, "{} under umask {umask}", dir.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_holding_a_secret_is_0600_under_umask_022_and_000() {
    for umask in ["022", "000"] {
        let scratch = tempfile::Builder::new()
            .prefix("ferry-modes-")
            .tempdir_in(ferry_testkit::scratch_root())
            .expect("a directory");
        let root = scratch.path();

        // ferry up: engine, local agent (enrolled), client.json.
        let up_dir = root.join("up");
        let up_dir_text = up_dir.display().to_string();
        let mut up = Daemon::start(
            umask,
            &[
                "up",
                "--listen",
                "127.0.0.1:0",
                "--accel",
                "tcg",
                "--data-dir",
                &up_dir_text,
            ],
            &[],
        );
        up.wait_for("Ferry is up:");
        assert_private(
            &up_dir,
            &[
                "engine.db",
                "engine.db-wal",
                "engine.db-shm",
                "client.json",
                "agent.json",
                "pki/ca.key",
                "pki/api.key",
                "pki/client.key",
                "agent/pki/host.pem",
                "agent/pki/ca.pem",
            ],
            umask,
        );
        assert_eq!(mode(&up_dir), 0o700);

        // ferry engine, and a ferry agent enrolled with it.
        let engine_dir = root.join("engine");
        let engine_dir_text = engine_dir.display().to_string();
        let mut engine = Daemon::start(
            umask,
            &[
                "engine",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &engine_dir_text,
            ],
            &[("FERRY_ENGINE_TOKEN", ferry_testkit::engine::TOKEN)],
        );
        let line = engine.wait_for("listening on");
        let addr = line.rsplit(' ').next().expect("an address").to_string();
        let ca = std::fs::read_to_string(engine_dir.join("pki/ca.pem")).expect("the CA");
        let c = ferry_engine::EngineClient::with_tls(
            format!("https://{addr}"),
            ferry_testkit::engine::TOKEN,
            &ferry_http::ClientTls::trusting(&ca).expect("TLS"),
        );
        let port = ferry_testkit::agent::free_port();
        let enrolment = c
            .add_host(&ferry_api::engine::AddHost {
                name: "host1".into(),
                url: format!("https://127.0.0.1:{port}"),
            })
            .await
            .expect("add host");
        let run_dir = root.join("agent");
        let run_dir_text = run_dir.display().to_string();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(FERRY)
            .args([
                "agent",
                "enroll",
                "--engine",
                &format!("https://{addr}"),
                "--run-dir",
                &run_dir_text,
            ])
            .env("FERRY_ENROLL_TOKEN", &enrolment.token)
            .output()
            .expect("ferry agent enroll");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listen = format!("127.0.0.1:{port}");
        let mut agent = Daemon::start(
            umask,
            &[
                "agent",
                "--listen",
                &listen,
                "--accel",
                "tcg",
                "--run-dir",
                &run_dir_text,
            ],
            &[],
        );
        agent.wait_for("listening on");
        c.wait_host_up("host1", WAIT).await.expect("host1 up");
        assert_private(
            &engine_dir,
            &[
                "engine.db",
                "engine.db-wal",
                "engine.db-shm",
                "pki/ca.key",
                "pki/ca.pem",
                "pki/api.key",
                "pki/api.pem",
                "pki/client.key",
                "pki/client.pem",
            ],
            umask,
        );
        assert_private(&run_dir, &["pki/host.pem", "pki/ca.pem"], umask);
        drop(agent);
        drop(engine);
        drop(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_an_engine_whose_certificate_does_not_chain_to_its_ca() {
    let dir = tempfile::Builder::new()
        .prefix("ferry-ca-")
        .tempdir_in(ferry_testkit::scratch_root())
        .expect("a directory");
    let engine = EngineProcess::start(FERRY, &dir.path().join("engine"), &[]).await;
    let other = ferry_testkit::pki::TestPki::new("not the engine's CA");
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.ca.cert_pem()).expect("write");
    let empty = dir.path().join("no-client-json");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let cli = |ca: Option<&Path>, data_dir: &Path| {
        let mut cmd = Command::new(FERRY);
        cmd.args(["host", "list"])
            .env("FERRY_URL", engine.url())
            .env("FERRY_TOKEN", ferry_testkit::engine::TOKEN)
            .env("FERRY_DATA_DIR", data_dir)
            .env_remove("FERRY_CA");
        if let Some(ca) = ca {
            cmd.arg("--ca").arg(ca);
        }
        cmd.output().expect("run ferry")
    };

    expect_success(
        &cli(Some(&engine.ca_file()), &empty),
        "host list with the engine's CA",
    );
    let refused = cli(Some(&other_ca), &empty);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("invalid peer certificate"), "{said}");
    let refused = cli(None, &empty);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("no CA is given"), "{said}");

    // client.json's CA decides when none is given otherwise.
    let with_file = dir.path().join("data");
    std::fs::create_dir_all(&with_file).expect("mkdir");
    let write_client = |ca: &str| {
        let file = serde_json::json!({"url": engine.url(), "token": ferry_testkit::engine::TOKEN, "ca": ca});
        std::fs::write(with_file.join("client.json"), file.to_string()).expect("write");
    };
    write_client(other.ca.cert_pem());
    let refused = Command::new(FERRY)
        .args(["host", "list", "--data-dir"])
        .arg(&with_file)
        .env_remove("FERRY_URL")
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_CA")
        .output()
        .expect("run ferry");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("invalid peer certificate"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    write_client(&std::fs::read_to_string(engine.ca_file()).expect("the CA"));
    let ok = Command::new(FERRY)
        .args(["host", "list", "--data-dir"])
        .arg(&with_file)
        .env_remove("FERRY_URL")
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_CA")
        .output()
        .expect("run ferry");
    expect_success(&ok, "host list with client.json's CA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_move_runs_over_mutual_tls_while_every_certificate_is_renewed() {
    let cluster = Cluster::start().await;
    let c = cluster.client();
    let before: Vec<_> = c.hosts().await.expect("hosts");
    assert!(
        before.iter().all(|h| h.status == HostStatus::Up
            && h.url.starts_with("https://")
            && h.certificate.is_some()),
        "{before:#?}"
    );
    let Writing {
        before: layers,
        mut log,
        cfg,
        ..
    } = cluster.writing_vm().await;
    // 2 MiB/s: the copy takes seconds, the rotation happens in its middle.
    let (ok, job): (bool, Job) = cluster.cli_json(&[
        "disk",
        "move",
        "disk1",
        "--to",
        "domain2",
        "--bandwidth",
        "2",
        "--pace",
        "fixed",
    ]);
    assert!(ok, "{job:#?}");
    cluster
        .wait_job_until(job.id, "copying", |j| {
            j.step == Step::CloneInternalVolumes && j.done_bytes > 0
        })
        .await;
    let rotated = expect_success(&cluster.cli(&["engine", "rotate-certs"]), "rotate-certs");
    for owner in ["engine API", "engine client", "host1", "host2"] {
        assert!(rotated.contains(owner), "{rotated}");
    }
    let done = cluster.wait_end(job.id).await;
    assert_succeeded(&done);
    let after = c.hosts().await.expect("hosts");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.status, HostStatus::Up, "{a:#?}");
        assert_ne!(
            b.certificate.as_ref().map(|c| &c.fingerprint),
            a.certificate.as_ref().map(|c| &c.fingerprint),
            "{} renewed",
            a.name
        );
    }
    let listed = expect_success(&cluster.cli(&["host", "list"]), "host list");
    assert!(
        listed.contains("CERT EXPIRES") && listed.contains("days)"),
        "{listed}"
    );
    cluster.assert_vm_writing("vm1", &mut log).await;
    cluster.stop_now();
    log.poll();
    let disk = cluster.disk_now("disk1").await;
    cluster.assert_all_layers(&layers, &disk, &cfg, log.acks());
}
