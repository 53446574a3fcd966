"""`make screenshots`: the console screenshots of the README and docs/console.md, from the demo data.

Builds the Acme Health demo exactly as `make demo` does (members, PII classifications from scanning the
demo's hospital database, about 60,000 audited queries over the last 90 days) in an embedded PostgreSQL
in a temporary directory, whatever DATABASE_URL says, serves the app on a free local port, signs in as
the demo admin in Debian's Chromium and writes four PNG files:

    reports-desktop.png, reports-narrow.png, classifications-desktop.png, classifications-narrow.png

to docs/screenshots/ (or --out). Reports show the last 30 days (data access), seen from New York.
Nothing else is written, and the temporary directory is removed. Tests never write these files.

    python -m tools.screenshots [--out DIR] [--queries N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.helpers_server import ThreadServer

from atlas_compliance.cli.demo import _evaluate_flags, _scan_hospital
from atlas_compliance.config import Settings
from atlas_compliance.demo import hospital, seed
from atlas_compliance.runtime import database_url, open_database

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
VIEWER_TZ = "America/New_York"
DESKTOP = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}


async def build_demo(url: str, settings: Settings, queries: int) -> seed.DemoInfo:
    async with open_database(url, settings) as db:
        org, *_ = await seed.ensure_people(db)
        print(f"  PII: {await _scan_hospital(db, org['id'])}")

        def progress(done: int, total: int) -> None:
            print(f"\r  audit trail: {done:,} / {total:,} events", end="", flush=True)

        info = await seed.seed_demo(db, target=queries, progress=progress)
        print()
        print(f"  flags: {(await _evaluate_flags(db, info.org_id))['flags']}")
        return info


def shoot(page, path: Path, max_height: int) -> None:
    """The page from the top at the current width, at most ``max_height`` pixels tall."""
    page.evaluate("() => window.scrollTo(0, 0)")
    height = min(page.evaluate("() => document.documentElement.scrollHeight"), max_height)
    page.screenshot(path=str(path), full_page=True,
                    clip={"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height})
    print(f"  wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def take(base: str, admin_email: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    today = datetime.now(ZoneInfo(VIEWER_TZ)).date()
    reports = (f"/admin/compliance?tab=reports&reportType=data-access&from={today - timedelta(days=29)}"
               f"&to={today}&tz={VIEWER_TZ}")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport=DESKTOP, timezone_id=VIEWER_TZ, locale="en-US")
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/login")
        page.fill("#email", admin_email)
        page.fill("#password", hospital.DEMO_PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#pii-table tbody tr")
        shoot(page, out / "classifications-desktop.png", 1600)
        page.set_viewport_size(NARROW)
        shoot(page, out / "classifications-narrow.png", 2200)
        page.set_viewport_size(DESKTOP)
        page.goto(base + reports)
        page.wait_for_function("""() => { const o = document.querySelector('#report-output');
            return !o.hidden && o.dataset.for === location.pathname + location.search; }""")
        page.wait_for_selector("#chart svg")
        shoot(page, out / "reports-desktop.png", 1600)
        page.set_viewport_size(NARROW)
        shoot(page, out / "reports-narrow.png", 2200)
        browser.close()
    if errors:
        raise SystemExit(f"the console reported script errors: {errors}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where the PNGs go")
    parser.add_argument("--queries", type=int, default=60_000, help="approximate demo events (as `make demo`)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is not installed (apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="atlas-screenshots-") as tmp:
        settings = Settings(database_url=None, data_dir=Path(tmp) / "data", log_level="WARNING")
        print("building the demo in a temporary embedded PostgreSQL …")
        with database_url(settings, exclusive=True) as url:
            info = asyncio.run(build_demo(url, settings, args.queries))
            with ThreadServer(url, settings) as server:
                take(server.base, info.admin_email, args.out)
    print(f"4 screenshots in {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
