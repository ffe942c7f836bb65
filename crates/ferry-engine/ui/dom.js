// Building elements, and updating the page in place from a freshly built
// copy: the views are rebuilt every second from the engine's data, and
// `morph` changes only what differs, so focus, selection, open <details>
// and the elements a screen reader is on stay where they are.

/**
 * An element: h("button", { class: "btn", "aria-label": "..." }, "Move").
 * Props: `class`, `style` (an object of CSS properties), boolean
 * attributes as `true`, any other attribute as a string; null, undefined
 * and false are left out. Children: nodes, strings, numbers, arrays.
 */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An SVG element, as `h` builds HTML ones: svg("path", { class: "line", d: "M0 0 L10 5" }).
 * Its colours come from the style sheet (classes), as the page's CSP wants.
 */
export function svg(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

function build(el, props, children) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "style") {
      for (const [prop, v] of Object.entries(value)) el.style.setProperty(prop, v);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Makes `from` (in the page) look like `to` (just built), in place. */
export function morph(from, to) {
  syncAttributes(from, to);
  morphChildren(from, to);
}

function syncAttributes(from, to) {
  for (const { name } of [...from.attributes]) {
    // An operator opens and closes <details>; the page does not.
    if (name === "open" && from.tagName === "DETAILS") continue;
    if (!to.hasAttribute(name)) from.removeAttribute(name);
  }
  for (const { name, value } of [...to.attributes]) {
    if (name === "open" && from.tagName === "DETAILS") continue;
    if (name === "style") {
      // Through the CSSOM: the page's CSP forbids style attributes.
      if (from.style.cssText !== to.style.cssText) from.style.cssText = to.style.cssText;
    } else if (from.getAttribute(name) !== value) {
      from.setAttribute(name, value);
    }
  }
}

function keyOf(node) {
  return node.nodeType === Node.ELEMENT_NODE ? node.getAttribute("data-key") : null;
}

function sameKind(a, b) {
  if (a.nodeType !== b.nodeType) return false;
  if (a.nodeType !== Node.ELEMENT_NODE) return true;
  return a.tagName === b.tagName && !keyOf(a);
}

// Children with a `data-key` are matched by key (moved, not rebuilt, when
// a list reorders); the others by position and tag.
function morphChildren(from, to) {
  const keyed = new Map();
  for (const child of from.children) {
    const key = keyOf(child);
    if (key) keyed.set(key, child);
  }
  let cur = from.firstChild;
  for (const next of [...to.childNodes]) {
    const key = keyOf(next);
    let match = null;
    if (key) {
      const found = keyed.get(key);
      if (found && found.tagName === next.tagName) {
        match = found;
        keyed.delete(key);
      }
    } else if (cur && sameKind(cur, next)) {
      match = cur;
    }
    if (!match) {
      from.insertBefore(next, cur);
      continue;
    }
    if (match === cur) cur = cur.nextSibling;
    else from.insertBefore(match, cur);
    if (match.nodeType === Node.ELEMENT_NODE) morph(match, next);
    else if (match.nodeValue !== next.nodeValue) match.nodeValue = next.nodeValue;
  }
  while (cur) {
    const after = cur.nextSibling;
    from.removeChild(cur);
    cur = after;
  }
}

/** Text only a screen reader reads. */
export function srOnly(text) {
  return h("span", { class: "sr-only" }, text);
}
