/* jobqueue dashboard: the Pause and Resume buttons of the Queues and Schedules pages. A button's
 * data-post is an API path under /ui/api (where the session cookie is sent); the session's CSRF
 * token (the csrf-token meta tag) goes in X-CSRF-Token. After a confirm dialog the request is
 * sent; on success the page reloads, on failure the message says why. A button whose
 * data-allowed is "false" (the key's role is too low) stays disabled. */
(function () {
  "use strict";

  const root = document.body.dataset.root || "";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const message = document.getElementById("action-message");

  function say(kind, text) {
    message.dataset.kind = kind;
    message.textContent = text;
  }

  async function act(button) {
    if (!window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    say("", "Working…");
    const headers = { Accept: "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    try {
      const response = await fetch(`${root}/ui/api/${button.dataset.post}`, { method: "POST", headers });
      if (response.ok) {
        window.location.reload();
        return;
      }
      let detail = `HTTP ${response.status}`;
      try {
        const body = await response.json();
        if (typeof body.detail === "string") detail = body.detail;
      } catch (_error) { /* not JSON: keep the status */ }
      say("error", `Could not do it: ${detail}`);
    } catch (error) {
      say("error", `Could not reach the service: ${error}`);
    }
    button.disabled = false;
  }

  for (const button of document.querySelectorAll("button[data-post]")) {
    button.disabled = button.dataset.allowed === "false";
    button.addEventListener("click", () => act(button));
  }
}());
