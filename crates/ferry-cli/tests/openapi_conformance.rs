//! The OpenAPI document tells the truth: Schemathesis (pinned, from PyPI,
//! in `target/schemathesis`, which `scripts/install-deps` makes) generates
//! requests from `/api/v1/openapi.json`, good and bad, against `ferry up
//! --demo` with the engine's token, and checks every answer against the
//! document: each status documented with its body, what the schema allows
//! accepted, what it does not refused, and no server error. A fixed seed
//! and a few examples per operation keep the run the same and bounded.
//! Three operations are left out, which `ferry-engine`'s enrolment tests
//! cover: removing a host and enrolling it again at another URL would cut
//! the demo off its only host for the rest of the run (every later answer
//! a 503), and an enrolment's certificate signing request must be a real
//! one, which no schema can say (a generated one is refused, 400).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::demo::Demo;
use common::POLL;

/// The whole run's bound (it takes about a minute and a half here).
const RUN_WITHIN: Duration = Duration::from_secs(900);

fn schemathesis() -> PathBuf {
    let st = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis/bin/st");
    assert!(
        st.exists(),
        "{} is missing: run ./scripts/install-deps, which installs Schemathesis for this test",
        st.display()
    );
    st
}

#[test]
fn schemathesis_finds_the_api_as_its_document_says() {
    let st = schemathesis();
    let demo = Demo::start();
    let report = tempfile::NamedTempFile::new().expect("a file for the output");
    let mut run = Command::new(&st)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", demo.url))
        .args(["--header", &format!("Authorization: Bearer {}", demo.token)])
        .args(["--seed", "1", "--max-examples", "5", "--workers", "1"])
        .args(["--checks", "all"])
        .args(["--exclude-operation-id", "hosts_remove"])
        .args(["--exclude-operation-id", "hosts_reenrol"])
        .args(["--exclude-operation-id", "hosts_enroll"])
        .args(["--request-timeout", "120", "--max-response-time", "120"])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(report.reopen().expect("reopen"))
        .stderr(Stdio::null())
        .spawn()
        .expect("run schemathesis");
    let deadline = Instant::now() + RUN_WITHIN;
    let status = loop {
        if let Some(status) = run.try_wait().expect("poll schemathesis") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            panic!("schemathesis did not finish within {RUN_WITHIN:?}");
        }
        std::thread::sleep(POLL);
    };
    let said = std::fs::read_to_string(report.path()).unwrap_or_default();
    assert!(
        status.success(),
        "schemathesis found the API unlike its document ({status:?}):\n{said}\nferry up said:\n{}",
        demo.log()
    );
    assert!(said.contains("passed"), "{said}");
    demo.stop();
}
