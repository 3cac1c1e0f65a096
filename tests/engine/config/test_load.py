"""Loading ``policies.yaml``: typed values, environment interpolation, and one-line errors."""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from gatewatch.cli.main import main

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "policies.yaml"
DIGEST = hashlib.sha256(b"token").hexdigest()

VALID = f"""\
version: 1
engine:
  store: data/gatewatch.db
  control_socket: /run/gatewatch/control.sock
  startup_timeout: 500ms
  max_message_size: 2MiB
identities:
  - name: alice
    groups: [engineering]
    token_env: ALICE_TOKEN
  - name: bot
    kind: agent
    token_sha256: {DIGEST}
connections:
  - name: shop
    kind: postgres
    listen: 127.0.0.1:6432
    upstream:
      host: db.internal
      port: 5433
      user: gatewatch
      password_env: SHOP_PASSWORD
    databases: [shop]
    allow:
      groups: [engineering]
      identities: [bot]
"""

# Variables that the example file and the tests below read, cleared for every test.
_ENV = [
    "GATEWATCH_STORE", "GATEWATCH_CONTROL", "GATEWATCH_SHOP_LISTEN", "GATEWATCH_TLS_CERT",
    "GATEWATCH_TLS_KEY", "GATEWATCH_SHOP_PG_HOST", "GATEWATCH_SHOP_PG_PORT",
    "GATEWATCH_SHOP_PG_USER", "GATEWATCH_SHOP_PG_PASSWORD", "GW_TEST_PORT", "GW_TEST_UNSET",
    "GW_TEST_HOST",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str, name: str = "policies.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    """1-based number of the only line of ``text`` that contains ``needle``."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    return message


def assert_error(tmp_path: Path, text: str, line: int, key: str, reason: str) -> None:
    message = error_of(tmp_path, text)
    path = tmp_path / "policies.yaml"
    prefix = f"{path}:{line}: {key}: "
    assert message.startswith(prefix), f"{message!r} does not start with {prefix!r}"
    assert re.search(reason, message[len(prefix):]), message


# --- what loads ------------------------------------------------------------------------------


def test_example_policies_load() -> None:
    config = load_config(EXAMPLE)
    assert config.path == EXAMPLE
    assert config.engine.store == REPO / ".gatewatch" / "gatewatch.db"
    assert config.engine.control_socket == REPO / ".gatewatch" / "control.sock"
    assert config.engine.startup_timeout == 10.0
    assert config.engine.max_message_size == 64 * 1024 * 1024
    assert [i.name for i in config.identities] == ["alice", "oncall", "report-bot"]
    bot = config.identities[2]
    assert bot.kind == "agent"
    assert bot.token_env == "GATEWATCH_REPORT_BOT_TOKEN" and bot.token_sha256 is None
    shop = config.connection("shop")
    assert shop is not None
    assert (shop.listen_host, shop.listen_port) == ("127.0.0.1", 6432)
    assert shop.tls is None  # both variables unset: TLS off
    assert shop.upstream.port == 5432
    assert isinstance(shop.upstream.port, int)
    assert shop.upstream.password_env == "GATEWATCH_SHOP_PG_PASSWORD"
    assert shop.databases == ("shop",)
    assert shop.allow_groups == {"engineering", "operators", "agents"}
    assert config.connection("nope") is None


def test_example_policies_take_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWATCH_SHOP_PG_PORT", "6543")
    monkeypatch.setenv("GATEWATCH_SHOP_LISTEN", "[::1]:7000")
    monkeypatch.setenv("GATEWATCH_STORE", str(tmp_path / "x.db"))
    config = load_config(EXAMPLE)
    shop = config.connections[0]
    assert shop.upstream.port == 6543
    assert (shop.listen_host, shop.listen_port) == ("::1", 7000)
    assert config.engine.store == tmp_path / "x.db"


def test_valid_file_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert config.engine.startup_timeout == 0.5
    assert config.engine.max_message_size == 2 * 1024 * 1024
    assert config.engine.durability == "normal"
    [shop] = config.connections
    assert shop.upstream.host == "db.internal"
    assert shop.upstream.port == 5433
    assert shop.allow_identities == {"bot"}
    assert config.identities[0].kind == "person"


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    text = VALID.replace(
        "      password_env: SHOP_PASSWORD\n",
        "      password_file: secrets/shop.pw\n      sslrootcert: ../ca.pem\n",
    ).replace(
        "    upstream:\n",
        "    tls:\n      cert: tls/cert.pem\n      key: /abs/key.pem\n    upstream:\n",
    )
    config = load_config(write(tmp_path / "conf", text))
    base = (tmp_path / "conf").resolve()
    assert config.engine.store == base / "data" / "gatewatch.db"
    assert config.engine.control_socket == Path("/run/gatewatch/control.sock")
    [shop] = config.connections
    assert shop.upstream.password_file == base / "secrets" / "shop.pw"
    assert shop.upstream.sslrootcert == base / ".." / "ca.pem"
    assert shop.tls is not None
    assert shop.tls.cert == base / "tls" / "cert.pem"
    assert shop.tls.key == Path("/abs/key.pem")


def test_relative_paths_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, VALID)
    monkeypatch.chdir(tmp_path)
    store = load_config("policies.yaml").engine.store
    assert store.is_absolute()
    assert store == tmp_path.resolve() / "data" / "gatewatch.db"


