"""Ctrl-C at any moment of a command's start is an exit 130 with nothing else printed (issue
16: during ``gatewatch demo``'s start-up it printed tracebacks and "coroutine … was never
awaited")."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from typing import Any

import pytest

from gatewatch.cli import runner


def test_the_command_loads_no_engine_module_before_its_try() -> None:
    """What loads before ``main``'s ``except KeyboardInterrupt`` is the standard library only,
    so a Ctrl-C while the engine's modules load is inside it."""
    code = ("import sys, gatewatch.cli.main; print(sorted(m for m in sys.modules"
            " if m.split('.')[0] in ('engine', 'store', 'tui', 'textual', 'recordings')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_ctrl_c_while_modules_load_is_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatewatch.cli import main

    def interrupted(argv: list[str] | None) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(main, "_main", interrupted)
    assert main.main(["sessions"]) == 130


def test_a_coroutine_interrupted_before_the_loop_ran_it_is_closed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Interrupted:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt  # Ctrl-C while the loop is made

    async def demo() -> int:
        return 0

    monkeypatch.setattr(asyncio, "Runner", Interrupted)
    monkeypatch.setattr(asyncio, "run", Interrupted)
    coro = demo()
    with pytest.raises(KeyboardInterrupt):
        runner.run(coro)
    # closed: no "coroutine 'demo' was never awaited"
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_run_still_runs() -> None:
    async def answer() -> int:
        return 42

    assert runner.run(answer()) == 42
