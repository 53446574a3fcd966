// Atlas Compliance console: the Reports tab (filters in the URL, cards, chart, sortable paged table, export).
"use strict";
window.Atlas = window.Atlas || {};
(() => {
  const A = window.Atlas;
  const { $, el } = A;
  const API = "/api/v1/admin/compliance/reports";
  const EVIDENCE_API = "/api/v1/admin/compliance/evidence";
  const PAGE_SIZE = 100;
  const FIELDS = ["reportType", "from", "to", "userId", "role", "table", "actionType", "actor"];
  const ROLES = ["owner", "admin", "member"];
  const DAY = /^\d{4}-\d{2}-\d{2}$/;
  const DAY_OR_TIME = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|z|[+-]\d{2}(:?\d{2})?)?)?$/;

  const TYPES = {
    "data-access": {
      title: "Data Access Details", noun: ["entry", "entries"],
      empty: "No data access records found for the selected period.",
      // The report counts queries that touched a table; the chart counts every query: both are shown.
      cards: [["Queries touching a table", "totalQueries", "",
        (s) => `of ${A.fmtInt(s.allQueries)} queries in all, as in the chart`],
        ["Unique users", "uniqueUsers"], ["Unique tables", "uniqueTables"],
        ["PII tables accessed", "piiTablesAccessed", "stat-danger"]],
      columns: [["tableName", "Table"], ["user", "User"], ["userRole", "Role at window end"], ["queryCount", "Queries", "num"],
        ["uniqueColumns", "Columns"], ["piiColumns", "PII"], ["firstAccess", "First access"], ["lastAccess", "Last access"]],
    },
    "user-activity": {
      title: "User Activity Details", noun: ["user", "users"],
      empty: "No user activity found for the selected period.",
      cards: [["Total users", "totalUsers"], ["Active users", "activeUsers"],
        ["Total queries", "totalQueries", "", (s) => `${A.fmtInt(s.tableQueries)} of them touched a table`]],
      columns: [["user", "User"], ["role", "Role at window end"], ["totalQueries", "Total queries", "num"],
        ["tablesAccessed", "Tables accessed"], ["lastActiveAt", "Last active"], ["lastLoginAt", "Last login"]],
    },
  };

  let shown = null;        // {state, body}: the report on screen (exports are built from this, not the form)
  let sort = null;         // {key, asc}
  let seq = 0;
  let controller = null;
  let membersLoaded = false;
  const members = new Map(); // userId -> member
  const tables = new Set();

  // ---------- state ----------
  function defaults() {
    const today = new Date();
    const start = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 29);
    return { from: A.localDate(start), to: A.localDate(today) };
  }
  const sameState = (a, b) => !!a && !!b && [...FIELDS, "tz"].every((k) => (a[k] || "") === (b[k] || ""));

  function fillForm(state) {
    const d = defaults();
    $("#f-type").value = known(state.reportType) ? state.reportType : "data-access";
    $("#f-from").value = state.from || d.from;
    $("#f-to").value = state.to || d.to;
    $("#f-user").value = state.userId || "";
    $("#f-role").value = ROLES.includes(state.role) ? state.role : "";
    $("#f-table").value = state.table || "";
    $("#f-action").value = state.actionType || "";
    $("#f-actor").value = state.actor || "";
    updateUserHint();
    showFieldsFor($("#f-type").value);
  }

  const known = (type) => !!TYPES[type] || A.activity.handles(type);

  /** Only the filters a report type takes are shown (user, role and table for the two reports; action type
   *  and actor for privileged actions); hidden ones are not sent. */
  function showFieldsFor(type) {
    for (const node of document.querySelectorAll("#report-form [data-types]")) {
      node.hidden = !node.dataset.types.split(" ").includes(type);
    }
  }

  /** The form as a report state; dates are read in the time zone of the link (if any) or the viewer's. */
  function readForm() {
    const url = A.readUrl();
    const type = $("#f-type").value;
    const report = !!TYPES[type], actions = type === "privileged-actions"; // only the filters the type takes
    return { tab: "reports", reportType: type, from: $("#f-from").value, to: $("#f-to").value,
      userId: report ? $("#f-user").value.trim() : "", role: report ? $("#f-role").value : "",
      table: report ? $("#f-table").value.trim() : "", actionType: actions ? $("#f-action").value.trim() : "",
      actor: actions ? $("#f-actor").value.trim() : "", tz: url.tz || A.viewerTz };
  }

  // ---------- validation ----------
  function validate(state) {
    const errors = {};
    if (!known(state.reportType)) errors.reportType = "Choose a report type.";
    if (!state.from) errors.from = "Choose a start date.";
    else if (!DAY_OR_TIME.test(state.from)) errors.from = `“${state.from}” is not a date: use YYYY-MM-DD.`;
    if (!state.to) errors.to = "Choose an end date.";
    else if (!DAY_OR_TIME.test(state.to)) errors.to = `“${state.to}” is not a date: use YYYY-MM-DD.`;
    if (!errors.from && !errors.to && DAY.test(state.from) && DAY.test(state.to) && state.to < state.from) {
      errors.to = "The end date is before the start date.";
    }
    if (TYPES[state.reportType] && state.role && !ROLES.includes(state.role)) {
      errors.role = `Unknown role “${state.role}”: choose All roles, Owner, Admin or Member.`;
    }
    return errors;
  }

  function clearErrors() {
    for (const node of document.querySelectorAll("#report-form .field-error")) { node.hidden = true; node.textContent = ""; }
    for (const node of document.querySelectorAll("#report-form [aria-invalid]")) node.removeAttribute("aria-invalid");
    $("#report-error").hidden = true;
  }

  const INPUTS = { reportType: "#f-type", from: "#f-from", to: "#f-to", userId: "#f-user", role: "#f-role", table: "#f-table",
    actionType: "#f-action", actor: "#f-actor" };
  function showErrors(errors, { focus = false } = {}) {
    let first = null;
    for (const [field, message] of Object.entries(errors)) {
      const slot = $(`#err-${field}`);
      if (!slot) { $("#report-error").textContent = message; $("#report-error").hidden = false; continue; }
      slot.textContent = message;
      slot.hidden = false;
      $(INPUTS[field]).setAttribute("aria-invalid", "true");
      first = first || $(INPUTS[field]);
    }
    if (focus && first) first.focus();
  }

  /** The field an API error is about: the 400 message names the parameter (startDate, endDate, role, …). */
  function fieldOf(err) {
    if (err.code === "invalid_range") return "to";
    const named = /\b(startDate|endDate|userId|role|table|actionType|actor)\b/.exec(err.message || "");
    return named ? { startDate: "from", endDate: "to", userId: "userId", role: "role", table: "table",
      actionType: "actionType", actor: "actor" }[named[1]] : "general";
  }

  // ---------- API URLs ----------
  function params(state, extra = {}) {
    const p = new URLSearchParams({ startDate: state.from, endDate: state.to, tz: state.tz || A.viewerTz });
    for (const key of ["userId", "role", "table"]) if (state[key]) p.set(key, state[key]);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p;
  }
  const reportUrl = (state, extra) => `${API}/${state.reportType}?${params(state, extra)}`;

  // ---------- generate ----------
  async function generate(state, offset = 0, { focusErrors = false } = {}) {
    clearErrors();
    const errors = validate(state);
    if (Object.keys(errors).length) {
      showErrors(errors, { focus: focusErrors });
      hideOutput();
      return;
    }
    const mine = ++seq;
    controller?.abort();
    controller = new AbortController();
    $("#report-status").textContent = "Generating compliance report…";
    $("#generate").setAttribute("aria-disabled", "true");
    try {
      if (A.activity.handles(state.reportType)) {
        hideOutput();
        await A.activity.generate(state, { signal: controller.signal, isCurrent: () => mine === seq });
        if (mine === seq) { $("#report-status").textContent = ""; markDirty(); }
        return;
      }
      A.activity.hide();
      const body = await A.api(reportUrl(state, { limit: PAGE_SIZE, offset }), { signal: controller.signal });
      if (mine !== seq) return;
      const newReport = !shown || !sameState(shown.state, state);
      if (newReport) sort = null;
      shown = { state: { ...state }, body };
      render();
      $("#report-status").textContent = "";
      if (newReport) loadVolume(state, mine);
      if (state.reportType === "data-access") addTables(body.rows.map((r) => r.tableName));
    } catch (err) {
      if (err.name === "AbortError" || mine !== seq) return;
      $("#report-status").textContent = "";
      const field = fieldOf(err);
      showErrors({ [field === "general" ? "general" : field]: err.message }, { focus: focusErrors });
      hideOutput();
      A.activity.hide();
    } finally {
      if (mine === seq) $("#generate").removeAttribute("aria-disabled");
    }
  }

  function hideOutput() {
    shown = null;
    $("#report-output").hidden = true;
    delete $("#report-output").dataset.for;
  }

  /** A summary card; `hint` (optional) is a second, smaller line under the figure. */
  function statCard(label, value, cls = "", hint = "") {
    return el("div", { class: `stat ${cls}` }, el("p", { class: "stat-label" }, label),
      el("p", { class: "stat-value", "data-stat": label }, A.fmtInt(value)),
      ...(hint ? [el("p", { class: "stat-hint", "data-hint": label }, hint)] : []));
  }

  function render() {
    const { state, body } = shown;
    const type = TYPES[state.reportType];
    const cards = $("#report-cards");
    cards.className = `cards ${type.cards.length === 3 ? "cards-3" : ""}`;
    cards.replaceChildren(...type.cards.map(([label, key, cls, hint]) =>
      statCard(label, body.summary[key], cls, hint ? hint(body.summary) : "")));
    $("#results-heading").textContent = type.title;
    const noun = type.noun[body.totalRows === 1 ? 0 : 1];
    const zone = body.window.tz === A.viewerTz ? "" : ` (dates in ${body.window.tz})`;
    $("#results-desc").textContent = `${A.fmtInt(body.totalRows)} ${noun} for ${state.from} to ${state.to}${zone}. ` +
      `Times are shown in your time zone, ${A.viewerTz}; hover a time for UTC.`;
    $("#export-csv").href = reportUrl(state, { format: "csv" });
    $("#export-json").href = reportUrl(state, { format: "json", download: "1" });
    $("#export-evidence").href = `${EVIDENCE_API}?${params(state)}`;
    const empty = body.rows.length === 0;
    $("#report-empty").textContent = type.empty;
    $("#report-empty").hidden = !empty;
    $("#report-wrap").hidden = empty;
    $("#report-scroll-hint").hidden = empty;
    $("#sort-hint").hidden = empty;
    renderTable();
    const pages = body.totalRows > body.limit;
    $("#pager").hidden = !pages;
    $("#page-info").textContent = empty ? "" :
      `Rows ${A.fmtInt(body.offset + 1)}–${A.fmtInt(body.offset + body.rows.length)} of ${A.fmtInt(body.totalRows)}`;
    $("#prev-page").disabled = body.offset === 0;
    $("#next-page").disabled = !body.truncated;
    $("#report-output").hidden = false;
    $("#report-output").dataset.for = A.urlFor({ ...state, tab: "reports" }); // which URL state is on screen
    markDirty();
  }

  // ---------- table ----------
  function sortValue(row, key) {
    if (key === "user") return (row.userEmail || row.userLabel || row.userId || "\uffff").toLowerCase();
    const v = row[key];
    if (Array.isArray(v)) return v.length;
    if (v === null || v === undefined) return null;
    return typeof v === "string" ? v.toLowerCase() : v;
  }
  function compare(a, b) {
    if (a === b) return 0;
    if (a === null) return 1;   // empty values last, whatever the direction
    if (b === null) return -1;
    return a < b ? -1 : 1;
  }

  function renderTable() {
    const { state, body } = shown;
    const columns = TYPES[state.reportType].columns;
    $("#report-table thead").replaceChildren(el("tr", {}, columns.map(([key, label, cls]) => {
      const direction = sort?.key === key ? (sort.asc ? "ascending" : "descending") : null;
      return el("th", { scope: "col", class: cls, "aria-sort": direction },
        el("button", { type: "button", class: "sort", "data-sort": key, onclick: () => sortBy(key) }, label));
    })));
    let rows = body.rows;
    if (sort) {
      const dir = sort.asc ? 1 : -1;
      rows = rows.map((r, i) => [r, i]).sort(([a, i], [b, j]) => {
        const x = sortValue(a, sort.key), y = sortValue(b, sort.key);
        if (x === null || y === null) return compare(x, y) || i - j;
        return dir * compare(x, y) || i - j;
      }).map(([r]) => r);
    }
    const make = state.reportType === "data-access" ? accessRow : activityRow;
    $("#report-table tbody").replaceChildren(...rows.map(make));
  }

  /** Ascending, descending, then the report's own order again. */
  function sortBy(key) {
    sort = sort?.key !== key ? { key, asc: true } : sort.asc ? { key, asc: false } : null;
    renderTable();
    document.querySelector(`#report-table [data-sort="${key}"]`)?.focus();
  }

  // Members by email; ids that never were members by the label their queries carried (muted, marked as such).
  const userCell = (r) => el("td", { class: "nowrap", title: r.userId ? `User id: ${r.userId}` : "Queries recorded without a user" },
    r.userEmail || (r.userLabel ? el("span", { class: "user-label", "data-label-of": r.userId },
      r.userLabel, el("span", { class: "muted" }, " (not a member)")) : null) ||
    r.userId || el("span", { class: "muted" }, "No user"));
  const roleCell = (role) => el("td", {}, role ? el("span", { class: "badge badge-accent" }, role[0].toUpperCase() + role.slice(1))
    : el("span", { class: "muted" }, "—"));

  /** A row's count, linked to the recorded events behind it (the report counts successful queries only).
   *  Rows without a user id have no link: the events listing cannot select "no user". */
  function eventsLink(text, filters, label) {
    if (!filters.userId) return text;
    return el("a", { href: A.events.linkFor(shown.state, { ...filters, success: "true" }), title: label,
      "aria-label": label }, text);
  }

  function accessRow(r) {
    const pii = new Set(r.piiColumns);
    const columns = r.uniqueColumns.length
      ? el("div", { class: "chips" }, r.uniqueColumns.map((c) => pii.has(c)
        ? el("span", { class: "chip chip-pii", title: "Classified as PII" }, c, el("span", { class: "sr-only" }, " (PII)"))
        : el("span", { class: "chip" }, c)))
      : el("span", { class: "muted" }, "—");
    const piiTitle = r.piiColumns.length ? `PII columns read: ${r.piiColumns.join(", ")}` : "The table holds PII columns";
    const piiCell = r.hasPII
      ? el("span", { class: "badge badge-danger", title: piiTitle }, "PII",
        r.piiColumns.length ? el("span", { class: "badge-count" }, String(r.piiColumns.length)) : null)
      : el("span", { class: "muted" }, "—");
    return el("tr", {},
      el("td", { class: "mono" }, r.tableName), userCell(r), roleCell(r.userRole),
      el("td", { class: "num" }, eventsLink(A.fmtInt(r.queryCount), { userId: r.userId, table: r.tableName },
        `Show the ${A.fmtInt(r.queryCount)} queries of ${r.userEmail || r.userId} on ${r.tableName}`)),
      el("td", {}, columns), el("td", {}, piiCell),
      el("td", {}, A.timeEl(r.firstAccess)), el("td", {}, A.timeEl(r.lastAccess)));
  }

  function activityRow(r) {
    const list = r.tablesAccessed;
    const tablesCell = list.length
      ? el("div", { class: "chips" }, list.slice(0, 12).map((t) => el("span", { class: "chip" }, t)),
        list.length > 12 ? el("span", { class: "muted", title: list.join(", ") }, `+${list.length - 12} more`) : null)
      : el("span", { class: "muted" }, "—");
    const queries = eventsLink(A.fmtInt(r.totalQueries), { userId: r.userId, table: shown.state.table },
      `Show the queries of ${r.userEmail || r.userId}`);
    return el("tr", {}, userCell(r), roleCell(r.role), el("td", { class: "num" }, queries),
      el("td", {}, tablesCell), el("td", {}, A.timeEl(r.lastActiveAt)), el("td", {}, A.timeEl(r.lastLoginAt)));
  }

  // ---------- chart ----------
  async function loadVolume(state, mine) {
    const chart = $("#chart");
    const filtered = state.userId || state.role || state.table;
    $("#chart-desc").textContent = `Queries per day in ${state.tz || A.viewerTz}, all users and tables` +
      (filtered ? " (the filters apply to the table below, not to this chart)." : ".");
    A.chartMessage(chart, "Loading…");
    try {
      const body = await A.api(`/api/v1/admin/compliance/volume?${params(state)}`);
      if (mine !== seq) return;
      A.drawVolumeChart(chart, body.days);
    } catch (err) {
      if (mine === seq) A.chartMessage(chart, `No chart: ${err.message}`);
    }
  }

  // ---------- suggestions ----------
  function addTables(names) {
    let added = false;
    for (const name of names) if (name && !tables.has(name)) { tables.add(name); added = true; }
    if (added) $("#table-options").replaceChildren(...[...tables].sort().map((t) => el("option", { value: t })));
  }

  async function loadMembers() {
    if (membersLoaded) return;
    membersLoaded = true;
    try {
      const body = await A.api("/api/v1/admin/members");
      for (const m of body.members) members.set(m.userId, m);
      $("#member-options").replaceChildren(...body.members.map((m) =>
        el("option", { value: m.userId, label: `${m.email} (${m.role})` })));
      updateUserHint();
    } catch { membersLoaded = false; /* suggestions only: typing an id still works */ }
  }

  function updateUserHint() {
    const input = $("#f-user");
    const value = input.value.trim();
    const byEmail = [...members.values()].find((m) => m.email.toLowerCase() === value.toLowerCase());
    if (byEmail) input.value = byEmail.userId; // typing a member's email picks that member
    const m = members.get(input.value.trim());
    $("#user-hint").textContent = m ? `${m.email} · ${m.role}`
      : value ? "Not a current member: matched as a user id." : "Pick a member or type a user id.";
  }

  function markDirty() {
    const onScreen = shown?.state || A.activity.current();
    if (!onScreen) return;
    const dirty = !sameState({ ...readForm(), tz: onScreen.tz }, onScreen);
    $("#report-status").textContent = dirty ? "Filters changed: generate the report to update the results." : "";
  }

  // ---------- entry points ----------
  /** Show the Reports tab for a URL state: generate when the URL carries the dates. */
  let tablesRequested = false;
  function show(urlState) {
    loadMembers();
    if (!tablesRequested) { tablesRequested = true; A.classifications.load(); } // classified tables: suggestions
    clearErrors();
    fillForm(urlState);
    if (urlState.from && urlState.to) {
      // A link without tz reads its dates in the viewer's zone: say so in the URL, then generate.
      const state = { ...urlState, tz: urlState.tz || A.viewerTz };
      A.writeUrl(state, { replace: true });
      if (!sameState(shown?.state || A.activity.current(), state)) generate(state);
    } else {
      hideOutput();
      A.activity.hide();
      $("#report-status").textContent = "";
    }
  }

  /** The URL state of the report on screen (what the Reports tab link should restore). */
  const currentState = () => (shown ? { ...shown.state, tab: "reports" } : A.activity.current() || { tab: "reports" });

  function init() {
    $("#report-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const state = readForm();
      clearErrors();
      const errors = validate(state);
      if (Object.keys(errors).length) { showErrors(errors, { focus: true }); return; }
      A.writeUrl(state);
      generate(state, 0, { focusErrors: true });
    });
    $("#report-form").addEventListener("input", markDirty);
    $("#f-type").addEventListener("change", () => showFieldsFor($("#f-type").value));
    $("#report-form").addEventListener("change", markDirty);
    $("#f-user").addEventListener("change", updateUserHint);
    $("#prev-page").addEventListener("click", () => shown && generate(shown.state, Math.max(0, shown.body.offset - PAGE_SIZE)));
    $("#next-page").addEventListener("click", () => shown && generate(shown.state, shown.body.offset + PAGE_SIZE));
    for (const link of [$("#export-csv"), $("#export-json"), $("#export-evidence")]) {
      link.addEventListener("click", (event) => { if (!shown) event.preventDefault(); });
    }
  }

  A.reports = { init, show, currentState, addTables };
})();
