"""Column names decoded from the rollups' bitmasks (reports/columns.py): exact for rows reading dozens of
columns (Atlas's legacy shape, a flat `columns_accessed`), and never missing a column when the
dictionary kept between reports is older than the rows a report reads."""

from __future__ import annotations

import random

from atlas_compliance.reports import columns
from atlas_compliance.reports.columns import ColumnDictionary

URL = "/api/v1/audit/events"
REPORT = "/api/v1/admin/compliance/reports/data-access"
WINDOW = {"startDate": "2026-02-01", "endDate": "2026-02-28"}


def _naive(bits: dict[int, str], mask: int, extra: str | None) -> list[str]:
    names = {bits[b] for b in range(64) if mask >> b & 1 and b in bits}
    return sorted(names | set(extra.split("\x1f") if extra else ()), key=lambda n: n.encode())


def test_decode_matches_a_naive_decoder_on_random_masks():
    rng = random.Random(13)
    alphabet = ["id", "email", "Zeta", "zeta", "ünï", "名前", "a b", "_x", "col9", "col10", "*", "ß", "ss"]
    for _ in range(300):
        size = rng.randint(1, 64)
        names = rng.sample(alphabet + [f"c{i:02d}{rng.random():.3f}" for i in range(64)], size)
        bits = dict(zip(rng.sample(range(64), size), names, strict=True))
        dictionary = ColumnDictionary([("t", name, bit) for bit, name in bits.items()]).for_report()
        mask = 0
        for bit in rng.sample(sorted(bits), rng.randint(0, size)):
            mask |= 1 << bit
        signed = mask - (1 << 64) if mask >> 63 else mask  # bit 63 arrives as a negative bigint
        extra = rng.choice([None, "past64\x1fid", "zz"])
        assert dictionary.decode("t", signed, extra) == _naive(bits, mask, extra)
        assert not dictionary.stale


def test_a_bit_the_dictionary_does_not_know_marks_it_stale():
    dictionary = ColumnDictionary([("t", "id", 0), ("t", "email", 1)]).for_report()
    assert dictionary.decode("t", 0b11, None) == ["email", "id"] and not dictionary.stale
    assert dictionary.decode("t", 0b111, None) == ["email", "id"] and dictionary.stale
    other = ColumnDictionary([("t", "id", 0)]).for_report()
    assert other.decode("unknown_table", 1, None) == [] and other.stale


def _ingest(org, events) -> None:
    answer = org.client.post(URL, json=events, headers={"Authorization": f"Bearer {org.ingest_key()}"})
    assert answer.status_code == 200 and not answer.json()["rejected"], answer.text


def _columns(org, admin) -> dict[tuple[str, str], list[str]]:
    rows = org.client.get(REPORT, params=WINDOW, headers=admin.headers).json()["rows"]
    return {(r["tableName"], r["userId"]): r["uniqueColumns"] for r in rows}


def test_legacy_rows_with_many_columns_are_reported_exactly_and_new_columns_appear(org, admin):
    """Flat columns_accessed lists (no columns_by_table): every table of the query is credited with
    every column, sorted byte-wise; columns added after a report (a larger dictionary) and a kept
    dictionary that lacks a bit (a report reading newer rollups) are both read again."""
    cols = [f"c{i:02d}" for i in range(40)] + ["zed", "ärger", "名前"]
    _ingest(org, [{"sql": "SELECT …", "userId": "u1", "timestamp": "2026-02-03T10:00:00Z",
                   "tablesAccessed": ["orders", "customers"], "columnsAccessed": cols}])
    first = _columns(org, admin)
    expected = sorted(cols, key=lambda n: n.encode())
    assert first == {("orders", "u1"): expected, ("customers", "u1"): expected}
    _ingest(org, [{"sql": "SELECT …", "userId": "u1", "timestamp": "2026-02-04T10:00:00Z",
                   "tablesAccessed": ["orders"], "columnsAccessed": ["zz_new", "c00"]}])
    assert _columns(org, admin)[("orders", "u1")] == sorted([*cols, "zz_new"], key=lambda n: n.encode())
    # A kept dictionary of the right size that lacks a bit the rollups use: the report reads it again.
    kept = columns._kept[org.id]
    entries = [(t, name, bit) for t, tc in kept.tables.items() for bit, name in tc.bits.items()]
    wrong = [(t, name, bit if (t, name) != ("orders", "zz_new") else 63) for t, name, bit in entries]
    columns.keep(org.id, ColumnDictionary(wrong))
    assert _columns(org, admin)[("orders", "u1")] == sorted([*cols, "zz_new"], key=lambda n: n.encode())
    columns.keep(org.id, ColumnDictionary(wrong))  # and the streamed exports read it again too
    csv = org.client.get(REPORT, params={**WINDOW, "format": "csv"}, headers=admin.headers).text
    assert "zz_new" in csv
