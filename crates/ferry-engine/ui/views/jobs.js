// Jobs, newest first, live: a progress bar per job (bytes copied of the
// chain's total, the step of the seed's flow, rate, time left), a live
// move's pace (the copy's limit now, the guest's write latency against
// its level without the copy, the share of its I/O rate it keeps, as the
// pacing estimates it) and a small chart of both over the move's time, the
// steps with their times, why a job failed, the job's own events (a copy
// that failed and was made again, and why), Cancel while it can be, and
// Retry for a job that failed after the switch to the destination.

import { h, srOnly, svg } from "../dom.js";
import { bytes, clock, dateTime, duration, latency, plural, rate, sentence } from "../format.js";
import {
  JOB_STATE_WORDS,
  PACE_WORDS,
  STEP_STATE_WORDS,
  isFinished,
  jobPercent,
  jobSubject,
  jobTitle,
  pacingShown,
  short,
  stepHelp,
} from "../model.js";

export const title = "Jobs";

export function render(model) {
  const active = model.jobs.filter((j) => !isFinished(j));
  const done = model.jobs.length - active.length;
  return h(
    "section",
    { "aria-labelledby": "view-title" },
    h("div", { class: "view-head" },
      h("h1", { id: "view-title", tabindex: "-1" }, title),
      h("p", { class: "lede" }, `${active.length} in progress, ${done} finished. Newest first; updated every second.`)),
    model.jobs.length
      ? h("ol", { class: "jobs", "aria-label": "Jobs, newest first" }, model.jobs.map((j) => jobCard(model, j)))
      : h("p", { class: "empty" },
          "No moves yet. Start one with Move on a disk or a VM in ", h("a", { href: "#/vms" }, "Virtual machines"), "."),
  );
}

function jobCard(model, job) {
  const finished = isFinished(job);
  const subject = jobSubject(model, job);
  const titleId = `job-${job.id}`;
  const now = model.receivedAt;
  const elapsed = ((job.finished ?? now) - job.created) / 1000;
  const stepNo = job.steps.findIndex((s) => s.name === job.step) + 1;
  const cancelling = model.ui?.cancelling?.has(job.id) ?? false;
  const retrying = model.ui?.retrying?.has(job.id) ?? false;
  return h("li", { "data-key": job.id, class: "job-item" },
    h("article", { class: `card job job-${job.state}`, "aria-labelledby": titleId, "data-job": job.id },
      h("div", { class: "card-head" },
        h("h2", { id: titleId }, jobTitle(model, job)),
        h("span", { class: `badge job-state-${job.state}`, "data-job-state": job.id }, JOB_STATE_WORDS[job.state] ?? job.state),
        h("span", { class: `badge mode-${job.mode}` }, job.mode === "live" ? "Live" : "Cold"),
        job.queued ? h("span", { class: "badge", "data-job-queued": job.id }, "Queued") : null,
        h("div", { class: "card-actions" },
          !finished && job.cancellable && job.state === "running"
            ? h("button", {
                  type: "button",
                  class: "btn btn-danger",
                  "data-action": "cancel-job",
                  "data-id": job.id,
                  "aria-label": `Cancel the move of ${subject}`,
                  "aria-disabled": cancelling ? "true" : null,
                  "data-why": cancelling ? "the cancel was asked and the engine has not answered yet" : null,
                },
                cancelling ? "Cancelling…" : "Cancel")
            : null,
          job.retryable
            ? h("button", {
                  type: "button",
                  class: "btn",
                  "data-action": "retry-job",
                  "data-id": job.id,
                  "aria-label": `Retry the move of ${subject} from ${job.step}`,
                  "aria-disabled": retrying ? "true" : null,
                  "data-why": retrying ? "the retry was asked and the engine has not answered yet" : null,
                },
                retrying ? "Retrying…" : "Retry")
            : null)),
      h("p", { class: "route" },
        h("span", {}, model.domainName(job.src_domain)),
        h("span", { "aria-hidden": "true" }, " → "),
        srOnly(" to "),
        h("span", {}, model.domainName(job.dst_domain)),
        h("span", { class: "muted" }, ` · ${vmOf(model, job)}started ${clock(job.created)} · job ${short(job.id)}`)),
      progressBar(job, `Move of ${subject}`),
      h("p", { class: "step-line" },
        finished
          ? finishedLine(job)
          : job.state === "rolling_back"
            ? `Rolling back from ${job.step}: undoing what the move made; the disks stay where they were.`
            : job.queued
            ? "Queued: the engine runs a bounded number of moves at once, and this one starts when one of them ends. Nothing is made until then; Cancel ends it."
            : `Step ${stepNo} of ${job.steps.length}: ${job.step} — ${stepHelp(job.step) || "working"}`),
      h("dl", { class: "stats" },
        stat("Copied", `${bytes(job.done_bytes)} of ${bytes(job.total_bytes)}`),
        stat("Rate", finished ? "—" : rate(job.rate_bps)),
        stat("Time left", finished ? "—" : job.eta_secs === null ? "—" : `about ${duration(job.eta_secs)}`),
        stat(finished ? "Took" : "Elapsed", duration(elapsed)),
        stat("Bandwidth limit", job.bandwidth_mib_s ? `${job.bandwidth_mib_s} MiB/s` : "none"),
        job.mode === "live" && !finished ? paceStats(job) : null),
      job.mode === "live" ? paceChart(job, model.ui?.history?.of(job.id) ?? []) : null,
      job.error
        ? h("div", { class: "error-box", "data-job-error": job.id },
            h("strong", {}, job.state === "failed" ? "Why it failed: " : "Error: "),
            sentence(job.error))
        : null,
      finished
        ? h("details", { class: "steps-details" },
            h("summary", {}, `Steps (${plural(job.steps.length, "step")})`),
            steps(job, now))
        : steps(job, now),
      jobEvents(model, job)));
}

