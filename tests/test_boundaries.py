"""Layers only point down (ARCHITECTURE.md): the import-linter contracts in pyproject.toml hold,
and they do catch a violation; importing the engine and the store loads no screen code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("gatewatch", "tui", "themes", "engine", "recordings", "store")
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT, "--no-cache"], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tree / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_contracts_hold() -> None:
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_the_store_importing_the_tui_breaks_the_layers(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    (tree / "store" / "violation.py").write_text("import tui.app\n")
    out = _lint(tree)
    assert out.returncode == 1
    assert "Layers point down" in out.stdout and "BROKEN" in out.stdout
    assert "store.violation -> tui.app" in out.stdout


def test_the_engine_importing_textual_inside_a_function_is_caught(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    (tree / "engine" / "violation.py").write_text(
        "def show() -> None:\n    from textual.app import App\n    App()\n")
    out = _lint(tree)
    assert out.returncode == 1
    assert "never import the screen BROKEN" in out.stdout


def test_the_tui_reaching_into_the_pg_front_end_is_caught(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    (tree / "tui" / "violation.py").write_text("from engine.pg import relay\n")
    out = _lint(tree)
    assert out.returncode == 1
    assert "never engine internals BROKEN" in out.stdout


def test_masking_importing_the_pg_front_end_breaks_the_engines_layers(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    (tree / "engine" / "masking" / "violation.py").write_text("from engine.pg import codec\n")
    out = _lint(tree)
    assert out.returncode == 1
    assert "Inside the engine, layers point down" in out.stdout
    assert "engine.masking.violation -> engine.pg.codec" in out.stdout


def test_the_session_core_importing_a_front_end_is_caught(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    path = tree / "engine" / "session.py"
    path.write_text(path.read_text() + "\nfrom engine.ssh import session as _front\n")
    out = _lint(tree)
    assert out.returncode == 1
    assert "engine.session -> engine.ssh.session" in out.stdout


CHECK = """
import importlib, json, pkgutil, sys
import engine, recordings, store
for package in (engine, recordings, store):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_engine_loads_no_screen_code() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    modules = json.loads(out.stdout)
    assert "engine.pg.relay" in modules and "store.verifier" in modules  # the walk imported all
    assert [m for m in modules if m.split(".")[0] in ("textual", "tui", "gatewatch")] == []
