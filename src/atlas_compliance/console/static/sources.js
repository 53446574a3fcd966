// Atlas Compliance console: the audit-log sources panel (GET /api/v1/admin/sources and its role mappings).
"use strict";
(() => {
  const A = window.Atlas;
  const KINDS = { pgaudit: "PostgreSQL (pgAudit)", "mariadb-audit": "MariaDB server_audit" };

  function renderSources(sources) {
    const body = A.$("#sources-table tbody");
    body.replaceChildren(...sources.map((s) => A.el("tr", {},
      A.el("th", { scope: "row", class: "mono", text: s.name }),
      A.el("td", { text: KINDS[s.kind] || s.kind }),
      A.el("td", {}, A.timeEl(s.lastImportAt)),
      A.el("td", {}, A.timeEl(s.lastEventAt)),
      A.el("td", { class: "num", text: A.fmtInt(s.eventsStored) }),
      A.el("td", { class: "num", text: s.followedFiles ? A.fmtInt(s.followedFiles) : "—" }))));
    A.$("#sources-wrap").hidden = sources.length === 0;
    A.$("#sources-empty").hidden = sources.length !== 0;
  }

  function renderMappings(mappings) {
    A.$("#role-mappings-list").replaceChildren(...mappings.map((m) => A.el("li", {},
      A.el("code", { text: m.identity }), " → ",
      m.email ? A.el("span", { text: m.email }) : A.el("span", { class: "muted", text: `${m.userId} (no longer a member)` }))));
    A.$("#role-mappings").hidden = mappings.length === 0;
  }

  async function load() {
    const error = A.$("#sources-error");
    try {
      const [sources, mappings] = await Promise.all([
        A.api("/api/v1/admin/sources"), A.api("/api/v1/admin/sources/role-mappings")]);
      error.hidden = true;
      renderSources(sources.sources);
      renderMappings(mappings.mappings);
    } catch (exc) {
      error.textContent = `The sources could not be loaded: ${exc.message}`;
      error.hidden = false;
    }
  }

  if (A.$("#sources-panel")) load();
})();
