"""Tamper evidence: verify an organization's hash chain and name the first broken link."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from psycopg import AsyncConnection

from . import repository as repo

CHUNK = 200_000


@dataclass(frozen=True)
class ChainBreak:
    seq: int | None
    audit_id: str | None
    kind: str  # changed | removed | inserted_out_of_order | outside_chain
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    purged_rows: int
    head_seq: int
    first_break: ChainBreak | None

    def to_dict(self) -> dict:
        out: dict = {"ok": self.ok, "rowsChecked": self.rows_checked, "purgedRows": self.purged_rows,
                     "headSeq": self.head_seq, "firstBreak": None}
        if self.first_break:
            b = self.first_break
            out["firstBreak"] = {"seq": b.seq, "auditId": b.audit_id, "kind": b.kind, "detail": b.detail}
        return out


async def verify_chain(conn: AsyncConnection, org_id: str,
                       progress: Callable[[int, int], None] | None = None) -> VerifyResult:
    """Recompute every row's hash in chain order (live rows and purge tombstones).

    A row whose content no longer matches its hash was *changed*; a missing position with no purge
    tombstone was *removed*; a row whose link does not match its predecessor was *inserted out of
    order*; a row with no chain position was written with the chain trigger disabled.
    """
    key = org_id
    head = await repo.chain_head(conn, key)
    head_seq = int(head["last_seq"]) if head else 0
    outside = await repo.rows_outside_chain(conn, key, head_seq)
    checked = purged = 0
    after, after_hash = 0, None
    first: ChainBreak | None = None
    while after < head_seq and first is None:
        upto = min(after + CHUNK, head_seq)
        broken = await repo.first_break(conn, key, after, after_hash, upto)
        live, gone = await repo.count_chain_rows(conn, key, after, upto)
        if broken is not None:
            first = _classify(broken, after)
            checked += max(0, int(broken["seq"]) - after - 1)  # rows verified before the break
            break
        checked += live + gone
        purged += gone
        if live + gone < upto - after:
            # Positions at the end of the chunk are missing (no later row in the chunk to show the gap).
            first = ChainBreak(seq=after + live + gone + 1, audit_id=None, kind="removed",
                               detail="rows at the end of the chain are missing")
            break
        last = await repo.row_at(conn, key, upto)
        after, after_hash = upto, (last["row_hash"] if last else None)
        if progress:
            progress(after, head_seq)
    if first is None and outside is not None:
        first = ChainBreak(seq=outside["seq"], audit_id=outside["id"], kind="outside_chain",
                           detail="a row was written without a chain position (chain trigger disabled)")
    return VerifyResult(ok=first is None, rows_checked=checked, purged_rows=purged, head_seq=head_seq,
                        first_break=first)


def _classify(row: dict, after: int) -> ChainBreak:
    seq = int(row["seq"])
    expected = (row["before_seq"] + 1) if row["before_seq"] is not None else after + 1
    if row["changed"]:
        return ChainBreak(seq, row["id"], "changed",
                          f"row {seq} no longer matches its hash: its content was modified")
    if seq > expected:
        return ChainBreak(expected, None, "removed",
                          f"rows {expected}..{seq - 1} are missing and were not removed by the retention purge")
    return ChainBreak(seq, row["id"], "inserted_out_of_order",
                      f"row {seq} does not link to the row before it")
