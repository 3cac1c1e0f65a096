"""engine/ and store/ never import textual or tui/ (the TUI only talks over the control socket)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

CHECK = """
import importlib, json, pkgutil, sys
import engine, store
for package in (engine, store):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_engine_and_store_do_not_import_the_tui() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    modules = json.loads(out.stdout)
    assert "engine.pg.relay" in modules and "store.verify" in modules  # the walk imported all
    assert [m for m in modules if m.split(".")[0] in ("textual", "tui")] == []
