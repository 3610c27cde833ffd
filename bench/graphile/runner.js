// graphile-worker's side of jobqueue's benchmark, driven by bench/peers_graphile.py: one phase
// per process (protocol in bench/peer_process.py). Usage: node runner.js '<json spec>'; the spec
// has `phase` (install, enqueue, fill, pickup, drain), `dsn` and the phase's sizes. It prints
// JSON lines on stdout; graphile-worker's own log goes to stderr (warnings and errors only).
//
// Only graphile-worker's public API, as its documentation shows it: runMigrations for the
// schema; makeWorkerUtils + addJob for one job; the add_jobs SQL function (0.16 has no addJobs
// in JavaScript) for many, called through the utils' own withPgClient; run({concurrency,
// maxPoolSize, taskList}) for a worker, with its default pollInterval (2 s) and LISTEN/NOTIFY.
// Times are epoch milliseconds with fractions (performance.timeOrigin + performance.now()).
"use strict";

const readline = require("node:readline");
const { performance } = require("node:perf_hooks");
const { run, runMigrations, makeWorkerUtils, Logger } = require("graphile-worker");

const WARMUP_JOBS = 20;
const PICKUP_WARMUP = 5;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const emit = (event, fields = {}) =>
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);

// graphile-worker logs "info" lines for every worker start; keep warnings and errors, on stderr.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") {
    process.stderr.write(`[graphile-worker ${level}] ${message}\n`);
  }
});

const lines = readline.createInterface({ input: process.stdin });
const lineQueue = [];
const lineWaiters = [];
lines.on("line", (line) => {
  const waiter = lineWaiters.shift();
  if (waiter) waiter(line);
  else lineQueue.push(line);
});
const waitLine = () =>
  lineQueue.length
    ? Promise.resolve(lineQueue.shift())
    : new Promise((resolve) => lineWaiters.push(resolve));

// One add_jobs call for `jobs` no-op jobs: the specs travel as one JSON parameter.
async function addJobsBulk(utils, jobs) {
  const specs = JSON.stringify(Array.from({ length: jobs }, () => ({ identifier: "noop", payload: {} })));
  await utils.withPgClient((client) =>
    client.query(
      "SELECT count(*) FROM graphile_worker.add_jobs(" +
        "array(SELECT json_populate_recordset(null::graphile_worker.job_spec, $1::json)))",
      [specs],
    ),
  );
}

// Worker options for a runner: concurrency, a pool of concurrency + 1 connections (its
// guidance: a maxPoolSize below the concurrency "may lead to non-optimal performance"; the + 1
// is the connection its LISTEN holds), signals left to the benchmark, the given tasks.
function runnerOptions(spec, taskList) {
  return {
    connectionString: spec.dsn,
    concurrency: spec.concurrency,
    maxPoolSize: spec.concurrency + 1,
    noHandleSignals: true,
    logger,
    taskList,
  };
}

const phases = {
  async install(spec) {
    await runMigrations({ connectionString: spec.dsn, logger });
    const { version } = require("graphile-worker/package.json");
    return { "graphile-worker": version, node: process.version };
  },

  // Single (addJob one at a time), concurrent (`producers` loops sharing one utils whose pool
  // holds a connection each) and batch (one add_jobs call) rates, jobs/s.
  async enqueue(spec) {
    const out = {};
    const utils = await makeWorkerUtils({
      connectionString: spec.dsn,
      maxPoolSize: spec.producers,
      logger,
    });
    try {
      for (let i = 0; i < WARMUP_JOBS; i++) await utils.addJob("noop", {});
      let start = performance.now();
      for (let i = 0; i < spec.single; i++) await utils.addJob("noop", {});
      out.enqueue_single_jobs_per_s = (spec.single * 1000) / (performance.now() - start);

      let remaining = spec.concurrent;
      const produce = async () => {
        while (remaining > 0) {
          remaining--;
          await utils.addJob("noop", {});
        }
      };
      start = performance.now();
      await Promise.all(Array.from({ length: spec.producers }, produce));
      out.enqueue_concurrent_jobs_per_s = (spec.concurrent * 1000) / (performance.now() - start);

      start = performance.now();
      await addJobsBulk(utils, spec.batch);
      out.enqueue_batch_jobs_per_s = (spec.batch * 1000) / (performance.now() - start);
    } finally {
      await utils.release();
    }
    return out;
  },

  async fill(spec) {
    const utils = await makeWorkerUtils({ connectionString: spec.dsn, maxPoolSize: 1, logger });
    try {
      await addJobsBulk(utils, spec.jobs);
    } finally {
      await utils.release();
    }
    return { jobs: spec.jobs };
  },

  // Latencies (ms) from the start of addJob to the task's first line, idle runner.
  async pickup(spec) {
    let waiting = null;
    const runner = await run(
      runnerOptions(spec, {
        stamp: async () => {
          const t = now();
          if (waiting) {
            const resolve = waiting;
            waiting = null;
            resolve(t);
          }
        },
      }),
    );
    const utils = await makeWorkerUtils({ connectionString: spec.dsn, maxPoolSize: 1, logger });
    const latencies = [];
    try {
      await sleep(1000);
      for (let i = 0; i < spec.jobs + PICKUP_WARMUP; i++) {
        let timer;
        const started = new Promise((resolve, reject) => {
          waiting = resolve;
          timer = setTimeout(() => reject(new Error("a stamp job did not start within 10 s")), 10000);
        });
        const start = now();
        await utils.addJob("stamp", {});
        const t = await started;
        clearTimeout(timer);
        if (i >= PICKUP_WARMUP) latencies.push(t - start);
        await sleep(spec.gap_seconds * 1000);
      }
    } finally {
      await utils.release();
      await runner.stop();
    }
    return { latencies_ms: latencies };
  },

  // One runner drains the queued jobs; the last completion is the last "job:complete" event
  // (emitted once complete_job has returned), the first start the first task's first line.
  async drain(spec) {
    let first = null;
    let last = null;
    let completed = 0;
    let failed = 0;
    emit("ready");
    await waitLine();
    let finish;
    const allDone = new Promise((resolve) => {
      finish = resolve;
    });
    const runner = await run(
      runnerOptions(spec, {
        noop: async () => {
          if (first === null) first = now();
        },
      }),
    );
    runner.events.on("job:complete", ({ error }) => {
      if (error) failed++;
      else completed++;
      last = now();
      if (completed + failed >= spec.jobs) finish();
    });
    const timer = setTimeout(finish, spec.timeout_seconds * 1000);
    await allDone;
    clearTimeout(timer);
    const returned = now();
    await runner.stop();
    emit("done", { first_started_ms: first, last_completed_ms: last, returned_ms: returned, completed, failed });
    await waitLine();
    return {};
  },
};

async function main() {
  const spec = JSON.parse(process.argv[process.argv.length - 1]);
  try {
    emit("result", await phases[spec.phase](spec));
  } catch (error) {
    emit("error", { error: String(error && error.stack ? error.stack : error) });
    process.exitCode = 1;
  }
  lines.close();
  process.stdin.destroy();
}

main();
