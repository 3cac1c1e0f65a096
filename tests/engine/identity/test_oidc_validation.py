"""OIDC token validation against the demo provider over loopback HTTP: good tokens, attacks."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.identity import OidcIdentities, OidcValidator, TokenRejected
from gatewatch.demo.oidc import DemoOidcProvider
from tests.engine.identity.tokens import (
    FakeClock,
    attacker_key,
    b64,
    b64json,
    forge,
    hmac_signed,
    rsa_signed,
    settings_for,
    user_claims,
)


def kid_of(provider: DemoOidcProvider) -> str:
    return str(provider.signing_key.get("kid"))


async def rejected(oidc: OidcIdentities, token: str, reason: str,
                   caplog: pytest.LogCaptureFixture) -> None:
    """The token proves nothing, the log says why, and the log never holds the token."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="engine.identity"):
        assert await oidc.authenticate("alice", token) is None
        assert await oidc.identify(token) is None
    assert reason in caplog.text, caplog.text
    assert token not in caplog.text


async def test_a_good_user_token_gives_the_identity(provider: DemoOidcProvider,
                                                    oidc: OidcIdentities) -> None:
    token = provider.user_token("alice")
    who = await oidc.authenticate("alice", token)
    assert who is not None
    assert (who.name, who.groups, who.kind, who.source) == (
        "alice", frozenset({"engineering"}), "person", "oidc")
    assert who.subject == "u-1001" and who.vendor is None
    assert who.expires_at == provider.clock() + provider.token_lifetime
    assert await oidc.identify(token) == who


async def test_an_agent_token_carries_kind_and_vendor(provider: DemoOidcProvider,
                                                      oidc: OidcIdentities) -> None:
    who = await oidc.authenticate("triage-agent", provider.agent_token())
    assert who is not None
    assert (who.name, who.kind, who.vendor, who.groups) == (
        "triage-agent", "agent", "example-ai", frozenset({"agents"}))


async def test_a_person_cannot_claim_a_vendor(provider: DemoOidcProvider,
                                              oidc: OidcIdentities) -> None:
    who = await oidc.identify(provider.user_token("alice", vendor="example-ai"))
    assert who is not None and who.kind == "person" and who.vendor is None


