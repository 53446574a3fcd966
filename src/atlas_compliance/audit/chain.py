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


def _break_dict(b: ChainBreak | None) -> dict | None:
    return None if b is None else {"seq": b.seq, "auditId": b.audit_id, "kind": b.kind, "detail": b.detail}


@dataclass(frozen=True)
class RecordChainResult:
    """One of an org's other evidence chains: purge tombstones or admin actions."""

    chain: str  # tombstone | admin_action
    ok: bool
    records: int
    head_seq: int
    first_break: ChainBreak | None

    def to_dict(self) -> dict:
        return {"chain": self.chain, "ok": self.ok, "records": self.records, "headSeq": self.head_seq,
                "firstBreak": _break_dict(self.first_break)}


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    purged_rows: int
    head_seq: int
    first_break: ChainBreak | None
    chains: tuple[RecordChainResult, ...] = ()

    def to_dict(self) -> dict:
        return {"ok": self.ok, "rowsChecked": self.rows_checked, "purgedRows": self.purged_rows,
                "headSeq": self.head_seq, "firstBreak": _break_dict(self.first_break),
                "chains": [c.to_dict() for c in self.chains]}


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
    chains = tuple([await verify_record_chain(conn, name, key) for name in repo.RECORD_CHAINS])
    return VerifyResult(ok=first is None and all(c.ok for c in chains), rows_checked=checked, purged_rows=purged,
                        head_seq=head_seq, first_break=first, chains=chains)


async def verify_record_chain(conn: AsyncConnection, chain: str, key: str) -> RecordChainResult:
    """Recompute every record's hash and link in one of an org's tombstone or admin-action chains, and
    compare the newest record with the chain's head. Records are never removed, so any gap is a break."""
    what = "tombstone" if chain == "tombstone" else "admin action"
    summary = await repo.record_chain_summary(conn, chain, key)
    records, max_seq = int(summary["records"]), summary["max_seq"]
    head_seq = summary["head_seq"]
    broken = await repo.record_chain_first_break(conn, chain, key)
    first: ChainBreak | None = None
    if broken is not None:
        seq = broken["seq"]
        expected = (broken["before_seq"] + 1) if broken["before_seq"] is not None else 1
        if seq is None:
            first = ChainBreak(None, broken["id"], "outside_chain",
                               f"a {what} record has no chain position (written with the chain trigger disabled)")
        elif broken["changed"]:
            first = ChainBreak(seq, broken["id"], "changed", f"{what} record {seq} no longer matches its hash")
        elif seq > expected:
            first = ChainBreak(expected, None, "removed", f"{what} records {expected}..{seq - 1} are missing")
        else:
            first = ChainBreak(seq, broken["id"], "inserted_out_of_order",
                               f"{what} record {seq} does not link to the record before it")
    elif (head_seq or 0) > (max_seq or 0):
        first = ChainBreak((max_seq or 0) + 1, None, "removed",
                           f"{what} records {(max_seq or 0) + 1}..{head_seq} (the newest) are missing")
    elif max_seq is not None and (head_seq is None or max_seq > head_seq):
        first = ChainBreak(max_seq, None, "outside_chain",
                           f"{what} records beyond the chain's head ({head_seq or 0}) were written")
    elif max_seq is not None and summary["max_hash"] != summary["head_hash"]:
        first = ChainBreak(max_seq, None, "changed", f"the newest {what} record does not match the chain's head")
    return RecordChainResult(chain=chain, ok=first is None, records=records, head_seq=int(head_seq or 0),
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
