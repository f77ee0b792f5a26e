// pogo's web dashboard: one script, no framework, no build step.
//
// Everything that comes from the server (host names, commands, messages, output) is untrusted:
// the DOM is built with createElement and textContent only, never from HTML text, and output
// is stripped of terminal escape sequences and control characters.
"use strict";

/* ------------------------------------------------------------------------------------------
 * Pure helpers (no DOM): sanitising, NDJSON splitting, formatting, "why it waits".
 * ---------------------------------------------------------------------------------------- */

/** Host states, in the order counts are shown. */
const COUNT_ORDER = [
  "succeeded", "failed", "timed_out", "unreachable", "lost", "cancelled", "skipped", "running",
  "pending",
];
/** Job states that are over: the events stream ends after them. */
const JOB_ENDED = new Set(["succeeded", "failed", "stopped"]);
/** Host states that hold a place in a constraint group. */
const DOWN_STATES = new Set(["running", "failed", "timed_out", "unreachable", "lost"]);
/** Host states that are not finished. */
const UNFINISHED = new Set(["pending", "running"]);
const SESSION_EXPIRED = "Session expired: open the link `pogo ui` printed again.";
const DROPPED_NOTE = "earlier lines dropped; `pogo log` has them all";
const MAX_OUTPUT_LINES = 20000;
const OUTPUT_PAGE = 1000;
const BIG_JOB = 500;
const BIG_JOB_ROWS = 200;
const POLL_MS = 2000;

const OSC_RE = /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g;
const CSI_RE = /\x1b\[[0-?]*[ -/]*[@-~]?/g;
const ESC_RE = /\x1b(?:[ -/]+[0-~]?|[\s\S])?/g;
const CONTROL_RE = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;

function controlSymbol(c) {
  const code = c.charCodeAt(0);
  if (code < 0x20) return String.fromCharCode(0x2400 + code);
  if (code === 0x7f) return "\u2421";
  return "?";
}

/**
 * Makes untrusted text safe and readable as plain text: removes terminal escape sequences
 * (OSC, CSI, other ESC + one character) and replaces the remaining control characters (tab
 * excepted) with visible symbols. The result is only ever used with textContent.
 */
function sanitizeText(value) {
  let s = value === undefined || value === null ? "" : String(value);
  if (s.indexOf("\x1b") >= 0) {
    s = s.replace(OSC_RE, "").replace(CSI_RE, "").replace(ESC_RE, "");
  }
  return s.replace(CONTROL_RE, controlSymbol);
}

/**
 * Splits NDJSON text: `rest` is the partial line kept from before, `chunk` the new text.
 * Returns [complete lines (without "\r\n"/"\n", blank ones dropped), the new partial line].
 */
function splitNdjson(rest, chunk) {
  const parts = (rest + chunk).split("\n");
  const tail = parts.pop();
  const lines = [];
  for (let line of parts) {
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line.trim() !== "") lines.push(line);
  }
  return [lines, tail];
}

/** Keeps the partial last line between chunks. */
class LineSplitter {
  constructor() {
    this.rest = "";
  }
  /** The complete lines the chunk ends. */
  push(chunk) {
    const [lines, rest] = splitNdjson(this.rest, chunk);
    this.rest = rest;
    return lines;
  }
  /** The last line, when the text ended without a newline. */
  end() {
    const [lines] = splitNdjson(this.rest, "\n");
    this.rest = "";
    return lines;
  }
}

/** Parses NDJSON lines, skipping any that are not JSON objects. */
function parseNdjsonLines(lines) {
  const out = [];
  for (const line of lines) {
    try {
      const value = JSON.parse(line);
      if (value && typeof value === "object") out.push(value);
    } catch (_) {
      // A line that is not JSON is skipped.
    }
  }
  return out;
}

/** `timed_out` → `timed out`. */
function stateWord(state) {
  return String(state === undefined || state === null ? "" : state).replace(/_/g, " ");
}

/** "3 succeeded, 1 failed, 5 pending": non-zero counts, in COUNT_ORDER. */
function formatCounts(counts) {
  const parts = [];
  if (!counts) return "";
  for (const state of COUNT_ORDER) {
    const n = counts[state];
    if (typeof n === "number" && n > 0) parts.push(`${n} ${stateWord(state)}`);
  }
  return parts.join(", ");
}

/** Unix seconds → `YYYY-MM-DD HH:MM:SS` (UTC). */
function formatTime(seconds) {
  if (typeof seconds !== "number" || !isFinite(seconds)) return "";
  const date = new Date(seconds * 1000);
  if (isNaN(date.getTime())) return "";
  return date.toISOString().slice(0, 19).replace("T", " ");
}

/** Cuts text to `max` characters, the last one an ellipsis. */
function truncate(text, max) {
  const s = String(text === undefined || text === null ? "" : text);
  const chars = Array.from(s);
  return chars.length > max ? chars.slice(0, max - 1).join("") + "\u2026" : s;
}

/** Milliseconds → `1.2s ago`, `3m 5s ago`, `2h 4m ago`. */
function formatAgo(ms) {
  if (typeof ms !== "number" || !isFinite(ms) || ms < 0) return "";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s ago`;
  const total = Math.floor(s);
  if (total < 3600) return `${Math.floor(total / 60)}m ${total % 60}s ago`;
  if (total < 86400) return `${Math.floor(total / 3600)}h ${Math.floor((total % 3600) / 60)}m ago`;
  return `${Math.floor(total / 86400)}d ${Math.floor((total % 86400) / 3600)}h ago`;
}

/** A plan whose host lists are names (indices into `hosts`, if a server sends those). */
function normalizePlan(plan) {
  if (!plan || typeof plan !== "object") return null;
  const all = Array.isArray(plan.hosts) ? plan.hosts.map(String) : [];
  const names = (list) =>
    Array.isArray(list) ? list.map((h) => (typeof h === "number" && h < all.length ? all[h] : String(h))) : [];
  return {
    command: plan.command,
    options: plan.options || null,
    hosts: all,
    threads: (Array.isArray(plan.threads) ? plan.threads : []).map((t) => ({
      name: t && t.name !== undefined ? String(t.name) : "",
      filter: t && t.filter !== undefined && t.filter !== null ? String(t.filter) : null,
      slots: (t && Array.isArray(t.slots) ? t.slots : []).map((s) => ({
        id: s && s.id !== undefined ? String(s.id) : "",
        step: s && s.step !== undefined && s.step !== null ? String(s.step) : "",
        hosts: names(s && s.hosts),
      })),
    })),
    unordered: names(plan.unordered),
    constraints: (Array.isArray(plan.constraints) ? plan.constraints : []).map((c) => ({
      id: c && c.id !== undefined ? String(c.id) : "",
      from: c && c.from !== undefined ? String(c.from) : "",
      max_parallel: (c && c.max_parallel) || {},
      hosts: names(c && c.hosts),
    })),
  };
}

/**
 * Why a pending host waits, from the (normalised) plan and the current host states
 * (`stateOf(name)`): the slot before it in a thread that is not finished, else the constraint
 * groups that are full, else ready. Returns a list of sentences.
 */
function whyWaits(host, plan, stateOf) {
  const out = [];
  if (!plan) return out;
  for (const thread of plan.threads) {
    const slots = thread.slots;
    for (let i = 0; i < slots.length; i++) {
      if (slots[i].hosts.indexOf(host) < 0) continue;
      // The nearest earlier slot that has hosts not finished is what this one waits for.
      for (let j = i - 1; j >= 0; j--) {
        let unfinished = 0;
        for (const h of slots[j].hosts) if (UNFINISHED.has(stateOf(h))) unfinished++;
        if (unfinished > 0) {
          out.push(`waits for slot ${slots[j].id}: ${unfinished} hosts not finished`);
          break;
        }
      }
    }
  }
  if (out.length) return out;
  for (const group of plan.constraints) {
    if (group.hosts.indexOf(host) < 0) continue;
    const limit = Number(group.max_parallel && group.max_parallel.value);
    if (!isFinite(limit)) continue;
    let down = 0;
    for (const h of group.hosts) if (DOWN_STATES.has(stateOf(h))) down++;
    if (down >= limit) out.push(`waits for a free place in ${group.id}: ${down} of ${limit} down`);
  }
  if (out.length) return out;
  return ["ready: starts as soon as a worker takes it"];
}

/** Which job actions apply in a job state. */
function actionEnabled(action, state) {
  switch (action) {
    case "halt":
      return state === "running" || state === "needs_password";
    case "halt-kill":
      return state === "running" || state === "stopping" || state === "needs_password";
    // A job that needs its SSH password is resumed with `pogo resume JOB --password`: the
    // page does not take passwords.
    case "resume":
      return state === "stopped";
    case "retry":
      return state === "stopped" || state === "failed" || state === "needs_password";
    default:
      return false;
  }
}

/** Host states the dispatcher retries when asked to (`retry` with chosen hosts). */
const RETRYABLE = new Set(["failed", "timed_out", "unreachable", "lost", "cancelled"]);
/** Job states in which no host can be retried: the job is still going. */
const JOB_GOING = new Set(["running", "stopping"]);
/** How many names a confirmation lists before "and N more". */
const MAX_NAMED = 10;

/** Whether the hosts of a job in `state` may be retried (by name) now. */
function canRetryHosts(state) {
  return !JOB_GOING.has(state);
}

/** Milliseconds → `850 ms`, `12.3 s`, `2m05s`, `1h02m`; "" when not a duration. */
function formatDuration(ms) {
  if (typeof ms !== "number" || !isFinite(ms) || ms < 0) return "";
  const whole = Math.floor(ms);
  if (whole < 1000) return `${whole} ms`;
  if (whole < 60000) return `${(Math.floor(whole / 100) / 10).toFixed(1)} s`;
  const secs = Math.floor(whole / 1000);
  const pad = (n) => (n < 10 ? "0" : "") + n;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${pad(secs % 60)}s`;
  return `${Math.floor(secs / 3600)}h${pad(Math.floor((secs % 3600) / 60))}m`;
}

