"""Building a signed evidence bundle for one organization and window (issue 19 §4; format in docs/evidence.md).

What goes in is :func:`entries`: one :class:`Entry` per file, in order. Adding a file is one more entry,
usually ``csv_entry(name, population, header, rows)`` with ``rows(db, request)`` an async iterator of lists
of CSV rows, or ``json_entry(name, population, rows_key, document)``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from .. import __version__
from ..audit import admin_actions, chain, checkpoints, rollups
from ..audit.admin_actions import Actor
from ..audit.signing import SigningKey, public_base64
from ..config import Settings
from ..db.pool import Database
from ..flags import service as flags
from ..pii import service as pii
from ..reports import activity
from ..reports import service as reports
from ..reports.window import ReportFilters, ReportWindow, iso_utc
from ..reports.writers import (
    CSV_FORMATS,
    FAILED_ACCESS_CSV_HEADER,
    PRIVILEGED_ACTIONS_CSV_HEADER,
    csv_chunk,
    failed_access_csv_rows,
    filter_name_parts,
    json_bytes,
    privileged_action_csv_row,
    safe_slug,
)
from ..reviews import service as reviews
from .format import FORMAT, MANIFEST, SIGNATURE

ACTION = "compliance.evidence_export"


@dataclass(frozen=True)
class BundleRequest:
    org_id: str
    org_slug: str
    window: ReportWindow
    filters: ReportFilters
    start_input: str
    end_input: str
    actor: Actor

    def report(self, kind: reports.ReportType) -> reports.ReportRequest:
        return reports.ReportRequest(report=kind, org_id=self.org_id, window=self.window, filters=self.filters,
                                     start_input=self.start_input, end_input=self.end_input)

    @property
    def scope(self) -> str:
        """How the reports' population is named: the window, and the filters when there are any."""
        return "the window and filters" if any(self.filters.to_dict().values()) else "the window"


