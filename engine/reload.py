"""Policy changes without a restart: SIGHUP and ``gatewatch reload`` read the policies file again.

A file that does not load is refused with the message ``gatewatch policy check`` gives, and
nothing changes. A file that loads is recorded (a ``policy.reload`` audit record, committed
before it takes effect, as every record is) and put in force in place: the guardrail rules and
settings (``Guard.replace`` hands each session's guard — which live sessions hold — the rules
that now apply to it, from its next statement), approvers and review timeout for requests made
from now on, and the masking rules for sessions that open from now on (a live session keeps
the masking it started with: its result and output maskers are built around it).

What a running engine cannot take over — its own settings (store, sockets, metrics, audit
stream), connections (listeners, targets, allow-lists) and identities — is not applied: the
answer names those sections, to be applied by a restart. A refusal is recorded too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from engine.approvals import Broker
from engine.config import Config, ConfigError, load_config
from engine.events import EventHub, PolicyReloaded
from engine.guardrail import Guard
from engine.recorder import Recorder
from engine.session import SessionContext
from store import StoreError
from store import ops as O
from store import records as R

log = logging.getLogger(__name__)

NODE = "engine"  # the key of reload records (one engine per store)
_LIVE = ("rules", "guardrails", "masking")  # sections a reload puts in force
_AT_RESTART = ("engine", "connections", "identities", "oidc")


@dataclass(frozen=True)
class ReloadResult:
    status: str  # applied | refused
    message: str  # one line for the operator
    changed: tuple[str, ...] = ()  # sections put in force
    at_restart: tuple[str, ...] = ()  # sections that changed but wait for a restart

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class PolicyReloader:
    """Reads the engine's policies file again and puts what it may in force."""

    def __init__(self, config: Config, guard: Guard, broker: Broker, sessions: SessionContext,
                 recorder: Recorder, events: EventHub) -> None:
        self.config = config
        self._guard, self._broker, self._sessions = guard, broker, sessions
        self._recorder, self._events = recorder, events

    async def reload(self, by: str) -> ReloadResult:
        path = self.config.path
        digest = _digest(path)
        try:
            new = load_config(path)
        except ConfigError as exc:
            return await self._refused(by, str(exc), digest)
        old = self.config
        changed = tuple(s for s in _LIVE if getattr(new, s) != getattr(old, s))
        at_restart = tuple(s for s in _AT_RESTART if getattr(new, s) != getattr(old, s))
        if new.guardrails.webhook != old.guardrails.webhook:
            at_restart += ("guardrails.webhook",)
        try:
            await self._recorder.committed([R.PolicyReload(
                NODE, at=O.utc(time.time()), by=by, path=str(path), sha256=digest,
                status="applied", error=None, changed=json.dumps(list(changed)))])
        except StoreError as exc:
            return self._tell(by, ReloadResult(
                "refused", f"the reload could not be recorded, so the old policy stays: {exc}"))
        self._guard.replace(new.rules, new.guardrails)
        self._broker.settings = new.guardrails
        self._sessions.masking_rules = new.masking
        self.config = dataclasses.replace(
            old, rules=new.rules, guardrails=new.guardrails, masking=new.masking)
        message = (f"{path}: reloaded ({', '.join(changed)} changed)" if changed
                   else f"{path}: reloaded (no rule changed)")
        if at_restart:
            message += f"; {', '.join(at_restart)} changed too and take effect at restart"
        return self._tell(by, ReloadResult("applied", message, changed, at_restart))

    async def _refused(self, by: str, error: str, digest: str | None) -> ReloadResult:
        try:
            await self._recorder.committed([R.PolicyReload(
                NODE, at=O.utc(time.time()), by=by, path=str(self.config.path), sha256=digest,
                status="refused", error=error, changed=None)])
        except StoreError as exc:
            log.error("a refused reload could not be recorded: %s", exc)
        return self._tell(by, ReloadResult("refused", f"{error} (the policy in force stays)"))

    def _tell(self, by: str, result: ReloadResult) -> ReloadResult:
        level = logging.INFO if result.status == "applied" else logging.WARNING
        log.log(level, "policy reload by %s: %s", by, result.message)
        self._events.publish(PolicyReloaded(result.status, by, result.message,
                                            list(result.changed)))
        return result
