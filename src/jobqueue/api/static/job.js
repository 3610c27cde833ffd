/* jobqueue dashboard, job page: the Cancel, Retry and "Enqueue a copy" buttons call the JSON API
 * (after a confirm dialog) and show the outcome in place; the status refreshes every 2 s while
 * the job is not final. */
(function () {
  "use strict";

  const REFRESH_MS = 2000;
  const FINAL = new Set(["done", "failed", "cancelled"]);
  const root = document.body.dataset.root || "";
  const page = JSON.parse(document.getElementById("job-data").textContent);
  const badge = document.getElementById("job-status-badge");
  const message = document.getElementById("action-message");
  const buttons = Array.from(document.querySelectorAll("button[data-action]"));
  let status = page.status;
  let busy = false;

  function say(kind, ...parts) {
    message.dataset.kind = kind;
    message.replaceChildren(...parts);
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function refreshButtons() {
    for (const button of buttons) {
      const action = button.dataset.action;
      let enabled = true;
      if (action === "cancel") enabled = status === "todo" || status === "in_progress";
      if (action === "retry") enabled = status === "failed" || status === "cancelled";
      button.disabled = busy || !enabled;
    }
  }

  function showStatus(next) {
    status = next;
    badge.textContent = next;
    badge.className = `badge status-${next}`;
    refreshButtons();
  }

  function detail(body, response) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) return body.detail.map((e) => e.msg).join("; ");
    return `HTTP ${response.status}`;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = null;
    try {
      json = await response.json();
    } catch (_error) {
      json = null;
    }
    return { response, json };
  }

  async function act(button) {
    const action = button.dataset.action;
    if (!window.confirm(button.dataset.confirm)) return;
    busy = true;
    refreshButtons();
    say("", "Working…");
    try {
      const { response, json } = action === "copy"
        ? await post(`${root}/jobs`, page.copy)
        : await post(`${root}/jobs/${page.id}/${action}`);
      if (!response.ok) {
        say("error", `Could not ${action === "copy" ? "enqueue a copy" : action}: ${detail(json, response)}`);
        return;
      }
      if (action === "copy") {
        say("ok", "Enqueued a copy: ", link(`${root}/ui/jobs/${json.id}`, `job #${json.id}`), ".");
      } else {
        showStatus(json.status);
        const text = action === "cancel"
          ? (json.status === "cancelled" ? "Job cancelled." : "Cancellation sent to its worker.")
          : "Job queued again with fresh attempts.";
        say("ok", `${text} `, link(window.location.pathname, "Reload"), " for the timeline.");
        schedule();
      }
    } catch (error) {
      say("error", `Network error: ${error instanceof Error ? error.message : error}`);
    } finally {
      busy = false;
      refreshButtons();
    }
  }

  let timer = null;
  function schedule() {
    if (timer === null && !FINAL.has(status)) timer = window.setTimeout(poll, REFRESH_MS);
  }

  async function poll() {
    timer = null;
    try {
      const response = await fetch(`${root}/jobs/${page.id}`, {
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      if (response.ok) {
        const job = await response.json();
        if (job.status !== status) {
          showStatus(job.status);
          if (FINAL.has(job.status)) {
            say("ok", `Now ${job.status}. `, link(window.location.pathname, "Reload"),
              " for its result and attempts.");
          }
        }
      }
    } catch (_error) {
      /* offline for a moment: try again at the next tick */
    }
    schedule();
  }

  for (const button of buttons) {
    button.addEventListener("click", () => act(button));
  }
  refreshButtons();
  schedule();
})();
