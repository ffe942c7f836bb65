// The Move dialog: the valid destinations with their free space, a
// warning when the chain will not fit, for a live move how its copy is
// paced (adapting to the guest, or the bandwidth only), an optional
// bandwidth limit, and the start of the job. A native modal <dialog>: focus moves into it,
// stays there, Escape closes it, and focus returns to the Move button.

import { call } from "./api.js";
import { h } from "./dom.js";
import { bytes, plural, sentence } from "./format.js";
import { chainData, spaceNeeded, SPACE_SLACK_PERCENT } from "./model.js";

/**
 * Opens the dialog for one disk (`disk`) or every disk of a VM (`vm`
 * without `disk`). `onStarted(job, destination)` runs when the engine
 * accepted the move.
 */
export function openMoveDialog({ model, vm, disk, opener, onStarted }) {
  const dialog = document.getElementById("move-dialog");
  const disks = disk ? [disk] : model.disksOfVm(vm);
  const mode = model.modeOf(vm);
  const what = disk ? disk.name : `the disks of ${vm.name}`;
  const from = [...new Set(disks.map((d) => model.placement(d).text))].join(", ");
  const data = chainData(disks);
  const need = spaceNeeded(disks);
  const volumes = disks.reduce((n, d) => n + d.volumes.length, 0);
  const choices = model.destinations(disks);
  const fits = (dom) => need <= dom.free;

  const form = h("form", { id: "move-form", method: "dialog", novalidate: true },
    h("h2", { id: "move-title" }, `Move ${what}`),
    h("p", { id: "move-desc", class: `mode-note mode-${mode}` }, modeSentence(model, mode, vm, disk ? disk.name : "its disks")),
    h("dl", { class: "facts" },
      h("div", {}, h("dt", {}, "From"), h("dd", {}, from)),
      h("div", {}, h("dt", {}, disks.length > 1 ? "Disks" : "Chain"),
        h("dd", {}, disks.length > 1 ? `${disks.length} (${plural(volumes, "volume")})` : plural(volumes, "volume"))),
      h("div", {}, h("dt", {}, "Space needed"), h("dd", {}, `${bytes(need)} (${bytes(data)} of data + ${SPACE_SLACK_PERCENT} %)`))),
    h("fieldset", { class: "choices" },
      h("legend", {}, "Destination storage domain"),
      choices.map((dom, i) =>
        h("div", { class: "choice" },
          h("input", {
            type: "radio",
            name: "to",
            id: `move-to-${dom.id}`,
            value: dom.id,
            "data-name": dom.name,
            required: true,
            checked: choices.length === 1 || null,
            "aria-describedby": `move-to-${dom.id}-free`,
            autofocus: i === 0 || null,
          }),
          h("label", { for: `move-to-${dom.id}` },
            h("span", { class: "choice-name" }, dom.name, dom.master ? h("span", { class: "badge master" }, "Master") : null),
            h("span", { class: "choice-free", id: `move-to-${dom.id}-free` },
              `${bytes(dom.free)} free of ${bytes(dom.capacity)}`,
              fits(dom) ? null : h("span", { class: "warn-text" }, " — will not fit")))))),
    h("p", { id: "move-fit", class: "warning", hidden: true }),
    mode === "live" ? paceChoices() : null,
    mode === "live" ? shareField() : null,
    h("div", { class: "field" },
      h("label", { for: "move-bw" }, "Bandwidth limit (MiB/s)"),
      h("input", {
        id: "move-bw",
        name: "bandwidth",
        type: "number",
        min: "1",
        step: "1",
        inputmode: "numeric",
        placeholder: "no limit",
        "aria-describedby": "move-bw-hint",
      }),
      h("p", { id: "move-bw-hint", class: "hint" },
        mode === "live"
          ? "Optional; empty for none. Adapting to the guest, the copy never goes above it; fixed, it is the copy's only limit."
          : "Optional. Limits the copy between domains; empty for no limit.")),
    h("div", { id: "move-error", class: "error-box", role: "alert", hidden: true }),
    h("div", { class: "dialog-actions" },
      h("button", { type: "button", class: "btn btn-secondary", "data-close": true }, "Close"),
      h("button", { type: "submit", class: "btn btn-primary", id: "move-submit" },
        `Start ${mode} move`)));

  dialog.replaceChildren(form);
  dialog.setAttribute("aria-labelledby", "move-title");
  dialog.setAttribute("aria-describedby", "move-desc");

  const fitBox = form.querySelector("#move-fit");
  const errorBox = form.querySelector("#move-error");
  const bw = form.querySelector("#move-bw");
  const share = form.querySelector("#move-share");
  const submit = form.querySelector("#move-submit");
  const chosen = () => form.querySelector("input[name=to]:checked");

  const showFit = () => {
    const input = chosen();
    const dom = input && choices.find((d) => d.id === input.value);
    if (!dom || fits(dom)) {
      fitBox.hidden = true;
      fitBox.removeAttribute("role");
      return;
    }
    fitBox.setAttribute("role", "status");
    fitBox.hidden = false;
    fitBox.textContent =
      `Will not fit: the move needs ${bytes(need)} on ${dom.name} (${bytes(data)} of data + ${SPACE_SLACK_PERCENT} %), ` +
      `which has ${bytes(dom.free)} free. The engine will refuse it; free space on ${dom.name} or choose another domain.`;
  };
  const showError = (text) => {
    errorBox.hidden = !text;
    errorBox.textContent = text ? sentence(text) : "";
  };

  form.addEventListener("change", (ev) => {
    if (ev.target.name === "to") {
      showFit();
      showError("");
    }
    // The share is the guest's pacing's: a fixed pace has none.
    if (ev.target.name === "pace" && share) share.disabled = ev.target.value !== "guest";
  });
  form.querySelector("[data-close]").addEventListener("click", () => dialog.close("cancel"));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = chosen();
    if (!input) {
      showError("choose the storage domain to move to.");
      form.querySelector("input[name=to]")?.focus();
      return;
    }
    let bandwidth = null;
    const raw = bw.value.trim();
    if (raw !== "" || bw.validity.badInput) {
      bandwidth = Number(raw);
      if (!Number.isInteger(bandwidth) || bandwidth < 1) {
        bw.setAttribute("aria-invalid", "true");
        showError("the bandwidth limit is a whole number of MiB/s, 1 or more; leave it empty for no limit.");
        bw.focus();
        return;
      }
    }
    bw.removeAttribute("aria-invalid");
    let guestShare = null;
    const shareOn = share && !share.disabled;
    const rawShare = shareOn ? share.value.trim() : "";
    if (shareOn && (rawShare !== "" || share.validity.badInput)) {
      guestShare = Number(rawShare);
      if (!Number.isInteger(guestShare) || guestShare < GUEST_SHARE_MIN || guestShare > GUEST_SHARE_MAX) {
        share.setAttribute("aria-invalid", "true");
        showError(`the guest's share is a whole percent from ${GUEST_SHARE_MIN} to ${GUEST_SHARE_MAX}; leave it empty for ${GUEST_SHARE_DEFAULT}.`);
        share.focus();
        return;
      }
    }
    share?.removeAttribute("aria-invalid");
    showError("");
    submit.disabled = true;
    submit.textContent = "Starting…";
    const path = disk ? `/disks/${disk.id}/move` : `/vms/${vm.id}/move`;
    try {
      const pace = form.querySelector("input[name=pace]:checked")?.value;
      const request = { to: input.value, bandwidth_mib_s: bandwidth };
      if (pace) request.pace = pace;
      if (guestShare != null) request.guest_share_pct = guestShare;
      const job = await call("POST", path, request);
      dialog.close("started");
      onStarted(job, input.dataset.name);
    } catch (e) {
      showError(`the engine did not start the move: ${e.message}`);
      submit.disabled = false;
      submit.textContent = `Start ${mode} move`;
      submit.focus();
    }
  });

  dialog.addEventListener(
    "close",
    () => {
      dialog.replaceChildren();
      const back = opener && opener.isConnected ? opener : document.getElementById("view-title");
      back?.focus();
    },
    { once: true },
  );

  showFit();
  dialog.showModal();
  (chosen() || form.querySelector("input[name=to]") || bw).focus();
}

