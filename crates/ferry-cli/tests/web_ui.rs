//! The web UI in a real browser: given `ferry up --demo` (demo-vm running
//! with demo-disk, a three-volume chain, on domain1) and headless Chromium
//! driven through chromedriver, when an operator signs in with the
//! engine's token and moves demo-disk to domain2 from the UI, then the
//! job's progress bar reaches 100 %, the disk shows domain2 and demo-vm
//! kept running (the same QEMU process); and a move started with a 1 MiB/s
//! bandwidth limit shows, while it copies, how the guest paces it (the
//! copy's limit, the guest's write latency against its level without the
//! copy, the share of its rate it keeps, a
//! live chart of both) and is cancelled from the UI, the disk staying on
//! domain1.
//!
//! Needs `chromium` and `chromium-driver` (scripts/install-deps installs
//! them) and the test guest (scripts/build-guest). Screenshots go to
//! `target/ui-artifacts/`.

mod common;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::demo::Demo;
use common::{assert_released, POLL, WAIT};
use fantoccini::{Client, ClientBuilder, Locator};
use ferry_api::engine::{JobState, MoveRequest, PaceMode};
use serde_json::{json, Value};

/// How long the browser gets for one page condition.
const PAGE_WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vms_disk_moves_live_to_domain2_from_the_web_ui() {
    let demo = Demo::start();
    assert_page_is_public_and_api_is_not(&demo.url);
    let ui = Ui::open(&demo).await;

    // A wrong token is refused in words; the right one signs in.
    ui.wait_for("#signin-token", "the sign-in form").await;
    ui.assert_accessible("the sign-in page").await;
    ui.screenshot("sign-in.png").await;
    ui.type_into("#signin-token", "not-the-token").await;
    ui.click("#signin-submit").await;
    let refusal = ui
        .wait_text("#signin-error", "the refusal", |t| !t.is_empty())
        .await;
    assert!(
        refusal.starts_with("The engine refused this token: the bearer token is wrong"),
        "{refusal}"
    );
    ui.eval("document.getElementById('signin-token').value = ''; return null")
        .await;
    ui.sign_in(&demo.token).await;

    ui.wait_text("[data-vm-state='demo-vm']", "demo-vm running", |t| {
        t == "Running"
    })
    .await;
    ui.wait_text(
        "[data-disk-domain='demo-disk']",
        "demo-disk on domain1",
        |t| t == "domain1",
    )
    .await;
    let qemu = demo.qemu_pid("demo-vm").await;
    ui.wait_for(
        "button[aria-label='Move all disks of demo-vm (live)']",
        "Move on the VM",
    )
    .await;
    ui.assert_accessible("the VMs page").await;

    // Move on the VM opens the dialog for all its disks, focus inside;
    // Escape closes it and gives focus back to the button.
    let vm_move = "button[aria-label='Move all disks of demo-vm (live)']";
    ui.click(vm_move).await;
    ui.wait_for("#move-dialog[open]", "the VM's move dialog")
        .await;
    let heading = ui.text("#move-title").await.unwrap_or_default();
    assert_eq!(heading, "Move the disks of demo-vm");
    let focused = ui
        .eval("return document.activeElement.getAttribute('data-name')")
        .await;
    assert_eq!(
        focused,
        json!("domain2"),
        "focus is on the first destination"
    );
    ui.find("#move-dialog input[data-name='domain2']")
        .await
        .expect("the focused destination")
        .send_keys("\u{e00c}")
        .await
        .expect("press Escape");
    ui.wait_gone("#move-dialog[open]", "Escape to close the dialog")
        .await;
    let back = ui
        .eval("return document.activeElement.getAttribute('aria-label')")
        .await;
    assert_eq!(
        back,
        json!("Move all disks of demo-vm (live)"),
        "focus came back"
    );

    // Move on the disk: the dialog offers domain2 only, with its free space.
    ui.click("button[aria-label='Move disk demo-disk (live)']")
        .await;
    ui.wait_for("#move-dialog[open]", "the move dialog").await;
    let choices = ui
        .eval("return [...document.querySelectorAll('#move-dialog input[name=to]')].map(i => i.dataset.name)")
        .await;
    assert_eq!(choices, json!(["domain2"]), "destinations offered");
    let free = ui
        .text("#move-dialog .choice-free")
        .await
        .unwrap_or_default();
    assert!(
        free.contains("free of"),
        "the free space is shown: {free:?}"
    );
    // The space the engine will ask for: the chain's data (about 88 MiB
    // in the demo) plus its 5 %, which fits.
    let need = ui
        .eval("return [...document.querySelectorAll('#move-dialog .facts dd')].pop().textContent")
        .await;
    let need = need.as_str().unwrap_or_default();
    assert!(
        need.contains("MiB of data + 5 %") && !need.starts_with("0 B"),
        "the space needed is the chain's data: {need:?}"
    );
    assert!(!free.contains("will not fit"), "{free:?}");
    let submit = ui.text("#move-submit").await.unwrap_or_default();
    assert_eq!(submit, "Start live move");
    ui.click("#move-dialog input[data-name='domain2']").await;
    // A live move's copy adapts to the guest unless the operator fixes it
    // to the bandwidth: this one is fixed, and the engine is told so.
    assert_eq!(
        ui.eval("return document.querySelector('#move-dialog input[name=pace]:checked').value")
            .await,
        json!("guest"),
        "adapting to the guest is the default"
    );
    ui.click("#move-pace-fixed").await;
    ui.assert_accessible("the move dialog").await;
    ui.screenshot("move-dialog.png").await;
    ui.click("#move-submit").await;
    ui.wait_gone("#move-dialog[open]", "the dialog to close")
        .await;

    // The jobs page follows the move live, without reloading.
    ui.click("nav a[data-view='jobs']").await;
    let job = ui.first_job_id().await;
    let bar = format!("#view [role=progressbar][data-job='{job}']");
    let badge = format!("[data-job-state='{job}']");
    let mut seen = Vec::new();
    let mut shot = false;
    let deadline = Instant::now() + WAIT;
    loop {
        let Some(pct) = ui
            .attr(&bar, "aria-valuenow")
            .await
            .and_then(|v| v.parse::<u64>().ok())
        else {
            panic!("the job's progress bar is gone: {}", ui.page_text().await);
        };
        let state = ui.text(&badge).await.unwrap_or_default();
        if seen.last() != Some(&pct) {
            seen.push(pct);
        }
        if !shot && state == "Running" && pct > 0 && pct < 100 {
            ui.screenshot("jobs-during-move.png").await;
            shot = true;
        }
        if pct == 100 && state == "Succeeded" {
            break;
        }
        assert!(
            !matches!(state.as_str(), "Failed" | "Cancelled"),
            "the move ended {state}: {}",
            ui.page_text().await
        );
        assert!(
            Instant::now() < deadline,
            "the progress bar did not reach 100 % (seen {seen:?}); page:\n{}\nup's log:\n{}",
            ui.page_text().await,
            demo.log()
        );
        tokio::time::sleep(POLL).await;
    }
    // The bar shows the engine's bytes as they are; the engine's count
    // can dip for one poll when cloneInternalVolumes starts its chain
    // copy, so only the values seen are reported, not judged.
    eprintln!("the progress bar read {seen:?} %");
    if !shot {
        eprintln!("note: the move ended before a screenshot mid-move; saving the finished job");
        ui.screenshot("jobs-during-move.png").await;
    }
    let steps = ui
        .eval(&format!(
            "return [...document.querySelectorAll(\"[data-job='{job}'] .step\")].length"
        ))
        .await;
    assert_eq!(steps, json!(7), "every step of the flow is listed");
    ui.assert_accessible("the jobs page").await;
    let id = job.parse().expect("a job id");
    let ended = demo.client().job(id).await.expect("read the job");
    assert_eq!(ended.pace, PaceMode::Fixed, "the pace chosen in the dialog");

    // The disk now shows domain2, and the VM kept running the same QEMU.
    ui.click("nav a[data-view='vms']").await;
    ui.wait_text(
        "[data-disk-domain='demo-disk']",
        "demo-disk on domain2",
        |t| t == "domain2",
    )
    .await;
    ui.wait_text("[data-vm-state='demo-vm']", "demo-vm running", |t| {
        t == "Running"
    })
    .await;
    assert_eq!(
        demo.qemu_pid("demo-vm").await,
        qemu,
        "demo-vm's QEMU was replaced"
    );
    assert!(
        Path::new(&format!("/proc/{qemu}")).exists(),
        "demo-vm's QEMU is gone"
    );
    ui.screenshot("vms-after-move.png").await;
    // A smaller laptop still gets the whole page, without sideways scrolling.
    ui.resize(1024, 768).await;
    ui.assert_accessible("the VMs page at 1024 px").await;
    ui.click("nav a[data-view='jobs']").await;
    ui.wait_for(
        "nav a[data-view='jobs'][aria-current=page]",
        "the jobs page",
    )
    .await;
    ui.assert_accessible("the jobs page at 1024 px").await;
    ui.screenshot("jobs-1024.png").await;
    let disk = demo.disk("demo-disk").await;
    let d2 = demo.client().domain("domain2").await.expect("domain2");
    assert!(disk.volumes.iter().all(|v| v.domain == d2.id), "{disk:#?}");
    ui.assert_no_page_errors().await;
    ui.close().await;
    demo.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_move_is_cancelled_from_the_web_ui_and_the_disk_stays_on_domain1() {
    let demo = Demo::start();
    let ui = Ui::open(&demo).await;
    ui.sign_in(&demo.token).await;
    ui.wait_text("[data-vm-state='demo-vm']", "demo-vm running", |t| {
        t == "Running"
    })
    .await;
    let qemu = demo.qemu_pid("demo-vm").await;
    let before = demo.disk("demo-disk").await;

    // A move limited to 1 MiB/s: ~90 MiB to copy, time enough to cancel.
    ui.click("button[aria-label='Move disk demo-disk (live)']")
        .await;
    ui.wait_for("#move-dialog[open]", "the move dialog").await;
    ui.click("#move-dialog input[data-name='domain2']").await;
    let pace = ui
        .text("#move-dialog .pace-choices")
        .await
        .unwrap_or_default();
    assert!(
        pace.contains("Adapt to the guest (recommended)") && pace.contains("Fixed: bandwidth only"),
        "the pace is offered: {pace:?}"
    );
    ui.type_into("#move-bw", "1").await;
    // The guest's share: out of range it is refused in the dialog, which
    // stays open; in range the engine is told it.
    ui.type_into("#move-share", "5").await;
    ui.click("#move-submit").await;
    let said = ui
        .wait_text("#move-error", "the share refused", |t| !t.is_empty())
        .await;
    assert!(said.contains("from 10 to 95"), "{said:?}");
    ui.eval("document.querySelector('#move-share').value = ''; return null")
        .await;
    ui.type_into("#move-share", "90").await;
    ui.click("#move-submit").await;
    ui.wait_gone("#move-dialog[open]", "the dialog to close")
        .await;

    // While it copies, the disk shows where it goes, and every page reads.
    ui.wait_text(
        "[data-disk-domain='demo-disk']",
        "demo-disk shown moving",
        |t| t == "domain1 → domain2 (moving)",
    )
    .await;
    ui.wait_for(
        "[data-disk='demo-disk'] [role=progressbar]",
        "the disk's progress bar",
    )
    .await;
    ui.screenshot("vms-during-move.png").await;
    for (view, shows) in [
        ("storage", "[data-domain='domain2']"),
        ("hosts", "[data-host='local']"),
        ("events", "table.events tbody tr"),
    ] {
        ui.click(&format!("nav a[data-view='{view}']")).await;
        ui.wait_for(shows, view).await;
        ui.assert_accessible(view).await;
        ui.screenshot(&format!("{view}-during-move.png")).await;
        let text = ui
            .eval_with(
                "return document.querySelector(arguments[0]).innerText",
                vec![json!(shows)],
            )
            .await;
        let text = text.as_str().unwrap_or_default();
        match view {
            "storage" => assert!(text.contains("Moving here from domain1"), "{text}"),
            "hosts" => assert!(text.contains("Up") && text.contains("SPM"), "{text}"),
            _ => assert!(text.contains("move"), "the newest event: {text}"),
        }
    }

    ui.click("nav a[data-view='jobs']").await;
    let job = ui.first_job_id().await;
    let bar = format!("#view [role=progressbar][data-job='{job}']");
    let cancel = "button[aria-label='Cancel the move of demo-disk']";
    let copying = ui
        .until("the throttled copy to make progress", WAIT, || async {
            let pct: u64 = ui.attr(&bar, "aria-valuenow").await?.parse().ok()?;
            ui.find(cancel).await?;
            (pct >= 1).then_some(pct)
        })
        .await;
    assert!(copying < 100, "the limited copy finished too soon");
    let limit = ui
        .eval(&format!(
            "return document.querySelector(\"[data-job='{job}'] .stats\").innerText"
        ))
        .await;
    assert!(
        limit.as_str().is_some_and(|t| t.contains("1 MiB/s")),
        "the limit is shown: {limit}"
    );
    ui.screenshot("jobs-during-throttled-move.png").await;

    // While it copies, the job says how the guest paces it: the copy's
    // limit now, the guest's write latency against its level without the
    // copy and the share of its rate it keeps against the 90 % asked, and
    // charts both, live (two readings of each at least), with a text
    // alternative naming the latest.
    let pace = ui
        .until(
            "the pace figures and a chart of two points",
            WAIT,
            || async {
                let v = ui.eval_with(PACE_FIGURES, vec![json!(job)]).await;
                let points = v["points"].as_u64()?.min(v["latency_points"].as_u64()?);
                let latency = v["latency"].as_str()?;
                let read = latency.starts_with(|c: char| c.is_ascii_digit());
                let kept = v["kept"].as_str()?;
                (points >= 2
                    && kept.contains("aiming at 90 %")
                    && read
                    && latency.contains("without the copy")
                    && kept.contains("% of its I/O rate"))
                .then_some(v)
            },
        )
        .await;
    assert_eq!(pace["state"], json!("Running"), "{pace}");
    assert_eq!(pace["pace"], json!("Adapts to the guest"), "{pace}");
    let limit = pace["limit"].as_str().unwrap_or_default();
    assert!(limit.ends_with("/s") || limit == "none", "{pace}");
    let latest = pace["latency"]
        .as_str()
        .and_then(|l| l.split(" (").next())
        .unwrap_or_default();
    let label = pace["label"].as_str().unwrap_or_default();
    assert!(
        !latest.is_empty() && label.contains(&format!("guest write latency now {latest}")),
        "the chart's text alternative names the latest latency ({latest:?}): {label:?}"
    );
    ui.assert_accessible("the jobs page with a pace chart")
        .await;
    ui.screenshot("jobs-pace-chart.png").await;
    // The chart fits a narrower window too, with the rest of the page.
    ui.resize(760, 800).await;
    ui.until("the chart to draw at 760 px", PAGE_WAIT, || async {
        let v = ui.eval_with(PACE_FIGURES, vec![json!(job)]).await;
        (v["width"].as_f64()? > 100.0).then_some(())
    })
    .await;
    ui.assert_accessible("the jobs page at 760 px").await;
    ui.screenshot("jobs-pace-chart-760.png").await;
    ui.resize(1280, 800).await;

    ui.click(cancel).await;
    ui.wait_text(
        &format!("[data-job-state='{job}']"),
        "the job to end cancelled",
        |t| t == "Cancelled",
    )
    .await;
    ui.wait_gone(cancel, "Cancel to go once the job ended")
        .await;
    let line = ui
        .text(&format!("[data-job='{job}'] .step-line"))
        .await
        .unwrap_or_default();
    assert!(line.starts_with("Cancelled at"), "{line}");
    ui.screenshot("jobs-after-cancel.png").await;

    ui.click("nav a[data-view='vms']").await;
    ui.wait_text(
        "[data-disk-domain='demo-disk']",
        "demo-disk on domain1",
        |t| t == "domain1",
    )
    .await;
    ui.wait_text("[data-vm-state='demo-vm']", "demo-vm running", |t| {
        t == "Running"
    })
    .await;
    assert_eq!(demo.qemu_pid("demo-vm").await, qemu);
    let after = demo.disk("demo-disk").await;
    assert_eq!(after.domain, before.domain);
    assert!(after.locked_by.is_none(), "{after:#?}");
    assert_eq!(
        after.volumes.iter().map(|v| v.id).collect::<Vec<_>>(),
        before.volumes.iter().map(|v| v.id).collect::<Vec<_>>()
    );
    let d2 = demo.client().domain("domain2").await.expect("domain2");
    let dir = d2.path.join("images").join(after.id.to_string());
    assert_released(&dir, "the cancelled move on domain2").await;
    ui.assert_no_page_errors().await;
    ui.close().await;
    demo.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_that_failed_after_the_switch_is_offered_for_retry_in_the_web_ui() {
    // Merge fails for good (the engine's FERRY_TEST_FAIL_STEP hook).
    let demo = Demo::start_with(&[("FERRY_TEST_FAIL_STEP", "merge")]);
    let ui = Ui::open(&demo).await;
    ui.sign_in(&demo.token).await;
    ui.wait_text("[data-vm-state='demo-vm']", "demo-vm running", |t| {
        t == "Running"
    })
    .await;
    let job = demo
        .client()
        .move_disk("demo-disk", &MoveRequest::new("domain2"))
        .await
        .expect("start the move");
    let id = job.id.to_string();

    // The failed job says where the disk is and offers Retry, not Cancel.
    ui.click("nav a[data-view='jobs']").await;
    ui.wait_text(
        &format!("[data-job-state='{id}']"),
        "the job to fail at merge",
        |t| t == "Failed",
    )
    .await;
    let retry = "button[aria-label='Retry the move of demo-disk from merge']";
    ui.wait_for(retry, "the Retry button").await;
    assert!(ui
        .find("button[aria-label='Cancel the move of demo-disk']")
        .await
        .is_none());
    let line = ui
        .text(&format!("[data-job='{id}'] .step-line"))
        .await
        .unwrap_or_default();
    assert!(
        line.contains("after the switch") && line.contains("stay locked until the job is retried"),
        "{line}"
    );
    let error = ui
        .text(&format!("[data-job-error='{id}']"))
        .await
        .unwrap_or_default();
    assert!(error.contains(&format!("ferry job retry {id}")), "{error}");
    // The job's own events are on its card, folded, oldest first: it
    // started, then failed.
    let script =
        format!("return document.querySelector(\"[data-job-events='{id}']\")?.textContent ?? ''");
    let events = ui
        .until("the job's events on its card", WAIT, || async {
            let text = ui.eval(&script).await.as_str()?.to_string();
            let (started, failed) = (text.find("started"), text.rfind("failed"));
            matches!((started, failed), (Some(a), Some(b)) if a < b).then_some(text)
        })
        .await;
    assert!(events.starts_with("Events ("), "{events}");
    ui.assert_accessible("a job failed after the switch").await;
    ui.screenshot("jobs-failed-after-switch.png").await;
    ui.eval(&format!(
        "document.querySelector(\"[data-job-events='{id}']\").open = true"
    ))
    .await;
    ui.assert_accessible("a failed job's events unfolded").await;
    ui.screenshot("jobs-failed-events.png").await;

    // Retry runs merge again (it fails again: the hook is still set).
    ui.click(retry).await;
    let again = ui
        .until("merge to be tried a second time", WAIT, || async {
            let j = demo.client().job(job.id).await.ok()?;
            let merge = j.steps.iter().find(|s| s.name.name() == "merge")?;
            (merge.attempts == 2 && j.state == JobState::Failed).then_some(j)
        })
        .await;
    assert!(again.retryable, "{again:#?}");
    let disk = demo.disk("demo-disk").await;
    assert_eq!(disk.locked_by, Some(job.id), "{disk:#?}");
    ui.assert_no_page_errors().await;
    ui.close().await;
    demo.stop();
}

/// What job `arguments[0]`'s card shows of its pace: its state, the pace,
/// the copy's limit, the guest's latency and what it keeps (the stats'
/// text), and its
/// chart's points (samples, and those with a latency), text alternative
/// and drawn width; read at once, from one rendering.
const PACE_FIGURES: &str = r#"
    const card = document.querySelector(`[data-job="${arguments[0]}"]`);
    const stat = (k) => card?.querySelector(`[data-stat="${k}"] dd`)?.textContent ?? null;
    const chart = card?.querySelector("[data-pace-chart] svg[role=img]");
    return {
      state: card?.querySelector("[data-job-state]")?.textContent ?? null,
      pace: stat("pace"),
      limit: stat("pace-limit"),
      latency: stat("guest-latency"),
      kept: stat("guest-kept"),
      points: chart ? Number(chart.getAttribute("data-points")) : 0,
      latency_points: chart ? Number(chart.getAttribute("data-latency-points")) : 0,
      label: chart?.getAttribute("aria-label") ?? null,
      width: chart ? chart.getBoundingClientRect().width : 0,
    };
"#;

/// `GET /` answers the page without a token; the API still wants one.
fn assert_page_is_public_and_api_is_not(url: &str) {
    let (status, headers) = http_get(url, "/");
    assert_eq!(status, 200, "{headers}");
    assert!(headers.contains("content-type: text/html"), "{headers}");
    let (status, headers) = http_get(url, "/ui/app.js");
    assert_eq!(status, 200);
    assert!(
        headers.contains("content-type: text/javascript"),
        "{headers}"
    );
    let (status, _) = http_get(url, "/api/v1/vms");
    assert_eq!(status, 401, "the API answered without a token");
}

/// A bare HTTP/1.0 GET: the status and the lower-cased headers.
fn http_get(url: &str, path: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to the engine");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head)
}

/// chromedriver on a free port, in a process group of its own so that it
/// and the Chromium it starts are killed together, by that group's id.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("run chromedriver (scripts/install-deps installs chromium-driver)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(POLL);
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The browser on the UI, and what a test does with it.
struct Ui {
    client: Option<Client>,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Ui {
    async fn open(demo: &Demo) -> Ui {
        let driver = Driver::start();
        let profile = tempfile::Builder::new()
            .prefix("ferry-chromium-")
            .tempdir_in(ferry_testkit::scratch_root())
            .expect("a profile directory");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("a literal object")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a WebDriver session with headless Chromium");
        client.goto(&demo.url).await.expect("open the UI");
        let ui = Ui {
            client: Some(client),
            _driver: driver,
            _profile: profile,
        };
        ui.resize(1280, 800).await;
        ui
    }

    /// Makes the page (not the window around it) `width`×`height`.
    async fn resize(&self, width: u32, height: u32) {
        let chrome = self
            .eval("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]")
            .await;
        let extra = |i: usize| {
            chrome[i]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0)
        };
        self.c()
            .set_window_size(width + extra(0), height + extra(1))
            .await
            .expect("size the window");
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    async fn sign_in(&self, token: &str) {
        self.wait_for("#signin-token", "the sign-in form").await;
        assert!(
            self.find("#view-title").await.is_none(),
            "the inventory is shown before signing in"
        );
        self.type_into("#signin-token", token).await;
        self.click("#signin-submit").await;
        self.wait_for("#view-title", "the first view after signing in")
            .await;
    }

    /// Polls `check` every [`POLL`] until it gives a value, at most
    /// `within`; panics with the page's text otherwise.
    async fn until<T, F, Fut>(&self, what: &str, within: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; the page reads:\n{}",
                self.page_text().await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn find(&self, css: &str) -> Option<fantoccini::elements::Element> {
        self.c().find(Locator::Css(css)).await.ok()
    }

    async fn wait_for(&self, css: &str, what: &str) {
        self.until(what, PAGE_WAIT, || async {
            self.find(css).await.map(|_| ())
        })
        .await;
    }

    async fn wait_gone(&self, css: &str, what: &str) {
        self.until(what, PAGE_WAIT, || async {
            self.find(css).await.is_none().then_some(())
        })
        .await;
    }

    /// The trimmed text of the first element matching `css`.
    async fn text(&self, css: &str) -> Option<String> {
        let v = self
            .eval_with(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;",
                vec![json!(css)],
            )
            .await;
        v.as_str().map(str::to_string)
    }

    async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let v = self
            .eval_with(
                "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
                vec![json!(css), json!(name)],
            )
            .await;
        v.as_str().map(str::to_string)
    }

    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.until(what, PAGE_WAIT, || async {
            self.text(css).await.filter(|t| ok(t))
        })
        .await
    }

    async fn click(&self, css: &str) {
        let el = self
            .until(&format!("{css} to click"), PAGE_WAIT, || async {
                self.find(css).await
            })
            .await;
        el.click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .until(&format!("{css} to type into"), PAGE_WAIT, || async {
                self.find(css).await
            })
            .await;
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    async fn eval(&self, script: &str) -> Value {
        self.eval_with(script, Vec::new()).await
    }

    async fn eval_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.c()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("run {script}: {e}"))
    }

    /// The id of the newest job on the jobs page.
    async fn first_job_id(&self) -> String {
        self.until("a job on the jobs page", PAGE_WAIT, || async {
            self.attr("ol.jobs > li", "data-key").await
        })
        .await
    }

    async fn page_text(&self) -> String {
        match self
            .c()
            .execute("return document.body.innerText", Vec::new())
            .await
        {
            Ok(v) => v.as_str().unwrap_or_default().to_string(),
            Err(e) => format!("(cannot read the page: {e})"),
        }
    }

    /// The page reports its own errors (uncaught exceptions, blocked
    /// content) as error toasts; there must be none.
    async fn assert_no_page_errors(&self) {
        let errors = self
            .eval("return [...document.querySelectorAll('.toast-error')].map(t => t.innerText)")
            .await;
        assert_eq!(errors, json!([]), "the page reported errors");
    }

    /// What a screen reader and a laptop need of the page as it is now:
    /// every button and link has a name, every input a label, every
    /// progress bar and meter its value, and nothing is wider than the
    /// 1280-pixel window.
    async fn assert_accessible(&self, what: &str) {
        let problems = self
            .eval(
                r#"
                const out = [];
                const name = (e) => (e.getAttribute("aria-label") || e.textContent || "").trim();
                for (const e of document.querySelectorAll("button, a[href]"))
                  if (e.getClientRects().length && !name(e)) out.push("unnamed " + e.outerHTML.slice(0, 80));
                for (const e of document.querySelectorAll("input, select, textarea"))
                  if (e.getClientRects().length && !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
                    out.push("unlabelled " + e.outerHTML.slice(0, 80));
                for (const e of document.querySelectorAll("[role=progressbar], [role=meter]"))
                  if (!e.getAttribute("aria-label") || e.getAttribute("aria-valuenow") === null)
                    out.push("bar without label or value " + e.outerHTML.slice(0, 80));
                if (document.documentElement.scrollWidth > window.innerWidth)
                  out.push("the page is " + document.documentElement.scrollWidth + " px wide in a " + window.innerWidth + " px window");
                return out;
                "#,
            )
            .await;
        assert_eq!(problems, json!([]), "{what}");
    }

    /// Saves a screenshot to `target/ui-artifacts/<name>`.
    async fn screenshot(&self, name: &str) {
        let png = self.c().screenshot().await.expect("a screenshot");
        let dir = artifacts();
        std::fs::create_dir_all(&dir).expect("create target/ui-artifacts");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace")
}

fn artifacts() -> PathBuf {
    workspace().join("target/ui-artifacts")
}