class EntryWriter:
    """The bytes of one file of the bundle, hashed and measured as they are written."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.sha256, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.sha256.update(data)
        self.size += len(data)


# Writes one file; answers its row count (None for a document that is not a list of rows).
Producer = Callable[[Database, BundleRequest, EntryWriter], Awaitable[int | None]]
Rows = Callable[[Database, BundleRequest], AsyncIterator[Sequence[Sequence[str]]]]


@dataclass(frozen=True)
class Entry:
    name: str
    population: str
    produce: Producer
    rows_key: str | None = None  # JSON files: the list whose length is the row count


def csv_entry(name: str, population: str, header: Sequence[str], rows: Rows) -> Entry:
    """A CSV file (RFC 4180, CRLF, formula-guarded cells as every export): the header, then every row."""
    async def produce(db: Database, request: BundleRequest, out: EntryWriter) -> int:
        out.write(csv_chunk([header]).encode("utf-8"))
        count = 0
        async for chunk in rows(db, request):
            count += len(chunk)
            out.write(csv_chunk(chunk).encode("utf-8"))
        return count
    return Entry(name, population, produce)


def json_entry(name: str, population: str, rows_key: str | None,
               document: Callable[[Database, BundleRequest], Awaitable[dict[str, Any]]]) -> Entry:
    """A JSON document held in memory (small ones: classifications, verification results)."""
    async def produce(db: Database, request: BundleRequest, out: EntryWriter) -> int | None:
        doc = await document(db, request)
        out.write(json_bytes(doc))
        return len(doc[rows_key]) if rows_key else None
    return Entry(name, population, produce, rows_key)


# --- the reports -----------------------------------------------------------------------------------

TITLES = {"data-access": "Data Access", "user-activity": "User Activity"}


def _report_rows(kind: reports.ReportType) -> Rows:
    _, to_cells = CSV_FORMATS[kind]

    async def rows(db: Database, request: BundleRequest) -> AsyncIterator[Sequence[Sequence[str]]]:
        async for chunk in reports.iter_rows(db, request.report(kind)):
            yield [to_cells(r) for r in chunk]
    return rows


def report_csv(kind: reports.ReportType, scope: str) -> Entry:
    return csv_entry(f"{kind}.csv", f"every row of the {TITLES[kind]} report for {scope}, as its CSV export",
                     CSV_FORMATS[kind][0], _report_rows(kind))


def report_json(kind: reports.ReportType, scope: str) -> Entry:
    async def produce(db: Database, request: BundleRequest, out: EntryWriter) -> int:
        counter = [0]
        async for part in reports.json_stream(db, request.report(kind), counter):
            out.write(part)
        return counter[0]
    return Entry(f"{kind}.json", f"every row of the {TITLES[kind]} report for {scope}, as its JSON export "
                                 "(format=json&download=1)", produce, "rows")


# --- failed access and privileged actions (issue 19 §3) -------------------------------------------

async def _failed_access_rows(db: Database, request: BundleRequest) -> AsyncIterator[Sequence[Sequence[str]]]:
    async with db.connection() as conn, conn.transaction():
        await reports.begin_snapshot(conn)
        view = await activity.failed_access(conn, request.org_id, request.window)
    yield list(failed_access_csv_rows(view))


async def _privileged_action_rows(db: Database, request: BundleRequest) -> AsyncIterator[Sequence[Sequence[str]]]:
    async with db.connection() as conn, conn.transaction():
        async for chunk in activity.stream_privileged_actions(conn, request.org_id, request.window,
                                                              activity.ActionFilters()):
            yield [privileged_action_csv_row(a) for a in chunk]


async def _flag_rows(db: Database, request: BundleRequest) -> AsyncIterator[Sequence[Sequence[str]]]:
    first = request.window.start.astimezone(UTC).date()
    last = (request.window.end - timedelta(microseconds=1)).astimezone(UTC).date()
    page, offset = 1000, 0
    while True:
        async with db.transaction() as conn:
            found = await flags.list_flags(conn, request.org_id, first=first, last=last, limit=page, offset=offset)
        if found:
            yield flags.csv_rows(found)[1:]  # without the header: csv_entry writes it
        if len(found) < page:
            return
        offset += page


def activity_entries() -> list[Entry]:
    """The Failed access and Privileged actions views of the window (not narrowed by the report filters,
    which they do not take), as their CSV exports."""
    return [
        csv_entry("failed-access.csv", "every failed or refused query per (table, user) and every failed sign-in "
                  "per (user, address) of the window, as the Failed access CSV export", FAILED_ACCESS_CSV_HEADER,
                  _failed_access_rows),
        csv_entry("privileged-actions.csv", "every admin action of the organization in the window, newest first, "
                  "as the Privileged actions CSV export", PRIVILEGED_ACTIONS_CSV_HEADER, _privileged_action_rows),
        csv_entry("unusual-access-flags.csv", "every unusual-access flag of the UTC days the window touches, open, "
                  "acknowledged or retracted, with its latest disposition, as the flags' CSV export",
                  flags.CSV_HEADER, _flag_rows),
    ]


async def _reviews(db: Database, request: BundleRequest) -> dict[str, Any]:
    async with db.transaction() as conn:
        found = await reviews.signed_off_covering(conn, request.org_id, request.window.start, request.window.end)
    return {"reviews": found}


# --- classifications, chain verification, checkpoint ----------------------------------------------

async def _classifications(db: Database, request: BundleRequest) -> dict[str, Any]:
    async with db.transaction() as conn:
        rows = await pii.list_for_org(conn, request.org_id, include_dismissed=True)
    return {"classifications": [pii.to_out(r).model_dump(mode="json") for r in rows],
            "summary": pii.summarize(rows)}


async def _verify(db: Database, request: BundleRequest) -> dict[str, Any]:
    async with db.transaction() as conn:
        result = await chain.verify_chain(conn, request.org_id)
    first_day = request.window.start.astimezone(UTC).date()
    async with db.transaction() as conn:
        checked = await rollups.verify_rollups(conn, request.org_id, first_day)
    return {"org": {"id": request.org_id, "slug": request.org_slug}, "verifiedAt": iso_utc(datetime.now(UTC)),
            **result.to_dict(), "ok": result.ok and checked.ok, "rollups": checked.to_dict()}


def _checkpoint_copy(path: Path) -> Producer:
    async def produce(db: Database, request: BundleRequest, out: EntryWriter) -> None:
        out.write(await asyncio.to_thread(path.read_bytes))
    return produce


def _chain_head(settings: Settings, key: SigningKey) -> Producer:
    async def produce(db: Database, request: BundleRequest, out: EntryWriter) -> None:
        async with db.transaction() as conn:
            statement = await checkpoints.build_statement(
                conn, {"id": request.org_id, "slug": request.org_slug}, key, settings)
        out.write(json_bytes({"statement": statement, "signature": None}))
    return produce


def checkpoint_entry(settings: Settings, org_id: str, key: SigningKey) -> Entry:
    """The org's newest checkpoint file in ATLAS_CHECKPOINT_DIR, byte for byte; without one, the chain heads
    now, as an unsigned checkpoint statement (the signed manifest vouches for it)."""
    directory = settings.checkpoints_path
    latest = checkpoints.list_for_org(directory, org_id, None, 1) if directory.is_dir() else []
    if latest:
        name = latest[0]["file"]
        return Entry("checkpoint.json", f"the organization's latest signed checkpoint file ({name}, created "
                                        f"{latest[0]['createdAt']}), copied byte for byte",
                     _checkpoint_copy(directory / name))
    return Entry("chain-head.json", "the organization's hash-chain heads at export time, as an unsigned checkpoint "
                                    "statement (no signed checkpoint file yet)", _chain_head(settings, key))


def entries(settings: Settings, request: BundleRequest, key: SigningKey) -> list[Entry]:
    """Every file of the bundle but the manifest and its signature, in order."""
    scope = request.scope
    return [
        report_csv("data-access", scope),
        report_json("data-access", scope),
        report_csv("user-activity", scope),
        report_json("user-activity", scope),
        *activity_entries(),
        json_entry("access-reviews.json", "every signed-off access review whose period overlaps the window, as its "
                   "export (frozen population, decisions, reviewers, signed sign-off)", "reviews", _reviews),
        json_entry("pii-classifications.json", "every PII classification of the organization at export time, "
                   "dismissed ones included (not limited to the window)", "classifications", _classifications),
        json_entry("audit-verify.json", "`audit verify` of the organization's whole hash chains (audit log, purge "
                   "tombstones, admin actions) at export time, and of its rollups from the window's first day on",
                   None, _verify),
        checkpoint_entry(settings, request.org_id, key),
    ]


# --- the bundle ------------------------------------------------------------------------------------

def file_name(request: BundleRequest, generated_at: datetime, manifest_sha256: str) -> str:
    """``evidence-<org>-<from>_<to>-<tz>[-user-<h>][-role-<role>][-table-<table>]-<UTC time>-<manifest>.zip``:
    dates are the window's days in its time zone, ``/`` in the zone becomes ``.``, the user id is the first
    10 hex digits of its SHA-256 (after ``h``), a table name that is not short and plain likewise, and the
    name ends with the first 8 hex digits of the manifest's SHA-256 (two bundles never share a name)."""
    start, end = request.report("data-access").labels()
    parts = [f"evidence-{safe_slug(request.org_slug)}-{start}_{end}", request.window.tz.replace("/", "."),
             *filter_name_parts(request.filters)]
    parts += [generated_at.strftime("%Y%m%dT%H%M%SZ"), manifest_sha256[:8]]
    return "-".join(parts) + ".zip"