async def test_the_login_name_must_be_the_tokens(provider: DemoOidcProvider,
                                                 oidc: OidcIdentities,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert await oidc.authenticate("oncall", provider.user_token("alice")) is None
    assert "the token names 'alice'" in caplog.text


async def test_groups_from_a_nested_claim(provider: DemoOidcProvider, clock: FakeClock,
                                          monotonic: FakeClock) -> None:
    settings = settings_for(provider, groups_claim="realm_access.roles")
    oidc = OidcIdentities(settings, OidcValidator(settings, clock=clock, monotonic=monotonic))
    token = provider.user_token("alice", realm_access={"roles": ["dba", "oncall"]})
    who = await oidc.identify(token)
    assert who is not None and who.groups == frozenset({"dba", "oncall"})


async def test_a_token_without_a_username_claim_is_named_by_its_subject(
        provider: DemoOidcProvider, oidc: OidcIdentities) -> None:
    who = await oidc.identify(provider.user_token("alice", preferred_username=None))
    assert who is not None and who.name == "u-1001"


async def test_an_audience_list_needs_one_of_ours(provider: DemoOidcProvider,
                                                  oidc: OidcIdentities,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    assert await oidc.identify(provider.user_token("alice", aud=["other", "gatewatch"]))
    await rejected(oidc, provider.user_token("alice", aud=["other", "account"]),
                   "wrong audience", caplog)


async def test_wrong_signature(provider: DemoOidcProvider, oidc: OidcIdentities,
                               clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    token = rsa_signed({"alg": "RS256", "kid": kid_of(provider)},
                       user_claims(provider, clock), attacker_key())
    await rejected(oidc, token, "signature", caplog)


async def test_tampered_claims(provider: DemoOidcProvider, oidc: OidcIdentities,
                               caplog: pytest.LogCaptureFixture) -> None:
    header, payload, sig = provider.user_token("alice").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["operators"]
    await rejected(oidc, f"{header}.{b64json(claims)}.{sig}", "signature", caplog)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none(alg: str, provider: DemoOidcProvider, oidc: OidcIdentities,
                        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    token = forge({"alg": alg, "kid": kid_of(provider)}, user_claims(provider, clock))
    await rejected(oidc, token, "alg none", caplog)


@pytest.mark.parametrize("encoding", ["pem", "der", "jwk"])
async def test_hs256_keyed_with_the_public_key(encoding: str, provider: DemoOidcProvider,
                                               clock: FakeClock, monotonic: FakeClock,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """The classic key confusion: HMAC with the RSA public key as the secret. Refused even by
    a validator whose settings (bypassing the loader, which refuses them) list HS256."""
    public = provider.signing_key.raw_value.public_key()
    secret = {
        "pem": public.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo),
        "der": public.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk": json.dumps(provider.jwks()["keys"][0]).encode(),
    }[encoding]
    token = hmac_signed({"alg": "HS256", "kid": kid_of(provider)},
                        user_claims(provider, clock), secret)
    normal = settings_for(provider)
    oidc = OidcIdentities(normal, OidcValidator(normal, clock=clock, monotonic=monotonic))
    await rejected(oidc, token, "algorithm 'HS256' is not accepted", caplog)
    lax = settings_for(provider, algorithms=("RS256", "HS256"))
    oidc = OidcIdentities(lax, OidcValidator(lax, clock=clock, monotonic=monotonic))
    await rejected(oidc, token, "not an asymmetric signature", caplog)


async def test_an_algorithm_that_does_not_fit_the_key(provider: DemoOidcProvider,
                                                      clock: FakeClock, monotonic: FakeClock,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(provider, algorithms=("RS256", "ES256"))
    oidc = OidcIdentities(settings, OidcValidator(settings, clock=clock, monotonic=monotonic))
    token = forge({"alg": "ES256", "kid": kid_of(provider)}, user_claims(provider, clock),
                  b"\x00" * 64)
    await rejected(oidc, token, "does not fit algorithm ES256", caplog)


async def test_an_algorithm_outside_the_allow_list(provider: DemoOidcProvider,
                                                   clock: FakeClock, monotonic: FakeClock,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(provider, algorithms=("ES256",))
    oidc = OidcIdentities(settings, OidcValidator(settings, clock=clock, monotonic=monotonic))
    await rejected(oidc, provider.user_token("alice"), "algorithm 'RS256' is not accepted",
                   caplog)


async def test_wrong_issuer(provider: DemoOidcProvider, oidc: OidcIdentities, clock: FakeClock,
                            caplog: pytest.LogCaptureFixture) -> None:
    token = provider.sign(user_claims(provider, clock, iss="https://evil.example"))
    await rejected(oidc, token, "wrong issuer 'https://evil.example'", caplog)


async def test_wrong_audience(provider: DemoOidcProvider, oidc: OidcIdentities,
                              caplog: pytest.LogCaptureFixture) -> None:
    await rejected(oidc, provider.user_token("alice", audience="another-app"),
                   "wrong audience 'another-app'", caplog)


async def test_expired_beyond_the_clock_skew(provider: DemoOidcProvider, oidc: OidcIdentities,
                                             caplog: pytest.LogCaptureFixture) -> None:
    assert await oidc.identify(provider.user_token("alice", lifetime=-30))  # within 60 s skew
    await rejected(oidc, provider.user_token("alice", lifetime=-61), "expired", caplog)


async def test_not_yet_valid(provider: DemoOidcProvider, oidc: OidcIdentities, clock: FakeClock,
                             caplog: pytest.LogCaptureFixture) -> None:
    later = int(clock()) + 3600
    await rejected(oidc, provider.user_token("alice", nbf=later), "not yet valid", caplog)
    await rejected(oidc, provider.user_token("alice", iat=later), "issued in the future", caplog)
    assert await oidc.identify(provider.user_token("alice", nbf=int(clock()) + 30))  # skew


@pytest.mark.parametrize("claim", ["exp", "sub", "iss", "aud"])
async def test_required_claims(claim: str, provider: DemoOidcProvider, oidc: OidcIdentities,
                               clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    claims = user_claims(provider, clock)
    del claims[claim]
    await rejected(oidc, provider.sign(claims), f"Missing claim: '{claim}'", caplog)


async def test_non_numeric_expiry(provider: DemoOidcProvider, oidc: OidcIdentities,
                                  clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    await rejected(oidc, provider.sign(user_claims(provider, clock, exp="tomorrow")),
                   "'exp' must be a NumericDate", caplog)


async def test_groups_of_the_wrong_shape(provider: DemoOidcProvider, oidc: OidcIdentities,
                                         caplog: pytest.LogCaptureFixture) -> None:
    await rejected(oidc, provider.user_token("alice", groups={"admin": True}),
                   "not a list of group names", caplog)


async def test_an_oversized_token_is_refused_before_anything_is_fetched(
        provider: DemoOidcProvider, oidc: OidcIdentities,
        caplog: pytest.LogCaptureFixture) -> None:
    token = provider.user_token("alice", padding="x" * 100_000)
    await rejected(oidc, token, "above max_token_bytes (8192)", caplog)
    assert provider.hits == {}  # refused before discovery or JWKS


async def test_critical_header_extensions_are_refused(provider: DemoOidcProvider,
                                                      oidc: OidcIdentities, clock: FakeClock,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    token = rsa_signed({"alg": "RS256", "kid": kid_of(provider), "crit": ["exp"], "exp": 1},
                       user_claims(provider, clock), provider.signing_key.raw_value)
    await rejected(oidc, token, "critical extensions", caplog)


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
async def test_key_location_headers_are_ignored(header: str, provider: DemoOidcProvider,
                                                oidc: OidcIdentities, clock: FakeClock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A token signed with the attacker's key that says where to find it (a JWKS the attacker
    serves, or the key itself): nobody fetches it, the real JWKS is asked once, and the
    unknown kid is refused."""
    key = attacker_key()
    with DemoOidcProvider(clock=clock) as evil:  # the attacker's server, which must stay idle
        public_jwk = {"kty": "RSA", "kid": "attacker", "n": "", "e": "AQAB"}
        value: object = {"jku": f"{evil.issuer}/jwks", "x5u": f"{evil.issuer}/cert.pem",
                         "jwk": public_jwk, "x5c": ["MIIB"]}[header]
        token = rsa_signed({"alg": "RS256", "kid": "attacker", header: value},
                           user_claims(provider, clock), key)
        await rejected(oidc, token, "no signing key 'attacker'", caplog)
        assert evil.hits == {}
    assert provider.hits["/jwks"] == 1


async def test_an_embedded_jwk_with_the_real_kid_still_needs_the_real_key(
        provider: DemoOidcProvider, oidc: OidcIdentities, clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    token = rsa_signed({"alg": "RS256", "kid": kid_of(provider),
                        "jwk": {"kty": "RSA", "kid": kid_of(provider)}},
                       user_claims(provider, clock), attacker_key())
    await rejected(oidc, token, "signature", caplog)


@pytest.mark.parametrize("garbage", [
    "", "garbage", "a.b", "a.b.c.d.e", "eyJ.eyJ.", "eyJhbGciOiJSUzI1NiJ9.e30", "...",
    "eyJhbGciOiJSUzI1NiJ9.!!!.xyz", b64json([1, 2]) + ".e30.", b64json("x") + ".e30.",
    "eyJ\u00e9.x.y", "\x00\x01.\x02.\x03",
])
async def test_garbage(garbage: str, provider: DemoOidcProvider, oidc: OidcIdentities) -> None:
    assert await oidc.authenticate("alice", garbage) is None
    assert await oidc.identify(garbage) is None


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jku", "crit", "b64"]),
                              st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                                        st.lists(st.text(max_size=3), max_size=2))),
       payload=st.binary(max_size=64), signature=st.binary(max_size=64))
def test_fuzzed_tokens_are_refused_with_a_reason(provider: DemoOidcProvider, clock: FakeClock,
                                                 monotonic: FakeClock, header: dict[str, object],
                                                 payload: bytes, signature: bytes) -> None:
    """Whatever arrives, the validator answers TokenRejected — never another exception."""
    settings_ = settings_for(provider, algorithms=("RS256", "ES256", "PS256"))
    validator = OidcValidator(settings_, clock=clock, monotonic=monotonic)
    token = f"{b64json(header)}.{b64(payload)}.{b64(signature)}"
    with pytest.raises(TokenRejected):
        asyncio.run(validator.validate(token))
