// Hosts: up or down, which one is SPM, when its agent last answered.

import { h } from "../dom.js";
import { ago, plural, sentence } from "../format.js";

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
                ["Host", "Status", "Role", "Agent", "Last answered", "Problem"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, model.hosts.map((x) => hostRow(model, x)))))
      : h("p", { class: "empty" }, "No hosts yet. Add one with ", h("code", {}, "ferry host add"), "."),
  );
}

function hostRow(model, host) {
  return h("tr", { "data-key": host.id, "data-host": host.name },
    h("th", { scope: "row" }, host.name),
    h("td", {}, h("span", { class: `badge host-${host.status}` }, host.status === "up" ? "Up" : "Down")),
    h("td", {}, host.spm ? h("span", { class: "badge spm" }, "SPM") : h("span", { class: "muted" }, "HSM")),
    h("td", {}, h("code", {}, host.url)),
    h("td", {}, host.last_seen ? ago(host.last_seen * 1000, model.receivedAt) : "never"),
    h("td", {}, host.error ? h("span", { class: "error-text" }, sentence(host.error)) : h("span", { class: "muted" }, "—")));
}