/** How a live move's copy is paced: by the guest (the default) or by the bandwidth only. */
function paceChoices() {
  const choice = (value, name, help, checked) =>
    h("div", { class: "choice" },
      h("input", {
        type: "radio",
        name: "pace",
        id: `move-pace-${value}`,
        value,
        checked: checked || null,
        "aria-describedby": `move-pace-${value}-help`,
      }),
      h("label", { for: `move-pace-${value}` },
        h("span", { class: "choice-name" }, name),
        h("span", { class: "choice-help", id: `move-pace-${value}-help` }, help)));
  return h("fieldset", { class: "choices pace-choices" },
    h("legend", {}, "Copy speed"),
    choice("guest", "Adapt to the guest (recommended)",
      "The copy goes as fast as the VM keeps its share of its disk's speed (below), judged by how long its writes take.", true),
    choice("fixed", "Fixed: bandwidth only",
      "The copy runs as fast as the bandwidth limit below allows (with none, as fast as the disks go).", false));
}

// The shares of its I/O rate a guest may be asked to keep, as the engine
// takes them (ferry_api::engine::GUEST_SHARE_PCT and its default).
const GUEST_SHARE_MIN = 10;
const GUEST_SHARE_MAX = 95;
const GUEST_SHARE_DEFAULT = 80;

/** Adapting to the guest: the share of its I/O rate the guest keeps. */
function shareField() {
  return h("div", { class: "field" },
    h("label", { for: "move-share" }, "Guest keeps (% of its I/O rate)"),
    h("input", {
      id: "move-share",
      name: "guest_share",
      type: "number",
      min: String(GUEST_SHARE_MIN),
      max: String(GUEST_SHARE_MAX),
      step: "1",
      inputmode: "numeric",
      placeholder: String(GUEST_SHARE_DEFAULT),
      "aria-describedby": "move-share-hint",
    }),
    h("p", { id: "move-share-hint", class: "hint" },
      `Optional; empty for ${GUEST_SHARE_DEFAULT}. Lower ends the move sooner, higher spares the VM. Adapting to the guest only.`));
}

function modeSentence(model, mode, vm, what) {
  if (!vm) return "Cold move: no VM uses this disk. Its chain is copied, then switched to the destination.";
  const verb = what === "its disks" ? "are" : "is";
  if (mode === "live") {
    return `Live move: ${vm.name} keeps running on ${model.hostName(vm.host)} while ${what} ${verb} copied, then switches to the copy.`;
  }
  return `Cold move: ${vm.name} is ${vm.state}, so ${what} ${verb} copied offline; it cannot start until the move ends.`;
}