/**
 * The job's own events among those the page has (the log's last ones),
 * oldest first, folded: its story in words, a copy made again after it
 * read back wrong included, without leaving the job for the Events view.
 */
function jobEvents(model, job) {
  const mine = model.events.filter((e) => e.object === job.id).reverse();
  if (!mine.length) return null;
  return h("details", { class: "steps-details job-events", "data-job-events": job.id },
    h("summary", {}, `Events (${plural(mine.length, "event")})`),
    h("ol", { class: "job-event-list", "aria-label": "The job's events, oldest first" },
      mine.map((e) =>
        h("li", { "data-key": String(e.id) },
          h("time", { datetime: new Date(e.time).toISOString(), title: dateTime(e.time) }, clock(e.time)),
          " ",
          sentence(e.message)))));
}

function vmOf(model, job) {
  const vm = job.vm ? model.vmById.get(job.vm) : null;
  return vm ? `VM ${vm.name} on ${model.hostName(vm.host)} · ` : "";
}

function finishedLine(job) {
  switch (job.state) {
    case "succeeded":
      return `Done at ${clock(job.finished)}: the disks are on the destination.`;
    case "cancelled":
      return `Cancelled at ${clock(job.finished)}: the disks are where they were.`;
    default:
      return job.retryable
        ? `Failed at ${clock(job.finished)} in ${job.step}, after the switch: the VM already uses the destination, and the disks stay locked until the job is retried.`
        : `Failed at ${clock(job.finished)}: the disks are where they were.`;
  }
}

function stat(label, value, key = null) {
  return h("div", key ? { "data-stat": key } : {}, h("dt", {}, label), h("dd", {}, value));
}

/** A running live move's pace: how, the copy's limit now, the guest's latency against its level without the copy, what it keeps. */
function paceStats(job) {
  const out = [stat("Pace", PACE_WORDS[job.pace] ?? job.pace, "pace")];
  if (job.pace !== "guest") return out;
  if (!pacingShown(job)) {
    out.push(stat("Guest write latency", "read once the copy runs", "guest-latency"));
    return out;
  }
  const now = job.guest_latency_us == null ? "not read yet" : latency(job.guest_latency_us);
  const before = job.guest_baseline_us == null ? "" : ` (without the copy: ${latency(job.guest_baseline_us)})`;
  const aim = job.guest_share_pct == null ? "" : `, aiming at ${job.guest_share_pct} %`;
  const kept = `${job.guest_kept_pct == null ? "not estimated yet" : `about ${job.guest_kept_pct} % of its I/O rate`}${aim}`;
  out.push(
    stat("Copy limit now", job.pace_limit_bps == null ? "none" : rate(job.pace_limit_bps), "pace-limit"),
    stat("Guest write latency", `${now}${before}`, "guest-latency"),
    stat("Guest keeps", kept, "guest-kept"));
  return out;
}

