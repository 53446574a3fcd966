// Atlas Compliance console: PII classifications and reports. Vanilla JS, no build step.
"use strict";
(() => {
  const $ = (sel) => document.querySelector(sel);
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const PAGE = 100;
  const API = "/api/v1/admin/compliance";
  const viewerTz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const FIELDS = ["reportType", "from", "to", "userId", "role", "table"];
  let current = null;   // the state of the report on screen
  let rows = [];
  let sort = null;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (options.method && options.method !== "GET") { headers["X-CSRF-Token"] = csrf; headers["Content-Type"] = "application/json"; }
    const resp = await fetch(path, { credentials: "same-origin", ...options, headers });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (resp.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    if (!resp.ok) { const err = new Error(body?.message || `HTTP ${resp.status}`); err.status = resp.status; err.body = body; throw err; }
    return body;
  }

  // ---------- URL state ----------
  const localDate = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  function urlState() {
    const p = new URLSearchParams(location.search);
    const today = new Date(); const start = new Date(); start.setDate(today.getDate() - 29);
    return { tab: p.get("tab") === "reports" ? "reports" : "classifications",
      reportType: p.get("reportType") === "user-activity" ? "user-activity" : "data-access",
      from: p.get("from") || "", to: p.get("to") || "", userId: p.get("userId") || "", role: p.get("role") || "",
      table: p.get("table") || "", tz: p.get("tz") || viewerTz,
      defaults: { from: localDate(start), to: localDate(today) } };
  }
  function pushState(state, replace = false) {
    const p = new URLSearchParams();
    p.set("tab", state.tab);
    if (state.tab === "reports") {
      for (const k of FIELDS) if (state[k]) p.set(k, state[k]);
      if (state.from && state.tz) p.set("tz", state.tz);
    }
    const url = `${location.pathname}?${p}`;
    if (url !== location.pathname + location.search) history[replace ? "replaceState" : "pushState"](null, "", url);
  }

  // ---------- tabs ----------
  function showTab(tab) {
    for (const name of ["classifications", "reports"]) {
      $(`#panel-${name}`).hidden = name !== tab;
      const link = $(`#tab-${name}`);
      link.classList.toggle("active", name === tab);
      if (name === tab) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
  }
  for (const name of ["classifications", "reports"]) {
    $(`#tab-${name}`).addEventListener("click", (ev) => {
      ev.preventDefault();
      const state = { ...urlState(), tab: name };
      pushState(state); showTab(name);
      if (name === "classifications") loadClassifications(); else applyReportState(state);
    });
  }

  // ---------- formatting ----------
  const fmtInt = (n) => Number(n).toLocaleString();
  function timeCell(iso) {
    if (!iso) return el("td", { text: "—" });
    const d = new Date(iso);
    return el("td", { title: `${iso} (UTC)`, "data-utc": iso, text: d.toLocaleString() });
  }
  const stat = (label, value, cls = "") => el("div", { class: `stat ${cls}` }, el("div", { class: "label", text: label }),
    el("div", { class: "value", text: fmtInt(value), "data-stat": label }));

  // ---------- classifications ----------
  async function loadClassifications() {
    const include = $("#show-dismissed").checked ? "?includeDismissed=true" : "";
    $("#pii-error").hidden = true;
    try {
      const body = await api(`${API}/classifications${include}`);
      renderClassifications(body);
    } catch (err) { $("#pii-error").textContent = err.message; $("#pii-error").hidden = false; }
  }
  function renderClassifications(body) {
    const s = body.summary;
    $("#pii-cards").replaceChildren(stat("Total PII columns", s.total), stat("High confidence", s.highConfidence, "high"),
      stat("Unreviewed", s.unreviewed, "pending"), stat("Tables affected", s.tablesAffected));
    $("#review-all").hidden = s.unreviewed === 0;
    const tbody = $("#pii-table tbody");
    tbody.replaceChildren(...body.classifications.map((c) => {
      const status = c.dismissed ? "dismissed" : (c.reviewed ? "reviewed" : "pending");
      const who = `${c.tableName}.${c.columnName}`;
      const act = (label, handler, cls = "secondary") => el("button", { type: "button", class: `${cls} small`,
        "aria-label": `${label} ${who}`, onclick: handler }, label);
      const actions = [act("Edit", () => openEdit(c))];
      if (!c.dismissed && !c.reviewed) actions.push(act("Mark reviewed", () => update(c.id, { reviewed: true })));
      if (!c.dismissed) actions.push(act("Dismiss", () => update(c.id, { dismissed: true, reviewed: true })));
      else actions.push(act("Restore", () => update(c.id, { dismissed: false })));
      actions.push(act("Delete", () => confirmDelete(c), "danger"));
      return el("tr", { "data-id": c.id, "data-column": who },
        el("td", { class: "mono", text: c.tableName }), el("td", { class: "mono", text: c.columnName }),
        el("td", { text: c.category.replace(/_/g, " ") }),
        el("td", {}, el("span", { class: `badge ${c.confidence}`, text: c.confidence })),
        el("td", {}, el("div", { text: c.method || "—" }), el("div", { class: "reason", text: c.reason || "" })),
        el("td", { text: c.maskingStrategy }),
        el("td", {}, el("span", { class: `badge ${status}`, text: status[0].toUpperCase() + status.slice(1) })),
        el("td", {}, el("div", { class: "row-actions" }, actions)));
    }));
    $("#pii-empty").hidden = body.classifications.length > 0;
    $("#pii-table").hidden = body.classifications.length === 0;
  }
  async function update(id, change) {
    try { await api(`${API}/classifications/${encodeURIComponent(id)}`, { method: "PUT", body: JSON.stringify(change) }); }
    catch (err) { $("#pii-error").textContent = err.message; $("#pii-error").hidden = false; return; }
    await loadClassifications();
  }
  let editing = null;
  function openEdit(c) {
    editing = c;
    $("#edit-target").textContent = `${c.tableName}.${c.columnName}`;
    $("#edit-category").value = c.category; $("#edit-strategy").value = c.maskingStrategy;
    $("#edit-error").hidden = true;
    $("#edit-dialog").showModal();
  }
  $("#edit-cancel").addEventListener("click", () => $("#edit-dialog").close());
  $("#edit-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api(`${API}/classifications/${encodeURIComponent(editing.id)}`, { method: "PUT",
        body: JSON.stringify({ category: $("#edit-category").value, maskingStrategy: $("#edit-strategy").value, reviewed: true }) });
      $("#edit-dialog").close(); await loadClassifications();
    } catch (err) { $("#edit-error").textContent = err.message; $("#edit-error").hidden = false; }
  });
  function confirmDelete(c) {
    const dialog = $("#confirm-dialog");
    $("#confirm-text").textContent = `Delete the classification of ${c.tableName}.${c.columnName}? A later scan may detect it again.`;
    dialog.returnValue = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "yes") return;
      try { await api(`${API}/classifications/${encodeURIComponent(c.id)}`, { method: "DELETE" }); }
      catch (err) { $("#pii-error").textContent = err.message; $("#pii-error").hidden = false; }
      await loadClassifications();
    };
    dialog.showModal();
  }
  $("#show-dismissed").addEventListener("change", loadClassifications);
  $("#review-all").addEventListener("click", async () => {
    try { await api(`${API}/classifications/review`, { method: "POST", body: "{}" }); }
    catch (err) { $("#pii-error").textContent = err.message; $("#pii-error").hidden = false; }
    await loadClassifications();
  });

  // ---------- reports ----------
  const COLUMNS = {
    "data-access": [["tableName", "Table"], ["user", "User"], ["userRole", "Role"], ["queryCount", "Queries", "num"],
      ["uniqueColumns", "Columns"], ["hasPII", "PII"], ["firstAccess", "First access"], ["lastAccess", "Last access"]],
    "user-activity": [["user", "User"], ["role", "Role"], ["totalQueries", "Total queries", "num"],
      ["tablesAccessed", "Tables accessed"], ["lastActiveAt", "Last active"], ["lastLoginAt", "Last login"]],
  };
  function fillForm(state) {
    $("#f-type").value = state.reportType; $("#f-from").value = state.from || state.defaults.from;
    $("#f-to").value = state.to || state.defaults.to; $("#f-user").value = state.userId;
    $("#f-role").value = state.role; $("#f-table").value = state.table;
  }
  function formState() {
    return { ...urlState(), tab: "reports", reportType: $("#f-type").value, from: $("#f-from").value, to: $("#f-to").value,
      userId: $("#f-user").value.trim(), role: $("#f-role").value, table: $("#f-table").value.trim(), tz: viewerTz };
  }
  function clearErrors() {
    for (const e of document.querySelectorAll(".field-error")) { e.hidden = true; e.textContent = ""; }
    $("#report-error").hidden = true;
  }
  function fieldError(field, message) {
    const node = $(`#err-${field}`);
    if (node) { node.textContent = message; node.hidden = false; } else { $("#report-error").textContent = message; $("#report-error").hidden = false; }
  }
  function validate(state) {
    let ok = true;
    if (!state.from) { fieldError("from", "Choose a start date."); ok = false; }
    if (!state.to) { fieldError("to", "Choose an end date."); ok = false; }
    if (state.from && state.to && state.from > state.to) { fieldError("to", "The end date must not be before the start date."); ok = false; }
    if (state.role && !["owner", "admin", "member"].includes(state.role)) { fieldError("role", "Choose owner, admin or member."); ok = false; }
    return ok;
  }
  function query(state, extra = {}) {
    const p = new URLSearchParams({ startDate: state.from, endDate: state.to, tz: state.tz || viewerTz });
    if (state.userId) p.set("userId", state.userId);
    if (state.role) p.set("role", state.role);
    if (state.table) p.set("table", state.table);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p;
  }
  async function generate(state, offset = 0) {
    clearErrors();
    if (!validate(state)) return;
    $("#report-status").textContent = "Generating…"; $("#generate").disabled = true;
    try {
      const body = await api(`${API}/reports/${state.reportType}?${query(state, { limit: PAGE, offset })}`);
      current = { ...state, offset }; renderReport(body);
      loadVolume(state);
    } catch (err) {
      const msg = err.message; const m = /\b(startDate|endDate|role|table|userId|tz)\b/.exec(msg);
      const map = { startDate: "from", endDate: "to", role: "role", table: "table", userId: "userId" };
      fieldError(m ? (map[m[1]] || "none") : "none", msg);
      $("#report-output").hidden = true;
    } finally { $("#report-status").textContent = ""; $("#generate").disabled = false; }
  }
  function renderReport(body) {
    const type = current.reportType; const s = body.summary;
    const cards = type === "data-access"
      ? [stat("Total queries", s.totalQueries), stat("Unique users", s.uniqueUsers), stat("Unique tables", s.uniqueTables),
         stat("PII tables accessed", s.piiTablesAccessed, "pii")]
      : [stat("Total users", s.totalUsers), stat("Active users", s.activeUsers), stat("Total queries", s.totalQueries)];
    $("#report-cards").replaceChildren(...cards);
    const name = type === "data-access" ? "data access records" : "users";
    $("#report-caption").textContent = `${fmtInt(body.totalRows)} ${name} for ${current.from} to ${current.to} (${body.window.tz})`;
    $("#export-csv").href = `${API}/reports/${type}?${query(current, { format: "csv" })}`;
    $("#export-json").href = `${API}/reports/${type}?${query(current, { format: "json", download: "1" })}`;
    rows = body.rows; sort = null;
    renderRows();
    const empty = body.rows.length === 0;
    $("#report-empty").textContent = type === "data-access" ? "No data access records found for the selected period."
      : "No user activity found for the selected period.";
    $("#report-empty").hidden = !empty; $("#report-table").hidden = empty;
    $("#page-info").textContent = empty ? "" : `Rows ${fmtInt(body.offset + 1)}–${fmtInt(body.offset + body.rows.length)} of ${fmtInt(body.totalRows)}`;
    $("#prev-page").disabled = body.offset === 0; $("#next-page").disabled = !body.truncated;
    $("#report-output").hidden = false;
  }
  function sortValue(r, key) {
    if (key === "user") return (r.userEmail || r.userId || "").toLowerCase();
    const v = r[key];
    if (Array.isArray(v)) return v.join(", "); if (typeof v === "boolean") return v ? 1 : 0;
    return v === null || v === undefined ? "" : v;
  }
  function renderRows() {
    const cols = COLUMNS[current.reportType];
    const head = el("tr", {}, cols.map(([key, label, cls]) => {
      const dir = sort && sort.key === key ? (sort.asc ? "ascending" : "descending") : "none";
      return el("th", { scope: "col", class: cls, "aria-sort": dir },
        el("button", { type: "button", onclick: () => { sort = { key, asc: sort && sort.key === key ? !sort.asc : true }; renderRows(); } },
          label, dir === "ascending" ? " ▲" : dir === "descending" ? " ▼" : ""));
    }));
    $("#report-table thead").replaceChildren(head);
    let list = rows.slice();
    if (sort) list.sort((a, b) => { const x = sortValue(a, sort.key), y = sortValue(b, sort.key); return (x < y ? -1 : x > y ? 1 : 0) * (sort.asc ? 1 : -1); });
    $("#report-table tbody").replaceChildren(...list.map((r) => current.reportType === "data-access" ? accessRow(r) : activityRow(r)));
  }
  const userCell = (r) => el("td", { title: r.userId || "queries with no user", text: r.userEmail || r.userId || "(no user)" });
  const roleCell = (role) => el("td", {}, role ? el("span", { class: "badge", text: role }) : "—");
  function accessRow(r) {
    const pii = new Set(r.piiColumns);
    const cols = r.uniqueColumns.length ? r.uniqueColumns.map((c, i) => [i ? ", " : "", pii.has(c) ? el("span", { class: "pii-col", title: "classified PII", text: c }) : c]) : ["—"];
    return el("tr", {}, el("td", { class: "mono", text: r.tableName }), userCell(r), roleCell(r.userRole),
      el("td", { class: "num", text: fmtInt(r.queryCount) }), el("td", { class: "mono" }, cols),
      el("td", {}, r.hasPII ? el("span", { class: "badge pii", text: "PII" }) : "—"), timeCell(r.firstAccess), timeCell(r.lastAccess));
  }
  function activityRow(r) {
    return el("tr", {}, userCell(r), roleCell(r.role), el("td", { class: "num", text: fmtInt(r.totalQueries) }),
      el("td", { class: "mono", text: r.tablesAccessed.join(", ") || "—" }), timeCell(r.lastActiveAt), timeCell(r.lastLoginAt));
  }
  async function loadVolume(state) {
    try {
      const body = await api(`/admin/compliance/volume?${query(state)}`);
      drawChart(body.days || []);
    } catch (err) { $("#chart").textContent = "No chart: " + err.message; }
  }
  function drawChart(days) {
    const ns = "http://www.w3.org/2000/svg"; const svg = document.createElementNS(ns, "svg");
    const w = 800, h = 140, pad = 18; svg.setAttribute("viewBox", `0 0 ${w} ${h}`); svg.setAttribute("role", "img");
    svg.setAttribute("preserveAspectRatio", "none");
    const total = days.reduce((a, d) => a + d.count, 0);
    svg.setAttribute("aria-label", `Daily query volume: ${days.length} days, ${total} queries`);
    const max = Math.max(1, ...days.map((d) => d.count)); const bw = days.length ? (w - pad) / days.length : w;
    days.forEach((d, i) => {
      const bh = Math.max(1, (d.count / max) * (h - pad * 2)); const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", pad + i * bw + 1); rect.setAttribute("y", h - pad - bh); rect.setAttribute("width", Math.max(1, bw - 2));
      rect.setAttribute("height", bh); const t = document.createElementNS(ns, "title"); t.textContent = `${d.day}: ${d.count}`;
      rect.append(t); svg.append(rect);
    });
    for (const [x, label] of [[pad, days[0]?.day], [w - 70, days[days.length - 1]?.day]]) {
      if (!label) continue; const t = document.createElementNS(ns, "text"); t.setAttribute("x", x); t.setAttribute("y", h - 4); t.textContent = label; svg.append(t);
    }
    const top = document.createElementNS(ns, "text"); top.setAttribute("x", 2); top.setAttribute("y", 12); top.textContent = `max ${max}/day`; svg.append(top);
    $("#chart").replaceChildren(svg);
  }
  $("#report-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const state = formState(); clearErrors();
    if (!validate(state)) return;
    pushState(state); generate(state);
  });
  $("#f-type").addEventListener("change", () => { $("#report-output").hidden = true; current = null; });
  $("#prev-page").addEventListener("click", () => current && generate(current, Math.max(0, current.offset - PAGE)));
  $("#next-page").addEventListener("click", () => current && generate(current, current.offset + PAGE));

  function applyReportState(state) {
    fillForm(state); clearErrors();
    if (state.from && state.to) generate(state); else { $("#report-output").hidden = true; current = null; }
  }
  let suggestionsLoaded = false;
  async function loadSuggestions() {
    if (suggestionsLoaded) return; suggestionsLoaded = true;
    try {
      const members = await api("/api/v1/admin/members");
      $("#members").replaceChildren(...members.members.map((m) => el("option", { value: m.userId, label: `${m.email} (${m.role})` })));
      const tables = await api("/admin/compliance/tables");
      $("#tables").replaceChildren(...tables.tables.map((t) => el("option", { value: t })));
    } catch (err) { /* suggestions are optional */ }
  }
  function route() {
    const state = urlState(); showTab(state.tab);
    if (state.tab === "classifications") loadClassifications(); else { loadSuggestions(); applyReportState(state); }
  }
  window.addEventListener("popstate", route);
  route();
})();
