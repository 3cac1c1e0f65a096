"""The TUI against a real engine and a real PostgreSQL: decide and kill from the keyboard."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from tests.conftest import Gateway
from tui.app import GatewatchApp
from tui.source import LiveSource

pytestmark = pytest.mark.integration


def held(gateway: Gateway, user: str = "alice") -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["psql", "-X", "-d", gateway.dsn(user=user), "-c",
         "create temp table t as select 1 as a; delete from t"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def until(pilot: Pilot[None], check: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the TUI never showed it"
        await pilot.pause(0.05)


def app_for(gateway: Gateway) -> GatewatchApp:
    return GatewatchApp(LiveSource(gateway.work / "control.sock", gateway.tokens["oncall"]))


async def test_approve_from_the_keyboard(guarded: Gateway) -> None:
    client = held(guarded)
    app = app_for(guarded)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.sub_title == "1 pending approval")
        await pilot.press("2")
        await until(pilot, lambda: len(app.approvals_screen.pending) == 1)
        await pilot.press("a", "enter")
        out, err = client.communicate(timeout=30)
        assert out.split() == ["SELECT", "1", "DELETE", "1"], err
        await until(pilot, lambda: app.sub_title == "no pending approvals")


async def test_a_refused_decision_is_shown_and_the_tui_goes_on(guarded: Gateway) -> None:
    """oncall's own statement: the engine refuses self-approval; the operator reads why and the
    TUI keeps working (a failed worker must never take the app down)."""
    client = held(guarded, user="oncall")
    app = app_for(guarded)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("2")
            await until(pilot, lambda: len(app.approvals_screen.pending) == 1)
            await pilot.press("a", "enter")
            await until(pilot, lambda: any(n.title == "Refused"
                                           for n in app._notifications))
            assert app.is_running
            await pilot.press("1")
            assert app.screen is app.sessions_screen
    finally:
        client.kill()
        client.communicate()


async def test_deny_with_a_reason_from_the_keyboard(guarded: Gateway) -> None:
    client = held(guarded)
    app = app_for(guarded)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: len(app.approvals_screen.pending) == 1)
        await pilot.press("d", *"not in prod", "enter")
        _, err = client.communicate(timeout=30)
        assert "statement denied by oncall: not in prod" in err


async def test_kill_from_the_keyboard(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(application_name="victim"), autocommit=True) as conn:
        conn.execute("select 1")
        app = app_for(guarded)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: any(r.get("application_name") == "victim"
                                           and r["status"] == "live"
                                           for r in app.sessions_screen.rows))
            await pilot.press("slash", *"victim", "enter", "enter")
            await until(pilot, lambda: app.screen.__class__.__name__ == "SessionScreen")
            await pilot.press("k", *"runaway", "enter", *"yes", "enter")
            await until(pilot, lambda: not any(r.get("application_name") == "victim"
                                               and r["status"] == "live"
                                               for r in app.sessions_screen.rows))
        with pytest.raises(psycopg.OperationalError, match="ended by operator oncall: runaway"):
            conn.execute("select 1")


async def test_engine_away_shows_a_banner_and_reconnects(guarded: Gateway,
                                                         tmp_path: Path) -> None:
    app = GatewatchApp(LiveSource(tmp_path / "nothing.sock", guarded.tokens["oncall"]))
    async with app.run_test(size=(100, 30)) as pilot:
        banner = app.sessions_screen.query_one("#banner", Static)
        await until(pilot, lambda: banner.has_class("shown"))
        assert "engine unreachable" in str(banner.render())
        # The engine appears where the TUI looks: it connects and the banner goes.
        app.source = LiveSource(guarded.work / "control.sock", guarded.tokens["oncall"])
        await until(pilot, lambda: not banner.has_class("shown"), seconds=20)
        assert app.connected


async def test_a_token_that_is_not_an_operators_ends_the_tui_saying_why(gateway: Gateway) -> None:
    """alice is no approver: the hello is refused, and the TUI ends with exit status 1 and the
    reason instead of retrying behind a banner that blames the socket (issue 16)."""
    app = GatewatchApp(LiveSource(gateway.work / "control.sock", gateway.tokens["alice"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1


def test_gatewatch_tui_with_a_wrong_token_exits_1_before_taking_the_screen(
        gateway: Gateway) -> None:
    from tests.integration.test_recording import run_cli

    for token, reason in (("not-a-token", "unknown token"),
                          (gateway.tokens["alice"], "alice is not an operator")):
        # --token=VALUE: a random token may start with "-"
        done = run_cli("tui", "-c", str(gateway.work / "policies.yaml"), f"--token={token}")
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("gatewatch: the engine refused the operator token ("), \
            done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
        if reason != "unknown token":
            assert reason in done.stderr
