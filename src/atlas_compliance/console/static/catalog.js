// Atlas Compliance console: the schema catalog panel (GET /api/v1/admin/catalog), read-only.
"use strict";
(() => {
  const A = window.Atlas;
  const LIMIT = 5000;

  // One row per (datasource, table, origin): its columns in catalog order, the latest recording time.
  function group(columns) {
    const rows = new Map();
    for (const c of columns) {
      const key = `${c.datasource}\u0000${c.tableName}\u0000${c.origin}`;
      let row = rows.get(key);
      if (!row) {
        row = { datasource: c.datasource, table: c.tableName, origin: c.origin, columns: [], recordedAt: c.recordedAt };
        rows.set(key, row);
      }
      row.columns.push(c.columnName);
      if (c.recordedAt > row.recordedAt) row.recordedAt = c.recordedAt;
    }
    return [...rows.values()];
  }

  function render(page) {
    const rows = group(page.columns);
    A.$("#catalog-table tbody").replaceChildren(...rows.map((r) => A.el("tr", {},
      r.datasource ? A.el("th", { scope: "row", class: "mono", text: r.datasource })
        : A.el("th", { scope: "row", class: "muted", text: "audit trail" }),
      A.el("td", { class: "mono", text: r.table }),
      A.el("td", { class: "mono", text: r.columns.join(", ") }),
      A.el("td", { text: r.origin }),
      A.el("td", {}, A.timeEl(r.recordedAt)))));
    A.$("#catalog-wrap").hidden = rows.length === 0;
    A.$("#catalog-empty").hidden = page.total !== 0;
    const more = A.$("#catalog-more");
    more.hidden = page.total <= page.columns.length;
    more.textContent = `Showing the first ${A.fmtInt(page.columns.length)} of ${A.fmtInt(page.total)} columns: `
      + "atlas-compliance catalog show lists them all.";
  }

  async function load() {
    const error = A.$("#catalog-error");
    try {
      const page = await A.api(`/api/v1/admin/catalog?limit=${LIMIT}`);
      error.hidden = true;
      render(page);
    } catch (exc) {
      error.textContent = `The catalog could not be loaded: ${exc.message}`;
      error.hidden = false;
    }
  }

  if (A.$("#catalog-panel")) load();
})();
