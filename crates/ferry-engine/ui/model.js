// The engine's data, indexed, and what the views derive from it: where a
// disk's chain is, which job moves it, whether a move is live or cold,
// where it may go and whether it fits.

import { percent } from "./format.js";

/** The seed's flow, in order, with what each step does, in words. */
export const STEPS = [
  ["prepare", "Check the disks and the destination, lock the disks"],
  ["createVolumeCrossSD", "Start copying the base; create the new leaf on the destination"],
  ["blockMigrate", "The VM starts writing to the new leaf, mirrored"],
  ["cloneInternalVolumes", "Copy the rest of the chain under the new leaf"],
  ["finalizeBlockMigrate", "Switch the VM to the copy: no way back after this"],
  ["merge", "Fold the move's leaf into its parent"],
  ["cleanup", "Delete the source's copies"],
];

const STEP_HELP = new Map(STEPS);

export function stepHelp(name) {
  return STEP_HELP.get(name) || "";
}

export class Model {
  constructor(data, receivedAt = Date.now()) {
    Object.assign(this, data);
    this.receivedAt = receivedAt;
    this.hostById = byId(data.hosts);
    this.domainById = byId(data.domains);
    this.diskById = byId(data.disks);
    this.vmById = byId(data.vms);
    this.jobById = byId(data.jobs);
    // Colours of domains in the chain view: by position, stable.
    this.domainIndex = new Map(data.domains.map((d, i) => [d.id, i]));
  }

  domainName(id) {
    return this.domainById.get(id)?.name ?? `unknown domain ${short(id)}`;
  }

  hostName(id) {
    return this.hostById.get(id)?.name ?? `unknown host ${short(id)}`;
  }

  diskName(id) {
    return this.diskById.get(id)?.name ?? short(id);
  }

  vmName(id) {
    return this.vmById.get(id)?.name ?? short(id);
  }

  /** The unfinished job moving a disk, if any. */
  jobOfDisk(disk) {
    const job = disk.locked_by ? this.jobById.get(disk.locked_by) : null;
    if (job && !isFinished(job)) return job;
    return this.jobs.find((j) => !isFinished(j) && j.disks.includes(disk.id)) ?? null;
  }

  /**
   * Where a disk's chain is: `{ text, moving, domains }`. One domain:
   * "domain1". During a move (a job holds the disk, or its volumes span
   * two domains): "domain1 → domain2 (moving)", source first.
   */
  placement(disk) {
    const job = this.jobOfDisk(disk);
    const onDomains = [];
    for (const v of disk.volumes) if (!onDomains.includes(v.domain)) onDomains.push(v.domain);
    if (!onDomains.length) onDomains.push(disk.domain);
    let from = onDomains[0];
    let to = onDomains[onDomains.length - 1];
    if (job) {
      from = job.src_domain;
      to = job.dst_domain;
    }
    if (from === to) {
      return { text: this.domainName(from), moving: false, domains: onDomains, job };
    }
    const verb = job && job.state === "rolling_back" ? "moving back" : "moving";
    return {
      text: `${this.domainName(from)} → ${this.domainName(to)} (${verb})`,
      moving: true,
      domains: onDomains,
      job,
    };
  }

  /** "live" when the disks' VM runs, else "cold" (as the engine decides). */
  modeOf(vm) {
    return vm && vm.state === "running" ? "live" : "cold";
  }

  disksOfVm(vm) {
    return vm.disks.map((id) => this.diskById.get(id)).filter(Boolean);
  }

  /** Domains the disks may move to: every domain none of them is on. */
  destinations(disks) {
    const used = new Set();
    for (const d of disks) {
      used.add(d.domain);
      for (const v of d.volumes) used.add(v.domain);
    }
    return this.domains.filter((d) => !used.has(d.id));
  }

  /** Why these disks (of `vm`, if any) cannot be moved now, or null. */
  whyNotMovable(disks, what, vm = null) {
    if (vm && vm.state === "unknown") {
      return `the host of ${vm.name} does not answer, so whether it runs (live or cold move) is unknown`;
    }
    if (!disks.length) return `${what} has no disks to move`;
    const busy = disks.find((d) => this.jobOfDisk(d));
    if (busy) return `${busy.name} is being moved already; watch or cancel that job in Jobs`;
    if (!this.destinations(disks).length) return "there is no other storage domain to move to";
    return null;
  }
}

/** The slack the engine's space check adds to the chains' data (flow::SPACE_SLACK_PERCENT). */
export const SPACE_SLACK_PERCENT = 5;

