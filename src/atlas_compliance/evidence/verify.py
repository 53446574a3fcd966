"""Checking an evidence bundle offline (no database): the manifest's signature, then every file's presence,
SHA-256 and row count, then that the zip holds no file the manifest does not list."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..audit.signing import VerifyingKey
from .format import FORMAT, MANIFEST, SIGNATURE, count_csv_rows, count_json_rows

CHUNK = 1 << 20


@dataclass(frozen=True)
class Problem:
    """The first thing in a bundle that is not as signed: which file, and how."""

    file: str
    detail: str


@dataclass(frozen=True)
class Outcome:
    problem: Problem | None
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class MalformedBundle(Exception):
    """Not a zip file, or a zip without a readable manifest: nothing can be checked."""


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise MalformedBundle(f"{path} is not a zip file (an evidence bundle is a .zip)") from None
    except OSError as exc:
        raise MalformedBundle(f"cannot read {path}: {exc.strerror or exc}") from None


def _signature(zf: zipfile.ZipFile, names: set[str]) -> tuple[bytes, bytes] | Problem:
    for name in (MANIFEST, SIGNATURE):
        if name not in names:
            return Problem(name, "missing from the bundle")
    data = zf.read(MANIFEST)
    try:
        signature = base64.b64decode(zf.read(SIGNATURE).strip(), validate=True)
    except (binascii.Error, ValueError):
        return Problem(SIGNATURE, "not a base64 signature")
    return data, signature


def _check_file(zf: zipfile.ZipFile, item: dict[str, Any]) -> str | None:
    """What is wrong with one listed file, or None."""
    name = item["name"]
    digest = hashlib.sha256()
    with zf.open(name) as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    if not hmac.compare_digest(digest.hexdigest(), str(item["sha256"])):
        return f"its SHA-256 is {digest.hexdigest()}, the manifest says {item['sha256']}: the file was changed"
    if item.get("rows") is None:
        return None
    if item.get("format") == "csv":
        with zf.open(name) as handle:
            rows = count_csv_rows(handle)
    else:
        rows = count_json_rows(zf.read(name), item["rowsKey"])
    if rows != item["rows"]:
        return f"it holds {rows} rows, the manifest says {item['rows']}"
    return None


def verify_bundle(path: Path, key: VerifyingKey) -> Outcome:
    """Check one bundle against ``key``; the first problem found, in manifest order, is named."""
    with _open(path) as zf:
        listed = zf.namelist()
        names = set(listed)
        if len(names) != len(listed):
            twice = next(n for n in listed if listed.count(n) > 1)
            return Outcome(Problem(twice, "appears more than once in the zip"))
        found = _signature(zf, names)
        if isinstance(found, Problem):
            return Outcome(found)
        data, signature = found
        try:
            manifest = json.loads(data)
            key_id = manifest["signature"]["keyId"]
        except (ValueError, KeyError, TypeError):
            manifest, key_id = None, None
        if not key.verify(signature, data):
            why = (f"signed by key {key_id!r}, not by this key ({key.key_id})" if key_id not in (None, key.key_id)
                   else f"the signature does not match its bytes with key {key.key_id}: the manifest was edited "
                        "or signed by another key")
            return Outcome(Problem(MANIFEST, why))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(
                manifest.get("files"), list):
            return Outcome(Problem(MANIFEST, f"not a {FORMAT} manifest"))
        expected = {MANIFEST, SIGNATURE}
        for item in manifest["files"]:
            name = item["name"]
            expected.add(name)
            if name not in names:
                return Outcome(Problem(name, "listed in the manifest but missing from the bundle"), manifest)
            try:
                wrong = _check_file(zf, item)
            except (ValueError, KeyError, TypeError, OSError, zlib.error, zipfile.BadZipFile) as exc:
                wrong = f"cannot be read as {item.get('format')}: {type(exc).__name__}: {exc}"
            if wrong:
                return Outcome(Problem(name, wrong), manifest)
        extra = [n for n in listed if n not in expected]
        if extra:
            return Outcome(Problem(extra[0], "in the bundle but not in the manifest (an added file)"), manifest)
        return Outcome(None, manifest)