/** A duration as the server gives it (`duration_ms`): a number of ms, or undefined. */
function durationOf(value) {
  return typeof value === "number" && isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * The duration shown for a host: nothing while it runs; `unknown` while it waits or when the
 * server did not say; else the formatted duration of its last attempt.
 */
function durationText(state, ms, unknown) {
  if (state === "running") return "";
  if (state === "pending") return unknown;
  const text = formatDuration(ms);
  return text === "" ? unknown : text;
}

/** `a, b, c`; past `max` names, the first `max` then `and N more`. */
function nameList(names, max) {
  const limit = max === undefined ? MAX_NAMED : max;
  const shown = names.slice(0, limit).join(", ");
  return names.length > limit ? `${shown} and ${names.length - limit} more` : shown;
}

/** The question asked before retrying chosen hosts of job `id`. */
function retryQuestion(id, names) {
  if (names.length === 1) return `Retry host ${names[0]} of job ${id}?`;
  return `Retry ${names.length} hosts of job ${id}: ${nameList(names, MAX_NAMED)}?`;
}

/*
 * Slot states. A slot keeps a tally of its hosts by bucket (updated as hosts change, never by
 * rescanning): `running`, `bad` (failed, timed out, unreachable, lost), `finished`
 * (succeeded, skipped, cancelled) and `waiting` (pending, or anything else).
 */
const SLOT_BAD = new Set(["failed", "timed_out", "unreachable", "lost"]);
const SLOT_FINISHED = new Set(["succeeded", "skipped", "cancelled"]);

/** The tally bucket a host state counts in. */
function slotBucket(state) {
  if (state === "running") return "running";
  if (SLOT_BAD.has(state)) return "bad";
  if (SLOT_FINISHED.has(state)) return "finished";
  return "waiting";
}

/** An empty tally. */
function newTally() {
  return { size: 0, running: 0, bad: 0, finished: 0, waiting: 0, state: "" };
}

/** Counts a host (in `state`) into a tally. */
function tallyAdd(tally, state) {
  tally.size++;
  tally[slotBucket(state)]++;
}

/** Moves a host from one state to another in a tally; false when its bucket is the same. */
function tallyMove(tally, from, to) {
  const a = slotBucket(from);
  const b = slotBucket(to);
  if (a === b) return false;
  tally[a]--;
  tally[b]++;
  return true;
}

/**
 * A slot's state from its tally: `running` if any host runs; else `failed` if any failed
 * (timed out, unreachable, lost); else `done` if all are succeeded, skipped or cancelled;
 * else `waiting`.
 */
function slotState(tally) {
  if (tally.running > 0) return "running";
  if (tally.bad > 0) return "failed";
  if (tally.finished >= tally.size) return "done";
  return "waiting";
}

/** Parses a location hash into a route. */
function parseRoute(hash) {
  const text = String(hash || "").replace(/^#\/?/, "");
  const parts = text === "" ? [] : text.split("/");
  while (parts.length && parts[parts.length - 1] === "") parts.pop();
  const dec = (p) => {
    try {
      return decodeURIComponent(p);
    } catch (_) {
      return p;
    }
  };
  const p = parts.map(dec);
  if (p.length === 0) return { page: "home" };
  if (p.length === 1 && p[0] === "workers") return { page: "workers" };
  if (p.length === 1 && p[0] === "audit") return { page: "audit" };
  if (p[0] === "jobs" || p[0] === "runs") {
    if (p.length === 2) return { page: "job", kind: p[0], id: p[1] };
    if (p.length === 4 && p[2] === "hosts") return { page: "host", kind: p[0], id: p[1], host: p[3] };
  }
  return { page: "notfound" };
}

function jobHash(kind, id) {
  return `#/${kind}/${encodeURIComponent(id)}`;
}

function hostHash(kind, id, host) {
  return `#/${kind}/${encodeURIComponent(id)}/hosts/${encodeURIComponent(host)}`;
}

function apiBase(kind) {
  return kind === "jobs" ? "/v1/jobs" : "/local/v1/runs";
}

/** The value of cookie `name` in a `document.cookie` string. */
function cookieValue(cookies, name) {
  for (const part of String(cookies || "").split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return "";
}

/* ------------------------------------------------------------------------------------------
 * DOM and network helpers.
 * ---------------------------------------------------------------------------------------- */

/**
 * Creates an element. `attrs`: `class`, `text` (textContent), `hidden`, or any attribute
 * (set with setAttribute). Children: nodes or strings (text nodes).
 */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const key of Object.keys(attrs)) {
      const value = attrs[key];
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "hidden") node.hidden = true;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function byId(id) {
  return document.getElementById(id);
}

function badge(state, id) {
  return el("span", { class: "badge", id, "data-state": state, text: stateWord(state) });
}

function setBadge(node, state) {
  node.setAttribute("data-state", state);
  node.textContent = stateWord(state);
}

function isAbort(e) {
  return e && (e.name === "AbortError" || e.name === "TimeoutError");
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The error a non-2xx answer carries: its `error` message, or its status. */
async function httpError(resp) {
  if (resp.status === 401) return new HttpError(401, SESSION_EXPIRED);
  let message = "";
  try {
    const text = await resp.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body.error === "string") message = body.error;
    } catch (_) {
      message = text.trim().slice(0, 300);
    }
  } catch (_) {
    // No body.
  }
  if (!message) message = `HTTP ${resp.status}${resp.statusText ? " " + resp.statusText : ""}`;
  return new HttpError(resp.status, sanitizeText(message));
}

async function getJson(url, signal) {
  const resp = await fetch(url, {
    signal,
    cache: "no-store",
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!resp.ok) throw await httpError(resp);
  return resp.json();
}

async function postJson(url, body) {
  const resp = await fetch(url, {
    method: "POST",
    cache: "no-store",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      "X-Pogo-Csrf": cookieValue(document.cookie, "pogo_csrf"),
    },
    body: JSON.stringify(body),
  });
  if (!resp.ok) throw await httpError(resp);
  return resp.json();
}

/** Reads an NDJSON body to its end, calling `onRecord` for each object. */
async function readNdjson(resp, onRecord) {
  const emit = (lines) => {
    for (const record of parseNdjsonLines(lines)) {
      try {
        onRecord(record);
      } catch (e) {
        console.error("pogo: a record could not be applied", e);
      }
    }
  };
  const splitter = new LineSplitter();
  if (!resp.body || typeof resp.body.getReader !== "function") {
    emit(splitter.push(await resp.text()));
    emit(splitter.end());
    return;
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    emit(splitter.push(decoder.decode(value, { stream: true })));
  }
  emit(splitter.push(decoder.decode()));
  emit(splitter.end());
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    if (signal) {
      signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true }
      );
    }
  });
}

/* The "reconnecting…" indicator: shown while any stream is disconnected. */
const reconnecting = new Set();

function setReconnecting(token, on) {
  if (on) reconnecting.add(token);
  else reconnecting.delete(token);
  const node = byId("reconnecting");
  if (node) node.hidden = reconnecting.size === 0;
}

/**
 * Follows an NDJSON stream: `url()` gives the address to (re)connect to (with the last seq
 * seen), `onRecord` takes each record, `reconnectOnEnd()` (a promise, or a value) says
 * whether a body that closed cleanly should be opened again. A dropped connection is opened again after 0.5 s, doubling
 * to 5 s. Resolves with `end`, `error` (a 4xx answer, shown) or `aborted`.
 */
