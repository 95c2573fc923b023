// The Data health page: reconcile's days and hours from api/days (same origin, Airflow's
// session cookie), drawn as a stacked bar per day and a day x hour grid.
"use strict";
const FIELDS = ["backup", "postgres", "archive", "rejected", "duplicates"];
const PLACED = ["postgres", "archive", "rejected", "duplicates"];
const form = document.getElementById("range");
const params = new URLSearchParams(location.search);
for (const name of ["from", "to"]) if (params.get(name)) form.elements[name].value = params.get(name);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}
const num = (n) => Number(n).toLocaleString("en-US");
function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
function duration(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min`;
}
const runLink = (runId) => `../dags/api-load/runs/${encodeURIComponent(runId)}`;

function drawFacts(data) {
  const facts = document.getElementById("facts");
  facts.replaceChildren();
  const fact = (id, label, value) => facts.append(el("div", { id }, el("b", {}, value), label));
  const end = data.last_loaded_hour_end;
  const lag = end ? (Date.parse(data.now) - Date.parse(end)) / 1000 : null;
  fact("last-loaded", "last loaded hour (its lag)",
    end ? `${end.slice(0, 13).replace("T", " ")}:00 UTC (${duration(lag)})` : "none yet");
  const s = data.storage_bytes;
  fact("storage", "stored: table, archive, backups",
    `${bytes(s.table)} · ${bytes(s.archive)} · ${bytes(s.backup)}`);
  const nightly = data.nightly;
  fact("verdict", "latest nightly reconcile",
    nightly ? `${nightly.state === "success" ? "balanced" : "NOT balanced"} (${(nightly.ended || "").slice(0, 16)})` : "none yet");
  const off = data.days.filter((d) => !d.balanced).length;
  fact("range-verdict", `this range's reconcile, ${data.from} to ${data.to}`,
    off ? `${off} of ${data.days.length} days off` : `all ${data.days.length} days balance`);
}

function drawDays(data) {
  const body = document.querySelector("#days tbody");
  body.replaceChildren();
  const widest = Math.max(1, ...data.days.map((d) => Math.max(d.backup, PLACED.reduce((a, f) => a + d[f], 0))));
  for (const d of [...data.days].reverse()) {
    const frame = el("div", { class: "frame", style: `width:${(100 * d.backup) / widest}%` });
    for (const f of PLACED) {
      frame.append(el("div", { class: `seg ${f}`, title: `${f}: ${num(d[f])}`,
        style: `width:${d.backup ? (100 * d[f]) / d.backup : 0}%` }));
    }
    const row = el("tr", { "data-day": d.day, class: d.balanced ? "ok" : "off" },
      el("td", {}, d.day), el("td", { class: "bar" }, frame),
      ...FIELDS.map((f) => el("td", { "data-field": f }, String(d[f]))),
      el("td", { class: "verdict" }, d.balanced ? "ok" : `off by ${d.difference > 0 ? "+" : ""}${d.difference}`));
    body.append(row);
    if (d.problems.length) {
      body.append(el("tr", { class: "off" }, el("td"), el("td", { class: "problems", colspan: 7 }, d.problems.join("; "))));
    }
  }
}

function drawHours(data) {
  const head = document.querySelector("#hours thead");
  head.replaceChildren(el("tr", {}, el("th"), ...[...Array(24).keys()].map((h) => el("th", {}, String(h).padStart(2, "0")))));
  const body = document.querySelector("#hours tbody");
  body.replaceChildren();
  for (const day of Object.keys(data.hours).sort().reverse()) {
    const row = el("tr", { "data-day": day }, el("td", { class: "day" }, day));
    data.hours[day].forEach((reconciled, h) => {
      const hour = `${day}T${String(h).padStart(2, "0")}`;
      const run = data.runs[hour];
      const mark = run && run.in_flight && reconciled !== "loaded" && reconciled !== "late" ? "in-flight" : reconciled || "none";
      const title = `${hour}:00 UTC: ${mark}${run ? ` (run ${run.run_id}, ${run.state})` : ""}`;
      const attrs = { class: `cell ${mark}`, "data-hour": String(h), "data-mark": mark, title };
      const cell = run ? el("a", { ...attrs, href: runLink(run.run_id), target: "_top" }) : el("span", attrs);
      row.append(el("td", {}, cell));
    });
    body.append(row);
  }
}

async function show() {
  const query = new URLSearchParams();
  for (const name of ["from", "to"]) if (form.elements[name].value) query.set(name, form.elements[name].value);
  const answer = await fetch(`api/days?${query}`, { credentials: "same-origin" });
  if (!answer.ok) {
    document.getElementById("facts").textContent = `${answer.status}: ${await answer.text()}`;
    return;
  }
  const data = await answer.json();
  form.elements.from.value = data.from;
  form.elements.to.value = data.to;
  drawFacts(data);
  drawDays(data);
  drawHours(data);
  document.body.setAttribute("data-loaded", `${data.from}..${data.to}`);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  history.replaceState(null, "", `?from=${form.elements.from.value}&to=${form.elements.to.value}`);
  show();
});
show();
