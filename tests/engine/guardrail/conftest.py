"""The guard the repository's own policies.yaml gives alice on the ``shop`` connection: what a
developer meets in the demo, for tests that judge statements by the shipped rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config
from engine.guardrail import Guard
from engine.guardrail.guard import SessionGuard

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def shipped() -> SessionGuard:
    config = load_config(REPO / "policies.yaml")
    alice = next(i for i in config.identities if i.name == "alice")
    return Guard(config.rules, config.guardrails).for_session("shop", alice.name, alice.groups)
