// Numbers, sizes, times and sentences as an operator reads them.

const UNITS = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Bytes in binary units: "88.5 MiB", "1 GiB", "512 bytes". */
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  let v = Number(n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u += 1;
  }
  if (u === 0) return `${v} ${v === 1 ? "byte" : "bytes"}`;
  const digits = v >= 100 || Number.isInteger(v) ? 0 : 1;
  return `${v.toFixed(digits)} ${UNITS[u]}`;
}

/** A copy rate: "12.5 MiB/s", or a dash when nothing is measured yet. */
export function rate(bps) {
  return bps > 0 ? `${bytes(bps)}/s` : "—";
}

/** A latency in microseconds: "850 µs", "12.4 ms", "1.2 s"; a dash when unknown. */
export function latency(us) {
  if (us === null || us === undefined || !Number.isFinite(Number(us))) return "—";
  const v = Number(us);
  if (v < 1000) return `${Math.round(v)} µs`;
  if (v < 1000000) return `${(v / 1000).toFixed(v < 100000 ? 1 : 0)} ms`;
  return `${(v / 1000000).toFixed(1)} s`;
}

/** A duration in seconds: "0.4 s", "12 s", "3 min 05 s", "2 h 10 min". */
export function duration(secs) {
  if (secs === null || secs === undefined || !Number.isFinite(secs)) return "—";
  if (secs < 10) return `${Math.max(0, secs).toFixed(1)} s`;
  const s = Math.round(secs);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** Milliseconds since the epoch as the local time of day. */
export function clock(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Milliseconds since the epoch as a local date and time. */
export function dateTime(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleString([], {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** How long ago, from milliseconds since the epoch: "4 s ago". */
export function ago(ms, now = Date.now()) {
  if (!ms) return "never";
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 1.5) return "just now";
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return dateTime(ms);
}

/** The engine's messages are sentences without a capital: add it. */
export function sentence(text) {
  if (!text) return "";
  const t = String(text).trim();
  return t.charAt(0).toUpperCase() + t.slice(1);
}

/** "1 disk", "3 disks". */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** A percentage of `part` in `whole`, rounded down (100 only when equal). */
export function percent(part, whole) {
  if (!whole) return 0;
  return Math.min(100, Math.floor((Number(part) * 100) / Number(whole)));
}
