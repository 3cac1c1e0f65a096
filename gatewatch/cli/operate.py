"""``approvals``, ``approve``, ``deny`` and ``kill``: the operator's commands over the control
socket, with the operator's token from ``--token`` or ``GATEWATCH_TOKEN``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from engine.config import Config
from gatewatch.cli.control_client import ControlClient, ControlRefused, EngineUnreachable


class OperateError(Exception):
    """A refused or impossible operation: exit status 1 with the reason."""


def _client(config: Config, token: str | None) -> ControlClient:
    token = token or os.environ.get("GATEWATCH_TOKEN")
    if not token:
        raise OperateError("no operator token: set GATEWATCH_TOKEN or pass --token")
    try:
        client = ControlClient(config.engine.control_socket, token)
    except (EngineUnreachable, ControlRefused) as exc:
        raise OperateError(str(exc)) from exc
    if not client.hello.get("operator"):
        client.close()
        raise OperateError(f"{client.hello.get('identity')} is not an operator")
    return client


def _call(config: Config, token: str | None, op: str, **args: Any) -> Any:
    with _client(config, token) as client:
        try:
            return client.call(op, **args)
        except (ControlRefused, EngineUnreachable) as exc:
            raise OperateError(str(exc)) from exc


def approvals(config: Config, token: str | None, *, as_json: bool) -> str:
    result = _call(config, token, "approvals")
    if as_json:
        return json.dumps(result)
    pending = result["pending"]
    if not pending:
        return "no approval requests are waiting"
    lines = []
    for r in pending:
        statement = " ".join(r["statement"].split())
        lines.append(
            f"{r['id']}  {r['requester']} on {r['connection']}  rule {r['rule']}  "
            f"expires {r['expires_at'][11:19]}  approvals {len(r['approvals'])}\n"
            f"    {statement}"
        )
    return "\n".join(lines)


def decide(config: Config, token: str | None, request_id: str, *, approve: bool,
           reason: str | None) -> str:
    result = _call(config, token, "approve" if approve else "deny", request=request_id,
                   reason=reason)
    if result["status"] == "pending":
        return (f"{request_id}: approval recorded ({len(result['approvals'])} so far); "
                "more approvers are needed")
    return f"{request_id}: {result['status']}"


def kill(config: Config, token: str | None, session: str, reason: str | None) -> str:
    result = _call(config, token, "kill", session=session, reason=reason)
    return f"session {result['session']} killed by {result['killed_by']}: {result['reason']}"


def fail(message: str) -> int:
    print(f"gatewatch: {message}", file=sys.stderr)
    return 1
