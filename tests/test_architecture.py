"""The layers hold (README, "Architecture"): import-linter's contracts in
pyproject.toml pass, and the contract that keeps the planes from importing
the application names every module of the application."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers import REPO

PLANES_AND_COMMON = {"proxy", "controller", "common"}


def contracts() -> list[dict[str, object]]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["tool"]["importlinter"]["contracts"])


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "0 broken" in res.stdout


def test_the_application_is_listed_whole() -> None:
    application = {f"shiftlab.{p.stem}" for p in (REPO / "shiftlab").iterdir()
                   if p.suffix == ".py" and p.stem not in ("__init__", "__main__")}
    application |= {f"shiftlab.{p.name}" for p in (REPO / "shiftlab").iterdir()
                    if p.is_dir() and (p / "__init__.py").exists() and p.name not in PLANES_AND_COMMON}
    forbidden = next(c for c in contracts() if c.get("source_modules") == ["shiftlab.controller", "shiftlab.proxy",
                                                                          "shiftlab.common"])
    listed = forbidden["forbidden_modules"]
    assert isinstance(listed, list) and set(listed) == application
