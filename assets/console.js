// The operator console's only script (served from the binary; the CSP allows no other).
// Progressive enhancement: every page works without it.
"use strict";

// The overview: poll the JSON endpoint and update the cells in place.
function refreshOverview(table) {
  const url = table.getAttribute("data-refresh");
  const tick = async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (response.redirected || response.status === 401) { location.reload(); return; }
      if (!response.ok) return;
      const cells = await response.json();
      for (const el of document.querySelectorAll("[data-k]")) {
        const value = cells[el.getAttribute("data-k")];
        if (value !== undefined && el.textContent !== value) el.textContent = value;
      }
    } catch (_) {
      // A missed refresh is retried on the next tick.
    }
  };
  setInterval(tick, 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.querySelector("table[data-refresh]");
  if (table) refreshOverview(table);
  // A page following a job (the resync) reloads until the job has left the queue.
  const follow = document.querySelector("[data-autoreload]");
  if (follow) {
    const secs = Number(follow.getAttribute("data-autoreload")) || 3;
    setTimeout(() => location.reload(), secs * 1000);
  }
});
