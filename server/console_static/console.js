// The FlockSQL web console: plain JS over the JSON of server/console.py. Text from the server
// (SQL, errors, plan descriptions) goes in through textContent only, never as HTML.
"use strict";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let doc = null;
  try { doc = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error((doc && doc.error) || `${response.status} ${response.statusText}`);
  return doc;
}

function post(path) {
  return api(path, {method: "POST", headers: {"X-FlockSQL-Console": "1"}});
}

function showError(id, err) {
  const p = document.getElementById(id);
  p.hidden = !err;
  p.textContent = err ? String(err.message || err) : "";
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(Math.round(n))) + " " + units[i];
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 0.001) return (s * 1e6).toFixed(0) + " µs";
  if (s < 1) return (s * 1000).toFixed(1) + " ms";
  if (s < 120) return s.toFixed(2) + " s";
  const m = Math.floor(s / 60);
  return m < 120 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fmtRows(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US", {maximumFractionDigits: 0});
}

function fmtTime(t) {
  return t ? new Date(t * 1000).toLocaleTimeString("en-GB") : "–";
}

function stateBadge(state) {
  return el("span", {class: "state " + state}, state);
}

// --- header: one line about the flock on every page ---------------------------------------

async function loadSummary() {
  try {
    const f = await api("/api/flock");
    document.getElementById("flock-summary").textContent =
      `${f.ranks} rank${f.ranks === 1 ? "" : "s"} · ${f.host} · up ${fmtSeconds(f.uptime_seconds)}` +
      ` · ${f.restarts} restart${f.restarts === 1 ? "" : "s"}`;
    return f;
  } catch (e) {
    showError("error", e);
    return null;
  }
}

// --- queries ------------------------------------------------------------------------------

const QUERY_COLUMNS = ["#", "state", "user", "SQL", "submitted", "elapsed", "rows", "bytes moved", "peak memory", ""];

// The highest of the ranks' peaks (null when none is known): what the query asked of the busiest rank.
function peakOfRanks(peaks) {
  const known = (peaks || []).filter((p) => p !== null && p !== undefined);
  return known.length ? Math.max(...known) : null;
}

function peaksText(peaks) {
  if (!peaks || !peaks.length) return "–";
  return peaks.map((p, rank) => `rank ${rank} ${fmtBytes(p)}`).join(" · ");
}

function queryRow(q) {
  const actions = el("td", {class: "actions"}, el("a", {href: `query.html?id=${q.id}`}, "plan"));
  if (q.cancellable) {
    actions.append(" ", el("button", {class: "cancel", "data-id": q.id, onclick: async (ev) => {
      ev.target.disabled = true;
      try { await post(`/api/queries/${q.id}/cancel`); } catch (e) { showError("error", e); }
      loadQueries();
    }}, "cancel"));
  }
  return el("tr", {"data-id": q.id, "data-state": q.state},
    el("td", {class: "num"}, q.id),
    el("td", {}, stateBadge(q.state)),
    el("td", {}, q.user || "–"),
    el("td", {class: "sql", title: q.error || q.sql}, el("code", {}, q.sql),
       q.error ? el("div", {class: "error small"}, q.error) : null),
    el("td", {}, fmtTime(q.submitted)),
    el("td", {class: "num"}, fmtSeconds(q.seconds)),
    el("td", {class: "num"}, fmtRows(q.rows)),
    el("td", {class: "num"}, fmtBytes(q.bytes_moved)),
    el("td", {class: "num peak", title: peaksText(q.peak_memory_bytes)}, fmtBytes(peakOfRanks(q.peak_memory_bytes))),
    actions);
}

function fillQueries(id, list) {
  const table = document.getElementById(id);
  table.tHead.replaceChildren(el("tr", {}, QUERY_COLUMNS.map((c) => el("th", {}, c))));
  const rows = list.map(queryRow);
  if (!rows.length) rows.push(el("tr", {}, el("td", {colspan: QUERY_COLUMNS.length, class: "muted"}, "none")));
  table.tBodies[0].replaceChildren(...rows);
  document.getElementById(id + "-count").textContent = `(${list.length})`;
}

async function loadQueries() {
  try {
    const doc = await api("/api/queries");
    fillQueries("running", doc.running);
    fillQueries("recent", doc.recent);
    showError("error", null);
  } catch (e) {
    showError("error", e);
  }
}

// --- the flock ----------------------------------------------------------------------------

