/* jobqueue dashboard, job page: the Cancel, Retry and "Enqueue a copy" buttons call the JSON API
 * (after a confirm dialog) and show the outcome in place; the status refreshes every 2 s while
 * the job is not final. The API is called under /ui/api, where the session cookie is sent, with
 * the session's CSRF token (the page's csrf-token meta tag) in X-CSRF-Token; a button whose
 * data-allowed is "false" (the key's role is too low) stays disabled.
 *
 * Numbers: a JavaScript number holds integers exactly only up to 2^53, and job ids go to
 * 2^63 - 1. So no id or payload ever passes through a number here: the page data carries the id
 * as a string, the payload is fetched as JSON text (/ui/jobs/{id}/payload: the page itself shows
 * at most 64 KiB of it), the copy's body is built as text around that payload text, and the new
 * job's id is read from the Location header. */
(function () {
  "use strict";

  const REFRESH_MS = 2000;
  const FINAL = new Set(["done", "failed", "cancelled"]);
  const root = document.body.dataset.root || "";
  const api = `${root}/ui/api`;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
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
      button.disabled = busy || !enabled || button.dataset.allowed === "false";
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

  /* The body of "enqueue a copy", as JSON text: the stored payload text goes in unchanged (a
   * JSON.parse/JSON.stringify round trip would round integers above 2^53). Null when the
   * payload could not be read (the response says why). */
  async function copyBody() {
    const response = await fetch(`${root}/ui/jobs/${page.id}/payload`, {
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) return { response, body: null };
    const payloadText = await response.text();
    const c = page.copy;
    const body = `{"task":${JSON.stringify(c.task)},"queue":${JSON.stringify(c.queue)},` +
      `"priority":${JSON.stringify(c.priority)},"description":${JSON.stringify(c.description)},` +
      `"payload":${payloadText}}`;
    return { response, body };
  }

  /* The id in a Location header such as /jobs/9007199254740993, as a string. */
  function idFromLocation(response) {
    const match = /\/jobs\/(\d+)$/.exec(response.headers.get("Location") || "");
    return match ? match[1] : null;
  }

  async function post(url, bodyText) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const response = await fetch(url, { method: "POST", headers, body: bodyText });
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
      let result;
      if (action === "copy") {
        const copy = await copyBody();
        result = copy.body === null
          ? { response: copy.response, json: null }
          : await post(`${api}/jobs`, copy.body);
      } else {
        result = await post(`${api}/jobs/${page.id}/${action}`);
      }
      const { response, json } = result;
      if (response.status === 401) {
        say("error", "Your session has ended: ",
          link(`${root}/ui/login?next=${encodeURIComponent(window.location.pathname)}`, "log in"),
          " again.");
        return;
      }
      if (!response.ok) {
        say("error", `Could not ${action === "copy" ? "enqueue a copy" : action}: ${detail(json, response)}`);
        return;
      }
      if (action === "copy") {
        const id = idFromLocation(response);
        if (id === null) {
          say("ok", "Enqueued a copy.");
        } else {
          say("ok", "Enqueued a copy: ", link(`${root}/ui/jobs/${id}`, `job #${id}`), ".");
        }
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
      const response = await fetch(`${api}/jobs/${page.id}`, {
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
