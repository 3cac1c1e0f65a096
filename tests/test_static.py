"""Every package type-checks under mypy strict (the TUI included) and is ruff-clean: the suite
says so, so a change that breaks either fails like any other test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def test_mypy_strict_passes_on_every_package(tmp_path: Path) -> None:
    out = subprocess.run([str(BIN / "mypy"), "--cache-dir", str(tmp_path / "cache")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    for package in ("gatewatch", "tui", "engine", "recordings", "store", "themes"):
        assert package in (ROOT / "pyproject.toml").read_text().split("[tool.mypy]")[1]


def test_ruff_finds_nothing() -> None:
    out = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
