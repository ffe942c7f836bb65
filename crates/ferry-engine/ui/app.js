// Ferry's web UI: sign-in, the views (VMs, storage domains, hosts, jobs,
// events), live updates every second, and the actions (Move, Cancel,
// Retry).
// Plain ES modules, no build step: the engine serves these files as they
// are (crates/ferry-engine/src/api/ui.rs).

import { ApiError, call, clearToken, setToken, snapshot, token } from "./api.js";
import { h, morph } from "./dom.js";
import { clock, sentence } from "./format.js";
import { openMoveDialog } from "./move-dialog.js";
import { JOB_STATE_WORDS, Model, PaceHistory, isFinished, jobTitle } from "./model.js";
import * as domains from "./views/domains.js";
import * as events from "./views/events.js";
import * as hosts from "./views/hosts.js";
import * as jobs from "./views/jobs.js";
import * as vms from "./views/vms.js";

const VIEWS = { vms, storage: domains, hosts, jobs, events };
const POLL_MS = 1000;

const state = {
  model: null,
  /** Bumped at sign-in and sign-out: an old polling loop stops. */
  generation: 0,
  wake: null,
  timer: null,
  connected: true,
  /** Jobs whose cancel was asked and not answered yet. */
  cancelling: new Set(),
  /** Jobs whose retry was asked and not answered yet. */
  retrying: new Set(),
  /** The running live jobs' copy rate and guest latency, as read (the jobs' charts). */
  history: new PaceHistory(),
};

const $ = (id) => document.getElementById(id);

// ---- views -----------------------------------------------------------

