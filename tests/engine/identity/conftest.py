"""A real demo OpenID provider on loopback for every test that needs one, and its clocks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from engine.identity import OidcIdentities, OidcValidator
from gatewatch.demo.oidc import DemoOidcProvider
from tests.engine.identity.tokens import FakeClock, settings_for


@pytest.fixture
def clock() -> FakeClock:
    """Wall-clock time as the provider and the validator see it. It starts at the real time
    (code that reads the real clock, such as ``gatewatch connect``, agrees with it) and moves
    only when a test moves it."""
    return FakeClock(float(int(time.time())))


@pytest.fixture
def monotonic() -> FakeClock:
    """The validator's monotonic clock (JWKS refresh and cooldown)."""
    return FakeClock(1000.0)


@pytest.fixture
def provider(clock: FakeClock) -> Iterator[DemoOidcProvider]:
    with DemoOidcProvider(clock=clock) as p:
        yield p


@pytest.fixture
def oidc(provider: DemoOidcProvider, clock: FakeClock, monotonic: FakeClock) -> OidcIdentities:
    settings = settings_for(provider)
    return OidcIdentities(settings, OidcValidator(settings, clock=clock, monotonic=monotonic))
