"""The look of every screen, pinned from deterministic data at 80x24 and 160x48."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.tui.fixtures import NOW, fixed_source
from tui.app import GatewatchApp

SIZES = [(80, 24), (160, 48)]
SCREENS = {
    "sessions": [],
    "session": ["enter"],
    "approvals": ["2"],
    "approve-prompt": ["2", "a"],
    "stats": ["3"],
}


def make_app() -> GatewatchApp:
    return GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_snapshot(snap_compare: Callable[..., bool], screen: str,
                         size: tuple[int, int]) -> None:
    async def settle(pilot: Any) -> None:
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, press=SCREENS[screen],
                        run_before=settle)


async def test_deny_from_the_keyboard_with_fixed_data() -> None:
    source = fixed_source()
    app = GatewatchApp(source, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("2")
        await app.workers.wait_for_complete()
        await pilot.press("d")
        await pilot.press(*"not now")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert source.decisions == [("a1b2c3d4", False, "not now")]
        assert app.sub_title == "no pending approvals"
    escaped = fixed_source()
    app = GatewatchApp(escaped, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("2", "a", "escape")
        await app.workers.wait_for_complete()
        assert escaped.decisions == []  # Esc cancels
        assert app.sub_title == "1 pending approval"


async def test_command_palette_reaches_screens_and_themes() -> None:
    app = GatewatchApp(fixed_source(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("ctrl+p", *"Statistics")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "stats"
        await pilot.press("ctrl+p", *"Theme: gatewatch-light")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.theme == "gatewatch-light"
