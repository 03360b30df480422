// sessionlens web UI: the few things that need a script. Pages read without it.
"use strict";

// Copy buttons (trace ids).
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  event.preventDefault();
  navigator.clipboard?.writeText(button.dataset.copy).then(() => {
    button.textContent = "copied";
    setTimeout(() => (button.textContent = "copy"), 1200);
  });
});

// Empty filter fields stay out of the URL, so shared links are short.
const filters = document.getElementById("filters");
if (filters) {
  filters.addEventListener("submit", () => {
    for (const field of filters.elements) {
      if (field.name && field.value === "") field.disabled = true;
    }
  });
}

// Live list: on the first page, when the stream reports a new or changed session, the
// rows of this same URL are fetched again (at most once a second) and swapped in.
const rows = document.getElementById("session-rows");
if (rows && rows.dataset.live !== undefined && window.EventSource) {
  const query = new URLSearchParams(rows.dataset.live);
  query.set("fragment", "rows");
  let pending = false, last = 0;
  const refresh = async () => {
    pending = false;
    last = Date.now();
    const response = await fetch("/?" + query.toString(), { credentials: "same-origin" });
    if (!response.ok) return;
    const before = new Map([...rows.querySelectorAll("tr[data-session]")].map(
      (tr) => [tr.dataset.session, tr.textContent]));
    rows.innerHTML = await response.text();
    for (const tr of rows.querySelectorAll("tr[data-session]")) {
      if (before.get(tr.dataset.session) !== tr.textContent) tr.classList.add("fresh");
    }
  };
  const events = new EventSource("/v1/events");
  const badge = document.getElementById("live");
  events.onopen = () => { if (badge) badge.hidden = false; };
  events.onerror = () => { if (badge) badge.hidden = true; };
  events.addEventListener("session", () => {
    if (pending) return;
    pending = true;
    setTimeout(refresh, Math.max(0, 1000 - (Date.now() - last)));
  });
}

// Times in the reader's own time zone (the HTML says UTC).
for (const time of document.querySelectorAll("time[datetime]")) {
  const when = new Date(time.getAttribute("datetime"));
  if (!isNaN(when)) {
    time.title = time.textContent + " UTC";
    time.textContent = when.toLocaleString();
  }
}
