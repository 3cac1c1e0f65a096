"""Which of the engine's modules have a compiled build, and whether it is used (issue 18).

``.ci/setup`` compiles the engine's hot modules with mypyc (``.ci/compile.py``): each listed
module gets an extension module beside its ``.py`` in the checkout, and all of them share one
library, ``store/_compiled__mypyc.*.so`` (in ``store``, the lowest layer, which every compiled
module may import). The ``.py`` files stay the source of truth and the fallback.

A compiled module calls the other compiled modules' code directly, and was compiled against
the types of the modules it imports, so the build is used whole or not at all: ``install()``
puts a finder in front of the import system which loads every listed module from its ``.py``
when

- ``GATEWATCH_PURE_PYTHON`` is set (to anything but ``""`` or ``0``), or
- the build is stale: its stamp (``build/mypyc/stamp.json``) is missing or names other
  modules, another Python or other sources — the stamp holds the SHA-256 of every ``.py`` of
  the packages the compiled modules were compiled against (``engine``, ``recordings``,
  ``store``), so an edited source is never shadowed by the code compiled from its old text.
  A stale build also warns once (``StaleCompiledBuild``); ``bash .ci/setup`` rebuilds it.

``engine`` and ``store`` call ``install()`` before any of their modules is imported.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
STAMP = ROOT / "build" / "mypyc" / "stamp.json"
# The shared library's module name (mypyc's group name; its file is this + "__mypyc").
GROUP = "store._compiled"
# The packages whose sources the stamp covers: what the compiled modules import from this
# repository (the layers below the engine; the engine never imports gatewatch, tui or themes).
PACKAGES = ("engine", "recordings", "store")

# Chosen by measurement (README, Benchmarks): the engine's CPU per pgbench transaction.
MODULES: tuple[str, ...] = (
    "engine.pg.messages",
    "engine.pg.codec",
    "engine.pg.side",
    "engine.pg.relay",
    "engine.pg.results",
    "engine.pg.connection",
    "engine.masking.masker",
    "engine.masking.detectors",
    "engine.masking.pg",
    "engine.masking.stream",
    "engine.masking.terminal",
    "engine.masking.lineage",
    "engine.masking.flow",
    "engine.recorder",
    "store.journal",
    "store.chain",
    "engine.guardrail.classify",
    "engine.guardrail.guard",
)


class StaleCompiledBuild(UserWarning):
    """The compiled modules were built from other sources: the ``.py`` files are used."""


def disabled() -> bool:
    return os.environ.get("GATEWATCH_PURE_PYTHON", "") not in ("", "0")


def source_path(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def extension_paths(module: str, root: Path = ROOT) -> list[Path]:
    """The compiled module's files (shims), whatever Python built them."""
    path = source_path(module, root)
    return sorted(path.parent.glob(path.stem + ".*.so"))


def shared_library_paths(root: Path = ROOT) -> list[Path]:
    package, _, name = GROUP.rpartition(".")
    return sorted((root / package).glob(f"{name}__mypyc.*.so"))


def sources(root: Path = ROOT) -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((root / package).rglob("*.py"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(root: Path = ROOT) -> dict[str, object]:
    """What a build is valid for: this Python, the modules, every covered source's hash (all
    of them hashed each time, ~10 ms: a time or size proves nothing about the contents)."""
    return {
        "python": sys.version,
        "soabi": importlib.machinery.EXTENSION_SUFFIXES[0],
        "modules": list(MODULES),
        "sources": {str(p.relative_to(root)): digest(p) for p in sources(root)},
    }


def stale_reason(root: Path = ROOT, stamp: Path | None = None) -> str | None:
    """Why the compiled build in ``root`` may not be used, or None when it may."""
    stamp = stamp or root / STAMP.relative_to(ROOT)
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return f"no readable stamp {stamp}"
    if not isinstance(recorded, dict):
        return f"no readable stamp {stamp}"
    current = fingerprint(root)
    for key in ("python", "soabi", "modules"):
        if recorded.get(key) != current[key]:
            return f"built for another {key}"
    old = recorded.get("sources")
    new = current["sources"]
    assert isinstance(new, dict)
    if not isinstance(old, dict):
        return "the stamp lists no sources"
    changed = sorted(set(old) ^ set(new) | {k for k in set(old) & set(new) if old[k] != new[k]})
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return f"changed since the build: {', '.join(changed[:3])}{more}"
    missing = [m for m in MODULES if not extension_paths(m, root)]
    if missing or not shared_library_paths(root):
        return f"compiled files missing: {', '.join(missing) or GROUP}"
    return None


def built(root: Path = ROOT) -> bool:
    """Are any compiled files there (used or not)?"""
    return bool(shared_library_paths(root)) or any(extension_paths(m, root) for m in MODULES)


class _SourceFinder:
    """Loads the listed modules from their ``.py`` files (the build is off or stale)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _MODULE_SET or path is None:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for entry in path:
            candidate = os.path.join(entry, leaf)
            if os.path.isfile(candidate):
                return importlib.util.spec_from_file_location(fullname, candidate)
        return None


_MODULE_SET = frozenset(MODULES)
_state: dict[str, str | None] = {}


def status() -> str:
    """"compiled", "pure" (opted out or not built) or "stale: <why>" for this process."""
    return _state.get("status") or "pure"


def install() -> None:
    """Decide once per process whether the compiled build is used; if not, make every listed
    module load from its ``.py``."""
    if "status" in _state:
        return
    if not built():
        _state["status"] = "pure"
        return
    reason = None if disabled() else stale_reason()
    if disabled():
        _state["status"] = "pure"
    elif reason is not None:
        _state["status"] = f"stale: {reason}"
        warnings.warn(f"Gatewatch's compiled modules are not used ({reason}); "
                      "run `bash .ci/setup` to rebuild them", StaleCompiledBuild, stacklevel=2)
    else:
        _state["status"] = "compiled"
        return
    sys.meta_path.insert(0, _SourceFinder())


__all__ = ["GROUP", "MODULES", "STAMP", "StaleCompiledBuild", "fingerprint", "install",
           "stale_reason", "status"]