def test_environment_interpolation_with_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = VALID.replace("port: 5433", "port: ${GW_TEST_PORT:-5999}").replace(
        "host: db.internal", "host: pg-${GW_TEST_HOST:-a}.internal"
    )
    path = write(tmp_path, text)
    upstream = load_config(path).connections[0].upstream
    assert (upstream.host, upstream.port) == ("pg-a.internal", 5999)

    monkeypatch.setenv("GW_TEST_PORT", "6000")
    monkeypatch.setenv("GW_TEST_HOST", "b")
    upstream = load_config(path).connections[0].upstream
    assert (upstream.host, upstream.port) == ("pg-b.internal", 6000)

    monkeypatch.setenv("GW_TEST_PORT", "")  # set but empty: the default applies
    assert load_config(path).connections[0].upstream.port == 5999


def test_interpolated_scalars_are_typed_like_plain_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_TEST_PORT", "5434")
    path = write(tmp_path, VALID.replace("port: 5433", "port: ${GW_TEST_PORT}"))
    port = load_config(path).connections[0].upstream.port
    assert port == 5434
    assert type(port) is int


def test_quoted_scalars_stay_strings(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        VALID.replace("port: 5433", 'port: "5433"'),
        line_of(VALID, "port: 5433"),
        "connections.0.upstream.port",
        "expected a TCP port number",
    )


def test_sizes_and_durations(tmp_path: Path) -> None:
    text = VALID.replace("startup_timeout: 500ms", "startup_timeout: 2m").replace(
        "max_message_size: 2MiB", "max_message_size: 4096"
    )
    engine = load_config(write(tmp_path, text)).engine
    assert engine.startup_timeout == 120.0
    assert engine.max_message_size == 4096


# --- errors: FILE:LINE: key.path: reason -----------------------------------------------------


def test_invalid_yaml(tmp_path: Path) -> None:
    text = VALID.replace("  store: data/gatewatch.db", "  store: data/gatewatch.db\n   oops: x")
    message = error_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'policies.yaml'}:4: not valid YAML: ")


def test_empty_file(tmp_path: Path) -> None:
    assert error_of(tmp_path, "# nothing\n").endswith(":1: the policies file is empty")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the policies file"):
        load_config(tmp_path / "absent.yaml")


