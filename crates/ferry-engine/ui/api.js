// The engine's REST API (/api/v1) with the token the operator signed in
// with. The token lives in this tab's sessionStorage only: it is gone
// when the tab closes, and no other tab or site sees it.

const TOKEN_KEY = "ferry.engine-token";

/** An answer that is not a success, with the engine's sentence. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    /** The HTTP status, or 0 when the engine did not answer. */
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * Calls the API: `call("GET", "/vms")`, `call("POST", "/disks/x/move", {to})`.
 * Resolves with the parsed JSON; rejects with an ApiError whose message is
 * the engine's `{"error": ...}` sentence, or says that it did not answer.
 */
export async function call(method, path, body, tokenOverride) {
  const headers = { Accept: "application/json" };
  const t = tokenOverride ?? token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    throw new ApiError(0, `the engine does not answer (${e.message})`);
  }
  if (!res.ok) {
    let message = `the engine answered ${res.status} ${res.statusText}`;
    try {
      const err = await res.json();
      if (err && typeof err.error === "string") message = err.error;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new ApiError(res.status, message);
  }
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** Everything the views show, read at once. */
export async function snapshot() {
  const [hosts, domains, disks, vms, jobs, events] = await Promise.all([
    call("GET", "/hosts"),
    call("GET", "/domains"),
    call("GET", "/disks"),
    call("GET", "/vms"),
    call("GET", "/jobs"),
    call("GET", "/events?limit=200"),
  ]);
  return { hosts, domains, disks, vms, jobs, events };
}
