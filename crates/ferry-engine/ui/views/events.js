// The event log, newest first.

import { h } from "../dom.js";
import { clock, dateTime, sentence } from "../format.js";

export const title = "Events";

export function render(model) {
  return h(
    "section",
    { "aria-labelledby": "view-title" },
    h("div", { class: "view-head" },
      h("h1", { id: "view-title", tabindex: "-1" }, title),
      h("p", { class: "lede" }, `What happened, newest first (the last ${model.events.length}).`)),
    model.events.length
      ? h("div", { class: "table-wrap card" },
          h("table", { class: "events" },
            h("caption", { class: "sr-only" }, "Events, newest first"),
            h("thead", {},
              h("tr", {}, h("th", { scope: "col" }, "Time"), h("th", { scope: "col" }, "About"), h("th", { scope: "col" }, "What happened"))),
            h("tbody", {},
              model.events.map((e) =>
                h("tr", { "data-key": String(e.id) },
                  h("td", { class: "time" }, h("time", { datetime: new Date(e.time).toISOString(), title: dateTime(e.time) }, clock(e.time))),
                  h("td", {}, h("span", { class: `badge kind kind-${e.kind}` }, e.kind)),
                  h("td", {}, sentence(e.message)))))))
      : h("p", { class: "empty" }, "Nothing has happened yet."),
  );
}
