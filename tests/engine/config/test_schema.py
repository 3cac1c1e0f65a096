"""The JSON Schema of policies files stays in step with the loader: every key the loader reads
is in the schema at the same place; files the loader accepts validate; the committed copy in
deploy/ is the one the code makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from engine.config import ConfigError, load_config
from engine.config import load as load_module
from engine.config.schema import schema, schema_text
from tests.conftest import ROOT

EVERYTHING = """\
version: 1
engine:
  store: {work}/s/store.db
  control_socket: {work}/s/control.sock
  startup_timeout: 10s
  max_message_size: 64MiB
  durability: full
  log_level: INFO
  masking_key_env: GWSCHEMA_KEY
  metrics: {{listen: "127.0.0.1:0"}}
  audit_stream: {{sink: syslog, address: "127.0.0.1:5514", transport: tcp, queue: 100,
                 app_name: gw}}
identities:
  - {{name: alice, groups: [eng], kind: person, token_env: GWSCHEMA_TOKEN, ssh_keys: []}}
  - {{name: bot, kind: agent, token_sha256: "{digest}"}}
  - {{name: oncall, groups: [ops], token_env: GWSCHEMA_TOKEN}}
identity:
  oidc:
    issuer: ""
    audiences: [gatewatch]
    algorithms: [RS256]
    username_claim: preferred_username
    groups_claim: groups
    clock_skew: 30s
    max_token_bytes: 8192
    jwks_refresh: 1h
    jwks_cooldown: 30s
    http_timeout: 5s
    client_id: gw
    scopes: [openid]
    login_token: access_token
    session_grace: 0s
    agent: {{claim: kind, values: [agent], vendor_claim: vendor}}
connections:
  - name: shop
    kind: postgres
    listen: 127.0.0.1:0
    tls: optional
    upstream: {{host: 127.0.0.1, port: 5432, user: gw, password_env: GWSCHEMA_TOKEN,
               sslmode: verify-full, sslrootcert: ca.crt, connect_timeout: 5s,
               auth: [scram-sha-256]}}
    databases: [shop]
    access: {{approval: true, grant: 1h}}
    allow: {{groups: [eng], identities: [alice]}}
  - name: box
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: 22, user: deploy, key_file: k, known_hosts: kh,
               connect_timeout: 5s}}
    ssh: {{host_key: hk, shell: true, forward: [{{to: 127.0.0.1/32, ports: [5432]}}],
          max_channels: 5, login_attempts: 3, login_grace: 30s, max_unauthenticated: 10,
          interactive: strict, transfers: mask}}
    allow: {{identities: [alice]}}
guardrails:
  fallback: block
  review_timeout: 5m
  approvers: {{groups: [ops], identities: [oncall]}}
  min_approvals: 1
  cache_size: 100
rules:
  - {{name: no-drop, action: block, match: {{statements: [DROP], functions: [f],
     tables: [t], schemas: [s], access: write, regex: x}}, connections: [shop],
     groups: [eng], identities: [alice], message: ask first}}
  - {{name: no-rm, action: review, match: {{commands: [RM RECURSIVE], programs: [rm],
     paths: [/etc], opaque: true}}}}
masking:
  - {{name: pii, detect: [email], strategy: partial, keep_first: 1, keep_last: 4,
     columns: [email], connections: [shop]}}
  - {{name: auditors, exempt: true, identities: [oncall]}}
"""


def _loaded(path: Path, monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, ...]]:
    """The keys the loader read, each as its path through the document (lists as [])."""
    seen: set[tuple[str, ...]] = set()
    section = load_module._Section

    def where(sec: Any, key: str) -> tuple[str, ...]:
        return (*("[]" if isinstance(p, int) else p for p in sec.where), key)

    for name in ("get", "need", "section"):
        original = getattr(section, name)

        def recording(self: Any, key: str, *args: Any, _original: Any = original) -> Any:
            seen.add(where(self, key))
            return _original(self, key, *args)

        monkeypatch.setattr(section, name, recording)
    load_config(path)
    monkeypatch.undo()
    return seen


def _in_schema(node: dict[str, Any], path: tuple[str, ...]) -> bool:
    """Whether ``path`` leads somewhere in the schema (through objects, arrays and anyOf)."""
    if not path:
        return True
    head, rest = path[0], path[1:]
    candidates = [node, *node.get("anyOf", [])]
    for candidate in candidates:
        if head == "[]" and "items" in candidate and _in_schema(candidate["items"], rest):
            return True
        props = candidate.get("properties", {})
        if head in props and _in_schema(props[head], rest):
            return True
    return False


@pytest.fixture
def everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GWSCHEMA_TOKEN", "t0ken")
    monkeypatch.setenv("GWSCHEMA_KEY", "k" * 32)
    path = tmp_path / "everything.yaml"
    path.write_text(EVERYTHING.format(work=tmp_path, digest="0" * 64))
    return path


@pytest.mark.parametrize("which", ["example", "everything"])
def test_every_key_the_loader_reads_is_in_the_schema(
        which: str, everything: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "policies.yaml" if which == "example" else everything
    read = _loaded(path, monkeypatch)
    assert len(read) > 30  # the loader was really recorded
    missing = sorted(p for p in read if not _in_schema(schema(), p))
    assert missing == []


@pytest.mark.parametrize("which", ["example", "everything"])
def test_files_the_loader_accepts_validate(which: str, everything: Path) -> None:
    path = ROOT / "policies.yaml" if which == "example" else everything
    jsonschema.validate(yaml.safe_load(path.read_text()), schema())


@pytest.mark.parametrize("change", [
    ("guardrails:\n", "guardrails:\n  fallbak: block\n"),  # an unknown key
    ("durability: full", "durability: sometimes"),        # not a choice
    ("interactive: strict", "interactive: relaxed"),
    ("max_channels: 5", "max_channels: 0"),
])
def test_what_the_loader_refuses_the_schema_refuses_too(
        change: tuple[str, str], everything: Path) -> None:
    text = everything.read_text()
    assert change[0] in text
    everything.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError):
        load_config(everything)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(everything.read_text()), schema())


def test_the_committed_schema_is_the_one_the_code_makes() -> None:
    committed = ROOT / "deploy" / "policies.schema.json"
    assert committed.read_text() == schema_text(), (
        "regenerate it: gatewatch policy schema > deploy/policies.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema())
