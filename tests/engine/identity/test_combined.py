"""Static tokens and OIDC together: each token goes to the provider it claims to come from."""

from __future__ import annotations

import base64
import hashlib
import logging
import textwrap
from pathlib import Path

import pytest

from engine.config import IdentityConfig, load_config
from engine.identity import CombinedIdentities, OidcIdentities, StaticTokens, looks_like_jwt
from gatewatch.demo.oidc import DemoOidcProvider

KEY = "ssh-ed25519 " + base64.b64encode(b"public-key-blob").decode() + " alice@laptop"
STATIC = (
    IdentityConfig("alice", frozenset({"engineering"}),
                   token_sha256=hashlib.sha256(b"static-secret").hexdigest(), ssh_keys=(KEY,)),
    IdentityConfig("report-bot", frozenset({"agents"}), kind="agent",
                   token_sha256=hashlib.sha256(b"bot-secret").hexdigest()),
)


@pytest.fixture
def both(oidc: OidcIdentities) -> CombinedIdentities:
    return CombinedIdentities(StaticTokens(STATIC), oidc)


async def test_static_tokens_still_work(both: CombinedIdentities,
                                        provider: DemoOidcProvider) -> None:
    who = await both.authenticate("alice", "static-secret")
    assert who is not None and who.source == "static"
    bot = await both.identify("bot-secret")
    assert bot is not None and bot.kind == "agent" and bot.name == "report-bot"
    assert provider.hits == {}  # the provider is never asked about a static token


async def test_jwts_go_to_the_provider(both: CombinedIdentities,
                                       provider: DemoOidcProvider) -> None:
    who = await both.authenticate("alice", provider.user_token("alice"))
    assert who is not None and who.source == "oidc"
    agent = await both.identify(provider.agent_token())
    assert agent is not None and agent.kind == "agent" and agent.vendor == "example-ai"


async def test_a_rejected_jwt_is_not_tried_as_a_static_token(
        both: CombinedIdentities, provider: DemoOidcProvider,
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert await both.authenticate("alice", provider.user_token("alice", lifetime=-999)) \
            is None
    assert "oidc: login as 'alice' refused" in caplog.text
    assert "wrong token" not in caplog.text  # the static path was not taken


async def test_without_oidc_every_token_is_static(provider: DemoOidcProvider) -> None:
    static_only = CombinedIdentities(StaticTokens(STATIC))
    assert await static_only.authenticate("alice", provider.user_token("alice")) is None
    assert await static_only.authenticate("alice", "static-secret") is not None
    assert provider.hits == {}


def test_public_keys_and_names_come_from_the_static_identities(
        both: CombinedIdentities) -> None:
    blob = base64.b64decode(KEY.split()[1])
    who = both.by_public_key("alice", blob)
    assert who is not None and who.source == "publickey"
    assert both.by_public_key("alice", b"another key") is None
    assert both.identity("report-bot") is not None and both.identity("nobody") is None


def test_what_looks_like_a_jwt() -> None:
    assert looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    assert not looks_like_jwt("static-secret")
    assert not looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0")
    assert not looks_like_jwt("abc.def.ghi")


async def test_built_from_the_policies_file(tmp_path: Path) -> None:
    with DemoOidcProvider() as provider:  # the engine's clocks are the real ones
        path = tmp_path / "policies.yaml"
        path.write_text(textwrap.dedent(f"""\
            version: 1
            engine: {{store: s.db, control_socket: c.sock}}
            identities:
              - {{name: alice, token_sha256: {hashlib.sha256(b"static-secret").hexdigest()}}}
            identity:
              oidc: {{issuer: "{provider.issuer}", audiences: [gatewatch]}}
            """))
        both = CombinedIdentities.from_config(load_config(path))
        await both.warm_up()
        assert provider.hits["/jwks"] == 1
        who = await both.authenticate("alice", provider.user_token("alice"))
        assert who is not None and who.source == "oidc" and who.groups == {"engineering"}
        assert await both.authenticate("alice", "static-secret") is not None
