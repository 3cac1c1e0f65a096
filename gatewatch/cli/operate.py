"""``approvals``, ``approve``, ``deny``, ``kill`` (with a lock-out), ``lockouts``, ``unlock`` and
``reload``: the operator's commands over the control socket, with the operator's token from
``--token`` or ``GATEWATCH_TOKEN``. Ids are whole or a unique prefix of at least 4 characters;
the engine says which when one is not."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from engine import shown
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
        # Line by line, numbered, never re-flowed: joined onto one line, a line after a
        # ``--`` comment read as part of the comment (outside attack, round 18).
        lines.append(
            f"{r['id']}  {r['requester']} on {r['connection']}  rule {r['rule']}  "
            f"expires {r['expires_at'][11:19]}  approvals {len(r['approvals'])}\n"
            f"{shown.block(r['statement'])}"
        )
    return "\n".join(lines)


def decide(config: Config, token: str | None, request_id: str, *, approve: bool,
           reason: str | None) -> str:
    result = _call(config, token, "approve" if approve else "deny", request=request_id,
                   reason=reason)
    request_id = result.get("id", request_id)  # the whole id, when a prefix was given
    if result["status"] == "pending":
        return (f"{request_id}: approval recorded ({len(result['approvals'])} so far); "
                "more approvers are needed")
    return f"{request_id}: {result['status']}"


def kill(config: Config, token: str | None, session: str, reason: str | None,
         lock_out: str | None = None, scope: str = "identity") -> str:
    args: dict[str, Any] = {"session": session, "reason": reason}
    if lock_out:
        args.update(lock_out=lock_out, scope=scope)
    result = _call(config, token, "kill", **args)
    lines = [f"session {result['session']} killed by {result['killed_by']}: {result['reason']}"]
    lockout = result.get("lockout")
    if lockout:
        lines.append(f"{_lockout_line(lockout)}; gatewatch unlock {lockout['id']} lifts it")
        others = result.get("still_live") or []
        if others:
            lines.append(f"note: {lockout['identity']} still has {len(others)} live "
                         f"session{'s' if len(others) != 1 else ''} the lock-out does not end: "
                         f"{', '.join(others)} (gatewatch kill ID ends one)")
    return "\n".join(lines)


def _lockout_line(lo: dict[str, Any]) -> str:
    where = f"connection {lo['connection']}" if lo.get("connection") else "every connection"
    return (f"lock-out {lo['id']}: {lo['identity']} kept out of {where} until "
            f"{lo['until'][:19].replace('T', ' ')} UTC, by {lo['created_by']}: {lo['reason']}")


def lockouts(config: Config, token: str | None, *, as_json: bool) -> str:
    result = _call(config, token, "lockouts")
    if as_json:
        return json.dumps(result)
    in_force = result["in_force"]
    if not in_force:
        return "no lock-outs are in force"
    return "\n".join(_lockout_line(lo) for lo in in_force)


def unlock(config: Config, token: str | None, lockout: str, reason: str | None) -> str:
    result = _call(config, token, "unlock", lockout=lockout, reason=reason)
    return (f"lock-out {result['id']} lifted by {result['lifted_by']}: {result['identity']} may "
            "connect again")


def reload(config: Config, token: str | None, *, as_json: bool) -> int:
    """``gatewatch reload``: the engine reads its policies file again. Exit 0 when the new
    policy is in force, 1 when the engine refused the file (the old one stays), with the
    engine's one-line reason."""
    result = _call(config, token, "reload")
    if as_json:
        print(json.dumps(result))
    if result.get("status") != "applied":
        return fail(str(result.get("message")))
    if not as_json:
        print(result.get("message"))
    return 0


def reload_unloadable(path: Path, error: Exception, token: str | None, *,
                      as_json: bool) -> int:
    """``gatewatch reload`` of a file that does not load: the running engine is still asked
    (it records the refusal, and answers with the same message), found through the control
    socket the file names, if its engine section can be read at all; else the reason here."""
    socket = _control_socket(path)
    if socket is None:
        return fail(f"{error} (the engine was not asked; the policy in force stays)")
    token = token or os.environ.get("GATEWATCH_TOKEN")
    if not token:
        return fail(f"{error} (no operator token to ask the engine: the policy in force stays)")
    try:
        with ControlClient(socket, token) as client:
            result = client.call("reload")
    except (ControlRefused, EngineUnreachable) as exc:
        return fail(f"{error} ({exc}; the policy in force stays)")
    if as_json:
        print(json.dumps(result))
    if result.get("status") != "applied":
        return fail(str(result.get("message")))
    print(result.get("message"))  # the engine read it differently (the file changed since)
    return 0


def _control_socket(path: Path) -> Path | None:
    """``engine.control_socket`` of a policies file that does not load as a whole."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        value = doc["engine"]["control_socket"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return None
    if not isinstance(value, str) or "${" in value:
        return None
    socket = Path(value).expanduser()
    return socket if socket.is_absolute() else path.parent.resolve() / socket


def fail(message: str) -> int:
    print(f"gatewatch: {message}", file=sys.stderr)
    return 1
