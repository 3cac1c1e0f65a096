"""The demo's TUI keeps the engine's log off the terminal it draws on (issue 16: a WARNING
after a failed login was printed over the screen), and says on the way out what was logged."""

from __future__ import annotations

import logging
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewatch.demo.tui import SHOWN_ON_EXIT, log_summary, logs_to_file


@pytest.fixture
def terminal_handler() -> Iterator[logging.Handler]:
    """The handler ``setup_logging`` installs: the root logger writing to stderr (fd 2)."""
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_while_the_tui_runs_the_log_goes_to_the_file(
        tmp_path: Path, terminal_handler: logging.Handler,
        capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "engine.log"
    engine = logging.getLogger("engine.pg.startup")
    with logs_to_file(log):
        assert terminal_handler not in logging.getLogger().handlers
        engine.warning("login failed for mallory from 127.0.0.1")
    assert "login failed for mallory" not in capfd.readouterr().err
    assert " WARNING engine.pg.startup: login failed for mallory" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert terminal_handler in logging.getLogger().handlers  # put back after the TUI


def test_the_way_out_shows_the_warnings_and_where_the_log_was(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    log.write_text("".join(f"2026-12-05 12:00:{i:02d},000 {'ERROR' if i % 2 else 'INFO'} "
                           f"engine.x: line {i}\n" for i in range(60)))
    summary = log_summary(log)
    assert summary is not None
    head, *shown = summary.splitlines()
    assert head == (f"gatewatch demo: the engine logged 60 lines while the TUI ran (in {log}, "
                    f"removed with the demo's directory); warnings and errors (the last "
                    f"{SHOWN_ON_EXIT} of 30):")
    assert len(shown) == SHOWN_ON_EXIT and shown[-1].endswith("line 59")
    assert all(" ERROR " in line for line in shown)


def test_nothing_logged_says_nothing(tmp_path: Path) -> None:
    (tmp_path / "engine.log").write_text("")
    assert log_summary(tmp_path / "engine.log") is None
    assert log_summary(tmp_path / "absent.log") is None
