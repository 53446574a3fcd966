// Atlas Compliance console: shared helpers (DOM, API calls, formatting, URL state). No framework.
"use strict";
window.Atlas = window.Atlas || {};
(() => {
  const A = window.Atlas;
  const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";

  A.$ = (selector, root = document) => root.querySelector(selector);

  /** el("td", {class: "num", text: "3", title: "…", onclick: fn}, child, …) */
  A.el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };

  class ApiError extends Error {
    constructor(status, body) {
      super(body?.message || `The server answered HTTP ${status}.`);
      this.status = status;
      this.code = body?.error || "http_error";
    }
  }
  A.ApiError = ApiError;

  /** JSON API call with the session cookie; writes carry the page's CSRF token. */
  A.api = async (path, { method = "GET", body, signal } = {}) => {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, signal, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let payload = null;
    try { payload = await response.json(); } catch { payload = null; }
    if (response.status === 401) {
      // The session expired or was revoked: sign in again and come back here.
      window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
    if (!response.ok) throw new ApiError(response.status, payload);
    return payload;
  };

  // ---------- formatting (the viewer's locale and time zone) ----------
  A.viewerTz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const numberFormat = new Intl.NumberFormat();
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  const clockFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  A.fmtInt = (n) => numberFormat.format(Number(n) || 0);
  /** A <time> in the viewer's zone, with the exact UTC value on hover. */
  A.timeEl = (iso) => {
    if (!iso) return A.el("span", { class: "muted", text: "—" });
    const when = new Date(iso);
    return A.el("time", { datetime: iso, title: `${iso} (UTC)` },
      A.el("span", { class: "date" }, dateFormat.format(when)), " ", A.el("span", { class: "clock" }, clockFormat.format(when)));
  };
  /** YYYY-MM-DD of a Date in the viewer's local calendar. */
  A.localDate = (d) =>
    `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  /** "Mar 1, 2026" for a YYYY-MM-DD calendar date (no time zone shift). */
  A.fmtDay = (day, opts = { dateStyle: "medium" }) => {
    const d = new Date(`${day}T00:00:00Z`);
    return Number.isNaN(d.getTime()) ? day : new Intl.DateTimeFormat(undefined, { ...opts, timeZone: "UTC" }).format(d);
  };

  // ---------- URL state: tab, then per tab: the report (reportType, from, to, userId, role, table, actionType,
  // actor, tz of the dates), the audit-events listing (from, to, tz, userId, table, column, success, q) or the
  // access review shown (review) ----------
  A.URL_KEYS = ["reportType", "from", "to", "userId", "role", "table", "actionType", "actor", "tz"];
  A.EVENT_KEYS = ["from", "to", "tz", "userId", "table", "column", "success", "q"];
  A.REVIEW_KEYS = ["review"];
  const TAB_KEYS = { reports: A.URL_KEYS, events: A.EVENT_KEYS, reviews: A.REVIEW_KEYS };
  A.readUrl = () => {
    const p = new URLSearchParams(location.search);
    const tab = p.get("tab");
    const state = { tab: TAB_KEYS[tab] ? tab : "classifications" };
    for (const key of new Set([...A.URL_KEYS, ...A.EVENT_KEYS, ...A.REVIEW_KEYS])) state[key] = (p.get(key) || "").trim();
    state.reportType = state.reportType || "data-access";
    return state;
  };
  A.urlFor = (state) => {
    const p = new URLSearchParams({ tab: state.tab });
    for (const key of TAB_KEYS[state.tab] || []) if (state[key]) p.set(key, state[key]);
    return `${location.pathname}?${p}`;
  };
  /** Push (or replace) the URL unless it already says the same thing. */
  A.writeUrl = (state, { replace = false } = {}) => {
    const url = A.urlFor(state);
    if (url === location.pathname + location.search) return;
    history[replace ? "replaceState" : "pushState"](null, "", url);
  };
})();
