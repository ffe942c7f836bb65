// Jobs, newest first, live: a progress bar per job (bytes copied of the
// chain's total, the step of the seed's flow, rate, time left), the steps
// with their times, why a job failed, Cancel while it can be, and Retry
// for a job that failed after the switch to the destination.

import { h, srOnly } from "../dom.js";
import { bytes, clock, duration, plural, rate, sentence } from "../format.js";
import {
  JOB_STATE_WORDS,
  STEP_STATE_WORDS,
  isFinished,
  jobPercent,
  jobSubject,
  jobTitle,
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
        stat("Bandwidth limit", job.bandwidth_mib_s ? `${job.bandwidth_mib_s} MiB/s` : "none")),
      job.error
        ? h("div", { class: "error-box", "data-job-error": job.id },
            h("strong", {}, job.state === "failed" ? "Why it failed: " : "Error: "),
            sentence(job.error))
        : null,
      finished
        ? h("details", { class: "steps-details" },
            h("summary", {}, `Steps (${plural(job.steps.length, "step")})`),
            steps(job, now))
        : steps(job, now)));
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

function stat(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
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
