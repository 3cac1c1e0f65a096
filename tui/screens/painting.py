"""Painting data into a screen that may not be composed yet, or may be going away."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.css.query import NoMatches
from textual.screen import Screen


def paint(screen: Screen[Any], render: Callable[[], None]) -> None:
    """Run `render` when the screen's widgets exist. Data arrives from workers at any moment:
    before the screen is first shown (on_mount paints it then) or while the app is shutting down
    and the widgets are already gone (nothing left to paint). Neither is an error."""
    if not screen.is_mounted:
        return
    try:
        render()
    except NoMatches:
        return