// The chart's drawing box; the SVG stretches to the card's width (its
// lines keep their thickness) and is a fixed height in the style sheet.
// Two bands over one time axis: the copy rate above, the guest's write
// latency below (each from zero at its bottom to its scale at its top);
// a fixed-pace move, whose guest is not read, has the rate band only.
const CHART_W = 600;
const BANDS = { rate: [6, 44], latency: [58, 96], height: 100 };
const RATE_ONLY = { rate: [6, 46], latency: null, height: 50 };

/**
 * The copy rate and the guest's write latency (with its level before the
 * move, dashed) over the move's time as this page saw it: an inline SVG,
 * two samples at least. Its text alternative says the latest figures.
 */
function paceChart(job, samples) {
  if (samples.length < 2) return null;
  const guest = job.pace === "guest";
  const bands = guest ? BANDS : RATE_ONLY;
  const t0 = samples[0].t;
  const span = Math.max(1, samples[samples.length - 1].t - t0);
  const x = (t) => (((t - t0) / span) * CHART_W).toFixed(1);
  const y = ([top, bottom], scale) => (v) => (bottom - (Math.min(v, scale) / scale) * (bottom - top)).toFixed(1);
  const rates = samples.map((s) => s.rate);
  const rateTop = rateScale(Math.max(...rates));
  const yRate = y(bands.rate, rateTop);
  const ratePoints = samples.map((s) => `${x(s.t)} ${yRate(s.rate)}`);
  const rateLine = `M${ratePoints.join(" L")}`;
  const rateArea = `${rateLine} L${x(samples[samples.length - 1].t)} ${bands.rate[1]} L0 ${bands.rate[1]} Z`;

  const latencies = samples.map((s) => s.latency).filter((v) => v !== null);
  const baseline = lastOf(samples.map((s) => s.baseline).filter((v) => v !== null));
  const latencyTop = niceCeil(Math.max(100, ...latencies, baseline ?? 0) * 1.1);
  const yLatency = guest ? y(bands.latency, latencyTop) : null;
  // The latency line breaks where a reading had none (an idle guest);
  // each piece starts with a dot (a round cap), so one reading shows.
  let latencyLine = "";
  let drawing = false;
  for (const s of guest ? samples : []) {
    if (s.latency === null) {
      drawing = false;
      continue;
    }
    const p = `${x(s.t)} ${yLatency(s.latency)}`;
    latencyLine += drawing ? ` L${p}` : ` M${p} L${p}`;
    drawing = true;
  }

  const secs = span / 1000;
  const finished = isFinished(job);
  const now = finished ? "last" : "now";
  const lastLatency = lastOf(latencies);
  const said = [`copy rate ${now} ${rate(lastOf(rates))}, highest ${rate(Math.max(...rates))}`];
  if (!guest) said.push("the pace is fixed, so the guest's latency is not read");
  else if (lastLatency === null) said.push("the guest's write latency not read yet");
  else said.push(`guest write latency ${now} ${latency(lastLatency)}, highest ${latency(Math.max(...latencies))}`);
  const label =
    `Chart of the copy rate${guest ? " and the guest's write latency" : ""} over ${duration(secs)} of the move: ` +
    `${said.join("; ")}${guest && baseline !== null ? `, ${latency(baseline)} before the move` : ""}.`;

  const axis = (yy) => svg("line", { class: "pace-axis", x1: 0, x2: CHART_W, y1: yy, y2: yy });
  return h("figure", { class: `pace-chart${guest ? "" : " pace-chart-rate-only"}`, "data-pace-chart": job.id },
    h("div", { class: "pace-plot" },
      svg("svg", {
          class: "pace-svg",
          role: "img",
          "aria-label": label,
          viewBox: `0 0 ${CHART_W} ${bands.height}`,
          preserveAspectRatio: "none",
          "data-points": samples.length,
          "data-latency-points": latencies.length,
        },
        axis(bands.rate[1]),
        guest ? axis(bands.latency[1]) : null,
        svg("path", { class: "pace-rate-area", d: rateArea }),
        svg("path", { class: "pace-rate", d: rateLine }),
        guest && baseline !== null
          ? svg("line", { class: "pace-baseline", x1: 0, x2: CHART_W, y1: yLatency(baseline), y2: yLatency(baseline) })
          : null,
        latencyLine ? svg("path", { class: "pace-latency", d: latencyLine.trim() }) : null),
      h("span", { class: "pace-scale pace-scale-rate", "aria-hidden": "true" }, rate(rateTop)),
      guest ? h("span", { class: "pace-scale pace-scale-latency", "aria-hidden": "true" }, latency(latencyTop)) : null),
    h("figcaption", { class: "pace-legend", "aria-hidden": "true" },
      h("span", { class: "key key-rate" }, "Copy rate"),
      guest ? h("span", { class: "key key-latency" }, "Guest write latency") : null,
      guest && baseline !== null ? h("span", { class: "key key-baseline" }, "before the move") : null,
      h("span", { class: "muted" }, finished ? `${duration(secs)} as this page saw it` : `last ${duration(secs)}`)));
}