def test_unknown_key(tmp_path: Path) -> None:
    # A typo of an optional key must not silently fall back to the default.
    text = VALID.replace("      port: 5433", "      prot: 5433")
    assert_error(
        tmp_path, text, line_of(text, "prot: 5433"), "connections.0.upstream.prot",
        r"unknown key 'prot' \(did you mean 'port'\?\)",
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = VALID + "rulez: []\n"
    assert_error(tmp_path, text, line_of(text, "rulez"), "rulez", "unknown key")


def test_missing_required_key(tmp_path: Path) -> None:
    text = VALID.replace("      user: gatewatch\n", "")
    assert_error(
        tmp_path, text, line_of(text, "host: db.internal"), "connections.0.upstream",
        "missing required key 'user'",
    )


def test_missing_engine_section(tmp_path: Path) -> None:
    text = "version: 1\nidentities: []\n"
    assert_error(tmp_path, text, 1, r"(top level)", "missing required key 'engine'")


def test_plaintext_password_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("      password_env: SHOP_PASSWORD", "      password: hunter2")
    message = error_of(tmp_path, text)
    assert message.startswith(
        f"{tmp_path / 'policies.yaml'}:{line_of(text, 'password: hunter2')}: "
        "connections.0.upstream.password: target passwords never go in this file"
    )
    assert "hunter2" not in message


@pytest.mark.parametrize("port", ["70000", "-1", "http", "true", "54.32"])
def test_bad_port(tmp_path: Path, port: str) -> None:
    text = VALID.replace("port: 5433", f"port: {port}")
    assert_error(
        tmp_path, text, line_of(text, f"port: {port}"), "connections.0.upstream.port",
        r"expected a TCP port number \(0-65535\)",
    )


@pytest.mark.parametrize(
    "listen",
    ["db.example.com:6432", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:x", "6432"],
)
def test_bad_listen_address(tmp_path: Path, listen: str) -> None:
    text = VALID.replace("listen: 127.0.0.1:6432", f"listen: {listen!r}")
    assert_error(
        tmp_path, text, line_of(text, "listen:"), "connections.0.listen", "expected HOST:PORT"
    )


@pytest.mark.parametrize("listen", ["localhost:0", "0.0.0.0:5432", "[::]:6432"])
def test_good_listen_address(tmp_path: Path, listen: str) -> None:
    text = VALID.replace("listen: 127.0.0.1:6432", f"listen: {listen!r}")
    load_config(write(tmp_path, text))


@pytest.mark.parametrize("value", ["fast", "-5s", "10 days", "0", "1.5.2s"])
def test_bad_duration(tmp_path: Path, value: str) -> None:
    text = VALID.replace("startup_timeout: 500ms", f"startup_timeout: {value}")
    assert_error(
        tmp_path, text, line_of(text, "startup_timeout"), "engine.startup_timeout",
        "expected a duration such as 10s",
    )


@pytest.mark.parametrize("value", ["64MB", "big", "-1", "1.5MiB", "0"])
def test_bad_size(tmp_path: Path, value: str) -> None:
    text = VALID.replace("max_message_size: 2MiB", f"max_message_size: {value}")
    assert_error(
        tmp_path, text, line_of(text, "max_message_size"), "engine.max_message_size",
        "expected a size such as 64MiB",
    )


def test_identity_with_both_token_kinds(tmp_path: Path) -> None:
    text = VALID.replace(
        "    token_env: ALICE_TOKEN", f"    token_env: ALICE_TOKEN\n    token_sha256: {DIGEST}"
    )
    assert_error(
        tmp_path, text, line_of(text, "name: alice"), "identities.0",
        "give exactly one of token_sha256 or token_env",
    )


def test_identity_with_no_token(tmp_path: Path) -> None:
    text = VALID.replace("    token_env: ALICE_TOKEN\n", "")
    assert_error(
        tmp_path, text, line_of(text, "name: alice"), "identities.0",
        "give exactly one of token_sha256 or token_env",
    )


def test_identity_token_digest_must_be_hex(tmp_path: Path) -> None:
    text = VALID.replace(DIGEST, "not-a-digest")
    assert_error(
        tmp_path, text, line_of(text, "not-a-digest"), "identities.1.token_sha256",
        "64 hex digits",
    )


def test_duplicate_identity_names(tmp_path: Path) -> None:
    text = VALID.replace("  - name: bot", "  - name: alice")
    assert_error(
        tmp_path, text, line_of(text, "kind: agent") - 1, "identities.1.name",
        "identity 'alice' twice",
    )


def test_duplicate_connection_names(tmp_path: Path) -> None:
    second = textwrap.dedent("""\
      - name: shop
        kind: postgres
        listen: 127.0.0.1:6433
        upstream: {host: other, user: gatewatch}
    """)
    text = VALID.replace("connections:\n", "connections:\n" + textwrap.indent(second, "  "))
    # The second definition is the one reported.
    lines = [n for n, line in enumerate(text.splitlines(), 1) if "- name: shop" in line]
    assert_error(
        tmp_path, text, lines[1], "connections.1.name", "connection 'shop' is defined twice"
    )


def test_duplicate_listen_address(tmp_path: Path) -> None:
    second = "  - name: other\n    kind: postgres\n    listen: 127.0.0.1:6432\n" \
             "    upstream: {host: other, user: gatewatch}\n"
    text = VALID + second
    assert_error(
        tmp_path, text, len(text.splitlines()) - 1, "connections.1.listen", "used twice"
    )


def test_unset_variable_without_default(tmp_path: Path) -> None:
    text = VALID.replace("host: db.internal", "host: ${GW_TEST_UNSET}")
    assert_error(
        tmp_path, text, line_of(text, "GW_TEST_UNSET"), "connections.0.upstream.host",
        "environment variable GW_TEST_UNSET is not set",
    )


def test_duplicate_key(tmp_path: Path) -> None:
    text = VALID.replace("      port: 5433\n", "      port: 5433\n      port: 5434\n")
    message = error_of(tmp_path, text)
    # Either occurrence is a fine place to point at.
    lines = (line_of(text, "port: 5433"), line_of(text, "port: 5434"))
    assert any(
        message.startswith(f"{tmp_path / 'policies.yaml'}:{n}: connections.0.upstream.port: ")
        for n in lines
    ), message
    assert message.endswith("this key is given twice")


def test_unknown_identity_in_allow(tmp_path: Path) -> None:
    text = VALID.replace("identities: [bot]", "identities: [bob]")
    assert_error(
        tmp_path, text, line_of(text, "identities: [bob]"), "connections.0.allow.identities",
        "unknown identity 'bob'",
    )


def test_wrong_version(tmp_path: Path) -> None:
    text = VALID.replace("version: 1", "version: 2")
    assert_error(tmp_path, text, 1, "version", "policies version 1")


def test_bad_choice(tmp_path: Path) -> None:
    text = VALID.replace("      password_env", "      sslmode: allow\n      password_env")
    assert_error(
        tmp_path, text, line_of(text, "sslmode"), "connections.0.upstream.sslmode",
        "expected one of disable, prefer, require, verify-ca, verify-full, not 'allow'",
    )


def test_tls_needs_both_files(tmp_path: Path) -> None:
    text = VALID.replace("    upstream:\n", "    tls:\n      cert: c.pem\n    upstream:\n")
    assert_error(
        tmp_path, text, line_of(text, "cert: c.pem"), "connections.0.tls",
        "give both cert and key",
    )


def test_section_of_the_wrong_type(tmp_path: Path) -> None:
    text = VALID.replace("identities:\n  - name: alice", "identities: alice\nx:\n  - name: alice")
    assert_error(
        tmp_path, text, line_of(text, "identities: alice"), "identities",
        "expected a list of identity entries",
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("startup_timeout: 500ms", "startup_timeout: 0s"),
     ("startup_timeout: 500ms", "startup_timeout: 0ms"),
     ("max_message_size: 2MiB", "max_message_size: 0B")],
    ids=["0s", "0ms", "0B"],
)
def test_zero_with_a_unit_is_refused_like_a_bare_zero(
    tmp_path: Path, key: str, value: str
) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, VALID.replace(key, value)))


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_bytes(b"version: 1\nengine: \xff\xfe\n")
    with pytest.raises(ConfigError):
        load_config(path)


def test_recursive_alias(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "rules: &loop [*loop]\n")
    with pytest.raises(ConfigError):
        load_config(path)


# --- gatewatch policy check ------------------------------------------------------------------


def test_policy_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{EXAMPLE}: ok (3 identities, 2 connections)"
    assert err == ""


def test_policy_check_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, VALID.replace("port: 5433", "port: 99999"))
    assert main(["policy", "check", str(path)]) == 1  # ARCHITECTURE.md: a failed check exits 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"gatewatch: {path}:{line_of(VALID, 'port: 5433')}: ")
    assert "connections.0.upstream.port" in lines[0]


def test_policy_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(tmp_path / "absent.yaml")]) == 2
    _, err = capsys.readouterr()
    assert len(err.splitlines()) == 1
    assert err.startswith("gatewatch: ")
