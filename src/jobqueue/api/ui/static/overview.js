/* jobqueue dashboard, overview page: draws the charts and refreshes everything every 2 s from
 * GET /ui/api/overview (the same JSON the page embeds in #overview-data). */
(function () {
  "use strict";

  const REFRESH_MS = 2000;
  const root = document.body.dataset.root || "";
  const base = `${root}/ui`;
  const charts = window.JobqueueCharts;

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(id, text) {
    const node = byId(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function percent(rate) {
    return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)} %`;
  }

  function jobsLink(params, text) {
    const link = document.createElement("a");
    link.href = `${base}/jobs?${new URLSearchParams(params).toString()}`;
    link.textContent = text;
    return link;
  }

  function cell(tag, className, queue, status, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (queue !== null) {
      node.dataset.queue = queue;
      node.dataset.status = status;
      node.dataset.label = status;
    }
    if (content instanceof Node) node.appendChild(content);
    else node.textContent = String(content);
    return node;
  }

  function renderCounts(data) {
    const body = byId("counts-body");
    const rows = data.queues.map((q) => {
      const tr = document.createElement("tr");
      const head = document.createElement("th");
      head.scope = "row";
      head.appendChild(jobsLink({ queue: q.queue }, q.queue));
      tr.appendChild(head);
      for (const status of data.statuses) {
        const n = q.counts[status];
        const content = n ? jobsLink({ queue: q.queue, status }, String(n)) : "0";
        tr.appendChild(cell("td", n ? "num" : "num zero", q.queue, status, content));
      }
      tr.appendChild(cell("td", "num total", q.queue, "total", q.total));
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = data.statuses.length + 2;
      td.textContent = "No jobs yet: create one with POST /jobs.";
      tr.appendChild(td);
      rows.push(tr);
    }
    if (data.other_queues > 0) {
      /* the server lists the largest queues only and adds up the rest in one row */
      const tr = document.createElement("tr");
      tr.className = "more";
      tr.id = "counts-more";
      const head = document.createElement("th");
      head.scope = "row";
      const note = document.createElement("span");
      note.className = "muted";
      note.textContent = `(the ${data.queues.length} largest are listed)`;
      head.append(`${data.other_queues} more queue${data.other_queues === 1 ? "" : "s"} `, note);
      tr.appendChild(head);
      let sum = 0;
      for (const status of data.statuses) {
        const n = data.other_counts[status];
        sum += n;
        tr.appendChild(cell("td", "num", "(more)", status, n));
      }
      tr.appendChild(cell("td", "num total", "(more)", "total", sum));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    for (const status of data.statuses) {
      const node = document.querySelector(`#counts-foot td[data-status="${status}"]`);
      if (node) node.textContent = String(data.totals[status]);
    }
    const total = document.querySelector('#counts-foot td[data-status="total"]');
    if (total) total.textContent = String(data.total);
  }

  function renderCharts(data) {
    const times = data.throughput.map((m) => new Date(m.minute));
    const done = data.throughput.map((m) => m.done);
    const failed = data.throughput.map((m) => m.failed);
    const throughput = byId("throughput-chart");
    charts.stackedBars(throughput, times, [
      { name: "done", className: "bar-done", values: done },
      { name: "failed", className: "bar-failed", values: failed },
    ]);
    throughput.setAttribute("aria-label",
      `Jobs finished per minute over the last hour: ${data.done_last_hour} done, ` +
      `${data.failed_last_hour} failed in all.`);
    const rates = data.throughput.map((m) => {
      const finished = m.done + m.failed;
      return finished === 0 ? null : m.failed / finished;
    });
    const failure = byId("failure-chart");
    charts.line(failure, times, rates, {
      yMax: 1,
      className: "line-rate",
      format: (v) => `${Math.round(v * 100)} %`,
    });
    failure.setAttribute("aria-label",
      `Failure rate per minute over the last hour; ${percent(data.failure_rate)} overall.`);
  }

  function renderOrphans(data) {
    const section = byId("orphans");
    const body = byId("orphans-body");
    const items = data.without_worker || [];
    body.replaceChildren(...items.map((item) => {
      const row = document.createElement("tr");
      for (const [value, className] of [[item.queue, ""], [item.task, ""], [String(item.jobs), "num"]]) {
        const td = document.createElement("td");
        if (className) td.className = className;
        td.textContent = value;
        row.appendChild(td);
      }
      return row;
    }));
    section.hidden = items.length === 0;
  }

  let last = null;

  function render(data) {
    last = data;
    setText("stat-total", String(data.total));
    setText("stat-todo", String(data.totals.todo));
    setText("stat-running", String(data.totals.in_progress));
    setText("stat-workers",
      data.workers ? `${data.workers.busy} / ${data.workers.total}` : "off");
    setText("stat-finished", String(data.done_last_hour + data.failed_last_hour));
    setText("stat-failure-rate", percent(data.failure_rate));
    renderCounts(data);
    renderOrphans(data);
    renderCharts(data);
    const updated = byId("updated-at");
    const at = new Date(data.generated_at);
    updated.dateTime = data.generated_at;
    updated.textContent = at.toLocaleTimeString();
  }

  function setLive(ok, reason) {
    const status = byId("live-status");
    status.dataset.state = ok ? "live" : "offline";
    setText("live-text", ok ? "Live" : `Offline (${reason}), retrying`);
  }

  async function refresh() {
    if (!document.hidden) {
      try {
        const response = await fetch(`${base}/api/overview`, {
          headers: { Accept: "application/json" },
          cache: "no-store",
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        render(await response.json());
        setLive(true);
      } catch (error) {
        setLive(false, error instanceof Error ? error.message : String(error));
      }
    }
    window.setTimeout(refresh, REFRESH_MS);
  }

  function start() {
    const embedded = byId("overview-data");
    if (embedded) render(JSON.parse(embedded.textContent));
    let resizing = null;
    window.addEventListener("resize", () => {
      window.clearTimeout(resizing);
      resizing = window.setTimeout(() => last && renderCharts(last), 150);
    });
    window.setTimeout(refresh, REFRESH_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
