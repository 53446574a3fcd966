// Atlas Compliance console: the PII Classifications tab (review, edit, dismiss, restore, delete, add a column).
"use strict";
window.Atlas = window.Atlas || {};
(() => {
  const A = window.Atlas;
  const { $, el } = A;
  const API = "/api/v1/admin/compliance/classifications";
  const METHODS = { regex: "Sampled values", column_name: "Column name", type_heuristic: "Column type",
    manual: "Manual", external: "External profiler" };
  const CONFIDENCE = { high: ["High", "badge-danger"], medium: ["Medium", "badge-warn"], low: ["Low", ""] };
  // Category labels, groups (PII or PHI) and default masking come from the server's one table
  // (pii/categories.py, rendered into #pii-category-catalog's data-catalog); strategy labels from the edit dialog.
  const labels = (select) => Object.fromEntries([...$(select).options].map((o) => [o.value, o.textContent.trim()]));
  let catalog = [], categoryLabels = {}, categoryGroups = {}, strategyLabels = {};
  let editing = null;       // the classification in the edit dialog
  let added = false;        // the add dialog closed because a column was added (the new row takes the focus)
  let focusAfter = null;    // data-key of the control to focus after the next render
  let loadSeq = 0;
  const tableNames = new Set();

  const notice = (text) => { $("#pii-notice").textContent = text; };
  function showError(message) {
    $("#pii-error").textContent = message;
    $("#pii-error").hidden = !message;
  }

  async function load() {
    const seq = ++loadSeq;
    const query = $("#show-dismissed").checked ? "?includeDismissed=true" : "";
    showError("");
    try {
      const body = await A.api(API + query);
      if (seq !== loadSeq) return;
      render(body);
    } catch (err) {
      if (seq !== loadSeq) return;
      $("#pii-loading").hidden = true;
      showError(`Could not load the PII classifications: ${err.message}`);
    }
  }

  function setStat(label, value) {
    const node = document.querySelector(`#pii-cards [data-stat="${label}"]`);
    if (node) node.textContent = A.fmtInt(value);
  }

  function render(body) {
    const { summary, classifications } = body;
    setStat("Total PII columns", summary.total);
    setStat("High confidence", summary.highConfidence);
    setStat("Unreviewed", summary.unreviewed);
    setStat("Tables affected", summary.tablesAffected);
    for (const c of classifications) tableNames.add(c.tableName);
    A.reports?.addTables(tableNames);
    const review = $("#review-all");
    review.hidden = summary.unreviewed === 0;
    review.textContent = `Mark all reviewed (${A.fmtInt(summary.unreviewed)})`;
    const dismissedNote = $("#show-dismissed").checked ? `, ${A.fmtInt(summary.dismissed)} dismissed` : "";
    $("#pii-desc").textContent = `${A.fmtInt(summary.total)} ${summary.total === 1 ? "column" : "columns"} in ` +
      `${A.fmtInt(summary.tablesAffected)} ${summary.tablesAffected === 1 ? "table" : "tables"}${dismissedNote}. ` +
      "Review each detection, choose how its values are masked, or dismiss false positives.";
    $("#pii-table tbody").replaceChildren(...classifications.map(row));
    $("#pii-loading").hidden = true;
    $("#pii-wrap").hidden = classifications.length === 0;
    $("#pii-empty").hidden = classifications.length > 0;
    restoreFocus();
  }

  function statusOf(c) {
    if (c.dismissed) return ["Dismissed", ""];
    return c.reviewed ? ["Reviewed", "badge-ok"] : ["Pending", "badge-warn"];
  }

  function evidenceText(evidence) {
    if (!evidence || typeof evidence.sampled !== "number" || !evidence.sampled) return "";
    const where = Array.isArray(evidence.foundIn) && evidence.foundIn.length ? ` (${evidence.foundIn.join(", ")})` : "";
    return `${A.fmtInt(evidence.matched ?? 0)} of ${A.fmtInt(evidence.sampled)} sampled values matched${where}`;
  }

  function categoryCell(c) {
    const phi = categoryGroups[c.category] === "PHI"
      ? el("span", { class: "badge badge-accent", title: "Protected health information (HIPAA)" }, "PHI") : null;
    return el("td", { class: "nowrap" }, categoryLabels[c.category] || c.category, phi ? " " : null, phi);
  }

  function row(c) {
    const name = `${c.tableName}.${c.columnName}`;
    const [status, statusClass] = statusOf(c);
    const [confidence, confidenceClass] = CONFIDENCE[c.confidence] || [c.confidence, ""];
    const button = (label, key, handler, cls = "") => el("button", {
      type: "button", class: `btn btn-sm ${cls}`, "aria-label": `${label} ${name}`, "data-key": `${key}:${c.id}`,
      onclick: handler }, label);
    const actions = [button("Edit", "edit", () => openEdit(c))];
    if (!c.dismissed && !c.reviewed) {
      actions.push(button("Mark reviewed", "review", () => change(c, { reviewed: true }, `${name} marked reviewed.`, "edit")));
    }
    if (c.dismissed) actions.push(button("Restore", "restore", () => change(c, { dismissed: false }, `${name} restored.`, "dismiss")));
    else actions.push(button("Dismiss", "dismiss", () => change(c, { dismissed: true, reviewed: true }, `${name} dismissed. Select “Show dismissed” to restore it.`, "restore")));
    actions.push(button("Delete", "delete", () => confirmDelete(c), "btn-link-danger"));
    const evidence = evidenceText(c.evidence);
    return el("tr", { "data-id": c.id, "data-column": name, class: c.dismissed ? "muted" : null },
      el("td", { class: "mono" }, c.tableName),
      el("td", { class: "mono" }, c.columnName),
      categoryCell(c),
      el("td", {}, el("span", { class: `badge ${confidenceClass}` }, confidence)),
      el("td", {}, el("div", { class: "method" }, METHODS[c.method] || c.method || "—",
        c.evidence && c.evidence.suggestion
          ? [" ", el("span", { class: "badge badge-warn", title: "The sampled values contradict the column name" },
            "Suggestion: review")] : null),
        c.reason ? el("div", { class: "reason", title: evidence || null }, c.reason)
          : evidence ? el("div", { class: "reason" }, evidence) : null),
      el("td", { class: "nowrap" }, strategyLabels[c.maskingStrategy] || c.maskingStrategy),
      el("td", {}, el("span", { class: `badge ${statusClass}` }, status)),
      el("td", {}, el("div", { class: "row-actions" }, actions)));
  }

  function restoreFocus() {
    if (!focusAfter) return;
    const target = document.querySelector(`#pii-table [data-key="${focusAfter}"]`) || $("#pii-heading");
    focusAfter = null;
    target.focus();
  }

  /** PUT a change; `nextKey` names the control that takes the focus once the row is redrawn. */
  async function change(c, changes, message, nextKey) {
    showError("");
    try {
      await A.api(`${API}/${encodeURIComponent(c.id)}`, { method: "PUT", body: changes });
    } catch (err) {
      showError(`Could not update ${c.tableName}.${c.columnName}: ${err.message}`);
      return;
    }
    notice(message);
    focusAfter = `${nextKey}:${c.id}`;
    await load();
  }

  function openEdit(c) {
    editing = c;
    $("#edit-target").textContent = `${c.tableName}.${c.columnName}`;
    $("#edit-category").value = c.category;
    $("#edit-strategy").value = c.maskingStrategy;
    $("#edit-error").hidden = true;
    $("#edit-save").disabled = false;
    $("#edit-dialog").showModal();
    $("#edit-category").focus();
  }

  async function saveEdit(event) {
    event.preventDefault();
    if (!editing) return;
    const c = editing;
    const body = { category: $("#edit-category").value, maskingStrategy: $("#edit-strategy").value, reviewed: true };
    $("#edit-save").disabled = true;
    try {
      await A.api(`${API}/${encodeURIComponent(c.id)}`, { method: "PUT", body });
    } catch (err) {
      $("#edit-error").textContent = err.message;
      $("#edit-error").hidden = false;
      $("#edit-save").disabled = false;
      return;
    }
    editing = null;
    $("#edit-dialog").close();
    notice(`${c.tableName}.${c.columnName} saved: ${categoryLabels[body.category]}, ${strategyLabels[body.maskingStrategy]}.`);
    focusAfter = `edit:${c.id}`;
    await load();
  }

  function confirmDelete(c) {
    const dialog = $("#confirm-dialog");
    $("#confirm-text").textContent = `Delete the classification of ${c.tableName}.${c.columnName}? ` +
      "Its masking stops applying. A later scan may detect the column again, unreviewed.";
    dialog.returnValue = "";
    dialog.onclose = async () => {
      if (dialog.open) return; // a late close event of an earlier opening
      dialog.onclose = null;
      if (dialog.returnValue !== "delete") {
        document.querySelector(`#pii-table [data-key="delete:${c.id}"]`)?.focus();
        return;
      }
      showError("");
      try {
        await A.api(`${API}/${encodeURIComponent(c.id)}`, { method: "DELETE" });
      } catch (err) {
        showError(`Could not delete ${c.tableName}.${c.columnName}: ${err.message}`);
        return;
      }
      notice(`Classification of ${c.tableName}.${c.columnName} deleted.`);
      focusAfter = "none";
      await load();
    };
    dialog.showModal();
  }

  async function reviewAll() {
    showError("");
    try {
      const result = await A.api(`${API}/review`, { method: "POST", body: {} });
      notice(`${A.fmtInt(result.reviewed)} ${result.reviewed === 1 ? "classification" : "classifications"} marked reviewed.`);
    } catch (err) {
      showError(`Could not mark the classifications reviewed: ${err.message}`);
      return;
    }
    focusAfter = "none";
    await load();
  }

  /** Category options grouped as PII and PHI, with each category's default masking in its label. */
  function fillCategories(select, withDefaults) {
    const groups = { PII: "Personal data (PII)", PHI: "Health information (PHI)" };
    select.replaceChildren(...Object.entries(groups).map(([group, label]) => el("optgroup", { label },
      catalog.filter((c) => c.group === group).map((c) => el("option", { value: c.id },
        withDefaults ? `${c.label} (default: ${strategyLabels[c.masking] || c.masking})` : c.label)))));
  }

  function fieldError(input, message) {
    const error = $(`#${input.getAttribute("aria-describedby")}`);
    error.textContent = message;
    error.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    return !message;
  }

  function openAdd() {
    added = false;
    $("#add-form").reset();
    $("#add-error").hidden = true;
    $("#add-save").disabled = false;
    fieldError($("#add-table"), "");
    fieldError($("#add-column-name"), "");
    $("#add-dialog").showModal();
    $("#add-table").focus();
  }

  async function saveAdd(event) {
    event.preventDefault();
    const table = $("#add-table"), column = $("#add-column-name");
    const valid = [fieldError(table, table.value.trim() ? "" : "Enter the table, e.g. patients."),
      fieldError(column, column.value.trim() ? "" : "Enter the column's name.")];
    if (valid.includes(false)) {
      (valid[0] ? column : table).focus();
      return;
    }
    const body = { tableName: table.value.trim(), columnName: column.value.trim(), category: $("#add-category").value };
    if ($("#add-strategy").value) body.maskingStrategy = $("#add-strategy").value;
    if ($("#add-note").value.trim()) body.note = $("#add-note").value.trim();
    $("#add-save").disabled = true;
    let created;
    try {
      created = await A.api(`${API}/manual`, { method: "POST", body });
    } catch (err) {
      $("#add-error").textContent = err.message;
      $("#add-error").hidden = false;
      $("#add-save").disabled = false;
      return;
    }
    added = true;
    $("#add-dialog").close();
    notice(`${created.tableName}.${created.columnName} added as ${categoryLabels[created.category] || created.category} ` +
      `(${strategyLabels[created.maskingStrategy] || created.maskingStrategy}).`);
    focusAfter = `edit:${created.id}`;
    await load();
  }

  function init() {
    catalog = JSON.parse($("#pii-category-catalog").dataset.catalog);
    strategyLabels = labels("#edit-strategy");
    categoryLabels = Object.fromEntries(catalog.map((c) => [c.id, c.label]));
    categoryGroups = Object.fromEntries(catalog.map((c) => [c.id, c.group]));
    fillCategories($("#edit-category"), false);
    fillCategories($("#add-category"), true);
    $("#add-strategy").append(...[...$("#edit-strategy").options].map((o) => o.cloneNode(true)));
    $("#add-column").addEventListener("click", openAdd);
    $("#add-form").addEventListener("submit", saveAdd);
    $("#add-cancel").addEventListener("click", () => $("#add-dialog").close());
    $("#add-dialog").addEventListener("close", () => {
      if (!$("#add-dialog").open && !added) $("#add-column").focus();
    });
    $("#show-dismissed").addEventListener("change", () => { notice(""); load(); });
    $("#review-all").addEventListener("click", reviewAll);
    $("#edit-form").addEventListener("submit", saveEdit);
    $("#edit-cancel").addEventListener("click", () => $("#edit-dialog").close());
    $("#edit-dialog").addEventListener("close", () => {
      // Close events arrive asynchronously: ignore one that arrives after the dialog was opened again.
      if ($("#edit-dialog").open || !editing) return;
      document.querySelector(`#pii-table [data-key="edit:${editing.id}"]`)?.focus();
      editing = null;
    });
  }

  A.classifications = { init, load, tableNames };
})();
