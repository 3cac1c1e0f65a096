"""This engine as one node of a fleet that shares a store (issue 17).

Every node (a lone engine, or each worker of one) does three things here, beside its sessions:

- **Heartbeats.** Every ``engine.heartbeat`` it says in the store that it is alive, then looks
  for nodes silent for ``engine.node_timeout`` that did not stop cleanly: the store lets one
  node alone claim such a node (``end_lost_node``: it replays the journal the lost node left when
  it is on this machine) and this node commits the records that end its sessions
  (``node lost``) and expire its approvals, in its own chain. With the defaults (5 s, 30 s) a
  lost node's sessions are ended within about 35 s.
- **Commands.** Other nodes ask it, through the store's command channel (LISTEN/NOTIFY on
  PostgreSQL, polling on SQLite), to approve or deny a request it holds, kill a session it
  holds, put a lock-out in force or lift it, honour a just-in-time grant, or try a CancelRequest
  that reached them. A decision is taken here by the broker, as if the operator had asked this
  node: the approver's groups travel with it and are checked against this node's approvers,
  and nobody approves their own request (ARCHITECTURE.md invariant 4).
- **Grants.** A just-in-time grant made here is sent to every live node, so that it holds
  fleet-wide (a client's next connection may reach another node).

The fleet's sessions and approvals for the operator are read from the store (``remote_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from engine.recorder import Recorder
from engine.tasks import spawn
from store import SqliteStore
from store import ops as O

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
GrantKey = tuple[str, str, str]


class FleetGrants(dict[GrantKey, float]):
    """``SessionContext.grants`` for a fleet: a grant set here is told to every other node; one
    told by another node is set with ``adopt`` (and not told again)."""

    def __init__(self, tell: Callable[[GrantKey, float], None]) -> None:
        super().__init__()
        self._tell = tell

    def __setitem__(self, key: GrantKey, until: float) -> None:
        super().__setitem__(key, until)
        self._tell(key, until)

    def adopt(self, key: GrantKey, until: float) -> None:
        if until > self.get(key, 0.0):
            super().__setitem__(key, until)


class Fleet:
    def __init__(self, store: SqliteStore, recorder: Recorder, node: str, *,
                 heartbeat: float, timeout: float, handlers: dict[str, Handler]) -> None:
        self.store, self.recorder, self.node = store, recorder, node
        self.heartbeat, self.timeout = heartbeat, timeout
        self.handlers = handlers
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        self._tasks = [spawn(self._beat(), name=f"fleet-heartbeat-{self.node}"),
                       spawn(self._listen(), name=f"fleet-commands-{self.node}")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # --- heartbeats and lost nodes -----------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.store.heartbeat)
                await self.end_lost()
            except Exception:  # a store briefly busy or unwritable: the next beat tries again
                log.exception("fleet heartbeat of node %s failed", self.node)
            await asyncio.sleep(self.heartbeat)

    async def end_lost(self) -> list[str]:
        """End the sessions of nodes silent for longer than the timeout; the nodes ended."""
        ended = []
        for name in self.store.lost_nodes(self.timeout):
            records = await asyncio.to_thread(self.store.end_lost_node, name, self.timeout)
            if records is None:
                continue  # claimed by another node, or its process still holds its lock
            if records:
                await self.recorder.committed(records)
            ended.append(name)
            log.warning("node %s sent no heartbeat for %.0f s: ended its %d open sessions and "
                        "pending approvals (node lost)", name, self.timeout, len(records))
        return ended

    # --- commands ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                async for command in self.store.listen():
                    await self._run(command)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fleet commands of node %s: listening again", self.node)
                await asyncio.sleep(1)

    async def _run(self, command: dict[str, Any]) -> None:
        op = str(command.get("op"))
        handler = self.handlers.get(op)
        if handler is None:
            log.warning("fleet command %r from %s not understood: ignored", op,
                        command.get("from"))
            return
        try:
            await handler(command)
        except Exception as exc:  # one bad command must not stop the channel
            log.warning("fleet command %s from %s failed: %s", op, command.get("from"), exc)

    def live_nodes(self, but: frozenset[str] = frozenset()) -> list[str]:
        """Nodes that are running (heartbeat within the timeout, not stopped, not lost)."""
        cutoff = O.utc(time.time() - self.timeout)
        return [row["name"] for row in self.store.nodes()
                if row["name"] != self.node and row["name"] not in but
                and row.get("stopped_at") is None and row.get("lost_at") is None
                and (row.get("heartbeat_at") or "") >= cutoff]

    async def send(self, node: str, command: dict[str, Any]) -> None:
        await asyncio.to_thread(self.store.notify, node, {**command, "from": self.node})

    async def broadcast(self, command: dict[str, Any],
                        but: frozenset[str] = frozenset()) -> int:
        """Send ``command`` to every live node but this one (and ``but``); how many."""
        nodes = self.live_nodes(but)
        for node in nodes:
            await self.send(node, command)
        return len(nodes)

    # --- the fleet as the operator sees it ---------------------------------------------------

    def remote_sessions(self, exclude: frozenset[str]) -> list[dict[str, Any]]:
        """Open sessions of the other nodes (not ``exclude``), as the store has them."""
        return [_as_live(row) for row in self.store.open_sessions(sorted(exclude))]

    def remote_pending(self, exclude: frozenset[str]) -> list[dict[str, Any]]:
        """Pending approval requests of the other nodes (statements as recorded: masked)."""
        return [row for row in self.store.approvals(status="pending", limit=10_000)
                if row.get("node") not in exclude]


def _as_live(row: dict[str, Any]) -> dict[str, Any]:
    """A stored session row in the shape of a live session's description."""
    return {"id": row["id"], "protocol": row.get("protocol"),
            "connection": row.get("connection"), "identity": row.get("identity"),
            "identity_kind": row.get("identity_kind"),
            "identity_vendor": row.get("identity_vendor"),
            "client_addr": row.get("client_addr"),
            "application_name": row.get("application_name"),
            "database": row.get("database"), "target": row.get("target"),
            "started_at": row.get("started_at"), "statements": row.get("statements", 0),
            "waiting_for": None, "masked": {}, "node": row.get("node")}