function facts(rows) {
  document.querySelector("#facts tbody").replaceChildren(
    ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
}

function hostsText(hosts) {  // "h1 (rank 0), h2 (ranks 1–2)": each host with its ranks
  const ranks = new Map();
  hosts.forEach((h, r) => ranks.set(h, [...(ranks.get(h) || []), r]));
  return [...ranks].map(([h, rs]) => `${h} (rank${rs.length > 1 ? "s" : ""} ${rs.join(", ")})`).join(", ");
}

async function loadFlock() {
  const f = await loadSummary();
  if (!f) return;
  facts([
    ["ranks", f.ranks],
    ["hosts", hostsText(f.hosts || [f.host])],
    ["DuckDB threads per rank", f.threads_per_rank ?? "–"],
    ["lanes (queries at once)", f.lanes],
    ["memory budget per rank", fmtBytes(f.memory_budget_bytes)],
    ["started", new Date(f.started * 1000).toLocaleString("en-GB")],
    ["uptime", fmtSeconds(f.uptime_seconds)],
    ["restarts by the supervisor", f.restarts],
    ["Flight SQL", f.flight_uri || "–"],
    ["data folder", f.data || "–"],
    ["authentication", f.auth ? "user and password" : "none (loopback)"],
  ]);
  const peaks = f.peak_memory_bytes || [];
  const box = document.getElementById("memory");
  if (!peaks.length) { box.replaceChildren(el("p", {class: "muted"}, "not known yet")); return; }
  const top = Math.max(f.memory_budget_bytes || 0, ...peaks);
  const rows = peaks.map((b, rank) => ({label: `rank ${rank}`, parts: [{value: b, cls: "mem"}],
                                        text: `${fmtBytes(b)} of ${fmtBytes(f.memory_budget_bytes)}`}));
  box.replaceChildren(barChart(rows, top, (v) => fmtBytes(v)));
}

// --- one query ----------------------------------------------------------------------------

function queryId() {
  return Number(new URLSearchParams(location.search).get("id"));
}

async function loadQuery() {
  loadSummary();
  const id = queryId();
  document.getElementById("title").textContent = `Query ${id}`;
  document.getElementById("analyze").addEventListener("click", () => analyze(id));
  let q;
  try {
    q = await api(`/api/queries/${id}`);
  } catch (e) {
    showError("error", e);
    return;
  }
  showQuery(q);
  document.getElementById("plan-summary").textContent = "(planning…)";
  try {
    const doc = await api(`/api/queries/${id}/plan`);
    showPlan(doc.explain);
  } catch (e) {
    document.getElementById("plan-summary").textContent = "";
    showError("plan-error", e);
  }
  if (new URLSearchParams(location.search).get("analyze") === "1") analyze(id);
}

function showQuery(q) {
  facts([
    ["state", stateBadge(q.state)],
    ["user", q.user || "–"],
    ["submitted", fmtTime(q.submitted)],
    ["elapsed", fmtSeconds(q.seconds)],
    ["rows", fmtRows(q.rows)],
    ["bytes moved", fmtBytes(q.bytes_moved)],
    ["bytes spilled", fmtBytes(q.bytes_spilled)],
    ["peak memory per rank", peaksText(q.peak_memory_bytes)],
  ].concat(q.error ? [["error", el("span", {class: "error"}, q.error)]] : []));
  document.getElementById("sql").textContent = q.sql;
  const cancel = document.getElementById("cancel");
  cancel.hidden = !q.cancellable;
  cancel.onclick = async () => {
    cancel.disabled = true;
    try { await post(`/api/queries/${q.id}/cancel`); } catch (e) { showError("error", e); }
    showQuery(await api(`/api/queries/${q.id}`));
  };
  document.getElementById("analyze").disabled = !q.explainable;
}

async function analyze(id) {
  const button = document.getElementById("analyze");
  button.disabled = true;
  document.getElementById("plan-summary").textContent = "(running EXPLAIN ANALYZE…)";
  try {
    const doc = await post(`/api/queries/${id}/analyze`);
    showError("plan-error", null);
    showPlan(doc.explain);
  } catch (e) {
    document.getElementById("plan-summary").textContent = "";
    showError("plan-error", e);
  } finally {
    button.disabled = false;
  }
}

function showPlan(doc) {
  const summary = `(${doc.ranks} rank${doc.ranks === 1 ? "" : "s"}, planned in ${fmtSeconds(doc.planning_seconds)}` +
    (doc.analyze ? `; ran in ${fmtSeconds(doc.analyze.total_seconds)}, ${fmtRows(doc.analyze.rows)} rows)` : ")");
  document.getElementById("plan-summary").textContent = summary;
  document.getElementById("legend").hidden = false;
  document.getElementById("plan").replaceChildren(planTree(doc.plan));
  const timing = document.getElementById("timing");
  timing.hidden = !doc.analyze;
  if (doc.analyze) showTiming(doc);
}

// The plan as nested boxes: each node a box, its inputs side by side below it.
function planTree(node) {
  const x = node.exchange;
  const box = el("div", {class: "node " + (x ? "exchange" + (x.runs ? "" : " idle") : "op")});
  if (x) {
    box.append(el("div", {class: "head"}, el("b", {}, `Exchange #${x.id}`), " ",
                  el("span", {class: "kind"}, x.kind)));
    if (x.keys && x.keys.length) box.append(el("div", {class: "keys"}, "keys: " + x.keys.join(", ")));
    if (!x.runs) box.append(el("div", {class: "muted"}, "not run: " + x.why_not));
    const a = node.actual;
    if (a) {
      box.append(el("div", {class: "actual"}, `actual rows ${fmtRows(a.rows_out)} · moved ${fmtBytes(a.bytes_sent)}`));
      const sp = a.spread;
      box.append(el("div", {class: "small"},
        `rows per rank ${fmtRows(sp.rows_out.min)} / ${fmtRows(sp.rows_out.median)} / ${fmtRows(sp.rows_out.max)}` +
        ` (min/median/max) · slowest rank ${a.slowest_rank}`));
      if (a.bytes_spilled) box.append(el("div", {class: "warn"}, `spilled ${fmtBytes(a.bytes_spilled)}`));
    }
  } else {
    box.append(el("div", {class: "head"}, el("b", {}, node.operator),
                  node.pattern ? el("span", {class: "pattern"}, node.pattern) : null));
    box.append(el("div", {class: "text", title: node.text}, node.text));
    if (node.estimate) {
      box.append(el("div", {class: "estimate"},
        `est. rows ${fmtRows(node.estimate.rows)} · ${fmtBytes(node.estimate.bytes)} · cost ${fmtSeconds(node.estimate.cost_seconds)}`));
    }
    // EXPLAIN ANALYZE: the rows DuckDB counted for this operator inside its fragment (or, where
    // that could not be told for sure, what the exchange above it received).
    if (node.actual_rows !== undefined && node.actual_rows !== null) {
      const detail = node.actual_rows_detail;
      box.append(el("div", {class: "actual", title: detail && detail.each_rank
          ? "rows this operator produced on each rank (every rank computes all of it)"
          : "rows this operator produced, over all ranks"},
        `actual rows ${fmtRows(node.actual_rows)}` + (node.estimate ? ` (est. ${fmtRows(node.estimate.rows)})` : "")));
      if (detail && detail.each_rank) {
        box.append(el("div", {class: "small"}, "on each rank (every rank computes all of it)"));
      } else if (detail && detail.per_rank.length > 1) {
        const sp = detail.spread;
        box.append(el("div", {class: "small"},
          `rows per rank ${fmtRows(sp.min)} / ${fmtRows(sp.median)} / ${fmtRows(sp.max)} (min/median/max)`));
      }
    }
    for (const group of node.duckdb_operators || []) box.append(duckdbOperators(group));
    if (node.alternatives && node.alternatives.length) {
      box.append(el("div", {class: "small muted"}, "beat: " + node.alternatives.map(
        (a) => `${a.pattern} ${fmtSeconds(a.cost_seconds)}`).join(", ")));
    }
  }
  const children = node.children || [];
  const tree = el("div", {class: "subtree"}, box);
  if (children.length) {
    tree.append(el("div", {class: "children"},
      children.map((c) => planTree(c))));
  }
  return tree;
}

// A fragment whose operators could not all be matched to DuckDB's: DuckDB's own, as they ran.
function duckdbOperators(group) {
  const who = group.ranks.length === 1 ? `rank ${group.ranks[0]}` : `ranks ${group.ranks.join(", ")}, rows summed`;
  const list = el("div", {class: "duckdb-ops"}, group.operators.map((op) =>
    el("div", {style: `padding-left: ${op.depth * 10}px`, title: op.detail},
       el("b", {}, op.name), " ", fmtRows(op.rows), " rows", op.detail ? el("span", {class: "muted"}, " " + op.detail) : null)));
  return el("details", {class: "duckdb small"},
    el("summary", {}, `DuckDB's operators, not all matched to the plan (${who})`), list);
}

function exchanges(node, parentOp, out) {
  if (node.exchange && node.actual) out.push({node, parentOp});
  // An exchange belongs to the nearest operator above it that chose a pattern.
  for (const c of node.children || []) exchanges(c, node.pattern ? node : parentOp, out);
  return out;
}

function showTiming(doc) {
  const groups = exchanges(doc.plan, null, []).sort((a, b) => a.node.exchange.id - b.node.exchange.id);
  const rows = [];
  for (const {node, parentOp} of groups) {
    const x = node.exchange;
    rows.push({heading: `Exchange #${x.id} ${x.kind}` +
      (parentOp ? ` — under ${parentOp.operator}${parentOp.pattern ? " (" + parentOp.pattern + ")" : ""}` : "")});
    for (const r of node.actual.per_rank) {
      rows.push({label: `rank ${r.rank}`, parts: stageParts(r),
                 text: `compute ${fmtSeconds(r.compute_seconds)} · comm ${fmtSeconds(r.comm_seconds)} · ` +
                       `wait ${fmtSeconds(r.wait_seconds)} · ${fmtRows(r.rows_out)} rows · sent ${fmtBytes(r.bytes_sent)}`});
    }
  }
  const finals = doc.analyze.final_compute_seconds || [];
  if (finals.length) {
    rows.push({heading: "Final fragment (after the last exchange)"});
    const waits = doc.analyze.final_wait_seconds || [];
    finals.forEach((s, rank) => rows.push({label: `rank ${rank}`,
                                           parts: [{value: s, cls: "compute"}, {value: waits[rank] || 0, cls: "wait"}],
                                           text: `compute ${fmtSeconds(s)} · wait ${fmtSeconds(waits[rank] || 0)}`}));
  }
  const top = Math.max(1e-9, ...rows.filter((r) => r.parts).map((r) => r.parts.reduce((t, p) => t + p.value, 0)));
  document.getElementById("timing-summary").textContent =
    groups.length ? "" : "(no exchange ran: the plan runs as one fragment per rank)";
  const legend = el("div", {class: "legend"}, el("span", {class: "swatch compute"}), " local compute ",
                    el("span", {class: "swatch comm"}), " communication ",
                    el("span", {class: "swatch wait"}), " waiting for slower ranks");
  document.getElementById("bars").replaceChildren(legend, barChart(rows, top, fmtSeconds));
  document.getElementById("timeline").replaceChildren(legend.cloneNode(true), timeline(doc, groups));
}

// A stage's time on one rank as bar parts, in the order they happen: the local work, the wait for
// the slowest rank to finish its own, the data moving.
function stageParts(r, stage) {
  const title = stage ? stage + ": " : "";
  return [{value: r.compute_seconds, cls: "compute", title: title + "compute"},
          {value: r.wait_seconds || 0, cls: "wait", title: title + "waiting"},
          {value: r.comm_seconds, cls: "comm", title: title + "communication"}];
}

// One bar per rank: its stages end to end in the order they finished on that rank, then the final
// fragment. The times are exclusive (a stage's compute leaves out the stages nested in it), so a
// bar's length is the rank's whole run and the ranks' waits line up against their stragglers.
function timeline(doc, groups) {
  const finals = doc.analyze.final_compute_seconds || [];
  const waits = doc.analyze.final_wait_seconds || [];
  const peaks = doc.analyze.peak_memory_bytes || [];
  const ranks = Math.max(finals.length, ...groups.map((g) => g.node.actual.per_rank.length));
  const rows = [];
  for (let rank = 0; rank < ranks; rank++) {
    const stages = [];
    for (const {node} of groups) {
      const r = node.actual.per_rank.find((p) => p.rank === rank);
      if (r) stages.push({r, name: `Exchange #${node.exchange.id} ${node.exchange.kind}`});
    }
    stages.sort((a, b) => a.r.finished_seconds - b.r.finished_seconds);
    const parts = stages.flatMap(({r, name}) => stageParts(r, name));
    parts.push({value: finals[rank] || 0, cls: "compute", title: "final fragment: compute"},
               {value: waits[rank] || 0, cls: "wait", title: "final fragment: waiting"});
    const total = (cls) => parts.filter((p) => p.cls === cls).reduce((t, p) => t + p.value, 0);
    rows.push({label: `rank ${rank}`, parts,
               text: `compute ${fmtSeconds(total("compute"))} · comm ${fmtSeconds(total("comm"))} · ` +
                     `wait ${fmtSeconds(total("wait"))}` + (peaks[rank] ? ` · peak memory ${fmtBytes(peaks[rank])}` : "")});
  }
  const top = Math.max(1e-9, ...rows.map((r) => r.parts.reduce((t, p) => t + p.value, 0)));
  return barChart(rows, top, fmtSeconds, "timeline");
}

// Horizontal stacked bars in an inline SVG: rows of {label, parts: [{value, cls}], text} or {heading}.
function barChart(rows, top, fmt, cls) {
  const labelW = 70, barW = 420, textW = 520, rowH = 22, headH = 26;
  let y = 4;
  const g = svg("g");
  for (const row of rows) {
    if (row.heading) {
      g.append(svg("text", {x: 0, y: y + 17, class: "bar-heading"}, row.heading));
      y += headH;
      continue;
    }
    g.append(svg("text", {x: 0, y: y + 15, class: "bar-label"}, row.label));
    let x = labelW;
    for (const p of row.parts) {
      const w = Math.max(p.value > 0 ? 1 : 0, (p.value / top) * barW);
      const rect = svg("rect", {x, y: y + 3, width: w, height: rowH - 6, class: "bar " + p.cls});
      rect.append(svg("title", {}, `${p.title || p.cls}: ${fmt(p.value)}`));
      g.append(rect);
      x += w;
    }
    g.append(svg("text", {x: labelW + barW + 10, y: y + 15, class: "bar-text"}, row.text));
    y += rowH;
  }
  const chart = svg("svg", {width: labelW + barW + textW, height: y + 4, class: "bars" + (cls ? " " + cls : ""),
                            viewBox: `0 0 ${labelW + barW + textW} ${y + 4}`});
  chart.append(g);
  return chart;
}

// --- benchmark reports (tpch bench, server/console.py's /api/reports) ------------------------

async function loadReports() {
  try {
    const doc = await api("/api/reports");
    const folder = document.getElementById("reports-folder");
    folder.textContent = doc.folder
      ? `${doc.reports.length} report(s) of flocksql tpch bench in ${doc.folder}`
      : "No reports folder: start the server with --console-reports DIR (a flocksql tpch bench --out folder).";
    const box = document.getElementById("reports");
    box.replaceChildren(...doc.reports.map(reportSection));
    showError("error", null);
  } catch (err) {
    showError("error", err);
  }
}

function reportSection(r) {
  const charts = r.charts.map(name => el("img", {src: "/reports/" + encodeURIComponent(name), alt: name,
                                                 class: "chart"}));
  return el("section", {class: "report", "data-report": r.name},
            el("h2", {}, r.name, " ", el("span", {class: "muted"}, `${r.kind || ""} · ${new Date(r.modified * 1000).toLocaleString("en-GB")}`)),
            el("div", {class: "charts"}, charts),
            markdownBlocks(r.markdown));
}

// The subset of Markdown that tpch/report.py writes: headings, pipe tables, paragraphs, bold.
function markdownBlocks(text) {
  const out = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("|")) {
      const rows = [];
      while (i < lines.length && lines[i].startsWith("|")) rows.push(lines[i++]);
      i--;
      out.push(markdownTable(rows));
    } else if (/^#+ /.test(line)) {
      out.push(el("h3", {}, inline(line.replace(/^#+ /, ""))));
    } else if (line.trim()) {
      out.push(el("p", {}, inline(line)));
    }
  }
  return out;
}

function markdownTable(rows) {
  const cells = row => row.replace(/^\|/, "").replace(/\|$/, "").split("|").map(c => c.trim());
  const body = rows.filter((row, i) => !(i === 1 && /^[\s|:-]+$/.test(row)));
  const [head, ...rest] = body.map(cells);
  return el("table", {class: "report-table"},
            el("thead", {}, el("tr", {}, head.map(c => el("th", {}, inline(c))))),
            el("tbody", {}, rest.map(r => el("tr", {}, r.map(c => el("td", {}, inline(c)))))));
}

function inline(text) {  // **bold** and `code`; everything else as text
  return text.split(/(\*\*[^*]+\*\*|`[^`]+`)/).filter(Boolean).map(part =>
    part.startsWith("**") ? el("strong", {}, part.slice(2, -2))
      : part.startsWith("`") ? el("code", {}, part.slice(1, -1)) : part);
}

// --- start --------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "queries") {
    loadSummary();
    loadQueries();
    setInterval(loadQueries, REFRESH_MS);
  } else if (page === "flock") {
    loadFlock();
    setInterval(loadFlock, REFRESH_MS * 2);
  } else if (page === "query") {
    loadQuery();
  } else if (page === "reports") {
    loadSummary();
    loadReports();
  }
});
