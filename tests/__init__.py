"""Gatewatch's test suite.

Bytecode: the suite starts hundreds of Python processes (the CLI, demos, engine workers) and
pytest imports every module. Where the environment forbids bytecode next to the sources
(``PYTHONDONTWRITEBYTECODE``, as some sandboxes set), each of those processes compiled every
Gatewatch module again: ~0.1 s a process, and ~7 s of each collection. The suite then keeps its
bytecode in a cache of the user's own (``PYTHONPYCACHEPREFIX``, inherited by every process it
starts), so that the checkout still gets none. This package is imported before any test
module or conftest, so the setting holds for all of them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _cache_bytecode_outside_the_checkout() -> None:
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache = Path(home) / "gatewatch" / "pycache"
    try:
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return  # nowhere to keep it: compiled again, as before
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = str(cache)
    sys.pycache_prefix = str(cache)
    sys.dont_write_bytecode = False


_cache_bytecode_outside_the_checkout()