function lastOf(list) {
  return list.length ? list[list.length - 1] : null;
}

/** The next round figure up: 1, 2 or 5 times a power of ten. */
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  const m = v / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/** The top of the rate band: a round number of MiB/s (or KiB/s for a slow copy) above the highest rate. */
function rateScale(max) {
  const unit = max >= 1 << 20 ? 1 << 20 : 1 << 10;
  return niceCeil((Math.max(max, 1 << 10) * 1.1) / unit) * unit;
}

function steps(job, now) {
  return h("ol", { class: "steps", "aria-label": "Steps" },
    job.steps.map((s) => {
      const end = s.finished ?? (s.state === "running" ? now : null);
      const took = s.started && end ? duration((end - s.started) / 1000) : null;
      return h("li", { class: `step step-${s.state}`, "data-key": s.name, title: stepHelp(s.name) },
        h("span", { class: "step-icon", "aria-hidden": "true" }, STEP_ICON[s.state] ?? "•"),
        h("span", { class: "step-name" }, s.name),
        h("span", { class: "step-state" }, STEP_STATE_WORDS[s.state] ?? s.state),
        h("span", { class: "step-time" },
          s.started ? `${clock(s.started)}${took ? ` · ${took}` : ""}` : s.finished ? clock(s.finished) : ""),
        s.attempts > 1 ? h("span", { class: "step-attempts" }, `${s.attempts} attempts`) : null,
        s.error ? h("span", { class: "step-error" }, sentence(s.error)) : null);
    }));
}

const STEP_ICON = {
  pending: "○",
  running: "◐",
  done: "✓",
  skipped: "–",
  failed: "✕",
  rolled_back: "↺",
};

/**
 * A job's progress bar: role=progressbar with the percentage of bytes
 * copied, and in words the step, bytes, rate and time left.
 */
export function progressBar(job, label, variant = "") {
  const pct = jobPercent(job);
  const finished = isFinished(job);
  const words = [`${pct} %`, `${bytes(job.done_bytes)} of ${bytes(job.total_bytes)} copied`];
  if (!finished) {
    words.push(`step ${job.step}`);
    if (job.rate_bps > 0) words.push(rate(job.rate_bps));
    if (job.eta_secs !== null && job.eta_secs !== undefined) words.push(`about ${duration(job.eta_secs)} left`);
  } else {
    words.push(JOB_STATE_WORDS[job.state].toLowerCase());
  }
  return h("div", { class: `progress ${variant} progress-${job.state}` },
    h("div", {
        class: "progress-track",
        role: "progressbar",
        "aria-label": label,
        "aria-valuemin": "0",
        "aria-valuemax": "100",
        "aria-valuenow": String(pct),
        "aria-valuetext": words.join(", "),
        "data-job": job.id,
      },
      h("div", { class: "progress-fill", style: { width: `${pct}%` } })),
    variant === "thin" ? null : h("span", { class: "progress-pct", "aria-hidden": "true" }, `${pct} %`));
}
