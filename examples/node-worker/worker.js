// A dependency-free jobqueue worker for Node.js 20+ (docs/workers.md's lease protocol): see README.md.
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

const env = process.env;
const BASE = (env.JOBQUEUE_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const QUEUES = (env.JOBQUEUE_QUEUES || 'default').split(',').map((q) => q.trim()).filter(Boolean);
const SLOTS = ((n) => (Number.isInteger(n) && n >= 1 && n <= 1000) ? n : (console.error('WORKER_CONCURRENCY: a whole number from 1 to 1000'), process.exit(2)))(Number(env.WORKER_CONCURRENCY || 10));
const NAME = env.WORKER_NAME || `node-${hostname()}-${process.pid}-${Math.random().toString(16).slice(2, 8)}`.replace(/[^\w.:@-]/g, '-').slice(0, 100);
const GRACE_MS = Number(env.WORKER_GRACE_SECONDS ?? 10) * 1000;
const WAIT_SECONDS = Number(env.WORKER_WAIT_SECONDS ?? 10), DRAIN_PAUSE_MS = 5000; // the long-poll; no leasing this long after a `drain`
const HEADERS = { 'content-type': 'application/json',
  ...(env.JOBQUEUE_KEY ? { authorization: `Bearer ${env.JOBQUEUE_KEY}` } : {}) };

// The tasks: (payload, job) => result (any JSON), or throw. `job.signal` aborts when the job's
// cancel is requested, its lease is lost, its timeout passes or the worker releases it.
export const handlers = {
  'node.add': async ({ a, b }) => ({ sum: a + b }),
  'node.fail': async ({ message }) => { throw new Error(message || 'node.fail failed, as asked'); },
  'node.sleep': ({ seconds }, job) => new Promise((resolve) => {
    const timer = setTimeout(resolve, seconds * 1000, { slept: seconds });
    job.signal.addEventListener('abort', () => clearTimeout(timer));
  }),
};

const held = new Map(); // token -> {token, job, beatMs, due, ac, lost, cancel, released}
const stopper = new AbortController(); // aborted on SIGTERM/SIGINT
let drainUntil = 0, wake = () => {}; // wake: ends the lease loop's wait for a free slot
const log = (...args) => console.error(new Date().toISOString(), `[${NAME}]`, ...args);
const sleep = (ms, interruptible = false) => // an interruptible sleep ends when the worker stops
  delay(ms, null, interruptible ? { signal: stopper.signal } : {}).catch(() => {});

// POST a JSON body: the answer's JSON, or an Error with .status (undefined: a network error).
async function post(path, body, timeoutMs = 15000) {
  const res = await fetch(BASE + path, { method: 'POST', headers: HEADERS, body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.ok) return JSON.parse(text);
  const data = (() => { try { return JSON.parse(text); } catch { return {}; } })();
  throw Object.assign(new Error(`POST ${path}: ${res.status} ${text.slice(0, 300)}`), { status: res.status,
    detail: data.detail, retryAfterMs: Number(res.headers.get('retry-after') || 0) * 1000 });
}
const transient = (err) => !err.status || err.status === 429 || err.status >= 500;

// Report a job's outcome (`complete` or `fail`), retried with backoff on 503 and network errors
// until it lands, its lease is lost (409 lease_lost: drop it) or the worker released the job.
async function report(h, kind, body) {
  for (let delay = 500; !h.lost && !h.released; delay = Math.min(delay * 2, 30000)) {
    try { return await post(`/leases/${encodeURIComponent(h.token)}/${kind}`, body); } catch (err) {
      if (err.status === 409 || err.status === 404) return log(`job ${h.job.id}: lease lost, dropped`);
      if (err.status === 422 && kind === 'complete') // e.g. a result over JOBQUEUE_MAX_RESULT_BYTES
        return report(h, 'fail', { error_type: 'ResultRefused', message: err.message, retryable: false });
      if (!transient(err)) return log(`job ${h.job.id}: ${kind} refused: ${err.message}`);
      log(`job ${h.job.id}: ${kind} failed (${err.message}); again in ${err.retryAfterMs || delay} ms`);
      await sleep(err.retryAfterMs || delay);
    }
  }
}

async function run({ token, job, heartbeat_seconds: beat }) {
  const h = { token, job, beatMs: beat * 1000, due: Date.now() + beat * 1000, ac: new AbortController() };
  held.set(token, h);
  const ms = Math.min((job.timeout_seconds || 86400) * 1000, 2 ** 31 - 1);
  const timer = setTimeout(() => h.ac.abort(new Error(`timed out after ${ms / 1000} s`)), ms);
  const aborted = new Promise((_, reject) => { h.ac.signal.onabort = () => reject(h.ac.signal.reason); });
  aborted.catch(() => {}); // an abort after the handler returned is no error
  try {
    const handler = handlers[job.task] ?? (() => { throw new Error(`no handler for task ${job.task}`); });
    const result = (await Promise.race([handler(job.payload, { ...job, signal: h.ac.signal }), aborted])) ?? null;
    JSON.stringify(result); // a BigInt or a cycle throws here: the attempt fails (never a report retried for ever)
    await report(h, 'complete', { result });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    await report(h, 'fail', { // texts cut as the service stores them (it refuses over 65,536 chars)
      error_type: String(e.name || 'Error').slice(0, 200), message: String(e.message).slice(0, 4000),
      traceback: String(e.stack).slice(-4000), retryable: h.cancel || e.retryable !== false });
  } finally { clearTimeout(timer); held.delete(token); wake(); }
}

// One batched heartbeat for all held leases, whenever the earliest of them is due.
async function heartbeats() {
  for (;;) {
    await sleep(200); const now = Date.now();
    const live = [...held.values()].filter((h) => !h.lost && !h.released);
    if (!live.some((h) => h.due <= now)) continue;
    live.forEach((h) => { h.due = now + 1000; }); // when this beat fails (or is `busy`): again in 1 s
    try {
      const answer = await post('/leases/heartbeat', { tokens: live.map((h) => h.token) });
      if (answer.drain) drainUntil = Date.now() + DRAIN_PAUSE_MS;
      for (const item of answer.leases) {
        const h = held.get(item.token); if (!h) continue;
        if (item.status === 'lost') { // another worker may run it now: stop, and drop the outcome
          h.lost = true; h.ac.abort(new Error('lease lost')); log(`job ${h.job.id}: lease lost`); continue; }
        if (item.status === 'extended') h.due = now + h.beatMs;
        if (item.cancel_requested) { h.cancel = true; h.ac.abort(new Error('cancel requested')); }
      }
    } catch (err) { log(`heartbeat failed: ${err.message}`); }
  }
}

// Give jobs back without using up their attempt (409: the lease is gone already, harmless).
async function release(tokens) {
  for (let tries = 0; tokens.length && tries < 3; tries++) {
    try { return await post('/leases/release', { tokens }); } catch (err) {
      if (!transient(err)) return log(`release: ${err.message}`);
      await sleep(500 * 2 ** tries);
    }
  }
}

async function leaseLoop() {
  const body = { queues: QUEUES, tasks: Object.keys(handlers), wait_seconds: WAIT_SECONDS,
    worker: { name: NAME, host: hostname().slice(0, 100), slots: SLOTS } };
  for (let backoff = 1000; !stopper.signal.aborted;) {
    if (held.size >= SLOTS) { await new Promise((resolve) => { wake = resolve; }); continue; }
    if (Date.now() < drainUntil) { await sleep(drainUntil - Date.now(), true); continue; }
    try {
      const answer = await post('/leases', { ...body, max_jobs: SLOTS - held.size },
        (WAIT_SECONDS + 10) * 1000); // the socket timeout outlives the long-poll
      backoff = 1000; if (answer.drain) drainUntil = Date.now() + DRAIN_PAUSE_MS;
      if (stopper.signal.aborted) await release(answer.leases.map((l) => l.token)); // stopped meanwhile
      else answer.leases.forEach((lease) => run(lease));
    } catch (err) { // the service is down or refuses: back off 1 s, 2 s, ... 30 s (or its Retry-After)
      log(`lease failed (${err.message}); again in ${err.retryAfterMs || backoff} ms`);
      await sleep(err.retryAfterMs || backoff, true);
      backoff = Math.min(backoff * 2, 30000);
    }
  }
}

export function main() {
  log(`leasing ${Object.keys(handlers).join(', ')} from ${QUEUES.join(', ')} at ${BASE}, ${SLOTS} slots`);
  heartbeats(); const leasing = leaseLoop();
  const stop = async (signal) => {
    if (stopper.signal.aborted) return;
    log(`${signal}: no more leases; up to ${GRACE_MS / 1000} s for ${held.size} running job(s)`);
    stopper.abort(); wake();
    for (const deadline = Date.now() + GRACE_MS; held.size && Date.now() < deadline;) await sleep(50);
    const rest = [...held.values()];
    rest.forEach((h) => { h.released = true; h.ac.abort(new Error('worker stopping')); });
    if (rest.length) log(`releasing ${rest.length} job(s)`);
    await Promise.all([release(rest.map((h) => h.token)), leasing]); // an open long-poll: within 10 s
    process.exit(0);
  };
  process.on('SIGTERM', stop).on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