/** Bytes of data the disks' chains hold, as the engine last read them. */
export function chainData(disks) {
  return disks.reduce((sum, d) => sum + d.volumes.reduce((s, v) => s + (v.allocated || 0), 0), 0);
}

/**
 * What the engine will ask the destination to have free: the chains'
 * data plus its slack. The same sum the engine's check makes, on figures
 * that may be a little older (the guest keeps writing).
 */
export function spaceNeeded(disks) {
  const data = chainData(disks);
  return data + Math.floor((data * SPACE_SLACK_PERCENT) / 100);
}

/** The most samples a job's chart keeps; past it, every other one goes. */
export const HISTORY_LIMIT = 480;

/**
 * What each live move cost its guest, as this page saw it: a sample per
 * reading of the engine (about one a second) of the copy rate and the
 * guest's write latency against its baseline, while the job runs. Kept in the page's memory only: a page opened in the middle of a
 * move starts its samples then, and a reload starts afresh. A long move
 * keeps its whole span at a coarser grain (every other sample is dropped
 * when there are too many).
 */
export class PaceHistory {
  constructor(limit = HISTORY_LIMIT) {
    this.limit = limit;
    this.byJob = new Map();
  }

  /** Takes a sample of every running live job in `model`; forgets jobs the engine no longer lists. */
  record(model) {
    const listed = new Set();
    for (const job of model.jobs) {
      listed.add(job.id);
      if (job.mode !== "live" || job.state !== "running" || job.queued) continue;
      let samples = this.byJob.get(job.id);
      if (!samples) {
        samples = [];
        this.byJob.set(job.id, samples);
      }
      const t = model.receivedAt;
      if (samples.length && samples[samples.length - 1].t >= t) continue;
      samples.push({
        t,
        rate: job.rate_bps || 0,
        latency: job.guest_latency_us ?? null,
        baseline: job.guest_baseline_us ?? null,
      });
      if (samples.length > this.limit) {
        // Keep the first and the newest, and every other one between.
        const last = samples[samples.length - 1];
        const thinned = samples.filter((_, i) => i % 2 === 0);
        if (thinned[thinned.length - 1] !== last) thinned.push(last);
        this.byJob.set(job.id, thinned);
      }
    }
    for (const id of this.byJob.keys()) if (!listed.has(id)) this.byJob.delete(id);
  }

  /** A job's samples, oldest first (empty when the page saw none). */
  of(id) {
    return this.byJob.get(id) ?? [];
  }
}

/**
 * Whether a job's copy is paced by its guest and the pacing has begun:
 * the engine shows its figures once it has read the guest while the copy
 * runs.
 */
export function pacingShown(job) {
  return job.pace === "guest" && job.pacing === true;
}

export const PACE_WORDS = {
  guest: "Adapts to the guest",
  fixed: "Fixed: bandwidth only",
};

export function isFinished(job) {
  return job.state === "succeeded" || job.state === "failed" || job.state === "cancelled";
}

/** A job's progress bar: bytes copied of the chain's total. */
export function jobPercent(job) {
  if (job.state === "succeeded") return 100;
  return percent(job.done_bytes, job.total_bytes);
}

/** "Live move of demo-disk", "Cold move of demo-vm's 2 disks". */
export function jobTitle(model, job) {
  const mode = job.mode === "live" ? "Live" : "Cold";
  if (job.kind === "vm_move" && job.vm) {
    const n = job.disks.length;
    return `${mode} move of ${model.vmName(job.vm)}'s ${n === 1 ? "disk" : `${n} disks`}`;
  }
  const names = job.disks.map((id) => model.diskName(id)).join(", ");
  return `${mode} move of ${names}`;
}

/** What a job moves, for labels: "demo-disk", "the disks of demo-vm". */
export function jobSubject(model, job) {
  if (job.kind === "vm_move" && job.vm) return `the disks of ${model.vmName(job.vm)}`;
  return job.disks.map((id) => model.diskName(id)).join(", ");
}

export const JOB_STATE_WORDS = {
  running: "Running",
  rolling_back: "Rolling back",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const STEP_STATE_WORDS = {
  pending: "pending",
  running: "running",
  done: "done",
  skipped: "skipped",
  failed: "failed",
  rolled_back: "rolled back",
};

export const VM_STATE_WORDS = { running: "Running", stopped: "Stopped", unknown: "Unknown" };

export function short(id) {
  return id ? String(id).slice(0, 8) : "";
}

function byId(list) {
  return new Map(list.map((x) => [x.id, x]));
}
