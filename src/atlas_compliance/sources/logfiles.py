"""Log files on disk: their identity across renames, where a follower stopped, and their lines with
byte offsets (no parsing, no database).

A file is known by its device and inode, so a rotation that renames it (MariaDB's ``server_audit.log``
→ ``server_audit.log.1``) keeps its position; the hash of its first bytes tells a reused inode, or a
file truncated and written again (PostgreSQL's ``log_truncate_on_rotation``), from the file that was
read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FINGERPRINT_BYTES = 1024
_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileIdentity:
    key: str  # "<device>:<inode>"
    size: int
    mtime: float


def identify(path: Path) -> FileIdentity:
    st = os.stat(path)
    return FileIdentity(key=f"{st.st_dev}:{st.st_ino}", size=st.st_size, mtime=st.st_mtime)


def fingerprint(path: Path, length: int = FINGERPRINT_BYTES) -> tuple[bytes, int]:
    """SHA-256 of the first ``length`` bytes (fewer if the file is shorter) and how many were hashed."""
    with open(path, "rb") as handle:
        head = handle.read(length)
    return hashlib.sha256(head).digest(), len(head)


def same_file(path: Path, digest: bytes, length: int) -> bool:
    """Whether ``path`` still begins with the bytes a stored position was taken from."""
    try:
        found, read = fingerprint(path, length)
    except OSError:
        return False
    return read == length and hmac.compare_digest(found, digest)


@dataclass
class FilePosition:
    """Where reading a file stopped: the next byte to read and the number of the line it begins."""

    offset: int = 0
    line: int = 1


def read_lines(path: Path, position: FilePosition, *, to_end: bool,
               max_lines: int | None = None) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, bytes without the newline) of each line from ``position`` on, at most
    ``max_lines`` of them.

    Only whole lines are read, unless ``to_end``: a file still being written may end in the middle
    of one. ``position`` is advanced past every line handed out.
    """
    last = position.line + max_lines if max_lines is not None else None
    with open(path, "rb") as handle:
        handle.seek(position.offset)
        tail = b""
        pending: list[bytes] = []  # blocks of a line longer than a block, joined once its end is read
        offset = position.offset
        line = position.line
        while True:
            block = handle.read(_BLOCK)
            if not block:
                break
            if b"\n" not in block:
                pending.append(block)
                continue
            data = b"".join([tail, *pending, block]) if tail or pending else block
            pending.clear()
            start = 0
            find = data.find
            while True:
                end = find(b"\n", start)
                if end < 0:
                    break
                text = data[start:end]
                if text.endswith(b"\r"):
                    text = text[:-1]
                if line == last:
                    return
                at = offset + start
                line += 1
                start = end + 1
                position.offset, position.line = offset + start, line
                yield line - 1, at, text
            offset += start
            tail = data[start:]
        tail = b"".join([tail, *pending])
        if to_end and tail:
            position.offset, position.line = offset + len(tail), line + 1
            yield line, offset, tail.rstrip(b"\r")
