"""``identity.oidc`` in the policies file: defaults, every field, and one-line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config import AgentRule, ConfigError, OidcSettings, load_config
from gatewatch.cli.main import main

BASE = """\
version: 1
engine: {store: s.db, control_socket: c.sock}
"""


def load(tmp_path: Path, oidc: str) -> OidcSettings | None:
    path = tmp_path / "policies.yaml"
    path.write_text(BASE + "identity:\n  oidc:\n" + textwrap.indent(textwrap.dedent(oidc), "    "))
    return load_config(path).oidc


def error(tmp_path: Path, oidc: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, oidc)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, """\
        issuer: https://login.example.com/realms/corp
        audiences: [gatewatch]
        """)
    assert settings == OidcSettings(issuer="https://login.example.com/realms/corp",
                                    audiences=("gatewatch",))
    assert settings.algorithms == ("RS256", "ES256") and settings.clock_skew == 60
    assert settings.max_token_bytes == 8192 and settings.groups_claim == "groups"
    assert settings.agent == AgentRule("kind", ("agent",), "vendor")


def test_every_field(tmp_path: Path) -> None:
    settings = load(tmp_path, """\
        issuer: https://corp.eu.auth0.com/
        audiences: [https://gatewatch.example.com, gatewatch]
        algorithms: [RS256, PS256, ES384, EdDSA]
        username_claim: email
        groups_claim: https://example.com/groups
        clock_skew: 30s
        max_token_bytes: 16KiB
        jwks_refresh: 15m
        jwks_cooldown: 1m
        http_timeout: 2s
        agent: {claim: gty, values: [client-credentials], vendor_claim: https://example.com/vendor}
        client_id: gatewatch-cli
        scopes: [openid, offline_access]
        login_token: id_token
        """)
    assert settings is not None
    assert settings.audiences == ("https://gatewatch.example.com", "gatewatch")
    assert settings.algorithms == ("RS256", "PS256", "ES384", "EdDSA")
    assert (settings.clock_skew, settings.max_token_bytes, settings.jwks_refresh,
            settings.jwks_cooldown, settings.http_timeout) == (30, 16384, 900, 60, 2)
    assert settings.agent == AgentRule("gty", ("client-credentials",),
                                       "https://example.com/vendor")
    assert (settings.client_id, settings.scopes, settings.login_token) == (
        "gatewatch-cli", ("openid", "offline_access"), "id_token")


def test_an_empty_issuer_turns_oidc_off(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GW_TEST_OIDC_ISSUER", raising=False)
    assert load(tmp_path, """\
        issuer: ${GW_TEST_OIDC_ISSUER:-}
        audiences: [gatewatch]
        """) is None


def test_no_identity_section_means_static_only(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(BASE)
    assert load_config(path).oidc is None


@pytest.mark.parametrize(("oidc", "expected"), [
    ("issuer: https://x\naudiences: [a]\nalgorithms: [HS256]\n",
     "identity.oidc.algorithms.0: HS256 is refused: only asymmetric signatures"),
    ("issuer: https://x\naudiences: [a]\nalgorithms: [RS256, none]\n",
     "identity.oidc.algorithms.1: none is refused"),
    ("issuer: https://x\naudiences: [a]\nalgorithms: [hs512]\n", "hs512 is refused"),
    ("issuer: https://x\naudiences: [a]\nalgorithms: [RS999]\n",
     "identity.oidc.algorithms.0: unknown algorithm 'RS999'"),
    ("issuer: https://x\naudiences: [a]\nalgorithms: []\n",
     "identity.oidc.algorithms: expected a non-empty list"),
    ("issuer: https://x\n", "identity.oidc: missing required key 'audiences'"),
    ("audiences: [a]\n", "identity.oidc: missing required key 'issuer'"),
    ("issuer: https://x\naudiences: []\n", "identity.oidc.audiences: expected a non-empty"),
    ("issuer: http://login.example.com\naudiences: [a]\n",
     "identity.oidc.issuer: the issuer must use https://"),
    ("issuer: login.example.com\naudiences: [a]\n",
     "identity.oidc.issuer: expected the issuer's URL"),
    ("issuer: https://x\naudiences: [a]\nissuerr: https://y\n",
     "identity.oidc.issuerr: unknown key"),
    ("issuer: https://x\naudiences: [a]\nagent: {claim: kind, vendor: v}\n",
     "identity.oidc.agent.vendor: unknown key"),
    ("issuer: https://x\naudiences: [a]\nclock_skew: 1h\n",
     "identity.oidc.clock_skew: at most 10m"),
    ("issuer: https://x\naudiences: [a]\nclock_skew: soon\n",
     "identity.oidc.clock_skew: expected a duration"),
    ("issuer: https://x\naudiences: [a]\nmax_token_bytes: 1MiB\n",
     "identity.oidc.max_token_bytes: at most 64KiB"),
    ("issuer: https://x\naudiences: [a]\nlogin_token: refresh_token\n",
     "identity.oidc.login_token: expected one of access_token, id_token"),
    ("issuer: https://x\naudiences: [a]\ngroups_claim: 'a b'\n",
     "identity.oidc.groups_claim: 'a b' is not a claim name"),
])
def test_errors_name_the_field(tmp_path: Path, oidc: str, expected: str) -> None:
    assert expected in error(tmp_path, oidc)


def test_http_is_allowed_on_loopback_only(tmp_path: Path) -> None:
    for issuer in ("http://127.0.0.1:8080", "http://localhost:9000/realms/demo",
                   "http://[::1]:8080"):
        settings = load(tmp_path, f"issuer: {issuer}\naudiences: [a]\n")
        assert settings is not None and settings.issuer == issuer


def test_unknown_keys_under_identity(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(BASE + "identity:\n  saml: {}\n")
    with pytest.raises(ConfigError, match=r"identity.saml: unknown key \(expected one of: oidc\)"):
        load_config(path)


def test_policy_check_fails_on_an_hmac_algorithm(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(BASE + "identity:\n  oidc: {issuer: 'https://x', audiences: [a], "
                    "algorithms: [HS256]}\n")
    assert main(["policy", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HS256 is refused" in err and "Traceback" not in err
