// Atlas Compliance console: the Failed Access and Privileged Actions report types of the Reports tab.
// reports.js owns the form, the URL and errors; this module fetches and renders these two views. Every
// recorded value (table names, emails, error classes, action details) is only ever set as text.
"use strict";
window.Atlas = window.Atlas || {};
(() => {
  const A = window.Atlas;
  const { $, el } = A;
  const API = { "failed-access": "/api/v1/admin/audit/failed-access",
    "privileged-actions": "/api/v1/admin/audit/privileged-actions" };
  const PAGE_SIZE = 100;
  const CLASSES = [["permission_denied", "Permission denied"], ["syntax", "Syntax / parse"],
    ["timeout", "Timeout / cancelled"], ["other", "Other"]];
  // The action types the product records (suggestions only: any type or prefix can be typed).
  const KNOWN_ACTIONS = ["audit_events.*", "audit_retention.*", "audit_retention.policy_update",
    "audit_retention.manual_purge", "compliance.*", "compliance.report_generate", "compliance.report_export",
    "compliance.pii_upsert", "compliance.pii_config_update", "compliance.pii_config_delete", "compliance.pii_review",
    "compliance.pii_scan", "compliance.pii_manual_add", "failed_access.*", "member.*", "member.user_created",
    "member.role_set", "member.remove", "privileged_actions.*", "sources.*", "sources.role_mapped",
    "sources.role_unmapped", "token.*", "token.created", "token.revoked", "user.disable"];

  let shown = null; // {state, body, cursors: [cursor of each page shown so far], page}

  const handles = (type) => Object.hasOwn(API, type);

  function params(state, extra = {}) {
    const p = new URLSearchParams({ startDate: state.from, endDate: state.to, tz: state.tz || A.viewerTz });
    if (state.reportType === "privileged-actions") {
      for (const key of ["actionType", "actor"]) if (state[key]) p.set(key, state[key]);
    }
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p;
  }
  const url = (state, extra) => `${API[state.reportType]}?${params(state, extra)}`;

  /** Fetch and show a view (page `page` of a privileged-actions listing); throws the API's error. */
  async function generate(state, { signal, isCurrent = () => true, page = 0, cursors = [null] } = {}) {
    const extra = state.reportType === "privileged-actions" ? { limit: PAGE_SIZE } : {};
    if (cursors[page]) extra.cursor = cursors[page];
    const body = await A.api(url(state, extra), { signal });
    if (!isCurrent()) return;
    shown = { state: { ...state }, body, cursors, page };
    render();
  }

  function hide() {
    shown = null;
    $("#activity-output").hidden = true;
    delete $("#activity-output").dataset.for;
  }

  function statCard(label, value, cls = "") {
    return el("div", { class: `stat ${cls}` }, el("p", { class: "stat-label" }, label),
      el("p", { class: "stat-value", "data-stat": label }, A.fmtInt(value)));
  }

  function head(table, columns) {
    $(`${table} thead`).replaceChildren(el("tr", {}, columns.map(([label, cls]) => el("th", { scope: "col", class: cls }, label))));
  }

  function render() {
    const { state } = shown;
    const failed = state.reportType === "failed-access";
    (failed ? renderFailed : renderActions)();
    $("#activity-csv").href = url(state, { format: "csv" });
    $("#logins-card").hidden = !failed;
    $("#activity-output").hidden = false;
    $("#activity-output").dataset.for = A.urlFor({ ...state, tab: "reports" }); // which URL state is on screen
  }

  const zoneNote = (body) => (body.window.tz === A.viewerTz ? "" : ` (dates in ${body.window.tz})`);
  const muted = (text) => el("span", { class: "muted" }, text);

  // ---------- failed access ----------
  function renderFailed() {
    const { state, body } = shown;
    const s = body.summary;
    $("#activity-cards").className = "cards";
    $("#activity-cards").replaceChildren(statCard("Failed queries", s.failedQueries, "stat-danger"),
      statCard("Permission denied", s.byClass.permission_denied), statCard("Failed sign-ins", s.failedLogins),
      statCard("Sign-in addresses", s.loginAddresses));
    $("#activity-heading").textContent = "Failed queries per table and user";
    $("#activity-desc").textContent = `${A.fmtInt(s.failedQueries)} failed or refused queries for ${state.from} to ` +
      `${state.to}${zoneNote(body)}: ` + CLASSES.map(([k, label]) => `${label.toLowerCase()} ${A.fmtInt(s.byClass[k])}`).join(", ") +
      ". A query naming several tables counts in each of their rows.";
    head("#activity-table", [["Table"], ["User"], ["Role at window end"], ["Failures", "num"],
      ...CLASSES.map(([, label]) => [label, "num"]), ["First failure"], ["Last failure"]]);
    $("#activity-table tbody").replaceChildren(...body.queries.map((r) => el("tr", {},
      el("td", { class: "mono" }, r.tableName === null ? muted("(no table)") : r.tableName),
      el("td", { class: "nowrap", title: r.userId ? `User id: ${r.userId}` : "Recorded without a user" },
        r.userEmail || r.userLabel || r.userId || muted("No user")),
      el("td", {}, r.userRole || muted("—")),
      el("td", { class: "num" }, failuresLink(r)),
      ...CLASSES.map(([k]) => el("td", { class: "num", "data-class": k }, A.fmtInt(r.byClass[k]))),
      el("td", {}, A.timeEl(r.firstFailure)), el("td", {}, A.timeEl(r.lastFailure)))));
    showEmpty(body.queries.length === 0, "No failed queries in the selected period.");
    $("#activity-pager").hidden = true;
    head("#logins-table", [["Email"], ["Client address"], ["Failed attempts", "num"], ["First"], ["Last"]]);
    $("#logins-table tbody").replaceChildren(...body.logins.map((r) => el("tr", {},
      el("td", { class: "nowrap", title: `User id: ${r.userId}` }, r.email),
      el("td", { class: "mono" }, r.ipAddress || muted("unknown")), el("td", { class: "num" }, A.fmtInt(r.failures)),
      el("td", {}, A.timeEl(r.firstFailure)), el("td", {}, A.timeEl(r.lastFailure)))));
    $("#logins-empty").hidden = body.logins.length > 0;
    $("#logins-wrap").hidden = body.logins.length === 0;
  }

  /** The failures of a row, linked to the failed events behind it (rows with a user and a table only). */
  function failuresLink(r) {
    const text = A.fmtInt(r.failures);
    if (!r.userId || r.tableName === null) return text;
    const label = `Show the ${text} failed queries of ${r.userEmail || r.userId} on ${r.tableName}`;
    return el("a", { href: A.events.linkFor(shown.state, { userId: r.userId, table: r.tableName, success: "false" }),
      title: label, "aria-label": label }, text);
  }

  function showEmpty(empty, message) {
    $("#activity-empty").textContent = message;
    $("#activity-empty").hidden = !empty;
    $("#activity-wrap").hidden = empty;
  }

  // ---------- privileged actions ----------
  function renderActions() {
    const { state, body, page } = shown;
    const n = body.actions.length;
    $("#activity-cards").className = "cards cards-3";
    $("#activity-cards").replaceChildren(statCard("Actions on this page", n),
      statCard("Failed actions", body.actions.filter((a) => a.status !== "success").length, "stat-danger"),
      statCard("Actors", new Set(body.actions.map((a) => a.actorId || a.actorEmail)).size));
    $("#activity-heading").textContent = "Privileged actions";
    $("#activity-desc").textContent = `Admin actions for ${state.from} to ${state.to}${zoneNote(body)}, newest first. ` +
      "Opening this view is itself recorded.";
    head("#activity-table", [["Time"], ["Actor"], ["Action"], ["Target"], ["Status"], ["Address"], ["Details"]]);
    $("#activity-table tbody").replaceChildren(...body.actions.map((a) => el("tr", {},
      el("td", {}, A.timeEl(a.timestamp)),
      el("td", { class: "nowrap", title: a.actorId ? `Actor id: ${a.actorId}` : null }, a.actorEmail || a.actorId || muted("—")),
      el("td", { class: "mono" }, a.actionType),
      el("td", { class: "mono" }, `${a.targetType}: ${a.targetId}`),
      el("td", {}, a.status === "success" ? el("span", { class: "badge badge-accent" }, "Success")
        : el("span", { class: "badge badge-danger" }, a.status)),
      el("td", { class: "mono" }, a.ipAddress || muted("—")),
      el("td", {}, detailsCell(a.details)))));
    showEmpty(n === 0, "No privileged actions in the selected period.");
    addSuggestions(body.actions.map((a) => a.actionType));
    const paged = page > 0 || !!body.nextCursor;
    $("#activity-pager").hidden = !paged;
    $("#activity-page-info").textContent = n ? `Page ${page + 1}` : "";
    $("#activity-prev").disabled = page === 0;
    $("#activity-next").disabled = !body.nextCursor;
  }

  /** Recorded details as folded, pretty JSON text (old and new values where the action recorded them). */
  function detailsCell(details) {
    if (details === null || details === undefined) return muted("—");
    const text = JSON.stringify(details, null, 2);
    const summary = text.length > 80 ? `${JSON.stringify(details).slice(0, 77)}…` : JSON.stringify(details);
    return el("details", {}, el("summary", { class: "mono" }, summary), el("pre", { class: "sql" }, text));
  }

  const suggestions = new Set(KNOWN_ACTIONS);
  function addSuggestions(types) {
    for (const t of types) suggestions.add(t);
    $("#action-options").replaceChildren(...[...suggestions].sort().map((t) => el("option", { value: t })));
  }

  function go(delta) {
    if (!shown) return;
    const { state, body, page } = shown;
    const cursors = [...shown.cursors];
    if (delta > 0) cursors[page + 1] = body.nextCursor;
    generate(state, { page: page + delta, cursors }).catch((err) => {
      $("#report-error").textContent = err.message;
      $("#report-error").hidden = false;
    });
  }

  function init() {
    addSuggestions([]);
    $("#activity-prev").addEventListener("click", () => go(-1));
    $("#activity-next").addEventListener("click", () => go(1));
    $("#activity-csv").addEventListener("click", (event) => { if (!shown) event.preventDefault(); });
  }

  const current = () => (shown ? { ...shown.state, tab: "reports" } : null);
  A.activity = { init, handles, generate, hide, current };
})();
