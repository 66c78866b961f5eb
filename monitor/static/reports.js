// Historical reports: figures per interval by queue or agent, a chart, CSV and queue_log
// downloads, drill-down to the contacts behind any figure, and voicemail per box.
import { api, el, fillHeader, loadSession, notice, setText, toLogin } from "/static/common.js";
import { stackedBars } from "/static/chart.js";

const QUEUE_COLUMNS = [
  ["offered", "Offered"], ["answered", "Answered"], ["answered_within", "Within T"],
  ["abandoned", "Abandoned"], ["short_abandoned", "Short ab."], ["overflowed", "Overflowed"],
  ["voicemail", "Voicemail"], ["transferred", "Transferred"], ["missed", "Missed"],
  ["service_level", "Service level"], ["asa", "ASA"], ["aht", "AHT"],
  ["abandon_rate", "Abandon rate"], ["occupancy", "Occupancy"],
];
const AGENT_COLUMNS = [
  ["offered", "Offered"], ["answered", "Answered"], ["answered_within", "Within T"],
  ["abandoned", "Abandoned"], ["missed", "Missed"], ["transferred", "Transferred"],
  ["asa", "ASA"], ["aht", "AHT"], ["staffed_seconds", "Staffed"], ["ready_seconds", "Ready"],
  ["paused_seconds", "Paused"], ["availability", "Availability"], ["occupancy", "Occupancy"],
];
const RATES = new Set(["service_level", "abandon_rate", "availability", "occupancy"]);
const TIMES = new Set(["asa", "aht", "staffed_seconds", "ready_seconds", "paused_seconds"]);
// A rate or a time drills down to the contacts it is computed over.
const DRILL_OF = {
  service_level: "answered_within", asa: "answered", aht: "answered",
  abandon_rate: "abandoned", occupancy: "answered", availability: "answered",
};

let current = null; // the last report and the query that produced it

function zone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    return "";
  }
}

