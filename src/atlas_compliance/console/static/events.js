// Atlas Compliance console: the Audit events tab (the recorded queries behind a report row). Filters live in
// the URL; pages are appended with the API's cursor; recorded SQL is only ever set as text.
"use strict";
window.Atlas = window.Atlas || {};
(() => {
  const A = window.Atlas;
  const { $, el } = A;
  const API = "/api/v1/admin/audit/events";
  const PAGE_SIZE = 100;
  const FOLD_AT = 240; // characters of SQL shown before "Show all"
  const INPUTS = { from: "#e-from", to: "#e-to", success: "#e-success", userId: "#e-user", table: "#e-table",
    column: "#e-column", q: "#e-q" };
  const DAY_OR_TIME = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|z|[+-]\d{2}(:?\d{2})?)?)?$/;

  let shown = null; // {state, events, next}
  let seq = 0;

  function fillForm(state) {
    for (const [key, selector] of Object.entries(INPUTS)) $(selector).value = state[key] || "";
    if (!["", "true", "false"].includes($("#e-success").value)) $("#e-success").value = "";
  }

  function readForm() {
    const state = { tab: "events", tz: A.readUrl().tz || A.viewerTz };
    for (const [key, selector] of Object.entries(INPUTS)) state[key] = $(selector).value.trim();
    return state;
  }

  function params(state, extra = {}) {
    const p = new URLSearchParams({ startDate: state.from, endDate: state.to, tz: state.tz || A.viewerTz });
    for (const key of ["userId", "table", "column", "success", "q"]) if (state[key]) p.set(key, state[key]);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p;
  }

  function showError(message) {
    $("#events-error").textContent = message;
    $("#events-error").hidden = false;
  }

  async function load(state, { more = false } = {}) {
    $("#events-error").hidden = true;
    if (!DAY_OR_TIME.test(state.from || "") || !DAY_OR_TIME.test(state.to || "")) {
      showError("Choose a start and an end date.");
      $("#events-output").hidden = true;
      return;
    }
    const mine = ++seq;
    $("#events-status").textContent = "Loading events…";
    try {
      const extra = { limit: PAGE_SIZE };
      if (more && shown?.next) extra.cursor = shown.next;
      const body = await A.api(`${API}?${params(state, extra)}`);
      if (mine !== seq) return;
      shown = { state: { ...state }, events: more ? [...shown.events, ...body.events] : body.events, next: body.nextCursor };
      render(more ? body.events : null);
      $("#events-status").textContent = "";
    } catch (err) {
      if (mine !== seq) return;
      $("#events-status").textContent = "";
      showError(err.message);
      if (!more) $("#events-output").hidden = true;
    }
  }

  function sqlCell(sql) {
    if (sql.length <= FOLD_AT) return el("pre", { class: "sql" }, sql);
    const short = `${sql.slice(0, FOLD_AT)}…`;
    const text = el("pre", { class: "sql" }, short);
    const label = `Show all ${A.fmtInt(sql.length)} characters`;
    const toggle = el("button", { type: "button", class: "btn-text", "aria-expanded": "false" }, label);
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      text.textContent = open ? sql : short;
      toggle.textContent = open ? "Show less" : label;
      toggle.setAttribute("aria-expanded", String(open));
    });
    return el("div", {}, text, toggle);
  }

  function eventRow(e) {
    const user = e.userEmail || e.userLabel || e.userId;
    const pii = Object.entries(e.piiColumns).flatMap(([t, cols]) => cols.map((c) => `${t}.${c}`));
    const outcome = e.success
      ? el("span", { class: "badge badge-ok" }, "OK")
      : el("span", { class: "badge badge-danger", title: e.error || "Failed" }, "Failed");
    return el("tr", { "data-audit-id": e.auditId },
      el("td", {}, A.timeEl(e.timestamp)),
      el("td", { class: "nowrap", title: e.userId ? `User id: ${e.userId}` : "Recorded without a user" },
        user || el("span", { class: "muted" }, "No user")),
      el("td", {}, outcome, e.error ? el("div", { class: "muted" }, e.error) : null),
      el("td", {}, e.tables.length ? el("div", { class: "chips" }, e.tables.map((t) => el("span", { class: "chip" }, t)))
        : el("span", { class: "muted" }, "—")),
      el("td", {}, pii.length ? el("div", { class: "chips" }, pii.map((c) => el("span", { class: "chip chip-pii" }, c)))
        : el("span", { class: "muted" }, "—")),
      el("td", {}, sqlCell(e.sql)));
  }

  function render(appended) {
    const { state, events, next } = shown;
    const body = $("#events-table tbody");
    if (appended) body.append(...appended.map(eventRow));
    else body.replaceChildren(...events.map(eventRow));
    const empty = events.length === 0;
    $("#events-empty").hidden = !empty;
    $("#events-wrap").hidden = empty;
    const zone = state.tz === A.viewerTz ? "" : ` (dates in ${state.tz})`;
    $("#events-desc").textContent = `${state.from} to ${state.to}${zone}, newest first. ` +
      `Times are shown in your time zone, ${A.viewerTz}.`;
    $("#events-info").textContent = empty ? "" : `${A.fmtInt(events.length)} events shown${next ? "" : " (all)"}`;
    $("#events-more").hidden = !next;
    $("#events-csv").href = `${API}?${params(state, { format: "csv" })}`;
    $("#events-output").hidden = false;
    $("#events-output").dataset.for = A.urlFor(state);
  }

  function show(urlState) {
    fillForm(urlState);
    if (urlState.from && urlState.to) {
      const state = { ...readForm(), tz: urlState.tz || A.viewerTz };
      A.writeUrl(state, { replace: true });
      load(state);
    } else {  // no window yet: offer the last 30 days of the viewer's calendar, as the Reports tab does
      const today = new Date();
      $("#e-from").value = A.localDate(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 29));
      $("#e-to").value = A.localDate(today);
      shown = null;
      $("#events-output").hidden = true;
    }
  }

  const currentState = () => (shown ? { ...shown.state, tab: "events" } : { tab: "events" });

  /** The console link to the events behind a report row (same window, time zone and filters). */
  function linkFor(reportState, filters) {
    return A.urlFor({ tab: "events", from: reportState.from, to: reportState.to, tz: reportState.tz, ...filters });
  }

  function init() {
    $("#events-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const state = readForm();
      A.writeUrl(state);
      load(state);
    });
    $("#events-more").addEventListener("click", () => shown && load(shown.state, { more: true }));
  }

  A.events = { init, show, currentState, linkFor };
})();
