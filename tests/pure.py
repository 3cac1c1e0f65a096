"""Tests that inject fakes into the engine's modules (a stand-in for a socket, a counting masker,
a module constant) run against the ``.py`` files: compiled classes cannot be subclassed or have
their methods replaced, and compiled code reads its constants where it was built. Marked
``pure_python``, they skip in a process that runs the compiled build, and
``tests/test_compiled.py`` runs them again in a process of their own with the ``.py`` files
(``GATEWATCH_PURE_PYTHON=1``), so that the suite runs them whichever build it tests."""

from __future__ import annotations

import importlib

import pytest


def compiled(module: str) -> bool:
    """Whether ``module`` was imported from the compiled build."""
    return not str(importlib.import_module(module).__file__).endswith(".py")


def pure_python(*modules: str) -> pytest.MarkDecorator:
    """Skip when any of ``modules`` is compiled (``tests/test_compiled.py`` runs it then)."""
    return pytest.mark.skipif(any(compiled(m) for m in modules),
                              reason="injects fakes: run with the .py files by "
                                     "tests/test_compiled.py")
