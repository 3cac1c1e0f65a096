"""A gateway with the example policies.yaml's guardrail rules, and operator helpers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from gatewatch.cli.control_client import ControlClient
from tests.conftest import ROOT, Gateway, Target, start_gateway


def example_rules() -> str:
    """The ``rules:`` block of the repository's policies.yaml, as shipped."""
    text = (ROOT / "policies.yaml").read_text()
    start = text.index("\nrules:\n") + 1
    end = text.index("\n# Masking", start)
    return text[start:end]


def start_guarded(target: Target, work: Path, **settings: Any) -> Gateway:
    return start_gateway(target, work, rules=example_rules(), **settings)


def operator(gateway: Gateway, who: str = "oncall") -> ControlClient:
    return ControlClient(gateway.work / "control.sock", gateway.tokens[who])


def wait_for_request(gateway: Gateway, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with operator(gateway) as client:
        while time.monotonic() < deadline:
            pending = client.call("approvals")["pending"]
            if pending:
                return dict(pending[0])
            time.sleep(0.05)
    raise AssertionError("no approval request appeared")


def cli_env(gateway: Gateway, who: str = "oncall") -> dict[str, str]:
    return {**os.environ, "GATEWATCH_TOKEN": gateway.tokens[who],
            "GATEWATCH_CONFIG": str(gateway.work / "policies.yaml")}