async function followNdjson({ url, onRecord, reconnectOnEnd, signal, source }) {
  const token = {};
  let delay = 500;
  try {
    while (!signal.aborted) {
      const started = Date.now();
      let got = false;
      try {
        const resp = await fetch(url(), {
          signal,
          cache: "no-store",
          credentials: "same-origin",
          headers: { Accept: "application/x-ndjson" },
        });
        if (!resp.ok) {
          const err = await httpError(resp);
          if (resp.status >= 400 && resp.status < 500 && resp.status !== 408 && resp.status !== 429) {
            showError(err.message, source);
            return "error";
          }
          throw err;
        }
        setReconnecting(token, false);
        await readNdjson(resp, (record) => {
          got = true;
          onRecord(record);
        });
        if (!(await reconnectOnEnd())) return "end";
      } catch (e) {
        if (signal.aborted || isAbort(e)) return "aborted";
        setReconnecting(token, true);
      }
      if (got || Date.now() - started > 10000) delay = 500;
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 5000);
    }
    return "aborted";
  } finally {
    setReconnecting(token, false);
  }
}

/* The error banner. `source` says who showed it, so that a later success clears its own. */
function showError(message, source) {
  const node = byId("error");
  if (!node) return;
  node.textContent = sanitizeText(message);
  node.setAttribute("data-source", source || "page");
  node.hidden = false;
}

function clearError(source) {
  const node = byId("error");
  if (!node) return;
  if (source && node.getAttribute("data-source") !== source) return;
  node.hidden = true;
  node.textContent = "";
  node.removeAttribute("data-source");
}

/* The confirmation dialog (never window.confirm). */
let pendingConfirm = null;

function confirmDialog(question, yesLabel) {
  cancelConfirm();
  const dialog = byId("confirm");
  const yes = byId("confirm-yes");
  const no = byId("confirm-no");
  byId("confirm-text").textContent = question;
  yes.textContent = yesLabel || "OK";
  return new Promise((resolve) => {
    const finish = (answer) => {
      yes.removeEventListener("click", onYes);
      no.removeEventListener("click", onNo);
      dialog.removeEventListener("cancel", onCancel);
      if (typeof dialog.close === "function" && dialog.open) dialog.close();
      else dialog.removeAttribute("open");
      pendingConfirm = null;
      resolve(answer);
    };
    const onYes = () => finish(true);
    const onNo = () => finish(false);
    const onCancel = (e) => {
      e.preventDefault();
      finish(false);
    };
    yes.addEventListener("click", onYes);
    no.addEventListener("click", onNo);
    dialog.addEventListener("cancel", onCancel);
    pendingConfirm = onNo;
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    no.focus();
  });
}

function cancelConfirm() {
  if (pendingConfirm) pendingConfirm();
}

/* ------------------------------------------------------------------------------------------
 * A job (or local run) followed live: its host states, counts and state, kept up to date from
 * its events stream. Changes are queued and applied to the page in one animation frame.
 * ---------------------------------------------------------------------------------------- */

/** A host's fields from an entry of a job's detail (`host_states`). */
function hostFields(h) {
  return {
    state: String(h.state || "pending"),
    attempts: h.attempts || 0,
    exit_code: h.exit_code,
    worker: h.worker,
    message: h.message || "",
    duration_ms: durationOf(h.duration_ms),
  };
}

class LiveJob {
  constructor(kind, id, signal) {
    this.kind = kind;
    this.id = id;
    this.signal = signal;
    this.url = `${apiBase(kind)}/${encodeURIComponent(id)}`;
    this.hosts = new Map(); // name → {host, state, attempts, exit_code, worker, message, duration_ms}
    this.order = [];
    this.counts = {};
    this.state = "";
    this.reasons = [];
    this.summary = null;
    this.plan = null;
    this.planError = null;
    this.lastSeq = 0;
    this.dirty = new Set();
    this.countsDirty = false;
    this.jobDirty = false;
    this.chips = null; // name → [chip elements], set by the job page
    this.slotsOf = null; // name → [slot tallies (with `el`)], set by the job page
    this.dirtySlots = new Set();
    this.listeners = [];
    this.frame = 0;
    this.streaming = false;
    this.resyncTimer = 0;
  }

  async load() {
    const [detail, plan] = await Promise.all([
      getJson(this.url, this.signal),
      getJson(`${this.url}/plan`, this.signal).catch((e) => {
        if (isAbort(e)) throw e;
        this.planError = e;
        return null;
      }),
    ]);
    this.plan = normalizePlan(plan);
    this.initFromDetail(detail);
  }

  initFromDetail(detail) {
    this.summary = detail;
    this.state = String(detail.state || "");
    this.reasons = Array.isArray(detail.reasons) ? detail.reasons.slice() : [];
    this.lastSeq = Number(detail.last_event) || 0;
    this.counts = {};
    for (const s of COUNT_ORDER) this.counts[s] = 0;
    const states = Array.isArray(detail.host_states) ? detail.host_states : [];
    for (const h of states) {
      const name = String(h.host);
      if (this.hosts.has(name)) continue;
      const entry = { host: name, ...hostFields(h) };
      this.hosts.set(name, entry);
      this.order.push(name);
      this.counts[entry.state] = (this.counts[entry.state] || 0) + 1;
    }
    if (this.plan) {
      for (const name of this.plan.hosts) {
        if (!this.hosts.has(name)) {
          this.hosts.set(name, { host: name, state: "pending", attempts: 0, message: "" });
          this.order.push(name);
          this.counts.pending++;
        }
      }
    }
    if (states.length === 0 && detail.counts) Object.assign(this.counts, detail.counts);
  }

  stateOf(name) {
    const h = this.hosts.get(name);
    return h ? h.state : "pending";
  }

  /** Changes a host, keeping the counts, and queues it for the next frame. */
  setHost(name, patch) {
    let h = this.hosts.get(name);
    if (!h) {
      h = { host: name, state: "pending", attempts: 0, message: "" };
      this.hosts.set(name, h);
      this.order.push(name);
      this.counts.pending = (this.counts.pending || 0) + 1;
      this.countsDirty = true;
    }
    const old = h.state;
    Object.assign(h, patch);
    if (old !== h.state) {
      this.counts[old] = (this.counts[old] || 0) - 1;
      this.counts[h.state] = (this.counts[h.state] || 0) + 1;
      this.countsDirty = true;
      // The slots holding the host: their tallies move now, their state is drawn next frame.
      const tallies = this.slotsOf ? this.slotsOf.get(name) : undefined;
      if (tallies) {
        for (const tally of tallies) if (tallyMove(tally, old, h.state)) this.dirtySlots.add(tally);
      }
    }
    this.dirty.add(name);
    this.schedule();
  }

  setJobState(state) {
    if (state && state !== this.state) {
      this.state = state;
      this.jobDirty = true;
      this.schedule();
    }
  }

  addReasons(list) {
    for (const r of list) {
      const text = String(r);
      if (this.reasons.indexOf(text) < 0) this.reasons.push(text);
    }
    this.jobDirty = true;
    this.schedule();
  }

  applyEvent(rec) {
    const seq = Number(rec.seq);
    if (!(seq > this.lastSeq)) return;
    this.lastSeq = seq;
    switch (rec.event) {
      case "host_started": {
        const h = this.hosts.get(String(rec.host));
        this.setHost(String(rec.host), {
          state: "running",
          attempts: Math.max(h ? h.attempts || 0 : 0, 1),
          exit_code: undefined,
          duration_ms: undefined,
          message: "",
        });
        break;
      }
      case "host_retrying": {
        const h = this.hosts.get(String(rec.host));
        const attempt = Number(rec.attempt) || 0;
        this.setHost(String(rec.host), {
          state: "running",
          attempts: Math.max(h ? h.attempts || 0 : 0, attempt - 1),
          duration_ms: undefined,
          message: `attempt ${attempt} after ${rec.after || "a failure"}` +
            (rec.delay_ms ? ` (in ${(rec.delay_ms / 1000).toFixed(1)}s)` : ""),
        });
        break;
      }
      case "host_finished": {
        const h = this.hosts.get(String(rec.host));
        this.setHost(String(rec.host), {
          state: String(rec.state || "failed"),
          exit_code: rec.exit_code,
          attempts: typeof rec.attempts === "number" ? rec.attempts : h ? h.attempts : 0,
          duration_ms: durationOf(rec.duration_ms),
          message: rec.message || "",
        });
        break;
      }
      case "hosts_skipped":
        for (const name of Array.isArray(rec.hosts) ? rec.hosts : []) {
          this.setHost(String(name), { state: "skipped" });
        }
        break;
      case "run_started":
        if (rec.resumed) {
          this.reasons = [];
          this.jobDirty = true;
          // A resumed or retried run resets hosts the events do not name: read them again.
          this.resyncSoon();
        }
        this.setJobState("running");
        break;
      case "run_stopping":
        this.setJobState("stopping");
        if (rec.reason) this.addReasons([rec.reason]);
        break;
      case "run_blocked":
        if (Array.isArray(rec.reasons)) this.addReasons(rec.reasons);
        break;
      case "run_finished":
        this.setJobState(String(rec.result || ""));
        break;
      default:
        break;
    }
  }

