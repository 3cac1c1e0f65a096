"""``tls: optional`` on a connection in the policies file."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import ConfigError, load_config

BASE = """\
version: 1
engine: {{store: {work}/s.db, control_socket: {work}/c.sock}}
identities: [{{name: alice, token_sha256: "{digest}"}}]
connections:
  - name: shop
    kind: postgres
    listen: 127.0.0.1:0
    {tls}
    upstream: {{host: 127.0.0.1, port: 5432, user: gw, sslmode: disable}}
    allow: {{identities: [alice]}}
"""


def load(tmp_path: Path, tls: str) -> object:
    path = tmp_path / "p.yaml"
    path.write_text(BASE.format(work=tmp_path, digest="0" * 64, tls=tls))
    return load_config(path)


def test_tls_optional_is_said_explicitly(tmp_path: Path) -> None:
    config = load(tmp_path, "tls: optional")
    [conn] = config.connections  # type: ignore[attr-defined]
    assert conn.tls_optional and conn.tls is None


def test_without_it_tokens_need_tls(tmp_path: Path) -> None:
    [conn] = load(tmp_path, "").connections  # type: ignore[attr-defined]
    assert not conn.tls_optional


def test_any_other_word_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load(tmp_path, "tls: maybe")