function today() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function formQuery() {
  const by = document.getElementById("by").value;
  const query = new URLSearchParams({
    from: document.getElementById("from").value,
    to: document.getElementById("to").value,
    interval: document.getElementById("interval").value,
  });
  const tz = zone();
  if (tz) query.set("tz", tz);
  const only = document.getElementById("only").value;
  if (only) query.set(by, only);
  const formula = document.getElementById("formula").value;
  if (formula) query.set("formula", formula);
  return { by, query };
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)} %`;
}

function duration(value) {
  if (value === null || value === undefined) return "–";
  const seconds = Math.round(value);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function shown(name, value) {
  if (RATES.has(name)) return percent(value);
  if (TIMES.has(name)) return duration(value);
  return value === null || value === undefined ? "–" : String(value);
}

function intervalLabel(row, interval) {
  const start = new Date(row.start);
  if (interval === "day") return start.toLocaleDateString();
  return start.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function figureCell(row, name, by) {
  const figure = DRILL_OF[name] || name;
  const value = row[name];
  const clickable = !name.endsWith("_seconds") && (RATES.has(name) || TIMES.has(name) || value);
  const cell = el("td", { class: "num" });
  if (!clickable) {
    cell.append(shown(name, value));
    return cell;
  }
  cell.append(el("button", {
    class: "figure link", type: "button", dataset: { figure: name },
    title: `the contacts behind this figure (${figure.replace(/_/g, " ")})`,
    onclick: () => drill(row, figure, by, name),
  }, shown(name, value)));
  return cell;
}

function table(node, rows, by, columns, first) {
  const head = el("tr", {}, ...first.map(([, label]) => el("th", {}, label)),
    ...columns.map(([, label]) => el("th", { class: "num" }, label)));
  const body = rows.map((row) => el("tr", { dataset: { key: row[by] ?? "all" } },
    ...first.map(([name, , fmt]) => el("td", { class: name }, fmt ? fmt(row) : row[name] ?? "all")),
    ...columns.map(([name]) => figureCell(row, name, by))));
  node.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

function tiles(overall, by) {
  const items = [
    ["Offered", overall.offered], ["Answered", overall.answered],
    ["Abandoned", overall.abandoned], ["Service level", percent(overall.service_level)],
    ["ASA", duration(overall.asa)], ["AHT", duration(overall.aht)],
    [by === "agent" ? "Availability" : "Abandon rate",
      percent(by === "agent" ? overall.availability : overall.abandon_rate)],
    ["Occupancy", percent(overall.occupancy)],
  ];
  document.getElementById("tiles").replaceChildren(...items.map(([label, value]) =>
    el("div", { class: "tile" }, el("span", { class: "tile-value" }, value),
      el("span", { class: "tile-label" }, label))));
}

function chart(report) {
  // One bar per interval, all keys together: answered, abandoned and overflowed make up offered.
  const byStart = new Map();
  for (const row of report.rows) {
    const entry = byStart.get(row.start) || { start: row.start, answered: 0, abandoned: 0,
      overflowed: 0, within: 0, offered: 0, shortAb: 0 };
    entry.answered += row.answered;
    entry.abandoned += row.abandoned;
    entry.overflowed += row.overflowed;
    entry.within += row.answered_within;
    entry.offered += row.offered;
    entry.shortAb += row.short_abandoned;
    byStart.set(row.start, entry);
  }
  // Quiet hours at either end of the period (the night) say nothing: leave them out.
  let points = [...byStart.values()];
  const busy = points.map((p, i) => (p.offered ? i : -1)).filter((i) => i >= 0);
  if (busy.length) points = points.slice(busy[0], busy[busy.length - 1] + 1);
  const level = (p) => {
    const formula = report.service_level_formula;
    const denominator = formula === "answered" ? p.answered
      : formula === "offered-excluding-short-abandons" ? p.offered - p.shortAb : p.offered;
    return denominator > 0 ? p.within / denominator : null;
  };
  const series = report.by === "queue"
    ? [
      { name: "answered", cls: "s-answered", values: points.map((p) => p.answered) },
      { name: "abandoned", cls: "s-abandoned", values: points.map((p) => p.abandoned) },
      { name: "overflowed", cls: "s-overflowed", values: points.map((p) => p.overflowed) },
    ]
    : [
      { name: "answered", cls: "s-answered", values: points.map((p) => p.answered) },
      { name: "abandoned while ringing", cls: "s-abandoned", values: points.map((p) => p.abandoned) },
    ];
  const svg = stackedBars({
    title: `Contacts per ${report.interval === "day" ? "day" : `${report.interval} minutes`}`,
    labels: points.map((p) => intervalLabel(p, report.interval)),
    series,
    line: report.by === "queue"
      ? { name: "service level", cls: "s-level", values: points.map(level) }
      : null,
    onBar: (i, s) => drill({ start: points[i].start }, series[s].name === "answered"
      ? "answered" : series[s].name === "overflowed" ? "overflowed" : "abandoned", report.by,
      series[s].name),
  });
  document.getElementById("chart").replaceChildren(svg);
}

async function drill(row, figure, by, label) {
  const query = new URLSearchParams(current.query);
  query.set("figure", figure);
  query.set("by", by);
  query.delete("queue");
  query.delete("agent");
  if (row[by]) query.set(by, row[by]);
  // Totals span the whole period; interval rows and chart bars name their interval.
  const whole = row.start === current.report.from && row.end === current.report.to;
  if (row.start && !whole) query.set("start", row.start);
  try {
    const answer = await api("GET", `/api/reports/contacts?${query}`);
    const section = document.getElementById("drill");
    section.hidden = false;
    const what = [label.replace(/_/g, " "), row[by] || "", row.start && query.has("start")
      ? new Date(row.start).toLocaleString() : "whole period"].filter(Boolean).join(" · ");
    setText(document.getElementById("drill-what"), `(${answer.total}: ${what})`);
    document.querySelector("#drill-table tbody").replaceChildren(...answer.contacts.map((c) =>
      el("tr", { dataset: { contact: c.contact_id } },
        el("td", {}, new Date(c.queued_at || c.arrived_at).toLocaleString()),
        el("td", { class: "caller" }, c.caller || "anonymous"),
        el("td", {}, c.queue || ""),
        el("td", {}, c.agent_id || ""),
        el("td", {}, c.outcome),
        el("td", { class: "num" }, duration(c.wait_seconds)),
        el("td", { class: "num" }, duration(c.talk_seconds)),
        el("td", {}, c.disposition || ""))));
    setText(document.getElementById("drill-more"), answer.total > answer.contacts.length
      ? `Showing ${answer.contacts.length} of ${answer.total}.` : "");
    section.scrollIntoView({ block: "nearest" });
  } catch (failure) {
    notice(failure.message, "error");
  }
}

function fillOnly(report) {
  const select = document.getElementById("only");
  const chosen = select.value;
  const known = new Set([...select.options].map((o) => o.value));
  if (report.keys.every((k) => known.has(k)) && select.dataset.by === report.by) return;
  select.dataset.by = report.by;
  select.replaceChildren(el("option", { value: "" }, "all"),
    ...report.keys.map((k) => el("option", { value: k }, k)));
  select.value = report.keys.includes(chosen) ? chosen : "";
}

async function voicemail(query) {
  const params = new URLSearchParams({ from: query.get("from"), to: query.get("to") });
  if (query.get("tz")) params.set("tz", query.get("tz"));
  const answer = await api("GET", `/api/reports/voicemail?${params}`);
  document.querySelector("#vm-boxes tbody").replaceChildren(...answer.boxes.map((b) =>
    el("tr", { dataset: { box: b.box } },
      el("td", {}, b.box), el("td", { class: "num" }, b.messages),
      el("td", { class: "num" }, b.unheard), el("td", { class: "num" }, duration(b.seconds)),
      el("td", {}, b.oldest_unheard ? new Date(b.oldest_unheard).toLocaleString() : ""))));
  document.getElementById("no-vm").hidden = answer.boxes.length > 0;
}

async function show() {
  const { by, query } = formQuery();
  document.getElementById("csv").href = `/api/reports/${by}s?${query}&format=csv`;
  document.getElementById("queue-log").href = `/api/reports/queue_log?${query}`;
  try {
    const report = await api("GET", `/api/reports/${by}s?${query}`);
    current = { report, query };
    notice("");
    fillOnly(report);
    setText(document.getElementById("report-span"),
      `(${new Date(report.from).toLocaleString()} – ${new Date(report.to).toLocaleString()},`
      + ` ${report.tz}; service level: ${report.service_level_formula})`);
    tiles(report.overall, by);
    chart(report);
    const columns = by === "queue" ? QUEUE_COLUMNS : AGENT_COLUMNS;
    table(document.getElementById("totals"), [...report.totals, report.overall], by, columns,
      [[by, by === "queue" ? "Queue" : "Agent"]]);
    table(document.getElementById("intervals"), report.rows.filter((r) => r.offered
      || r.staffed_seconds), by, columns, [
      ["start", "Interval", (r) => `${intervalLabel(r, report.interval)}`],
      [by, by === "queue" ? "Queue" : "Agent"],
    ]);
    document.getElementById("drill").hidden = true;
    await voicemail(query);
  } catch (failure) {
    notice(failure.message, "error");
  }
}

async function main() {
  const session = await loadSession();
  if (!session.authenticated) {
    toLogin();
    return;
  }
  fillHeader(session.user);
  document.getElementById("from").value = today();
  document.getElementById("to").value = today();
  document.getElementById("report-form").addEventListener("submit", (event) => {
    event.preventDefault();
    show();
  });
  document.getElementById("by").addEventListener("change", () => {
    document.getElementById("only").value = "";
    show();
  });
  await show();
}

main();
