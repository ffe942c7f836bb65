// Virtual machines: each VM's state and host, its disks with the domain
// each chain is on, and Move on the VM and on each disk (live when the VM
// runs, cold when not).

import { h, srOnly } from "../dom.js";
import { bytes, plural } from "../format.js";
import { VM_STATE_WORDS, jobPercent, short } from "../model.js";
import { progressBar } from "./jobs.js";

export const title = "Virtual machines";

export function render(model) {
  const running = model.vms.filter((v) => v.state === "running").length;
  const loose = model.disks.filter((d) => !d.vm || !model.vmById.has(d.vm));
  return h(
    "section",
    { "aria-labelledby": "view-title" },
    h("div", { class: "view-head" },
      h("h1", { id: "view-title", tabindex: "-1" }, title),
      h("p", { class: "lede" },
        `${plural(model.vms.length, "VM")}, ${running} running. `,
        "Moving a running VM's disks is a live move: the VM keeps running.")),
    model.vms.length
      ? model.vms.map((vm) => vmCard(model, vm))
      : h("p", { class: "empty" }, "No VMs yet. Create one with ", h("code", {}, "ferry vm create"), "."),
    loose.length
      ? h("article", { class: "card", "data-key": "loose-disks", "aria-labelledby": "loose-title" },
          h("div", { class: "card-head" },
            h("h2", { id: "loose-title" }, "Disks without a VM"),
            h("p", { class: "muted" }, "Moves of these disks are cold.")),
          diskTable(model, loose, null, "Disks without a VM"))
      : null,
  );
}

function vmCard(model, vm) {
  const mode = model.modeOf(vm);
  const disks = model.disksOfVm(vm);
  const why = model.whyNotMovable(disks, vm.name, vm);
  const titleId = `vm-${vm.id}`;
  return h(
    "article",
    { class: "card", "data-key": `vm-${vm.id}`, "aria-labelledby": titleId, "data-vm": vm.name },
    h("div", { class: "card-head" },
      h("h2", { id: titleId }, vm.name),
      vm.paused
        ? h("span", { class: "badge vm-paused", "data-vm-state": vm.name, title: vm.paused }, "Paused")
        : h("span", { class: `badge vm-${vm.state}`, "data-vm-state": vm.name }, VM_STATE_WORDS[vm.state] ?? vm.state),
      h("dl", { class: "facts" },
        h("div", {}, h("dt", {}, "Host"), h("dd", {}, model.hostName(vm.host))),
        h("div", {}, h("dt", {}, "Memory"), h("dd", {}, `${vm.memory_mib} MiB`)),
        h("div", {}, h("dt", {}, "Disks"), h("dd", {}, String(disks.length)))),
      h("div", { class: "card-actions" },
        moveButton({
          action: "move-vm",
          id: vm.id,
          mode,
          label: `Move all disks of ${vm.name} (${mode})`,
          text: disks.length > 1 ? `Move all disks (${mode})` : `Move (${mode})`,
          why,
          describedBy: `why-vm-${vm.id}`,
        }))),
    vm.paused ? h("p", { class: "why", role: "status" }, `The guest is ${vm.paused}.`) : null,
    why ? h("p", { class: "why", id: `why-vm-${vm.id}` }, `Cannot move now: ${why}.`) : null,
    diskTable(model, disks, vm, `Disks of ${vm.name}`),
  );
}

function diskTable(model, disks, vm, caption) {
  if (!disks.length) return h("p", { class: "empty" }, "No disks.");
  return h("div", { class: "table-wrap" },
    h("table", { class: "disks" },
      h("caption", { class: "sr-only" }, caption),
      h("thead", {},
        h("tr", {},
          h("th", { scope: "col" }, "Disk"),
          h("th", { scope: "col" }, "Size"),
          h("th", { scope: "col" }, "Chain (base first)"),
          h("th", { scope: "col" }, "Storage domain"),
          h("th", { scope: "col" }, srOnly("Actions")))),
      h("tbody", {}, disks.map((d) => diskRow(model, d, vm)))));
}

function diskRow(model, disk, vm) {
  const mode = model.modeOf(vm);
  const place = model.placement(disk);
  const why = model.whyNotMovable([disk], disk.name, vm);
  return h("tr", { "data-key": `disk-${disk.id}`, "data-disk": disk.name },
    h("th", { scope: "row" }, disk.name),
    h("td", { class: "num" }, bytes(disk.size)),
    h("td", {}, chain(model, disk)),
    h("td", {},
      h("span", { class: place.moving ? "placement moving" : "placement", "data-disk-domain": disk.name }, place.text),
      place.job ? jobMini(model, place.job, disk) : null),
    h("td", { class: "actions" },
      moveButton({
        action: "move-disk",
        id: disk.id,
        mode,
        label: `Move disk ${disk.name} (${mode})`,
        text: `Move (${mode})`,
        why,
      })));
}

/**
 * A disk's chain as it is on storage, base first (during a live move its
 * top is the move's new leaf on the destination), then the volumes outside
 * it: the copies a move is making, or the source awaiting cleanup.
 */
function chain(model, disk) {
  const inChain = disk.volumes.map((v, i) =>
    volume(model, v, i === 0 ? "base" : i === disk.volumes.length - 1 ? "leaf" : "snapshot", ""));
  const outside = (disk.outside_chain || []).map((v) => volume(model, v, "copy", " outside"));
  return h("ol", { class: "chain", "aria-label": `Chain of ${disk.name}, base first` },
    inChain.concat(outside));
}

function volume(model, v, role, extra) {
  const colour = (model.domainIndex.get(v.domain) ?? 0) % 4;
  const illegal = v.legality !== "legal";
  return h("li", {
      class: `vol dom-${colour}${illegal ? " illegal" : ""}${extra}`,
      "data-key": `${v.domain}/${v.id}`,
      title: `${role} ${v.id}\n${v.format}, ${v.legality}, ${v.voltype}\n${v.path}`,
    },
    h("span", { class: "vol-role" }, `${role} ${v.format}`),
    h("span", { class: "vol-domain" }, model.domainName(v.domain)),
    illegal ? h("span", { class: "vol-flag" }, v.legality) : null);
}

function jobMini(model, job, disk) {
  const pct = jobPercent(job);
  return h("a", { class: "job-mini", href: "#/jobs", "data-job": job.id },
    progressBar(job, `Move of ${disk.name}`, "thin"),
    h("span", { class: "job-mini-text" }, `${job.step} · ${pct} %`),
    srOnly(` (job ${short(job.id)}, show in Jobs)`));
}

/**
 * A Move button. Enabled whatever the VM's state (live or cold move);
 * when a move is impossible now it stays focusable with aria-disabled and
 * says why when pressed.
 */
export function moveButton({ action, id, mode, label, text, why, describedBy }) {
  return h("button", {
      type: "button",
      class: `btn ${mode === "live" ? "btn-primary" : "btn-secondary"}`,
      "data-action": action,
      "data-id": id,
      "aria-label": label,
      "aria-disabled": why ? "true" : null,
      "aria-describedby": why && describedBy ? describedBy : null,
      "data-why": why,
      title: why ? `Cannot move now: ${why}` : null,
    },
    text);
}
