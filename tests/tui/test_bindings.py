"""Every key binding has an id, a description and an action that exists."""

from __future__ import annotations

import pytest
from textual.binding import Binding

from tui.app import GatewatchApp
from tui.replay import ReplayApp
from tui.screens.approvals import ApprovalsScreen
from tui.screens.reason import ReasonPrompt
from tui.screens.replay import ReplayScreen
from tui.screens.session import SessionScreen
from tui.screens.sessions import SessionsScreen
from tui.screens.stats import StatsScreen
from tui.widgets.choice import ChoiceTable
from tui.widgets.rowtable import RowTable

OWNERS = [GatewatchApp, SessionsScreen, ApprovalsScreen, SessionScreen, StatsScreen,
          ReasonPrompt, ReplayScreen, ReplayApp, ChoiceTable, RowTable]


@pytest.mark.parametrize("owner", OWNERS, ids=lambda o: o.__name__)
def test_bindings_resolve_to_actions(owner: type) -> None:
    bindings = [b for b in owner.__dict__.get("BINDINGS", []) if isinstance(b, Binding)]
    assert bindings or owner is StatsScreen, f"{owner.__name__} declares no bindings"
    for binding in bindings:
        assert binding.id, f"{owner.__name__}: {binding.key} has no id"
        assert binding.description, f"{owner.__name__}: {binding.key} has no description"
        action = binding.action.split("(", 1)[0]
        assert hasattr(owner, f"action_{action}"), (
            f"{owner.__name__}: {binding.key} → {binding.action} has no action_{action}")


def test_binding_ids_are_unique() -> None:
    ids = [b.id for owner in OWNERS for b in owner.__dict__.get("BINDINGS", [])
           if isinstance(b, Binding)]
    assert len(ids) == len(set(ids))
