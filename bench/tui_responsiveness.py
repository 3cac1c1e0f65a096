"""TUI figures: key-press handling with 1,000 sessions listed while one session streams
statements, switching screens (1, 2, 3) at 80x24 and 160x48, and (with a real engine) the
time from a statement being held to the request being on the operator's screen.

    .venv/bin/python bench/tui_responsiveness.py
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import Event, StatementFinished
from tests.tui.fixtures import NOW, fixed_source, iso
from tui.app import GatewatchApp
from tui.source import FixedSource


class Busy(FixedSource):
    """1,000 live sessions; one of them runs ~1,000 statements a second (an event each)."""

    def __init__(self) -> None:
        base = fixed_source()
        live = [{"id": f"{i:016x}", "identity": f"user{i % 50}", "connection": "shop",
                 "client_addr": f"10.0.{i // 250}.{i % 250}:5000", "database": "shop",
                 "application_name": "app", "started_at": iso(-i), "statements": i,
                 "waiting_for": None} for i in range(1000)]
        super().__init__({"live": live, "recent": []}, {"pending": [], "recent": []},
                         {}, base._stats)
        self.live = live

    async def next_events(self) -> list[Event]:
        await asyncio.sleep(0.001)
        self.live[0]["statements"] += 1
        seq = self.live[0]["statements"]
        return [StatementFinished(self.live[0]["id"], seq, "ok", 1, None, None)]


async def keypress_latency() -> list[float]:
    """From a key press to the cursor having moved. (Pilot's own waits are for an idle app,
    which an app receiving 1,000 events a second never is: poll the table instead.)"""
    from textual.widgets import DataTable

    app = GatewatchApp(Busy(), clock=lambda: NOW)
    times = []
    async with app.run_test(size=(160, 48)) as pilot:
        await asyncio.sleep(1.5)
        table = app.sessions_screen.query_one("#sessions", DataTable)
        assert table.row_count == 1000
        for _ in range(60):
            before = table.cursor_row
            start = time.perf_counter()
            press = asyncio.ensure_future(pilot.press("down"))
            while table.cursor_row == before:  # noqa: ASYNC110 (polling is the measurement)
                await asyncio.sleep(0.0005)
            times.append((time.perf_counter() - start) * 1000)
            await press
            await asyncio.sleep(0.02)
    return times


async def screen_switches(size: tuple[int, int], rounds: int = 10) -> list[float]:
    """From pressing 1, 2 or 3 to that screen being the active one and drawn (the app idle
    again: Pilot's wait, with no events streaming)."""
    app = GatewatchApp(fixed_source(), clock=lambda: NOW)
    times = []
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        for _ in range(rounds):
            for key in ("2", "3", "1"):
                start = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()
                times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    for size in ((80, 24), (160, 48)):
        switches = asyncio.run(screen_switches(size))
        print(f"screen switch at {size[0]}x{size[1]}: median {statistics.median(switches):.0f} ms, "
              f"max {max(switches):.0f} ms ({len(switches)} switches)")
    times = asyncio.run(keypress_latency())
    q = statistics.quantiles(times, n=20)
    print(f"key press with 1,000 sessions and a streaming session: median "
          f"{statistics.median(times):.1f} ms, p95 {q[18]:.1f} ms, max {max(times):.1f} ms")
    held_to_screen()



def held_to_screen(rounds: int = 10) -> None:
    """Real engine and PostgreSQL: from psql sending a held statement to the TUI showing it."""
    import tempfile

    from gatewatch.demo.tls import self_signed
    from tests.conftest import PgCluster, Target, stop_gateway
    from tests.integration.guarded import start_guarded

    work = Path(tempfile.mkdtemp(prefix="gatewatch-tui-bench-"))
    tls = self_signed(work / "tls", "target")
    cluster = PgCluster(tls=tls)
    cluster.start()
    try:
        cluster.create_role("gw_scram", "pw")
        cluster.create_role("gw_md5", "pw2", md5=True)
        cluster.create_role("gw_trust", None)
        cluster.sql("CREATE DATABASE shop OWNER gw_scram;")
        (work / "gw").mkdir(mode=0o700)  # the store's directory is private
        gw = start_guarded(Target(cluster, {"gw_scram": "pw", "gw_md5": "pw2"}, tls),
                           work / "gw")
        try:
            results = asyncio.run(_held_rounds(gw, rounds))
        finally:
            stop_gateway(gw)
    finally:
        cluster.stop()
    print(f"held statement to the operator's screen: median {statistics.median(results):.0f} "
          f"ms, max {max(results):.0f} ms ({rounds} rounds)")


async def _held_rounds(gw: Any, rounds: int) -> list[float]:
    """From the request's creation in the engine to it being listed on the approvals screen."""
    from tui.source import LiveSource
    from tui.timefmt import parse

    out = []
    app = GatewatchApp(LiveSource(gw.work / "control.sock", gw.tokens["oncall"]))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        for _ in range(100):
            if app.connected:
                break
            await asyncio.sleep(0.05)
        for _ in range(rounds):
            client = subprocess.Popen(["psql", "-X", "-d", gw.dsn(), "-c",  # noqa: ASYNC220
                                       "create temp table t as select 1 a; delete from t"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(5000):
                if app.approvals_screen.pending:
                    break
                await asyncio.sleep(0.001)
            seen = time.time()
            request = app.approvals_screen.pending[0]
            out.append((seen - (parse(request["created_at"]) or seen)) * 1000)
            client.kill()  # the disconnect withdraws the request
            client.wait()
            for _ in range(500):
                if not app.approvals_screen.pending:
                    break
                await asyncio.sleep(0.01)
    return out


if __name__ == "__main__":
    main()
