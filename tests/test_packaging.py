"""`pip install` of a fresh checkout ships everything the product serves: the console's pages and
assets, the API documentation's assets (Swagger UI, with its licence) and the migrations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("atlas_compliance/api/docs_assets", "atlas_compliance/console/static",
           "atlas_compliance/console/templates", "atlas_compliance/db/migrations/versions")


def test_the_wheel_of_a_checkout_ships_every_asset(tmp_path):
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "src", checkout / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                            str(checkout)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("atlas_compliance-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    src = checkout / "src"
    for folder in SHIPPED:
        expected = {p.relative_to(src).as_posix() for p in (src / folder).rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts}
        assert expected and expected <= names, (folder, sorted(expected - names))
    assert "atlas_compliance/api/docs_assets/swagger-ui/LICENSE" in names
