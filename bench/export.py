"""CSV export of ≥ 1,000,000 rows: streamed, with the server process's memory sampled throughout."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

import httpx

from .server import RssSampler, Server


def csv_export(server: Server, token: str, *, expected_rows: int, last_day: date, days: int = 90,
               log=print) -> dict[str, Any]:
    """Stream the Data Access CSV of the export org over ``days`` days ending ``last_day``; return rows,
    bytes, time and the server's RSS before, at peak (sampled every 50 ms) and after."""
    start = (last_day - timedelta(days=days - 1)).isoformat()
    params = {"startDate": start, "endDate": last_day.isoformat(), "format": "csv"}
    headers = {"Authorization": f"Bearer {token}"}
    url = server.base_url + "/api/v1/admin/compliance/reports/data-access"
    with httpx.Client(timeout=600, headers=headers) as client:
        warm = client.get(url, params={**params, "format": "json", "limit": 100})  # first-request costs not counted
        if warm.status_code != 200:
            raise SystemExit(f"export warm-up: HTTP {warm.status_code}: {warm.text[:300]}")
        time.sleep(1.0)
        lines = 0
        size = 0
        first_byte = None
        tail = b""
        began = time.perf_counter()
        with RssSampler(server.rss) as memory, client.stream("GET", url, params=params) as resp:
            if resp.status_code != 200:
                raise SystemExit(f"export: HTTP {resp.status_code}: {resp.read()[:300]!r}")
            disposition = resp.headers.get("content-disposition", "")
            for chunk in resp.iter_bytes():
                if first_byte is None:
                    first_byte = time.perf_counter() - began
                lines += chunk.count(b"\r\n")
                size += len(chunk)
                tail = (tail + chunk)[-200:]
            seconds = time.perf_counter() - began
        time.sleep(1.0)
        after = server.rss()
    before, peak, samples = memory.before, memory.peak, memory.samples
    rows = lines - 1  # the header line
    growth_mb = (peak - before) / 2**20
    errors = []
    if rows != expected_rows:
        errors.append(f"CSV has {rows:,} data rows, expected {expected_rows:,}")
    if not tail.endswith(b"\r\n"):
        errors.append("CSV does not end with CRLF (truncated stream?)")
    log(f"  CSV export: {rows:,} rows, {size / 2**20:.0f} MB in {seconds:.1f}s ({rows / seconds:,.0f} rows/s, "
        f"first byte {first_byte or 0:.2f}s); server RSS {before / 2**20:.0f} MB → peak {peak / 2**20:.0f} MB "
        f"(+{growth_mb:.1f} MB) → {after / 2**20:.0f} MB after")
    step = max(1, len(samples) // 40)
    return {"rows": rows, "expected_rows": expected_rows, "bytes": size, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds), "first_byte_s": round(first_byte or 0, 3),
            "rss_before_mb": round(before / 2**20, 1), "rss_peak_mb": round(peak / 2**20, 1),
            "rss_after_mb": round(after / 2**20, 1), "growth_mb": round(growth_mb, 1), "target_growth_mb": 100,
            "pass": growth_mb < 100 and not errors, "content_disposition": disposition,
            "rss_samples_mb": [(t, round(r / 2**20, 1)) for t, r in samples[::step]], "errors": errors}
