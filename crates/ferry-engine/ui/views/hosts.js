// Hosts: up, down or enrolling, which one is SPM, when its agent last
// answered, and until when its certificate is valid (renewed by the
// engine 30 days before; `ferry engine rotate-certs` renews it now).

import { h } from "../dom.js";
import { ago, dateTime, plural, sentence } from "../format.js";

export const title = "Hosts";

export function render(model) {
  const up = model.hosts.filter((x) => x.status === "up").length;
  const spm = model.hosts.find((x) => x.spm);
  return h(
    "section",
    { "aria-labelledby": "view-title" },
    h("div", { class: "view-head" },
      h("h1", { id: "view-title", tabindex: "-1" }, title),
      h("p", { class: "lede" },
        `${plural(model.hosts.length, "host")}, ${up} up. `,
        spm ? `${spm.name} is the SPM (the only host that creates, copies and deletes volumes).` : "No host is SPM: moves cannot start.")),
    model.hosts.length
      ? h("div", { class: "table-wrap card" },
          h("table", { class: "hosts" },
            h("caption", { class: "sr-only" }, "Hosts"),
            h("thead", {},
              h("tr", {},
                ["Host", "Status", "Role", "Agent", "Last answered", "Certificate expires", "Problem"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, model.hosts.map((x) => hostRow(model, x)))))
      : h("p", { class: "empty" }, "No hosts yet. Add one with ", h("code", {}, "ferry host add"), "."),
  );
}

function hostRow(model, host) {
  return h("tr", { "data-key": host.id, "data-host": host.name },
    h("th", { scope: "row" }, host.name),
    h("td", {}, h("span", { class: `badge host-${host.status}` }, STATUS[host.status] || host.status)),
    h("td", {}, host.spm ? h("span", { class: "badge spm" }, "SPM") : h("span", { class: "muted" }, "HSM")),
    h("td", {}, h("code", {}, host.url)),
    h("td", {}, host.last_seen ? ago(host.last_seen * 1000, model.receivedAt) : "never"),
    h("td", { class: "cert-expiry" }, certificate(host, model.receivedAt)),
    h("td", {}, host.error ? h("span", { class: "error-text" }, sentence(host.error)) : h("span", { class: "muted" }, "—")));
}

const STATUS = { up: "Up", down: "Down", enrolling: "Enrolling" };

/** A day's length, in milliseconds. */
const DAY = 86400 * 1000;

/** When the host's certificate expires, with the days left; a warning
 * within 30 days (the engine renews it then), an error once expired. */
function certificate(host, now) {
  const cert = host.certificate;
  if (!cert) return h("span", { class: "muted" }, "not enrolled");
  const at = cert.not_after * 1000;
  const days = Math.floor((at - now) / DAY);
  const text = `${dateTime(at)} (${days < 0 ? "expired" : plural(days, "day") + " left"})`;
  const cls = days < 0 ? "error-text" : days < 30 ? "warn-text" : "";
  return h("span", { class: cls, title: `sha256:${cert.fingerprint}` }, text);
}
