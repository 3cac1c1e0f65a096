"""The demo OpenID provider, spoken to over loopback HTTP as a client would."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from engine.identity import OidcIdentities, OidcValidator
from engine.identity.fetch import discover, get_json, post_form
from gatewatch.demo.oidc import DEVICE_GRANT, DemoOidcProvider
from tests.engine.identity.tokens import FakeClock, settings_for


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(float(int(time.time())))


@pytest.fixture
def provider(clock: FakeClock) -> Iterator[DemoOidcProvider]:
    with DemoOidcProvider(clock=clock) as p:
        yield p


def claims_of(provider: DemoOidcProvider, token: str) -> dict[str, object]:
    keys = KeySet.import_key_set(provider.jwks())  # type: ignore[arg-type]
    return dict(jwt.decode(token, keys).claims)


def device_start(provider: DemoOidcProvider) -> dict[str, object]:
    status, body = post_form(f"{provider.issuer}/device_authorization",
                             {"client_id": "gatewatch-cli", "scope": "openid"}, timeout=5)
    assert status == 200
    return body


def poll(provider: DemoOidcProvider, device_code: object) -> tuple[int, dict[str, object]]:
    return post_form(provider.token_endpoint, {"grant_type": DEVICE_GRANT,
                                               "device_code": str(device_code),
                                               "client_id": "gatewatch-cli"}, timeout=5)


def test_discovery_names_the_endpoints(provider: DemoOidcProvider) -> None:
    doc = discover(provider.issuer, timeout=5)
    assert doc["issuer"] == provider.issuer
    assert doc["jwks_uri"] == f"{provider.issuer}/jwks"
    assert doc["token_endpoint"] == provider.token_endpoint
    assert doc["device_authorization_endpoint"] == f"{provider.issuer}/device_authorization"


def test_key_rotation_keeps_the_old_key_published_until_retired(
        provider: DemoOidcProvider) -> None:
    first = provider.jwks()["keys"][0]["kid"]
    second = provider.rotate_key()
    published = [k["kid"] for k in get_json(f"{provider.issuer}/jwks", timeout=5)["keys"]]
    assert published == [first, second]
    assert provider.signing_key.get("kid") == second
    provider.retire_keys()
    assert [k["kid"] for k in provider.jwks()["keys"]] == [second]
    assert all("d" not in k for k in provider.jwks()["keys"])  # public halves only


async def test_an_es256_key_signs_verifiable_tokens(provider: DemoOidcProvider,
                                                    clock: FakeClock) -> None:
    provider.rotate_key("ES256")
    settings = settings_for(provider, algorithms=("ES256",))
    oidc = OidcIdentities(settings, OidcValidator(settings, clock=clock))
    assert await oidc.authenticate("alice", provider.user_token("alice")) is not None


def test_client_credentials_give_an_agent_token(provider: DemoOidcProvider) -> None:
    info = provider.demo_info()
    status, body = post_form(info["token_endpoint"], {"grant_type": "client_credentials"},
                             timeout=5, basic_auth=(info["client_id"], info["client_secret"]))
    assert status == 200 and body["token_type"] == "Bearer" and "refresh_token" not in body
    claims = claims_of(provider, str(body["access_token"]))
    assert claims["sub"] == info["pg_user"] == "triage-agent"
    assert (claims["kind"], claims["vendor"], claims["aud"]) == ("agent", "example-ai",
                                                                 "gatewatch")
    status, body = post_form(info["token_endpoint"], {
        "grant_type": "client_credentials", "client_id": info["client_id"],
        "client_secret": info["client_secret"]}, timeout=5)  # client_secret_post
    assert status == 200


@pytest.mark.parametrize(("form", "auth", "status", "error"), [
    ({"grant_type": "client_credentials"}, ("triage-agent", "wrong"), 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, ("nobody", "x"), 401, "invalid_client"),
    ({"grant_type": "client_credentials", "client_id": "gatewatch-cli"}, None, 400,
     "unauthorized_client"),
    ({"grant_type": "password", "client_id": "gatewatch-cli"}, None, 400,
     "unsupported_grant_type"),
    ({"grant_type": "refresh_token", "client_id": "gatewatch-cli", "refresh_token": "x"}, None,
     400, "invalid_grant"),
])
def test_token_endpoint_errors(provider: DemoOidcProvider, form: dict[str, str],
                               auth: tuple[str, str] | None, status: int, error: str) -> None:
    got, body = post_form(provider.token_endpoint, form, timeout=5, basic_auth=auth)
    assert (got, body["error"]) == (status, error)


def test_the_device_flow_step_by_step(provider: DemoOidcProvider, clock: FakeClock) -> None:
    start = device_start(provider)
    assert start["verification_uri"] == f"{provider.issuer}/device"
    assert start["interval"] == 5 and start["expires_in"] == 600
    assert poll(provider, start["device_code"])[1]["error"] == "authorization_pending"
    assert poll(provider, start["device_code"])[1]["error"] == "slow_down"  # too soon
    clock.advance(5)
    assert poll(provider, start["device_code"])[1]["error"] == "slow_down"  # 10 s now; +5
    clock.advance(15)
    assert poll(provider, start["device_code"])[1]["error"] == "authorization_pending"
    assert provider.approve(str(start["user_code"]).lower(), "oncall")
    clock.advance(15)
    status, body = poll(provider, start["device_code"])
    assert status == 200
    claims = claims_of(provider, str(body["access_token"]))
    assert (claims["preferred_username"], claims["groups"], claims["aud"]) == (
        "oncall", ["operators"], "gatewatch")
    assert claims_of(provider, str(body["id_token"]))["aud"] == "gatewatch-cli"
    assert poll(provider, start["device_code"])[1]["error"] == "invalid_grant"  # used up


def test_device_codes_expire_and_can_be_denied(provider: DemoOidcProvider,
                                               clock: FakeClock) -> None:
    denied, expired = device_start(provider), device_start(provider)
    assert provider.deny(str(denied["user_code"]))
    assert poll(provider, denied["device_code"])[1]["error"] == "access_denied"
    clock.advance(601)
    assert not provider.approve(str(expired["user_code"]), "alice")
    assert poll(provider, expired["device_code"])[1]["error"] == "expired_token"
    assert provider.pending_user_codes() == []


def test_refresh_tokens_are_single_use(provider: DemoOidcProvider, clock: FakeClock) -> None:
    start = device_start(provider)
    provider.approve(str(start["user_code"]), "alice")
    clock.advance(5)
    _, grant = poll(provider, start["device_code"])
    form = {"grant_type": "refresh_token", "client_id": "gatewatch-cli",
            "refresh_token": str(grant["refresh_token"])}
    status, fresh = post_form(provider.token_endpoint, form, timeout=5)
    assert status == 200 and fresh["refresh_token"] != grant["refresh_token"]
    assert claims_of(provider, str(fresh["access_token"]))["preferred_username"] == "alice"
    status, again = post_form(provider.token_endpoint, form, timeout=5)
    assert (status, again["error"]) == (400, "invalid_grant")


def test_a_person_approves_with_the_form(provider: DemoOidcProvider) -> None:
    start = device_start(provider)
    page = urllib.request.urlopen(str(start["verification_uri_complete"]), timeout=5).read()
    assert str(start["user_code"]).encode() in page
    approve = f"{provider.issuer}/device/approve"
    code = str(start["user_code"])
    wrong = urllib.request.Request(approve, data=f"user_code={code}&username=alice&password=x"
                                   .encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong, timeout=5)
    assert refused.value.code == 403
    right = urllib.request.Request(
        approve, method="POST",
        data=f"user_code={code}&username=alice&password={provider.users['alice'].password}"
        .encode())
    assert urllib.request.urlopen(right, timeout=5).status == 200
    assert provider.pending_user_codes() == []


def test_the_provider_answers_an_asyncio_engine(provider: DemoOidcProvider) -> None:
    """The provider runs in its own thread: a validator on an event loop can reach it."""
    settings = settings_for(provider)

    async def check() -> bool:
        oidc = OidcIdentities(settings)
        return await oidc.identify(provider.agent_token()) is not None

    assert asyncio.run(check())
