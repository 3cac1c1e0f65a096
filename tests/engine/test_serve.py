"""``gatewatch engine`` stops cleanly on SIGTERM, also while it is still starting (issue 16:
its handlers came after ``Engine.start``, so a SIGTERM during the start ended the process on
the spot, the store not closed)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from engine.config import load_config
from engine.engine import Engine
from engine.serve import serve
from store import open_store

POLICIES = """\
version: 1
engine: {{store: {work}/s.db, control_socket: {work}/c.sock}}
identities: [{{name: alice, token_sha256: "{digest}"}}]
connections:
  - name: shop
    kind: postgres
    listen: 127.0.0.1:0
    tls: optional
    upstream: {{host: 127.0.0.1, port: 5432, user: gw, sslmode: disable}}
    allow: {{identities: [alice]}}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(POLICIES.format(work=tmp_path, digest="0" * 64))
    return path


@pytest.fixture
def one_process(config_path: Path) -> Path:
    """The policies with ``workers: 1``: the engine runs in this process, not as workers."""
    config_path.write_text(config_path.read_text().replace(
        "control_socket: ", "workers: 1, control_socket: "))
    return config_path


async def test_sigterm_while_starting_stops_what_started(
        one_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recover = Engine._recover

    async def slow_recover(self: Engine) -> None:
        await recover(self)
        os.kill(os.getpid(), signal.SIGTERM)  # the store is open, the start goes on
        await asyncio.sleep(30)

    monkeypatch.setattr(Engine, "_recover", slow_recover)
    # One process: the engine's start is the one patched here (with workers, each worker
    # starts in a process of its own; tests/integration/test_workers.py stops those).
    assert await asyncio.wait_for(serve(load_config(one_process)), 10) == 0
    # The store was closed and its lock let go: another engine may open it.
    open_store(tmp_path / "s.db").close()
    assert not (tmp_path / "c.sock").exists()


async def test_sigterm_once_running_stops_the_engine(config_path: Path, tmp_path: Path) -> None:
    running = asyncio.ensure_future(serve(load_config(config_path)))
    for _ in range(200):
        if (tmp_path / "c.sock").exists():
            break
        await asyncio.sleep(0.02)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(running, 10) == 0
    assert not (tmp_path / "c.sock").exists()
    open_store(tmp_path / "s.db").close()
