"""The signing-key cache: rotation, rate-limited refresh, a provider that is down or lies."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from engine.identity import OidcIdentities, OidcValidator
from engine.identity.fetch import FetchError
from engine.identity.jwks import parse_jwks
from gatewatch.demo.oidc import DemoOidcProvider
from tests.engine.identity.tokens import (
    FakeClock,
    attacker_key,
    rsa_signed,
    settings_for,
    user_claims,
)


async def test_a_rotated_key_is_fetched_once_and_old_tokens_still_verify(
        provider: DemoOidcProvider, oidc: OidcIdentities, monotonic: FakeClock) -> None:
    old_token = provider.user_token("alice")
    assert await oidc.identify(old_token)
    assert provider.hits["/jwks"] == 1
    provider.rotate_key()
    new_token = provider.user_token("alice")
    monotonic.advance(31)  # past the cooldown since the last fetch
    assert await oidc.identify(new_token)
    assert await oidc.identify(new_token)
    assert await oidc.identify(old_token)  # the old key is still published
    assert provider.hits["/jwks"] == 2


async def test_an_unknown_kid_within_the_cooldown_does_not_fetch(
        provider: DemoOidcProvider, oidc: OidcIdentities, monotonic: FakeClock) -> None:
    assert await oidc.identify(provider.user_token("alice"))
    provider.rotate_key()
    token = provider.user_token("alice")
    monotonic.advance(10)
    assert await oidc.identify(token) is None  # cooldown: no fetch, refused
    assert provider.hits["/jwks"] == 1
    monotonic.advance(20)
    assert await oidc.identify(token)  # cooldown over: one fetch finds the new key
    assert provider.hits["/jwks"] == 2


async def test_a_flood_of_unknown_kids_does_not_hammer_the_provider(
        provider: DemoOidcProvider, oidc: OidcIdentities, clock: FakeClock,
        monotonic: FakeClock) -> None:
    assert await oidc.identify(provider.user_token("alice"))
    monotonic.advance(31)
    key = attacker_key()
    tokens = [rsa_signed({"alg": "RS256", "kid": f"made-up-{i}"}, user_claims(provider, clock),
                         key) for i in range(40)]
    results = await asyncio.gather(*(oidc.identify(t) for t in tokens))  # concurrently
    assert results == [None] * 40
    results = [await oidc.identify(t) for t in tokens]  # and one after another
    assert results == [None] * 40
    assert provider.hits["/jwks"] == 2  # the first fetch, and one refresh for all 80


async def test_keys_are_refreshed_periodically_and_retired_keys_stop_working(
        provider: DemoOidcProvider, oidc: OidcIdentities, monotonic: FakeClock) -> None:
    old_token = provider.user_token("alice")
    assert await oidc.identify(old_token)
    provider.rotate_key()
    provider.retire_keys()
    assert await oidc.identify(old_token)  # cached keys: no reason to fetch yet
    monotonic.advance(3600)  # jwks_refresh
    assert await oidc.identify(old_token) is None
    assert await oidc.identify(provider.user_token("alice"))
    assert provider.hits["/jwks"] == 2
    assert provider.hits["/.well-known/openid-configuration"] == 2  # rediscovered too


async def test_a_provider_that_is_down_fails_closed_with_a_logged_reason(
        clock: FakeClock, monotonic: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    provider = DemoOidcProvider(clock=clock)
    token = provider.user_token("alice")
    settings = settings_for(provider)
    provider.stop()  # never started: the port is closed
    oidc = OidcIdentities(settings, OidcValidator(settings, clock=clock, monotonic=monotonic))
    with caplog.at_level(logging.INFO, logger="engine.identity"):
        assert await oidc.authenticate("alice", token) is None
    assert "cannot fetch the signing keys" in caplog.text
    assert "cannot reach the provider" in caplog.text
    assert "no keys: tokens refused" in caplog.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and token not in caplog.text
    assert await oidc.warm_up() is False  # within the cooldown: not even tried again


async def test_keys_already_fetched_outlive_a_provider_outage(
        provider: DemoOidcProvider, oidc: OidcIdentities, monotonic: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    token = provider.user_token("alice")
    assert await oidc.identify(token)
    provider.stop()
    monotonic.advance(3600)
    with caplog.at_level(logging.ERROR):
        assert await oidc.identify(token)
    assert "keeping the previous keys" in caplog.text


async def test_discovery_must_name_the_configured_issuer(
        provider: DemoOidcProvider, clock: FakeClock, monotonic: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    # The same server under another name: its document names http://127.0.0.1:PORT.
    issuer = provider.issuer.replace("127.0.0.1", "localhost")
    settings = settings_for(provider, issuer=issuer)
    oidc = OidcIdentities(settings, OidcValidator(settings, clock=clock, monotonic=monotonic))
    with caplog.at_level(logging.INFO):
        assert await oidc.identify(provider.user_token("alice", iss=issuer)) is None
    assert "it must be the same" in caplog.text
    assert provider.hits["/jwks"] == 0


class _SlowJwks(DemoOidcProvider):
    """Holds its JWKS answer until the test releases it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reached = threading.Event()
        self.release = threading.Event()
        self.released_in_time: bool | None = None

    def handle(self, method: str, path: str, form: dict[str, str],
               authorization: str | None) -> tuple[int, str, str]:
        if path == "/jwks":
            self.reached.set()
            self.released_in_time = self.release.wait(20)
        return super().handle(method, path, form, authorization)


async def test_fetching_keys_does_not_block_the_event_loop(clock: FakeClock,
                                                           monotonic: FakeClock) -> None:
    """The fetch is held at the provider until a coroutine on the engine's loop lets it go: that
    coroutine can only run if the fetch is not blocking the loop."""
    with _SlowJwks(clock=clock) as provider:
        settings = settings_for(provider)
        oidc = OidcIdentities(settings, OidcValidator(settings, clock=clock,
                                                      monotonic=monotonic))
        pending = asyncio.ensure_future(oidc.identify(provider.user_token("alice")))
        assert await asyncio.to_thread(provider.reached.wait, 20)
        provider.release.set()  # runs on the loop, while the fetch is in flight
        assert await pending is not None
        assert provider.released_in_time is True


def test_only_asymmetric_signing_keys_are_kept(provider: DemoOidcProvider) -> None:
    published = provider.jwks()["keys"][0]
    keys = parse_jwks({"keys": [
        {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},  # an HMAC secret: never
        {**published, "kid": "enc", "use": "enc"},  # an encryption key
        {"kty": "RSA", "kid": "broken", "n": "AA", "e": "AQAB"},  # unparseable / too short
        "not a key",
        published,
    ]})
    assert [k.get("kid") for k in keys] == [published["kid"]]
    with pytest.raises(FetchError):
        parse_jwks({"keys": "nope"})


def test_private_parts_in_a_published_key_are_dropped(provider: DemoOidcProvider) -> None:
    private = provider.signing_key.as_dict(private=True)
    (key,) = parse_jwks({"keys": [private]})
    assert not key.is_private