  /** Takes a job's state from an action's answer. */
  applySummary(summary) {
    if (!summary || typeof summary !== "object") return;
    if (summary.state) this.setJobState(String(summary.state));
    if (Array.isArray(summary.reasons)) {
      this.reasons = summary.reasons.slice();
      this.jobDirty = true;
      this.schedule();
    }
  }

  /** Opens the events stream from the last seq seen, unless it is open. */
  ensureStream() {
    if (this.streaming || this.signal.aborted) return;
    this.streaming = true;
    followNdjson({
      url: () => `${this.url}/events?after=${this.lastSeq}&follow=true`,
      onRecord: (rec) => this.applyEvent(rec),
      // A stream that ends while the page still thinks the job runs: the job ended without
      // saying so in an event (a local run whose pogo died). Ask, and stop if it has ended.
      reconnectOnEnd: async () => {
        if (JOB_ENDED.has(this.state)) return false;
        await this.resync(0, true);
        return !JOB_ENDED.has(this.state);
      },
      signal: this.signal,
      source: "events",
    }).finally(() => {
      this.streaming = false;
    });
  }

  resyncSoon() {
    if (this.resyncTimer) return;
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = 0;
      this.resync(0);
    }, 300);
  }

  /** Reads the job's detail again and applies it, if it is not older than what was seen. */
  async resync(tries, quiet) {
    if (this.signal.aborted) return;
    let detail;
    try {
      detail = await getJson(this.url, this.signal);
    } catch (e) {
      // Quiet: the stream's own reconnecting says the server is away.
      if (!isAbort(e) && !quiet) showError(e.message, "page");
      return;
    }
    if (this.signal.aborted) return;
    if ((Number(detail.last_event) || 0) < this.lastSeq) {
      // The stream is ahead of this answer: ask again.
      if (tries < 5) setTimeout(() => this.resync(tries + 1), 300);
      return;
    }
    for (const h of Array.isArray(detail.host_states) ? detail.host_states : []) {
      this.setHost(String(h.host), hostFields(h));
    }
    this.summary = detail;
    this.lastSeq = Math.max(this.lastSeq, Number(detail.last_event) || 0);
    this.reasons = Array.isArray(detail.reasons) ? detail.reasons.slice() : [];
    this.jobDirty = true;
    if (detail.state) this.state = String(detail.state);
    this.schedule();
  }

  schedule() {
    if (this.frame || this.signal.aborted) return;
    this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Applies the queued changes: chips, then the pages' listeners. */
  flush() {
    this.frame = 0;
    if (this.signal.aborted) return;
    const dirty = this.dirty;
    this.dirty = new Set();
    if (this.dirtySlots.size) {
      const slots = this.dirtySlots;
      this.dirtySlots = new Set();
      for (const tally of slots) {
        const state = slotState(tally);
        if (state !== tally.state) {
          tally.state = state;
          tally.el.setAttribute("data-state", state);
        }
      }
    }
    if (this.chips) {
      for (const name of dirty) {
        const chips = this.chips.get(name);
        if (!chips) continue;
        const state = this.stateOf(name);
        const title = `${sanitizeText(name)}: ${stateWord(state)}`;
        for (const chip of chips) {
          if (chip.getAttribute("data-state") !== state) chip.setAttribute("data-state", state);
          chip.title = title;
        }
      }
    }
    const info = { dirty, counts: this.countsDirty, job: this.jobDirty };
    this.countsDirty = false;
    this.jobDirty = false;
    for (const listener of this.listeners) {
      try {
        listener(info);
      } catch (e) {
        console.error("pogo: a page update failed", e);
      }
    }
  }
}

/* ------------------------------------------------------------------------------------------
 * Pages.
 * ---------------------------------------------------------------------------------------- */

let config = null;
let current = null; // the page shown: {controller, signal, timers}

function newContext() {
  const controller = new AbortController();
  const ctx = {
    controller,
    signal: controller.signal,
    timers: new Set(),
    timeout(fn, ms) {
      const t = setTimeout(() => {
        ctx.timers.delete(t);
        if (!ctx.signal.aborted) fn();
      }, ms);
      ctx.timers.add(t);
    },
    dispose() {
      controller.abort();
      for (const t of ctx.timers) clearTimeout(t);
      ctx.timers.clear();
    },
  };
  return ctx;
}

function app() {
  return byId("app");
}

/** Fills the page's root with `nodes`, skipping null ones. */
function show(...nodes) {
  app().replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

function renderHeader() {
  byId("mode").textContent = sanitizeText(config.mode || "");
  byId("dispatcher").textContent = config.dispatcher ? sanitizeText(config.dispatcher) : "";
  const nav = byId("nav");
  nav.replaceChildren(el("a", { href: "#/", id: "nav-home", text: "Jobs & runs" }));
  if (config.jobs) nav.appendChild(el("a", { href: "#/workers", id: "nav-workers", text: "Workers" }));
  if (config.jobs) nav.appendChild(el("a", { href: "#/audit", id: "nav-audit", text: "Audit trail" }));
}

function markNav(page) {
  const home = byId("nav-home");
  const workers = byId("nav-workers");
  const audit = byId("nav-audit");
  if (home) home.classList.toggle("active", page !== "workers" && page !== "audit");
  if (workers) workers.classList.toggle("active", page === "workers");
  if (audit) audit.classList.toggle("active", page === "audit");
}

function route() {
  if (current) current.dispose();
  cancelConfirm();
  clearError();
  const ctx = newContext();
  current = ctx;
  const r = parseRoute(location.hash);
  markNav(r.page);
  let page;
  if (r.page === "home") page = pageHome(ctx);
  else if (r.page === "workers") page = config.jobs ? pageWorkers(ctx) : notAvailable("Workers");
  else if (r.page === "audit") page = config.jobs ? pageAudit(ctx) : notAvailable("Audit trail");
  else if (r.page === "job" || r.page === "host") {
    if ((r.kind === "jobs" && !config.jobs) || (r.kind === "runs" && !config.runs)) {
      page = notAvailable(r.kind === "jobs" ? "Jobs" : "Local runs");
    } else if (r.page === "job") page = pageJob(ctx, r.kind, r.id);
    else page = pageHost(ctx, r.kind, r.id, r.host);
  } else {
    document.title = "pogo";
    show(el("h1", { text: "Not found" }), el("p", {}, el("a", { href: "#/", text: "Back to the jobs" })));
  }
  if (page && typeof page.catch === "function") {
    page.catch((e) => {
      if (isAbort(e) || ctx.signal.aborted) return;
      console.error(e);
      showError(e && e.message ? e.message : String(e), "page");
    });
  }
}

function notAvailable(what) {
  show(el("h1", { text: `${what}: not available here` }), el("p", {}, el("a", { href: "#/", text: "Back" })));
}

/* ---------- Home: jobs and local runs ---------- */

function listSection(kind) {
  const title = kind === "jobs" ? "Jobs" : "Local runs";
  const table = el(
    "table",
    { class: "list", id: `${kind}-table`, hidden: true },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["Id", "State", "Hosts", "Counts", "Submitted (UTC)", "By", "Command"].map((h) => el("th", { text: h }))
      )
    ),
    el("tbody", { id: `${kind}-rows` })
  );
  const empty = el("p", { class: "empty", id: `${kind}-empty`, hidden: true, text: kind === "jobs" ? "No jobs." : "No local runs." });
  const loading = el("p", { class: "loading", id: `${kind}-loading`, text: "Loading…" });
  return el("section", { id: kind, class: "list-section" }, el("h2", { text: title }), loading, empty, table);
}

function listRow(kind, job) {
  const id = String(job.id);
  const state = String(job.state || "");
  const command = sanitizeText(job.command);
  return el(
    "tr",
    { "data-id": id, "data-state": state },
    el("td", { class: "mono" }, el("a", { href: jobHash(kind, id), text: sanitizeText(id) })),
    el("td", {}, badge(state)),
    el("td", { class: "num", text: String(job.hosts ?? "") }),
    el("td", { class: "counts", text: formatCounts(job.counts) }),
    el("td", { class: "time", text: formatTime(job.submitted_at) }),
    el("td", { text: sanitizeText(job.submitted_by) }),
    el("td", { class: "mono command", title: command, text: truncate(command, 60) })
  );
}

