// Storage domains: capacity, used and free as a bar, and the disks on
// each (a disk whose chain is split during a move shows on both).

import { h } from "../dom.js";
import { bytes, percent, plural, sentence } from "../format.js";

export const title = "Storage domains";

export function render(model) {
  return h(
    "section",
    { "aria-labelledby": "view-title" },
    h("div", { class: "view-head" },
      h("h1", { id: "view-title", tabindex: "-1" }, title),
      h("p", { class: "lede" },
        `${plural(model.domains.length, "domain")}. Domains on one filesystem share its free space.`)),
    model.domains.length
      ? h("div", { class: "grid" }, model.domains.map((d) => domainCard(model, d)))
      : h("p", { class: "empty" }, "No storage domains yet. Create one with ", h("code", {}, "ferry domain create"), "."),
  );
}

function domainCard(model, domain) {
  const used = Math.max(0, domain.capacity - domain.free);
  const pct = percent(used, domain.capacity);
  const titleId = `domain-${domain.id}`;
  const colour = (model.domainIndex.get(domain.id) ?? 0) % 4;
  const disks = model.disks.filter(
    (d) => d.domain === domain.id || d.volumes.some((v) => v.domain === domain.id) || movingTo(model, d, domain),
  );
  return h("article", { class: "card domain", "data-key": domain.id, "aria-labelledby": titleId, "data-domain": domain.name },
    h("div", { class: "card-head" },
      h("h2", { id: titleId }, h("span", { class: `swatch dom-${colour}`, "aria-hidden": "true" }), domain.name),
      domain.master ? h("span", { class: "badge master", title: "Holds the SPM lease" }, "Master") : null),
    h("div", {
        class: `meter${pct >= 90 ? " meter-full" : pct >= 75 ? " meter-high" : ""}`,
        role: "meter",
        "aria-label": `Space used on ${domain.name}`,
        "aria-valuemin": "0",
        "aria-valuemax": "100",
        "aria-valuenow": String(pct),
        "aria-valuetext": `${pct} % used: ${bytes(used)} of ${bytes(domain.capacity)}, ${bytes(domain.free)} free`,
      },
      h("div", { class: "meter-fill", style: { width: `${pct}%` } })),
    h("dl", { class: "space" },
      h("div", {}, h("dt", {}, `Used (${pct} %)`), h("dd", {}, bytes(used))),
      h("div", {}, h("dt", {}, "Free"), h("dd", {}, bytes(domain.free))),
      h("div", {}, h("dt", {}, "Capacity"), h("dd", {}, bytes(domain.capacity)))),
    h("h3", {}, "Disks"),
    disks.length
      ? h("ul", { class: "domain-disks" }, disks.map((d) => diskLine(model, d, domain)))
      : h("p", { class: "muted" }, "No disks."),
    h("p", { class: "path" }, h("span", { class: "muted" }, "Path "), h("code", {}, domain.path)));
}

function movingTo(model, disk, domain) {
  const job = model.jobOfDisk(disk);
  return job && (job.dst_domain === domain.id || job.src_domain === domain.id);
}

function diskLine(model, disk, domain) {
  const here = disk.volumes.filter((v) => v.domain === domain.id).length;
  const job = model.jobOfDisk(disk);
  const notes = [];
  if (job && job.dst_domain === domain.id) notes.push(`moving here from ${model.domainName(job.src_domain)}`);
  else if (job && job.src_domain === domain.id) notes.push(`moving to ${model.domainName(job.dst_domain)}`);
  if (here && here < disk.volumes.length) notes.push(`${here} of ${disk.volumes.length} volumes here`);
  const vm = disk.vm ? model.vmById.get(disk.vm) : null;
  return h("li", { "data-key": disk.id },
    h("span", { class: "disk-name" }, disk.name),
    h("span", { class: "muted" }, ` · ${bytes(disk.size)} · ${plural(disk.volumes.length, "volume")}`),
    vm ? h("span", { class: "muted nowrap" }, ` · VM ${vm.name}`) : null,
    notes.length ? h("span", { class: "note" }, sentence(notes.join("; "))) : null);
}
