"""The demo's own policies file, written from the example: the sandbox's paths, tokens made at
start (as digests), the targets' credentials as files, and the example's rules unchanged."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from engine.config import load_config
from gatewatch.demo.policies import DemoPolicies, PoliciesError, Sandbox, Target
from gatewatch.demo.run import default_policies


def sandbox(work: Path, identities: list[str], connections: list[str]) -> Sandbox:
    return Sandbox(
        store=work / "gatewatch.db",
        control_socket=work / "control.sock",
        tokens={name: f"token-of-{name}" for name in identities},
        listen={name: f"127.0.0.1:{40000 + i}" for i, name in enumerate(connections)},
        postgres=Target("127.0.0.1", 5999, "gatewatch", work / "postgres.password"),
        ssh=Target("127.0.0.1", 2999, "gatewatch-demo", work / "ssh.password"),
        ssh_known_hosts=work / "ssh_known_hosts",
        tls=(work / "tls.crt", work / "tls.key"),
        oidc_issuer="http://127.0.0.1:8999",
    )


@pytest.fixture
def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Another terminal has none of the demo's environment: the file must not need it.
    for name in list(os.environ):
        if name.startswith("GATEWATCH_"):
            monkeypatch.delenv(name)
    policies = DemoPolicies(default_policies())
    dest = tmp_path / "policies.yaml"
    policies.write(dest, sandbox(tmp_path, policies.identities,
                                 [name for name, _ in policies.connections]))
    return dest


def test_the_sandbox_is_written_in(written: Path) -> None:
    config = load_config(written)
    work = written.parent
    assert (config.engine.store, config.engine.control_socket) == (
        work / "gatewatch.db", work / "control.sock")
    shop, web = config.connections
    assert (shop.listen_host, shop.listen_port, web.listen_port) == ("127.0.0.1", 40000, 40001)
    assert shop.tls is not None and shop.tls.cert == work / "tls.crt"
    assert (shop.upstream.host, shop.upstream.port, shop.upstream.user) == (
        "127.0.0.1", 5999, "gatewatch")
    assert (shop.upstream.password_env, shop.upstream.password_file) == (
        None, work / "postgres.password")
    assert (web.upstream.port, web.upstream.user, web.upstream.password_file) == (
        2999, "gatewatch-demo", work / "ssh.password")
    assert web.upstream.known_hosts == work / "ssh_known_hosts"
    assert config.oidc is not None and config.oidc.issuer == "http://127.0.0.1:8999"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_every_identity_gets_a_token_made_at_start_and_no_secret_is_written(
        written: Path) -> None:
    config = load_config(written)
    text = written.read_text()
    for ident in config.identities:
        token = f"token-of-{ident.name}"
        assert ident.token_env is None
        assert ident.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        assert token not in text
    # Not the example's report-bot token, whose plaintext its comment gave (or any known one).
    example = {i.name: i for i in load_config(default_policies()).identities}
    [bot] = [i for i in config.identities if i.name == "report-bot"]
    assert bot.token_sha256 != example["report-bot"].token_sha256
    assert "${" not in text and "password_env" not in text


def test_the_rules_are_the_example_s(written: Path) -> None:
    example, demo = load_config(default_policies()), load_config(written)
    assert demo.rules == example.rules
    assert demo.masking == example.masking
    assert demo.guardrails == example.guardrails
    assert [c.ssh for c in demo.connections] == [c.ssh for c in example.connections]


def test_what_is_left_of_the_environment_is_resolved_and_paths_made_absolute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source_dir = tmp_path / "src"
    source_dir.mkdir()
    source = source_dir / "policies.yaml"
    source.write_text(
        "version: 1\n"
        "engine:\n"
        "  store: x.db\n"
        "  control_socket: x.sock\n"
        "  startup_timeout: ${DEMO_SURELY_UNSET_T:-5s}\n"
        "identities:\n"
        "  - {name: alice, groups: [engineering], token_env: ALICE}\n"
        "connections:\n"
        "  - name: web\n"
        "    kind: ssh\n"
        "    listen: 127.0.0.1:2222\n"
        "    upstream: {host: h, user: u, key_file: keys/id, known_hosts: kh}\n"
        "    ssh:\n"
        "      host_key: keys/host\n"
        "      max_channels: ${DEMO_CHANNELS}\n"
    )
    monkeypatch.setenv("DEMO_CHANNELS", "4")
    policies = DemoPolicies(source)
    dest = tmp_path / "demo.yaml"
    policies.write(dest, sandbox(tmp_path, ["alice"], ["web"]))
    config = load_config(dest)
    assert config.engine.startup_timeout == 5.0
    [web] = config.connections
    assert web.ssh is not None and web.ssh.host_key == source_dir / "keys/host"
    assert web.ssh.max_channels == 4      # plain in the example, so a number here too
    assert web.upstream.key_file is None    # the demo's target takes a password from a file
    assert web.upstream.password_file == tmp_path / "ssh.password"


def test_an_unset_variable_names_the_line(tmp_path: Path) -> None:
    source = tmp_path / "policies.yaml"
    source.write_text("version: 1\nengine:\n  store: a.db\n  control_socket: a.sock\n"
                      "  log_level: ${DEMO_SURELY_UNSET_VARIABLE}\n")
    with pytest.raises(PoliciesError, match=r"policies\.yaml:5: environment variable "
                       "DEMO_SURELY_UNSET_VARIABLE is not set"):
        DemoPolicies(source).write(tmp_path / "out.yaml", sandbox(tmp_path, [], []))


def test_the_demo_needs_a_connection_of_each_kind(tmp_path: Path) -> None:
    source = tmp_path / "policies.yaml"
    source.write_text("version: 1\nconnections:\n  - {name: web, kind: ssh}\n")
    with pytest.raises(PoliciesError, match="needs a connection of kind: postgres"):
        DemoPolicies(source).first("postgres")


def test_an_existing_file_is_never_overwritten(written: Path) -> None:
    policies = DemoPolicies(default_policies())
    with pytest.raises(FileExistsError):
        policies.write(written, sandbox(written.parent, policies.identities,
                                        [name for name, _ in policies.connections]))
