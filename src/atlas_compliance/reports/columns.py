"""Column names from the rollups' bitmasks: each organization's column dictionary
(`audit_column_dict`: table → bit → column), kept between reports.

The dictionary only grows: a (table, column) gets its bit once, for good (`audit_column_dict_bit` is
unique), and no row of it is ever changed or deleted. So a dictionary read earlier is right for every
bit it knows; it is read again when the organization has more entries than it holds, and when a
report meets a bit it does not know (a rollup row committed after the dictionary was read), so
every name is always there.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from itertools import compress
from operator import itemgetter

_MASK64 = 0xFFFFFFFFFFFFFFFF
_KEPT_ORGS = 64  # dictionaries kept in memory, the most recently used ones


class TableColumns:
    """One table's columns: name by bit, the names in byte-wise order, and where each one's bit sits
    in a mask written out as 64 flags (most significant first), so that a mask is decoded without a
    loop over its bits or a sort (a row of a flat ``columns_accessed`` list reads dozens of columns)."""

    __slots__ = ("_flags_in_name_order", "bits", "by_name", "known")

    def __init__(self, bits: dict[int, str]) -> None:
        self.bits = bits
        order = sorted(bits.items(), key=lambda item: item[1])  # code point order = UTF-8 byte order
        self.by_name = [name for _, name in order]
        positions = [63 - bit for bit, _ in order]
        self._flags_in_name_order = itemgetter(*positions, *positions[:1])  # two or more: always a tuple
        known = 0
        for bit in bits:
            known |= 1 << bit
        self.known = known

    def names(self, mask: int) -> list[str]:
        """The names of the set bits that are known, sorted byte-wise."""
        if mask.bit_count() > 4:
            flags = format(mask, "064b").encode().translate(_FLAG_BYTES)  # b"\x00" or b"\x01" per bit
            return list(compress(self.by_name, self._flags_in_name_order(flags)))
        names = []  # a few columns: visit their bits, sort their names
        bits = self.bits
        while mask:
            low = mask & -mask
            name = bits.get(low.bit_length() - 1)
            if name is not None:
                names.append(name)
            mask ^= low
        names.sort()
        return names


_FLAG_BYTES = bytes.maketrans(b"01", b"\x00\x01")


class ColumnDictionary:
    """An organization's column dictionary, for one report: :meth:`decode` notes in ``stale`` a bit it
    does not know. The tables are shared by the reports that use it (see :meth:`for_report`)."""

    def __init__(self, rows: list[tuple[str, str, int]]) -> None:
        by_table: dict[str, dict[int, str]] = {}
        for table, column, bit in rows:
            bits = by_table.get(table)
            if bits is None:
                bits = by_table[table] = {}
            bits[bit] = column
        self.tables = {table: TableColumns(bits) for table, bits in by_table.items()}
        self.size = len(rows)
        self.stale = False

    def for_report(self) -> ColumnDictionary:
        """This dictionary's tables, with a ``stale`` flag of the report's own."""
        use = copy.copy(self)
        use.stale = False
        return use

    def decode(self, table: str, mask: int, extra: str | None) -> list[str]:
        """Column names from a rollup bitmask (and the names past a table's 64th column), sorted byte-wise."""
        mask &= _MASK64  # bit 63 comes back as the sign bit of a bigint
        columns = self.tables.get(table)
        if columns is None:
            self.stale = self.stale or mask != 0
            names: list[str] = []
        else:
            if mask & ~columns.known:
                self.stale = True
            names = columns.names(mask) if mask else []
        if extra:
            names = sorted({*names, *extra.split(chr(31))})
        return names


_kept: OrderedDict[str, ColumnDictionary] = OrderedDict()


def kept(org_id: str, size: int) -> ColumnDictionary | None:
    """The dictionary kept for the org if it holds all of its ``size`` entries."""
    found = _kept.get(org_id)
    if found is None or found.size != size:
        return None
    _kept.move_to_end(org_id)
    return found


def keep(org_id: str, dictionary: ColumnDictionary) -> ColumnDictionary:
    _kept[org_id] = dictionary
    _kept.move_to_end(org_id)
    while len(_kept) > _KEPT_ORGS:
        _kept.popitem(last=False)
    return dictionary
