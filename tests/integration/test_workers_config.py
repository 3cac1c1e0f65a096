"""The settings of issue 17 as the loader reads them: workers default to the machine's cores,
the node to the store's default name, a postgresql:// store keeps its URL (never shown with its
password) and a local file for the node's journal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.config import Config, ConfigError, load_config
from engine.metrics_fanout import summed
from store import default_node

BASE = """\
version: 1
engine:
  control_socket: {work}/control.sock
{extra}
identities:
  - name: alice
    groups: [g]
    token_sha256: {digest}
connections:
  - name: shop
    kind: postgres
    listen: 127.0.0.1:6432
    upstream: {{host: 127.0.0.1, port: 5432, user: u, sslmode: disable}}
"""


def load(work: Path, extra: str) -> Config:
    path = work / "policies.yaml"
    path.write_text(BASE.format(work=work, extra=extra, digest="a" * 64))
    return load_config(path)


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "  store: store.db")
    assert config.worker_count() == (os.cpu_count() or 1)
    assert config.node_name() == default_node()
    assert config.store_location() == tmp_path / "store.db"
    assert config.engine.store_url is None


def test_workers_node_and_a_postgresql_store(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_STORE_PASSWORD", "s3cret")
    config = load(tmp_path, "  store: postgresql://gw:${GW_STORE_PASSWORD}@db:5432/gw\n"
                            "  local_store: local.db\n  node: gw1\n  workers: 3\n"
                            "  heartbeat: 2s\n  node_timeout: 10s")
    assert config.worker_count() == 3 and config.node_name() == "gw1"
    assert config.store_location() == "postgresql://gw:s3cret@db:5432/gw"
    assert config.store_shown() == "postgresql://gw@db:5432/gw"
    assert config.engine.store == tmp_path / "local.db"
    assert (config.engine.heartbeat, config.engine.node_timeout) == (2.0, 10.0)


def test_local_store_is_for_a_postgresql_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="local_store is for a PostgreSQL store"):
        load(tmp_path, "  store: store.db\n  local_store: other.db")


def test_workers_are_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        load(tmp_path, "  store: store.db\n  workers: 0")


def test_metrics_of_workers_add_up() -> None:
    """The supervisor's /metrics: each series the sum of the workers' (a counter's creation
    time the earliest), comments once."""
    first = (b'# HELP s Sessions\n# TYPE s counter\ns_total{c="shop"} 2.0\n'
             b's_created{c="shop"} 100.0\n')
    second = (b'# HELP s Sessions\n# TYPE s counter\ns_total{c="shop"} 3.0\n'
              b's_total{c="web"} 1.0\ns_created{c="shop"} 90.0\n')
    assert summed([first, second]).decode().splitlines() == [
        "# HELP s Sessions", "# TYPE s counter", 's_total{c="shop"} 5.0',
        's_created{c="shop"} 90.0', 's_total{c="web"} 1.0']