function viewName() {
  const name = location.hash.replace(/^#\/?/, "");
  return VIEWS[name] ? name : "vms";
}

function render() {
  const name = viewName();
  const view = VIEWS[name];
  document.title = `${view.title} · Ferry`;
  for (const a of document.querySelectorAll("nav a[data-view]")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const model = state.model;
  if (!model) {
    morph($("view"), h("div", { id: "view" }, h("p", { class: "loading" }, "Reading the engine's inventory…")));
    return;
  }
  model.ui = { cancelling: state.cancelling, retrying: state.retrying, history: state.history };
  const running = model.jobs.filter((j) => !isFinished(j)).length;
  $("jobs-count").textContent = running ? `${running} running` : "";
  $("jobs-count").hidden = !running;
  morph($("view"), h("div", { id: "view" }, view.render(model)));
}

// ---- polling ---------------------------------------------------------

async function pollOnce(gen) {
  try {
    const data = await snapshot();
    if (gen !== state.generation) return;
    const next = new Model(data);
    announceChanges(state.model, next);
    state.history.record(next);
    state.model = next;
    setConnected(true, next.receivedAt);
    render();
  } catch (e) {
    if (gen !== state.generation) return;
    if (e instanceof ApiError && e.status === 401) {
      signOut(`The engine refused the token: ${e.message}. Sign in again with the engine's current token.`);
      return;
    }
    setConnected(false, null, e.message);
  }
}

async function loop(gen) {
  while (gen === state.generation) {
    await pollOnce(gen);
    if (gen !== state.generation) return;
    await new Promise((resolve) => {
      state.wake = resolve;
      state.timer = setTimeout(resolve, POLL_MS);
    });
  }
}

/** Reads everything again now (after an action) instead of in a second. */
function refreshSoon() {
  clearTimeout(state.timer);
  state.wake?.();
}

function setConnected(ok, at, why) {
  const conn = $("conn");
  if (ok) {
    conn.className = "conn conn-ok";
    conn.textContent = `Live · ${clock(at)}`;
    if (!state.connected) announce("In contact with the engine again.");
  } else {
    conn.className = "conn conn-lost";
    conn.textContent = "Engine not answering · retrying";
    conn.title = sentence(why);
    if (state.connected) announce(`Lost contact with the engine: ${why}. Retrying every second.`);
  }
  state.connected = ok;
}

// ---- announcements for screen readers --------------------------------

function announce(text) {
  const region = $("announcer");
  // A fresh node, so the same sentence twice is read twice.
  region.replaceChildren(h("p", {}, text));
}

function announceChanges(prev, next) {
  if (!prev) return;
  const said = [];
  for (const job of next.jobs) {
    const before = prev.jobById.get(job.id);
    const name = jobTitle(next, job);
    if (!before) {
      if (!isFinished(job)) said.push(`${name} started.`);
    } else if (before.state !== job.state) {
      const why = job.state === "failed" && job.error ? `: ${job.error}` : "";
      said.push(`${name}: ${JOB_STATE_WORDS[job.state].toLowerCase()}${why}.`);
    } else if (!isFinished(job) && before.step !== job.step) {
      said.push(`${name}: step ${job.step}.`);
    }
  }
  if (said.length) announce(said.join(" "));
}

// ---- toasts ----------------------------------------------------------

function toast(text, { kind = "info", link = null } = {}) {
  const box = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("p", {}, sentence(text), link ? [" ", h("a", { href: link.href }, link.text)] : null),
    h("button", { type: "button", class: "btn btn-quiet toast-close", "aria-label": "Dismiss this message" }, "×"));
  box.querySelector(".toast-close").addEventListener("click", () => box.remove());
  $("toasts").append(box);
  if (kind !== "error") setTimeout(() => box.remove(), 10000);
}

// ---- actions ---------------------------------------------------------

function onClick(ev) {
  const btn = ev.target.closest("button[data-action]");
  if (!btn || !state.model) return;
  if (btn.getAttribute("aria-disabled") === "true") {
    toast(btn.dataset.why ? `Cannot do that now: ${btn.dataset.why}.` : "Not possible now.", { kind: "warn" });
    return;
  }
  const model = state.model;
  const id = btn.dataset.id;
  switch (btn.dataset.action) {
    case "move-disk": {
      const disk = model.diskById.get(id);
      if (!disk) return;
      const vm = disk.vm ? model.vmById.get(disk.vm) : null;
      openMoveDialog({ model, vm, disk, opener: btn, onStarted: moveStarted });
      break;
    }
    case "move-vm": {
      const vm = model.vmById.get(id);
      if (vm) openMoveDialog({ model, vm, opener: btn, onStarted: moveStarted });
      break;
    }
    case "cancel-job":
      cancelJob(id);
      break;
    case "retry-job":
      retryJob(id);
      break;
    default:
      break;
  }
}

function moveStarted(job, destination) {
  const title = state.model ? jobTitle(state.model, job) : "The move";
  toast(`${title} to ${destination} started.`, { kind: "ok", link: { href: "#/jobs", text: "Watch it in Jobs" } });
  refreshSoon();
}

async function cancelJob(id) {
  if (state.cancelling.has(id)) return;
  state.cancelling.add(id);
  render();
  try {
    await call("POST", `/jobs/${id}/cancel`);
    toast("Cancelling: the job rolls back and the disks stay where they were.", { kind: "ok" });
  } catch (e) {
    toast(`The engine did not cancel the job: ${e.message}`, { kind: "error" });
  } finally {
    state.cancelling.delete(id);
    refreshSoon();
  }
}

async function retryJob(id) {
  if (state.retrying.has(id)) return;
  state.retrying.add(id);
  render();
  try {
    const job = await call("POST", `/jobs/${id}/retry`);
    toast(`Retrying from ${job.step}.`, { kind: "ok" });
  } catch (e) {
    toast(`The engine did not retry the job: ${e.message}`, { kind: "error" });
  } finally {
    state.retrying.delete(id);
    refreshSoon();
  }
}

// ---- signing in and out ----------------------------------------------

function showSignedIn(signedIn) {
  document.body.classList.toggle("signed-in", signedIn);
  $("signin").hidden = signedIn;
  $("app").hidden = !signedIn;
}

function start() {
  state.generation += 1;
  state.model = null;
  state.history = new PaceHistory();
  state.connected = true;
  showSignedIn(true);
  render();
  loop(state.generation);
}

function signOut(message) {
  state.generation += 1;
  clearTimeout(state.timer);
  state.wake?.();
  state.model = null;
  clearToken();
  if ($("move-dialog").open) $("move-dialog").close("signed-out");
  showSignedIn(false);
  const err = $("signin-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("signin-token").value = "";
  $("signin-token").focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const input = $("signin-token");
  const err = $("signin-error");
  const button = $("signin-submit");
  const value = input.value.trim();
  if (!value) {
    err.hidden = false;
    err.textContent = "Enter the engine's token.";
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    await call("GET", "/hosts", undefined, value);
    setToken(value);
    input.value = "";
    input.removeAttribute("aria-invalid");
    err.hidden = true;
    start();
    $("view-title")?.focus();
  } catch (e) {
    err.hidden = false;
    err.textContent =
      e.status === 401 ? `The engine refused this token: ${e.message}.` : `Cannot sign in: ${sentence(e.message)}.`;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
}

async function showVersion() {
  try {
    const health = await call("GET", "/health");
    $("version").textContent = `Ferry engine ${health.version}`;
  } catch {
    $("version").textContent = "Ferry engine";
  }
}

// ---- start -----------------------------------------------------------

// A fault of the page itself is said, not hidden in the console.
window.addEventListener("error", (e) => toast(`The page hit an error: ${e.message}`, { kind: "error" }));
window.addEventListener("unhandledrejection", (e) =>
  toast(`The page hit an error: ${e.reason?.message ?? e.reason}`, { kind: "error" }),
);
document.addEventListener("securitypolicyviolation", (e) =>
  toast(`The browser blocked ${e.blockedURI || "inline content"} (${e.violatedDirective}).`, { kind: "error" }),
);

$("signin-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => signOut("Signed out. The token was forgotten by this tab."));
document.addEventListener("click", onClick);
window.addEventListener("hashchange", () => {
  render();
  $("view-title")?.focus();
});
showVersion();
if (token()) start();
else signOut("");
