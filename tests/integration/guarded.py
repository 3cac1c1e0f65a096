"""A gateway with the example policies.yaml's guardrail rules, and operator helpers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors

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


def denied(gateway: Gateway, work: Callable[[], object],
           reason: str = "issue 12") -> dict[str, Any]:
    """Run ``work`` (a client's statement) in a thread: it must be held for approval; an
    operator denies it, and the client hears the denial (42501). The request."""
    request, failure = _decided(gateway, work, "deny", reason)
    assert isinstance(failure, errors.InsufficientPrivilege), failure
    return request


def denied_sql(gateway: Gateway, *statements: str,
               params: list[object] | None = None) -> dict[str, Any]:
    """``statements`` run by alice on one autocommit connection, the last held and denied
    (``denied``), with ``params`` if given. The request."""
    def work() -> None:
        with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
            for sql in statements[:-1]:
                conn.execute(sql)  # type: ignore[arg-type]
            conn.execute(statements[-1], params)  # type: ignore[arg-type]

    return denied(gateway, work)


def refused_held(gateway: Gateway, work: Callable[[], object],
                 reason: str = "issue 12") -> dict[str, Any]:
    """Run ``work`` in a thread: it must be held for approval; an operator denies it. The
    request (for work that reports the denial itself, such as a libpq pipeline)."""
    return _decided(gateway, work, "deny", reason)[0]


def approved(gateway: Gateway, work: Callable[[], object],
             reason: str = "issue 12") -> tuple[dict[str, Any], BaseException | None]:
    """Run ``work`` in a thread: it must be held for approval; an operator approves it. The
    request, and what ``work`` raised once it ran (the target's own error), if anything."""
    return _decided(gateway, work, "approve", reason)


def _decided(gateway: Gateway, work: Callable[[], object], decision: str,
             reason: str) -> tuple[dict[str, Any], BaseException | None]:
    """``work`` run in a thread until held, the request decided by an operator; the request
    and the client's error once ``work`` returned."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except psycopg.Error as exc:
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    request = wait_for_request(gateway)
    with operator(gateway) as client:
        client.call(decision, request=request["id"], reason=reason)
    worker.join(30)
    assert not worker.is_alive()
    return request, (failure[0] if failure else None)