def _info(name: str, when: datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class Bundle:
    name: str
    manifest: dict[str, Any]
    manifest_sha256: str


async def build(db: Database, settings: Settings, request: BundleRequest, key: SigningKey,
                target: IO[bytes]) -> Bundle:
    """Write the bundle to ``target`` (a binary file open for writing) and answer its name and manifest."""
    generated_at = datetime.now(UTC).replace(microsecond=0)
    files = []
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for entry in entries(settings, request, key):
            with zf.open(_info(entry.name, generated_at), "w", force_zip64=True) as handle:
                out = EntryWriter(handle)
                rows = await entry.produce(db, request, out)
            item: dict[str, Any] = {"name": entry.name, "format": entry.name.rsplit(".", 1)[-1], "rows": rows}
            if entry.rows_key:
                item["rowsKey"] = entry.rows_key
            files.append({**item, "population": entry.population, "bytes": out.size,
                          "sha256": out.sha256.hexdigest()})
        actor = request.actor
        manifest = {
            "format": FORMAT,
            "product": {"name": "atlas-compliance", "version": __version__},
            "org": {"id": request.org_id, "slug": request.org_slug},
            "window": {**request.window.to_dict(), "startDate": request.start_input, "endDate": request.end_input},
            "tz": request.window.tz,
            "filters": request.filters.to_dict(),
            "generatedAt": iso_utc(generated_at),
            "generatedBy": {"userId": actor.user_id, "email": actor.email, "scope": actor.scope,
                            "requestId": actor.request_id},
            "signature": {"algorithm": "Ed25519", "keyId": key.key_id, "publicKey": public_base64(key.public),
                          "file": SIGNATURE, "signs": f"the exact bytes of {MANIFEST}"},
            "files": files,
        }
        data = manifest_bytes(manifest)
        zf.writestr(_info(MANIFEST, generated_at), data)
        zf.writestr(_info(SIGNATURE, generated_at), base64.b64encode(key.sign(data)) + b"\n")
    digest = hashlib.sha256(data).hexdigest()
    return Bundle(file_name(request, generated_at, digest), manifest, digest)


async def record_export(db: Database, request: BundleRequest, bundle: Bundle | None, status: str) -> None:
    """Exporting a bundle is itself an admin action: who, which window and filters, which files."""
    details: dict[str, Any] = {"window": request.window.to_dict(), "filters": request.filters.to_dict(),
                               "startDate": request.start_input, "endDate": request.end_input}
    if bundle is not None:
        details.update(fileName=bundle.name, manifestSha256=bundle.manifest_sha256,
                       keyId=bundle.manifest["signature"]["keyId"],
                       files=[{k: f[k] for k in ("name", "rows", "sha256")} for f in bundle.manifest["files"]])
    async with db.transaction() as conn:
        await admin_actions.record(conn, request.actor, org_id=request.org_id, action_type=ACTION,
                                   target_type="evidence_bundle", target_id=bundle.name if bundle else "-",
                                   details=details, status=status)


async def export(db: Database, settings: Settings, request: BundleRequest, key: SigningKey,
                 target: IO[bytes]) -> Bundle:
    """:func:`build`, recorded in the admin action log (a failed build too, then re-raised)."""
    try:
        bundle = await build(db, settings, request, key, target)
    except Exception:
        await record_export(db, request, None, "failure")
        raise
    await record_export(db, request, bundle, "success")
    return bundle
