"""Nodes: the engines that write one store, each under its own name.

Every writer opens the store as a named node (``engine.node``; by default this host's name,
``default_node``). A node's name decides its files beside a SQLite store, the ``node`` column
of the sessions and approvals it opens, and its own audit chain in the ``audit`` table (keyed
by node and sequence number). The default node keeps the names a store had before nodes
(``<store>.journal`` and its rotated ``<store>.journal.<n>``, ``<store>.lock``), so that a
single engine's store looks as it always did and an engine upgraded after a crash replays its
journal; another node has ``<store>.<node>.journal`` (rotated ``<store>.<node>.journal.<n>``)
and ``<store>.<node>.lock``. A name is letters, digits, ``.``, ``_`` and ``-`` (a host name
fits): one file-name part, and a journal's name never ends like a rotated file's number.

Records written before nodes existed are the chain of the node that was then the default one
(the host's name when the store was migrated, kept in the ``zero_chain`` table): the one
chain that starts at the all-zero hash, as the single chain always did.
"""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

from store.chain import GENESIS
from store.errors import StoreError

NODE_LOST = "node lost"  # the end reason of sessions a node ended for a lost node

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def default_node() -> str:
    """The node name of an engine that gives none: the host's name (stable across restarts)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).lstrip("._-")
    return name[:100] or "gatewatch"


def check_node(node: str) -> str:
    """``node`` when it is a valid node name; raise StoreError saying what a name may hold."""
    if not _NAME.fullmatch(node):
        raise StoreError(
            f"invalid node name {node!r}: use 1 to 100 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit (engine.node)")
    return node


def genesis(node: str, zero: str | None) -> str:
    """The ``prev`` of the first record of ``node``'s chain: the all-zero hash for the store's
    first node ``zero`` (the default node when the store was created or migrated to nodes,
    whose chain holds the records from before nodes), a hash of its name for any other, so
    that a chain relabelled as another node's no longer links."""
    if node == zero:
        return GENESIS
    return hashlib.sha256(f"gatewatch audit chain of node\n{node}".encode()).hexdigest()


def node_journal(store: Path, node: str) -> Path:
    """The journal ``node`` appends to beside the SQLite store ``store``."""
    if node == default_node():
        return store.with_name(store.name + ".journal")
    return store.with_name(f"{store.name}.{node}.journal")


def node_lock(store: Path, node: str) -> Path:
    """The lock file ``node`` holds while it writes ``store``."""
    if node == default_node():
        return store.with_name(store.name + ".lock")
    return store.with_name(f"{store.name}.{node}.lock")


def journals(store: Path) -> dict[str, Path]:
    """Every node's journal that exists beside ``store`` (current file or rotated ones), by
    node: what a reader (verify, backup) must look at besides the database."""
    found: dict[str, Path] = {}
    prefix = store.name + "."
    for path in store.parent.glob(prefix + "*"):
        name = path.name[len(prefix):]
        if name == "journal" or (name.startswith("journal.") and name[8:].isdigit()):
            found[default_node()] = node_journal(store, default_node())
            continue
        stem, sep, tail = name.rpartition(".journal")
        if sep and (tail == "" or (tail[:1] == "." and tail[1:].isdigit())) \
                and _NAME.fullmatch(stem):
            found[stem] = node_journal(store, stem)
    return dict(sorted(found.items()))