async function pageHome(ctx) {
  document.title = "pogo";
  const kinds = [];
  if (config.jobs) kinds.push("jobs");
  if (config.runs) kinds.push("runs");
  const root = [];
  for (const kind of kinds) root.push(listSection(kind));
  if (kinds.length === 0) root.push(el("p", { class: "empty", text: "Nothing to show: this server has neither jobs nor local runs." }));
  show(...root);
  const seen = {};
  const load = async (kind) => {
    const source = `list-${kind}`;
    try {
      const resp = await fetch(apiBase(kind), {
        signal: ctx.signal,
        cache: "no-store",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!resp.ok) throw await httpError(resp);
      const text = await resp.text();
      clearError(source);
      if (seen[kind] === text) return;
      seen[kind] = text;
      const list = JSON.parse(text);
      const jobs = Array.isArray(list) ? list : [];
      byId(`${kind}-loading`).hidden = true;
      byId(`${kind}-empty`).hidden = jobs.length > 0;
      byId(`${kind}-table`).hidden = jobs.length === 0;
      const frag = document.createDocumentFragment();
      for (const job of jobs) frag.appendChild(listRow(kind, job));
      byId(`${kind}-rows`).replaceChildren(frag);
    } catch (e) {
      if (isAbort(e) || ctx.signal.aborted) return;
      showError(e.message, source);
    }
  };
  const poll = async () => {
    await Promise.all(kinds.map(load));
    if (!ctx.signal.aborted) ctx.timeout(poll, POLL_MS);
  };
  await poll();
}

/* ---------- Workers ---------- */

async function pageWorkers(ctx) {
  document.title = "pogo: workers";
  const tbody = el("tbody", { id: "workers-rows" });
  const table = el(
    "table",
    { class: "list", id: "workers-table", hidden: true },
    el("thead", {}, el("tr", {}, ...["Name", "Connected", "Last seen", "Capacity", "Running", "Finished"].map((h) => el("th", { text: h })))),
    tbody
  );
  const empty = el("p", { class: "empty", id: "workers-empty", hidden: true, text: "No workers." });
  const loading = el("p", { class: "loading", text: "Loading…" });
  show(el("h1", { text: "Workers" }), loading, empty, table);
  const poll = async () => {
    try {
      const list = await getJson("/v1/workers", ctx.signal);
      clearError("workers");
      const workers = Array.isArray(list) ? list : [];
      loading.hidden = true;
      empty.hidden = workers.length > 0;
      table.hidden = workers.length === 0;
      const frag = document.createDocumentFragment();
      for (const w of workers) {
        const name = String(w.name);
        frag.appendChild(
          el(
            "tr",
            { "data-name": name, "data-connected": w.connected ? "yes" : "no" },
            el("td", { class: "mono", text: sanitizeText(name) }),
            el("td", {}, el("span", { class: w.connected ? "yes" : "no", text: w.connected ? "yes" : "no" })),
            el("td", { class: "num", text: formatAgo(w.last_seen_ms) }),
            el("td", { class: "num", text: String(w.capacity ?? "") }),
            el("td", { class: "num", text: String(w.running ?? "") }),
            el("td", { class: "num", text: String(w.finished ?? "") })
          )
        );
      }
      tbody.replaceChildren(frag);
    } catch (e) {
      if (isAbort(e) || ctx.signal.aborted) return;
      showError(e.message, "workers");
    }
    if (!ctx.signal.aborted) ctx.timeout(poll, POLL_MS);
  };
  await poll();
}

/* ---------- Audit trail ---------- */

async function pageAudit(ctx) {
  document.title = "pogo: audit trail";
  const tbody = el("tbody", { id: "audit-rows" });
  const table = el(
    "table",
    { class: "list", id: "audit-table", hidden: true },
    el("thead", {}, el("tr", {}, ...["#", "When (UTC)", "Who", "From", "Action", "Job", "What"].map((h) => el("th", { text: h })))),
    tbody
  );
  const empty = el("p", { class: "empty", id: "audit-empty", hidden: true, text: "No operator has acted yet." });
  const loading = el("p", { class: "loading", text: "Loading…" });
  show(el("h1", { text: "Audit trail" }), loading, empty, table);
  let after = 0;
  const poll = async () => {
    try {
      // Only what is new since the last poll; newest first on the page.
      const list = await getJson("/v1/audit?after=" + encodeURIComponent(String(after)), ctx.signal);
      clearError("audit");
      const records = Array.isArray(list) ? list : [];
      loading.hidden = true;
      for (const r of records) {
        after = Math.max(after, Number(r.seq) || 0);
        const job = r.job ? String(r.job) : "";
        const jobCell = job
          ? el("td", { class: "mono" }, el("a", { href: "#/jobs/" + encodeURIComponent(job), text: sanitizeText(job) }))
          : el("td", {});
        tbody.prepend(
          el(
            "tr",
            { "data-seq": String(r.seq), "data-action": sanitizeText(String(r.action)) },
            el("td", { class: "num", text: String(r.seq) }),
            el("td", { class: "mono", text: formatUtc(r.at) }),
            el("td", { class: "mono", text: sanitizeText(String(r.by)) }),
            el("td", { class: "mono", text: sanitizeText(String(r.from)) }),
            el("td", { text: sanitizeText(String(r.action)) }),
            jobCell,
            el("td", { text: sanitizeText(String(r.detail || "")) })
          )
        );
      }
      empty.hidden = tbody.children.length > 0;
      table.hidden = tbody.children.length === 0;
    } catch (e) {
      if (isAbort(e) || ctx.signal.aborted) return;
      showError(e.message, "audit");
    }
    if (!ctx.signal.aborted) ctx.timeout(poll, POLL_MS);
  };
  await poll();
}

/** `2026-12-07 06:14:17`: seconds since the epoch, in UTC. */
function formatUtc(secs) {
  const n = Number(secs);
  if (!Number.isFinite(n)) return "";
  return new Date(n * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

/* ---------- Job / run ---------- */

function kindWord(kind) {
  return kind === "jobs" ? "Job" : "Run";
}

async function loadLive(ctx, kind, id) {
  show(el("p", { class: "loading", text: "Loading…" }));
  const live = new LiveJob(kind, id, ctx.signal);
  try {
    await live.load();
  } catch (e) {
    if (isAbort(e) || ctx.signal.aborted) return null;
    showError(e.message, "page");
    show(
      el("h1", {}, `${kindWord(kind)} `, el("code", { text: sanitizeText(id) })),
      el("p", { class: "empty", text: `Could not load this ${kindWord(kind).toLowerCase()}.` }),
      el("p", {}, el("a", { href: "#/", text: "Back to the list" }))
    );
    return null;
  }
  return live;
}

function formatOption(value, unit) {
  if (value === undefined || value === null) return null;
  if (typeof value === "object") {
    if (value.value === undefined) return null;
    return value.percent !== undefined ? `${value.value} (${value.percent}%)` : String(value.value);
  }
  return `${value}${unit || ""}`;
}

function optionsLine(plan) {
  if (!plan || !plan.options) return null;
  const o = plan.options;
  const parts = [];
  const add = (label, text) => {
    if (text !== null) parts.push(`${label} ${text}`);
  };
  add("timeout", formatOption(o.timeout, "s"));
  add("retries", formatOption(o.retries));
  add("max failures", formatOption(o.max_failures));
  add("run timeout", formatOption(o.run_timeout, "s"));
  return parts.length ? sanitizeText(parts.join(" · ")) : null;
}

/** The schedule: one row per thread, its slots left to right, every host a chip. */
function buildSchedule(live, kind) {
  const chips = new Map();
  const slotsOf = new Map();
  const frag = document.createDocumentFragment();
  const addChips = (container, names, tally) => {
    for (const name of names) {
      const state = live.stateOf(name);
      tallyAdd(tally, state);
      const tallies = slotsOf.get(name);
      if (tallies) tallies.push(tally);
      else slotsOf.set(name, [tally]);
      const chip = document.createElement("span");
      chip.className = "host";
      chip.setAttribute("data-host", name);
      chip.setAttribute("data-state", state);
      chip.title = `${sanitizeText(name)}: ${stateWord(state)}`;
      container.appendChild(chip);
      const list = chips.get(name);
      if (list) list.push(chip);
      else chips.set(name, [chip]);
    }
  };
  const slotBox = (id, label, title, names) => {
    const box = el(
      "div",
      { class: "slot", "data-slot": id, title },
      el("div", { class: "slot-id", text: label })
    );
    const holder = el("div", { class: "chips" });
    const tally = newTally();
    tally.el = box;
    addChips(holder, names, tally);
    tally.state = slotState(tally);
    box.setAttribute("data-state", tally.state);
    box.appendChild(holder);
    return box;
  };
  const row = (name, title, cls) =>
    el("div", { class: cls || "thread", "data-thread": name }, el("div", { class: "thread-name", title, text: name }));
  const plan = live.plan;
  if (plan) {
    for (const thread of plan.threads) {
      const name = sanitizeText(thread.name);
      const r = row(name, thread.filter ? `${name} (${sanitizeText(thread.filter)})` : name);
      const slots = el("div", { class: "slots" });
      for (const slot of thread.slots) {
        const id = sanitizeText(slot.id);
        slots.appendChild(slotBox(slot.id, id, `${id}: step ${sanitizeText(slot.step)}, ${slot.hosts.length} hosts`, slot.hosts));
      }
      r.appendChild(slots);
      frag.appendChild(r);
    }
    if (plan.unordered.length) {
      const r = row("unordered", "hosts in no thread: they run in no particular order", "thread unordered");
      r.appendChild(el("div", { class: "slots" }, slotBox("unordered", "unordered", `${plan.unordered.length} hosts`, plan.unordered)));
      frag.appendChild(r);
    }
  } else {
    // Without a plan, every host in one row, in plan order.
    const r = row("hosts", "the plan could not be read", "thread");
    r.appendChild(el("div", { class: "slots" }, slotBox("hosts", "hosts", `${live.order.length} hosts`, live.order)));
    frag.appendChild(r);
  }
  const schedule = el("div", { id: "schedule", class: "schedule" });
  schedule.appendChild(frag);
  schedule.addEventListener("click", (e) => {
    const chip = e.target && e.target.closest ? e.target.closest(".host") : null;
    if (chip) location.hash = hostHash(kind, live.id, chip.getAttribute("data-host"));
  });
  live.chips = chips;
  live.slotsOf = slotsOf;
  live.dirtySlots.clear();
  return schedule;
}

function constraintsList(plan) {
  if (!plan || plan.constraints.length === 0) return null;
  const list = el("ul", { id: "constraints", class: "constraints" });
  for (const g of plan.constraints) {
    const mp = g.max_parallel || {};
    let limit = String(mp.value ?? "?");
    if (mp.percent !== undefined) limit += ` (${mp.percent}%${mp.base !== undefined ? ` of ${mp.base}` : ""})`;
    list.appendChild(
      el(
        "li",
        { "data-group": g.id },
        el("code", { text: sanitizeText(g.id) }),
        ` at most ${sanitizeText(limit)} down, ${g.hosts.length} hosts`
      )
    );
  }
  return list;
}

function reasonsInto(node, reasons) {
  node.replaceChildren(...reasons.map((r) => el("li", { text: sanitizeText(r) })));
  node.hidden = reasons.length === 0;
}

function progressBar() {
  const bar = el("div", { id: "progress", class: "progress" });
  const segs = new Map();
  for (const state of COUNT_ORDER) {
    const seg = el("span", { class: "seg", "data-state": state, hidden: true });
    segs.set(state, seg);
    bar.appendChild(seg);
  }
  const update = (counts) => {
    for (const [state, seg] of segs) {
      const n = counts[state] || 0;
      seg.hidden = n <= 0;
      seg.style.flexGrow = String(Math.max(n, 0));
      seg.title = `${n} ${stateWord(state)}`;
    }
  };
  return { bar, update };
}

/**
 * A host's row in the host table. With `picks` (the names chosen for "Retry selected"), the
 * row starts with a cell holding a checkbox while the host can be retried.
 */
function hostRow(kind, id, h, picks) {
  const stateCell = badge(h.state);
  const attempts = el("td", { class: "num", text: String(h.attempts || 0) });
  const duration = el("td", { class: "num duration", text: durationText(h.state, h.duration_ms, "") });
  const worker = el("td", { class: "mono", text: sanitizeText(h.worker || "") });
  const message = el("td", { class: "message", text: sanitizeText(h.message || "") });
  const pickCell = picks ? el("td", { class: "pick-cell" }) : null;
  const tr = el(
    "tr",
    { "data-host": h.host, "data-state": h.state },
    pickCell,
    el("td", { class: "mono" }, el("a", { href: hostHash(kind, id, h.host), text: sanitizeText(h.host) })),
    el("td", {}, stateCell),
    attempts,
    duration,
    worker,
    message
  );
  const row = { tr, stateCell, attempts, duration, worker, message, pickCell, box: null };
  setPickBox(row, h, picks);
  return row;
}

/** Gives a row its checkbox while its host can be retried, else none. True if that changed. */
function setPickBox(row, h, picks) {
  if (!row.pickCell) return false;
  const want = RETRYABLE.has(h.state);
  if (want === (row.box !== null)) return false;
  if (want) {
    const box = el("input", {
      type: "checkbox",
      class: "pick",
      "data-host": h.host,
      "aria-label": `Choose ${sanitizeText(h.host)} to retry`,
    });
    box.checked = picks.has(h.host);
    row.pickCell.appendChild(box);
    row.box = box;
  } else {
    row.box.remove();
    row.box = null;
  }
  return true;
}

/** Updates a host's row; true if its checkbox came or went. */
function updateHostRow(row, h, picks) {
  row.tr.setAttribute("data-state", h.state);
  setBadge(row.stateCell, h.state);
  row.attempts.textContent = String(h.attempts || 0);
  row.duration.textContent = durationText(h.state, h.duration_ms, "");
  row.worker.textContent = sanitizeText(h.worker || "");
  row.message.textContent = sanitizeText(h.message || "");
  return setPickBox(row, h, picks);
}

/**
 * POSTs a job action (halt, resume, retry) and applies its answer: the job's state at once,
 * then its hosts read again and its events followed again. Shows a failure in the banner.
 * Resolves true when the server took it.
 */
async function postAction(ctx, live, path, body) {
  try {
    const summary = await postJson(`${live.url}/${path}`, body);
    if (ctx.signal.aborted) return false;
    clearError("action");
    live.applySummary(summary);
    live.resync(0);
    live.ensureStream();
    return true;
  } catch (e) {
    if (!ctx.signal.aborted) showError(e.message, "action");
    return false;
  }
}

async function pageJob(ctx, kind, id) {
  document.title = `pogo: ${kindWord(kind).toLowerCase()} ${id}`;
  const live = await loadLive(ctx, kind, id);
  if (!live) return;
  const s = live.summary;

  const stateBadge = badge(live.state, "job-state");
  const reasons = el("ul", { id: "reasons", class: "reasons" });
  reasonsInto(reasons, live.reasons);
  const progress = progressBar();
  const counts = el("div", { id: "counts", class: "counts" });
  const command = sanitizeText(s.command ?? (live.plan && live.plan.command) ?? "");

  const head = el(
    "div",
    { class: "job-head" },
    el("h1", {}, `${kindWord(kind)} `, el("code", { id: "job-id", text: sanitizeText(id) }), " ", stateBadge),
    el("div", { class: "meta" },
      el("div", {}, el("span", { class: "label", text: "Command" }), el("code", { id: "job-command", class: "command", text: command })),
      el("div", {},
        el("span", { class: "label", text: "Submitted" }),
        el("span", { id: "job-submitted", text: `${formatTime(s.submitted_at)} UTC` }),
        el("span", { class: "label", text: " by " }),
        el("span", { id: "job-by", text: sanitizeText(s.submitted_by || "") }),
        el("span", { class: "label", text: " · hosts " }),
        el("span", { id: "job-hosts", text: String(s.hosts ?? live.order.length) })
      ),
      optionsLine(live.plan) ? el("div", { id: "job-options", class: "options", text: optionsLine(live.plan) }) : null
    ),
    reasons,
    progress.bar,
    counts
  );

  // Actions (jobs only).
  let actions = null;
  const buttons = {};
  let busy = false;
  // Retry of chosen hosts: the names ticked in the host table (kept across its rebuilds).
  const canPick = kind === "jobs" && !!config.actions;
  const picked = new Set();
  const picks = canPick ? picked : null;
  let retrySelected = null;
  const updateButtons = () => {
    for (const [action, button] of Object.entries(buttons)) button.disabled = busy || !actionEnabled(action, live.state);
    if (retrySelected) {
      const text = `Retry selected (${picked.size})`;
      if (retrySelected.textContent !== text) retrySelected.textContent = text;
      retrySelected.disabled = busy || picked.size === 0 || !canRetryHosts(live.state);
    }
  };
  if (kind === "jobs" && config.actions) {
    const specs = [
      ["halt", "Halt", `Halt job ${id}? No more hosts start; the ones that run finish.`, { kill: false }, "halt"],
      ["halt-kill", "Halt and kill", `Halt job ${id} and kill the commands that run now?`, { kill: true }, "halt"],
      ["resume", "Resume", `Resume job ${id}? Hosts not run yet run; failed ones stay failed.`, {}, "resume"],
      ["retry", "Retry failed hosts", `Retry every failed host of job ${id}?`, { hosts: [] }, "retry"],
    ];
    actions = el("div", { class: "actions", id: "actions" });
    for (const [action, label, question, body, path] of specs) {
      const button = el("button", { type: "button", id: action, class: action.startsWith("halt") ? "danger" : "", text: label });
      button.addEventListener("click", async () => {
        if (busy) return;
        if (!(await confirmDialog(sanitizeText(question), label))) return;
        if (ctx.signal.aborted || busy) return;
        busy = true;
        updateButtons();
        try {
          await postAction(ctx, live, path, body);
        } finally {
          busy = false;
          updateButtons();
        }
      });
      buttons[action] = button;
      actions.appendChild(button);
    }
  }

  const t0 = performance.now();
  const schedule = buildSchedule(live, kind);

  // The host table: every host for small jobs; for big ones, the hosts that need a look.
  const big = live.order.length > BIG_JOB;
  const tbody = el("tbody", { id: "hosts-rows" });
  const note = el("p", { id: "hosts-note", class: "note", hidden: !big });
  const rows = new Map();
  const pickAll = canPick
    ? el("input", { type: "checkbox", id: "pick-all", "aria-label": "Choose every listed host that can be retried" })
    : null;
  /** The header checkbox: ticked when every listed checkbox is, half when some are. */
  const updatePickAll = () => {
    if (!pickAll) return;
    const boxes = tbody.querySelectorAll("input.pick");
    let on = 0;
    for (const box of boxes) if (box.checked) on++;
    pickAll.disabled = boxes.length === 0;
    pickAll.checked = boxes.length > 0 && on === boxes.length;
    pickAll.indeterminate = on > 0 && on < boxes.length;
  };
  if (!big) {
    const frag = document.createDocumentFragment();
    for (const name of live.order) {
      const row = hostRow(kind, id, live.hosts.get(name), picks);
      rows.set(name, row);
      frag.appendChild(row.tr);
    }
    tbody.appendChild(frag);
  }
  let lastBigBuild = 0;
  let bigTimer = 0;
  const buildBig = () => {
    lastBigBuild = performance.now();
    const shown = [];
    let total = 0;
    for (const name of live.order) {
      const h = live.hosts.get(name);
      if (h.state === "pending" || h.state === "succeeded") continue;
      total++;
      if (shown.length < BIG_JOB_ROWS) shown.push(h);
    }
    const frag = document.createDocumentFragment();
    for (const h of shown) frag.appendChild(hostRow(kind, id, h, picks).tr);
    tbody.replaceChildren(frag);
    updatePickAll();
    note.textContent =
      `${live.order.length} hosts: only hosts not pending or succeeded are listed` +
      (total > shown.length ? ` (the first ${shown.length} of ${total})` : total === 0 ? " (none yet)" : "") +
      "; the schedule above shows them all.";
  };
  const scheduleBig = () => {
    if (bigTimer) return;
    const wait = Math.max(0, 1000 - (performance.now() - lastBigBuild));
    bigTimer = setTimeout(() => {
      bigTimer = 0;
      if (!ctx.signal.aborted) buildBig();
    }, wait);
    ctx.timers.add(bigTimer);
  };
  if (big) buildBig();
  const table = el(
    "table",
    { class: "list hosts", id: "hosts-table" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        pickAll ? el("th", { class: "pick-cell" }, pickAll) : null,
        ...["Host", "State", "Attempts", "Duration", "Worker", "Message"].map((h) => el("th", { text: h }))
      )
    ),
    tbody
  );

  let hostActions = null;
  if (canPick) {
    retrySelected = el("button", { type: "button", id: "retry-selected", disabled: true, text: "Retry selected (0)" });
    hostActions = el("div", { class: "actions host-actions", id: "host-actions" }, retrySelected);
    tbody.addEventListener("change", (e) => {
      const box = e.target;
      if (!box || !box.classList || !box.classList.contains("pick")) return;
      const name = box.getAttribute("data-host");
      if (box.checked && RETRYABLE.has(live.stateOf(name))) picked.add(name);
      else {
        box.checked = false;
        picked.delete(name);
      }
      updatePickAll();
      updateButtons();
    });
    pickAll.addEventListener("change", () => {
      const on = pickAll.checked;
      for (const box of tbody.querySelectorAll("input.pick")) {
        const name = box.getAttribute("data-host");
        if (on && RETRYABLE.has(live.stateOf(name))) {
          box.checked = true;
          picked.add(name);
        } else {
          box.checked = false;
          picked.delete(name);
        }
      }
      updatePickAll();
      updateButtons();
    });
    retrySelected.addEventListener("click", async () => {
      if (busy) return;
      // In plan order; a host that can no longer be retried is left out.
      const names = live.order.filter((name) => picked.has(name) && RETRYABLE.has(live.stateOf(name)));
      if (names.length === 0) return;
      const yes = names.length === 1 ? "Retry" : `Retry ${names.length} hosts`;
      if (!(await confirmDialog(sanitizeText(retryQuestion(id, names)), yes))) return;
      if (ctx.signal.aborted || busy) return;
      busy = true;
      updateButtons();
      try {
        if (await postAction(ctx, live, "retry", { hosts: names })) {
          for (const name of names) picked.delete(name);
          for (const box of tbody.querySelectorAll("input.pick")) box.checked = picked.has(box.getAttribute("data-host"));
          updatePickAll();
        }
      } finally {
        busy = false;
        updateButtons();
      }
    });
    updatePickAll();
  }

  show(
    el("p", { class: "crumbs" }, el("a", { href: "#/", text: "Jobs & runs" }), " / ", sanitizeText(id)),
    head,
    actions,
    el("h2", { text: "Schedule" }),
    live.planError ? el("p", { class: "note", text: `The plan could not be read: ${live.planError.message}` }) : null,
    schedule,
    constraintsList(live.plan),
    el("h2", { text: "Hosts" }),
    hostActions,
    note,
    table
  );
  const t1 = performance.now();
  schedule.setAttribute("data-render-ms", String(Math.round(t1 - t0)));

  const updateCounts = () => {
    counts.textContent = formatCounts(live.counts);
    progress.update(live.counts);
  };
  const updateJob = () => {
    setBadge(stateBadge, live.state);
    reasonsInto(reasons, live.reasons);
    updateButtons();
  };
  updateCounts();
  updateJob();

  live.listeners.push((info) => {
    if (info.counts) updateCounts();
    if (info.job) updateJob();
    if (info.dirty.size) {
      // A chosen host that can no longer be retried (it runs again) is no longer chosen.
      let pickedChanged = false;
      if (picked.size) {
        for (const name of info.dirty) {
          if (picked.has(name) && !RETRYABLE.has(live.stateOf(name))) {
            picked.delete(name);
            pickedChanged = true;
          }
        }
      }
      if (big) scheduleBig();
      else {
        let boxesChanged = false;
        for (const name of info.dirty) {
          const h = live.hosts.get(name);
          let row = rows.get(name);
          if (!row) {
            row = hostRow(kind, id, h, picks);
            rows.set(name, row);
            tbody.appendChild(row.tr);
            if (row.box) boxesChanged = true;
          } else if (updateHostRow(row, h, picks)) boxesChanged = true;
        }
        if (boxesChanged) updatePickAll();
      }
      if (pickedChanged) updateButtons();
    }
  });
  live.ensureStream();
}

/* ---------- Host ---------- */

/** A host's output: pages of lines, then followed live; at most MAX_OUTPUT_LINES shown. */
class OutputView {
  constructor(live, host, ctx, nodes) {
    this.live = live;
    this.host = host;
    this.ctx = ctx;
    this.pre = nodes.pre;
    this.more = nodes.more;
    this.dropped = nodes.dropped;
    this.status = nodes.status;
    this.lastSeq = 0;
    this.attempt = 1;
    this.queue = [];
    this.lines = 0; // lines in the DOM
    this.total = 0; // lines received
    this.paging = true;
    this.following = false;
    this.frame = 0;
    this.more.addEventListener("click", () => this.loadPage());
  }

  url(extra) {
    return `${this.live.url}/output?host=${encodeURIComponent(this.host)}&after=${this.lastSeq}${extra}`;
  }

  /** Whether the host may still print: it is pending or running in a job that goes on. */
  hostActive() {
    return UNFINISHED.has(this.live.stateOf(this.host)) && !JOB_ENDED.has(this.live.state);
  }

  async loadPage() {
    this.more.disabled = true;
    this.status.textContent = "loading…";
    let n = 0;
    try {
      const resp = await fetch(this.url(`&limit=${OUTPUT_PAGE}`), {
        signal: this.ctx.signal,
        cache: "no-store",
        credentials: "same-origin",
        headers: { Accept: "application/x-ndjson" },
      });
      if (!resp.ok) throw await httpError(resp);
      await readNdjson(resp, (rec) => {
        n++;
        this.add(rec);
      });
    } catch (e) {
      if (isAbort(e) || this.ctx.signal.aborted) return;
      showError(e.message, "output");
      this.status.textContent = "";
      this.more.hidden = false;
      this.more.disabled = false;
      return;
    }
    if (n >= OUTPUT_PAGE) {
      this.more.hidden = false;
      this.more.disabled = false;
      this.status.textContent = "";
    } else {
      this.more.hidden = true;
      this.paging = false;
      this.setDoneStatus();
      this.maybeFollow();
    }
  }

  setDoneStatus() {
    if (this.following) this.status.textContent = "following…";
    else if (this.hostActive()) this.status.textContent = "";
    else this.status.textContent = this.total === 0 ? "no output." : "end of output.";
  }

  /** Follows new lines while the host is pending or running. */
  maybeFollow() {
    if (this.paging || this.following || this.ctx.signal.aborted || !this.hostActive()) return;
    this.following = true;
    this.setDoneStatus();
    followNdjson({
      url: () => this.url("&follow=true"),
      onRecord: (rec) => this.add(rec),
      reconnectOnEnd: () => this.hostActive(),
      signal: this.ctx.signal,
      source: "output",
    }).finally(() => {
      this.following = false;
      if (!this.ctx.signal.aborted) this.setDoneStatus();
    });
  }

  add(rec) {
    const seq = Number(rec.seq);
    if (!(seq > this.lastSeq)) return;
    if (rec.host !== undefined && String(rec.host) !== this.host) return;
    this.lastSeq = seq;
    const attempt = Number(rec.attempt) || 1;
    if (attempt > this.attempt) {
      this.queue.push({ marker: attempt });
      this.attempt = attempt;
    }
    this.queue.push(rec);
    this.total++;
    if (this.queue.length > MAX_OUTPUT_LINES * 2) {
      // Hidden tabs get no frames: keep the queue bounded.
      this.queue.splice(0, this.queue.length - MAX_OUTPUT_LINES);
      this.markDropped();
      this.lines = 0;
      this.pre.replaceChildren();
    }
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  markDropped() {
    this.dropped.hidden = false;
  }

  flush() {
    this.frame = 0;
    if (this.ctx.signal.aborted) return;
    let queue = this.queue;
    this.queue = [];
    if (queue.length > MAX_OUTPUT_LINES) {
      queue = queue.slice(queue.length - MAX_OUTPUT_LINES);
      this.markDropped();
    }
    const frag = document.createDocumentFragment();
    for (const item of queue) {
      const line = document.createElement("span");
      if (item.marker !== undefined) {
        line.className = "attempt";
        line.textContent = `--- attempt ${item.marker} ---\n`;
      } else {
        line.className = item.stream === "stderr" ? "line stderr" : "line stdout";
        line.textContent = sanitizeText(item.text) + "\n";
      }
      frag.appendChild(line);
    }
    const excess = this.lines + queue.length - MAX_OUTPUT_LINES;
    if (excess > 0) {
      this.markDropped();
      if (excess >= this.lines) {
        this.pre.replaceChildren();
        this.lines = 0;
      } else {
        const range = document.createRange();
        range.setStartBefore(this.pre.firstChild);
        range.setEndAfter(this.pre.childNodes[excess - 1]);
        range.deleteContents();
        this.lines -= excess;
      }
    }
    const atBottom = this.pre.scrollHeight - this.pre.scrollTop - this.pre.clientHeight < 30;
    this.pre.appendChild(frag);
    this.lines += queue.length;
    if (atBottom && !this.paging) this.pre.scrollTop = this.pre.scrollHeight;
  }
}

async function pageHost(ctx, kind, id, host) {
  document.title = `pogo: ${host}`;
  const live = await loadLive(ctx, kind, id);
  if (!live) return;
  const crumbs = el(
    "p",
    { class: "crumbs" },
    el("a", { href: "#/", text: "Jobs & runs" }),
    " / ",
    el("a", { href: jobHash(kind, id), text: sanitizeText(id) }),
    " ",
    badge(live.state, "job-state"),
    " / ",
    sanitizeText(host)
  );
  if (!live.hosts.has(host)) {
    show(crumbs, el("h1", {}, "Host ", el("code", { id: "host-name", text: sanitizeText(host) })), el("p", { class: "empty", text: `No host ${sanitizeText(host)} in this ${kindWord(kind).toLowerCase()}.` }));
    return;
  }
  const stateBadge = badge(live.stateOf(host), "host-state");
  const attempts = el("dd", { id: "host-attempts" });
  const exit = el("dd", { id: "host-exit" });
  const duration = el("dd", { id: "host-duration" });
  const worker = el("dd", { id: "host-worker", class: "mono" });
  const message = el("dd", { id: "host-message" });
  const why = el("ul", { id: "why", class: "why" });
  const whyNote = el("p", { id: "why-note", class: "note", hidden: true });
  const whyBox = el("div", { id: "why-box", class: "why-box", hidden: true }, el("h2", { text: "Why it waits" }), why, whyNote);
  const pre = el("pre", { id: "output", class: "output" });
  const more = el("button", { type: "button", id: "more", hidden: true, text: "Load more" });
  const dropped = el("p", { id: "dropped", class: "note", hidden: true, text: DROPPED_NOTE });
  const status = el("p", { id: "output-status", class: "note" });

  // Retry of this host alone (jobs only): while it failed and its job has ended.
  let retryHost = null;
  let retryBusy = false;
  const updateRetry = () => {
    if (!retryHost) return;
    retryHost.hidden = !(RETRYABLE.has(live.stateOf(host)) && canRetryHosts(live.state));
    retryHost.disabled = retryBusy;
  };
  if (kind === "jobs" && config.actions) {
    retryHost = el("button", { type: "button", id: "retry-host", hidden: true, text: "Retry this host" });
    retryHost.addEventListener("click", async () => {
      if (retryBusy) return;
      if (!(await confirmDialog(sanitizeText(retryQuestion(id, [host])), "Retry"))) return;
      if (ctx.signal.aborted || retryBusy) return;
      retryBusy = true;
      updateRetry();
      try {
        await postAction(ctx, live, "retry", { hosts: [host] });
      } finally {
        retryBusy = false;
        updateRetry();
      }
    });
  }

  show(
    crumbs,
    el("h1", {}, "Host ", el("code", { id: "host-name", text: sanitizeText(host) }), " ", stateBadge),
    el("dl", { class: "host-info" },
      el("dt", { text: "Attempts" }), attempts,
      el("dt", { text: "Exit code" }), exit,
      el("dt", { text: "Duration" }), duration,
      el("dt", { text: "Worker" }), worker,
      el("dt", { text: "Message" }), message
    ),
    retryHost ? el("div", { class: "actions", id: "host-actions" }, retryHost) : null,
    whyBox,
    el("h2", { text: "Output" }),
    dropped,
    pre,
    more,
    status
  );

  const jobBadge = byId("job-state");
  const updateHost = () => {
    const h = live.hosts.get(host);
    setBadge(stateBadge, h.state);
    attempts.textContent = String(h.attempts || 0);
    exit.textContent = h.exit_code === undefined || h.exit_code === null ? "" : String(h.exit_code);
    duration.textContent = durationText(h.state, h.duration_ms, "\u2014");
    worker.textContent = sanitizeText(h.worker || "");
    message.textContent = sanitizeText(h.message || "");
  };
  const updateWhy = () => {
    const pending = live.stateOf(host) === "pending";
    whyBox.hidden = !pending;
    if (!pending) return;
    const lines = live.plan ? whyWaits(host, live.plan, (name) => live.stateOf(name)) : ["the plan could not be read"];
    why.replaceChildren(...lines.map((line) => el("li", { text: sanitizeText(line) })));
    if (live.state !== "running") {
      whyNote.textContent = `The ${kindWord(kind).toLowerCase()} is ${stateWord(live.state)}: no host starts until it runs again.`;
      whyNote.hidden = false;
    } else whyNote.hidden = true;
  };
  updateHost();
  updateWhy();
  updateRetry();

  const output = new OutputView(live, host, ctx, { pre, more, dropped, status });
  live.listeners.push((info) => {
    if (info.job) setBadge(jobBadge, live.state);
    if (info.dirty.has(host)) {
      updateHost();
      output.maybeFollow();
      if (!output.following && !output.paging) output.setDoneStatus();
    }
    if (info.dirty.size || info.job) updateWhy();
    if (info.job || info.dirty.has(host)) updateRetry();
  });
  live.ensureStream();
  await output.loadPage();
}

/* ---------- Start ---------- */

async function main() {
  const errorBanner = byId("error");
  if (errorBanner) errorBanner.addEventListener("click", () => clearError());
  try {
    config = await getJson("config.json");
  } catch (e) {
    showError(e.message, "config");
    show(el("p", { class: "empty", text: "Could not load the dashboard's configuration." }));
    return;
  }
  renderHeader();
  window.addEventListener("hashchange", route);
  route();
}

if (typeof document !== "undefined" && typeof document.getElementById === "function" && typeof window !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
}
