"""Persistence for Gatewatch: sessions, statements, the audit chains and the fleet's nodes.

The engine and the CLI/TUI speak to the store only through this package. Public API:

- ``open_store(location, *, node=None, durability="normal", readonly=False, local=None)``: a
  path is a SQLite store, ``postgresql://USER@HOST:PORT/DB`` a PostgreSQL one
  (``store.postgres``; its nodes keep their journal and lock file beside ``local``, i.e.
  ``engine.local_store``). A writer opens it as node ``node`` (default ``default_node()``: the
  host's name, whose files keep a single engine's names); several nodes (processes, machines)
  write one store at once, each with its own lock, journal and chain. A second writer under
  the same node name is refused (``StoreLocked``), on any machine for PostgreSQL.
- Writing (the engine's recorder): ``apply(ops)`` commits to the node's journal (the commit
  point: ARCHITECTURE.md invariant 1); ``checkpoint()`` / ``start_checkpoint()`` +
  ``finish_checkpoint(result)`` move records into the shared database.
- Start-up recovery (invariant 3): ``interrupted_sessions()`` and ``pending_approvals()`` are
  this node's only — never a sibling's.
- Nodes: ``register_node(info)`` (JSON-able: listeners, control socket; the node itself is
  registered by ``open_store``), ``heartbeat()``, ``nodes()`` (rows: name, host, pid,
  started_at, heartbeat_at, stopped_at, lost_at, lost_by, info), ``lost_nodes(after_s)``
  (names whose heartbeat is older and that did not stop cleanly), and
  ``end_lost_node(node, after_s) -> list[Record] | None``: claims the lost node (one node
  alone does it), replays the journal it left when it is on this machine (taking its lock
  first: a node whose process still holds its lock is not lost, None), and returns the
  ``SessionClose`` (status ``interrupted``, reason ``node lost``) and ``ApprovalUpdate``
  (``expired``) records the caller commits through its recorder, in its own chain.
  ``session_node(sid)``: the node that holds a session. The blocking calls (heartbeat,
  end_lost_node, notify) may wait for another node's write: call them off the event loop.
- Fleet commands: ``notify(node, command: dict) -> int`` and ``listen(node=None)``, an async
  iterator of the commands sent to the node (each once, with its ``id``): LISTEN/NOTIFY on
  PostgreSQL, polling every 50 ms on SQLite.
- Reading: ``sessions``, ``find_session``, ``statements``, ``approvals``, ``output`` and
  ``reads`` (rows carry their ``node``); ``audit_head(node=None)``, ``audit_heads()``,
  ``audit_hash(seq, node=None)``, ``session_audit(..., node=None)`` per chain (a session's
  records are in ``session_node(sid)``'s chain: an export cuts at that chain's head, not at
  this handle's node's); ``verify(store)``
  checks every node's chain, the tables against them and the journals beside the store
  (``VerifyResult.chains``: records per node).

``SqliteStore`` keeps one SQLite file in WAL mode (readers never block writers). Every change is
written as an ``Op``; ``apply`` commits a batch of them with one append to the node's journal
(``journal.py``), one audit record per op, each hashing its predecessor in the node's chain
(``chain.py``), and checkpoints move them into SQLite in bulk — short write transactions that
wait for other nodes' (SQLite's busy timeout, then retries) — so that ``verify`` can tell
whether anything was edited, removed or inserted afterwards.

Each writer holds its node's lock (``lock.py``) from before it touches the store until it
closes it, and keeps the store's files private (``files.py``); readers never lock. Replay after
a crash keeps what it cannot apply in the ``rejected`` table, and ``backup`` copies a store
while the engines write it.
"""

import importlib
from typing import TYPE_CHECKING, Any

from store import compiled as _compiled

# The compiled build of the hot modules, or their .py files when it is off or stale.
_compiled.install()

if TYPE_CHECKING:
    from store import reads
    from store.errors import StoreLocked
    from store.nodes import NODE_LOST, default_node
    from store.ops import Op
    from store.sqlite import SqliteStore, StoreError, open_store
    from store.verifier import VerifyResult, verify

__all__ = ["NODE_LOST", "Op", "SqliteStore", "StoreError", "StoreLocked", "VerifyResult",
           "default_node", "open_store", "reads", "verify"]

# Where each name lives, imported on first use: the store's checkpoint process
# (``store/checkpointd.py``) needs a few small modules, not SQLite-utils and psycopg.
_HOMES = {"NODE_LOST": "store.nodes", "default_node": "store.nodes", "Op": "store.ops",
          "SqliteStore": "store.sqlite", "StoreError": "store.errors",
          "StoreLocked": "store.errors", "open_store": "store.sqlite",
          "VerifyResult": "store.verifier", "verify": "store.verifier"}


def __getattr__(name: str) -> Any:
    if name == "reads":
        return importlib.import_module("store.reads")
    if name not in _HOMES:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
