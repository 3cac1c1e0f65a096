"""``gatewatch login`` (device flow), the token cache, refresh, and ``gatewatch connect``."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Config, load_config
from engine.identity import OidcIdentities
from gatewatch.cli import login as cli
from gatewatch.cli.main import main
from gatewatch.demo.oidc import DemoOidcProvider
from tests.engine.identity.tokens import FakeClock, settings_for


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GATEWATCH_TOKEN", raising=False)
    return tmp_path / "cache" / "gatewatch" / "token.json"


def policies(tmp_path: Path, issuer: str | None, client_id: str = "gatewatch-cli") -> Path:
    oidc = (f"identity:\n  oidc: {{issuer: '{issuer}', audiences: [gatewatch], "
            f"client_id: {client_id}}}\n") if issuer else ""
    path = tmp_path / "policies.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        engine: {store: s.db, control_socket: c.sock}
        connections:
          - name: shop
            kind: postgres
            listen: 127.0.0.1:6543
            upstream: {host: 127.0.0.1, user: gw, password_env: X}
            databases: [shop]
          - name: web
            kind: ssh
            listen: 0.0.0.0:2222
            upstream: {host: 127.0.0.1, user: deploy, password_env: X, known_hosts: kh}
        """) + oidc)
    return path


@pytest.fixture
def config(tmp_path: Path, provider: DemoOidcProvider) -> Config:
    return load_config(policies(tmp_path, provider.issuer))


class DeviceUser:
    """The person at the other device, driven by the CLI's sleeps: time moves only here."""

    def __init__(self, provider: DemoOidcProvider, clock: FakeClock,
                 script: list[str]) -> None:
        self.provider, self.clock, self.script = provider, clock, list(script)
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        step = self.script.pop(0) if self.script else "wait"
        if step != "impatient":  # an impatient client polls before the interval is over
            self.clock.advance(seconds)
        if step == "approve":
            (code,) = self.provider.pending_user_codes()
            self.provider.approve(code, "alice")
        if step == "deny":
            (code,) = self.provider.pending_user_codes()
            self.provider.deny(code)
        if step == "expire":
            self.clock.advance(600)


def signed_in(config: Config, provider: DemoOidcProvider, clock: FakeClock) -> dict[str, object]:
    return cli.login(config, out=io.StringIO(),
                     sleep=DeviceUser(provider, clock, ["approve"]), clock=clock)


def test_device_flow_honours_pending_and_slow_down(config: Config, provider: DemoOidcProvider,
                                                   clock: FakeClock,
                                                   private_cache: Path) -> None:
    user = DeviceUser(provider, clock, ["wait", "impatient", "approve"])
    out = io.StringIO()
    entry = cli.login(config, out=out, sleep=user, clock=clock)
    assert f"{provider.issuer}/device?user_code=" in out.getvalue()
    # 5 s (pending), polled too early (slow_down: +5 s), then 10 s and the token.
    assert user.sleeps == [5, 5, 10]
    assert provider.hits["/token"] == 3
    cached = json.loads(private_cache.read_text())
    assert cached[f"{provider.issuer} gatewatch-cli"]["token"] == entry["token"]
    assert entry["refresh_token"]


async def test_the_cached_token_proves_the_user(config: Config, provider: DemoOidcProvider,
                                                oidc: OidcIdentities, clock: FakeClock) -> None:
    signed_in(config, provider, clock)
    who = await oidc.authenticate("alice", cli.operator_token(config, clock=clock))
    assert who is not None and who.groups == {"engineering"}


def test_cache_file_and_directory_are_private(config: Config, provider: DemoOidcProvider,
                                              clock: FakeClock, private_cache: Path) -> None:
    os.umask(0o022)
    signed_in(config, provider, clock)
    assert stat.S_IMODE(private_cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(private_cache.parent.stat().st_mode) == 0o700
    assert [p.name for p in private_cache.parent.iterdir()] == ["token.json"]  # no temp left


def test_a_cache_readable_by_others_is_refused(config: Config, provider: DemoOidcProvider,
                                               clock: FakeClock, private_cache: Path) -> None:
    signed_in(config, provider, clock)
    private_cache.chmod(0o644)
    with pytest.raises(cli.LoginError, match="readable by others"):
        cli.operator_token(config, clock=clock)


def test_an_expired_token_is_refreshed_once(config: Config, provider: DemoOidcProvider,
                                            clock: FakeClock, private_cache: Path) -> None:
    first = signed_in(config, provider, clock)
    assert cli.operator_token(config, clock=clock) == first["token"]
    assert provider.hits["/token"] == 1
    clock.advance(provider.token_lifetime)
    fresh = cli.operator_token(config, clock=clock)
    assert fresh != first["token"] and provider.hits["/token"] == 2
    assert cli.operator_token(config, clock=clock) == fresh  # cached again
    entry = json.loads(private_cache.read_text())[f"{provider.issuer} gatewatch-cli"]
    assert entry["refresh_token"] != first["refresh_token"]  # the provider rotated it
    assert stat.S_IMODE(private_cache.stat().st_mode) == 0o600


def test_a_refused_refresh_asks_for_a_new_login(config: Config, provider: DemoOidcProvider,
                                                clock: FakeClock, private_cache: Path) -> None:
    signed_in(config, provider, clock)
    data = json.loads(private_cache.read_text())
    data[f"{provider.issuer} gatewatch-cli"]["refresh_token"] = "revoked"
    private_cache.write_text(json.dumps(data))
    clock.advance(provider.token_lifetime)
    with pytest.raises(cli.LoginError, match=r"sign-in has ended \(invalid_grant"):
        cli.operator_token(config, clock=clock)
    data[f"{provider.issuer} gatewatch-cli"]["refresh_token"] = None
    private_cache.write_text(json.dumps(data))
    with pytest.raises(cli.LoginError, match="expired: run gatewatch login"):
        cli.operator_token(config, clock=clock)


def test_not_signed_in(config: Config) -> None:
    with pytest.raises(cli.LoginError, match="not signed in: run gatewatch login"):
        cli.operator_token(config)


@pytest.mark.parametrize(("script", "reason"), [
    (["deny"], "refused at the provider"),
    (["expire"], "expired before it was used"),
])
def test_a_refused_or_expired_sign_in(config: Config, provider: DemoOidcProvider,
                                      clock: FakeClock, script: list[str], reason: str) -> None:
    with pytest.raises(cli.LoginError, match=reason):
        cli.login(config, out=io.StringIO(), sleep=DeviceUser(provider, clock, script),
                  clock=clock)


def test_token_for_prefers_explicit_then_environment(config: Config,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.token_for(config, "given") == "given"
    monkeypatch.setenv("GATEWATCH_TOKEN", "from-env")
    assert cli.token_for(config) == "from-env"


# the command line ---------------------------------------------------------------------------
@pytest.fixture
def live_provider() -> Iterator[DemoOidcProvider]:
    """A provider on real time, polled at its shortest interval, for the real CLI."""
    with DemoOidcProvider(device_interval=1) as p:
        yield p


def test_gatewatch_login_end_to_end(tmp_path: Path, live_provider: DemoOidcProvider,
                                    private_cache: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = policies(tmp_path, live_provider.issuer)
    approved: list[str] = []

    def person() -> None:  # signs in at the other device once the code is shown
        for _ in range(200):
            codes = live_provider.pending_user_codes()
            if codes and live_provider.approve(codes[0], "alice"):
                approved.append(codes[0])
                return
            threading.Event().wait(0.05)

    helper = threading.Thread(target=person)
    helper.start()
    try:
        assert main(["login", "-c", str(path)]) == 0
    finally:
        helper.join()
    out = capsys.readouterr().out
    assert f"{live_provider.issuer}/device?user_code={approved[0]}" in out
    assert "signed in as alice" in out and str(private_cache) in out
    assert stat.S_IMODE(private_cache.stat().st_mode) == 0o600
    token = cli.operator_token(load_config(path))
    settings = settings_for(live_provider)
    assert asyncio.run(OidcIdentities(settings).authenticate("alice", token)) is not None


@pytest.mark.parametrize(("issuer", "client_id", "status", "reason"), [
    (None, "gatewatch-cli", 2, "has no identity.oidc section"),
    ("http://127.0.0.1:9", "gatewatch-cli", 1, "cannot reach the identity provider"),
])
def test_login_errors_are_one_line(tmp_path: Path, issuer: str | None, client_id: str,
                                   status: int, reason: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "-c", str(policies(tmp_path, issuer, client_id))]) == status
    err = capsys.readouterr().err
    assert err.startswith("gatewatch: ") and err.count("\n") == 1 and reason in err


def test_login_with_an_unknown_client(tmp_path: Path, live_provider: DemoOidcProvider,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = policies(tmp_path, live_provider.issuer, client_id="nobody")
    assert main(["login", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert "refused to start a sign-in: invalid_client" in err and err.count("\n") == 1


# connect -----------------------------------------------------------------------------------
STUB = """#!/bin/sh
printf '%s\\n' "$@" > "$STUB_OUT/argv"
printf '%s' "$PGPASSWORD" > "$STUB_OUT/pgpassword"
if [ -n "$SSH_ASKPASS" ]; then
  printf '%s' "$SSH_ASKPASS" > "$STUB_OUT/askpass"
  printf '%s' "$SSH_ASKPASS_REQUIRE" > "$STUB_OUT/require"
  "$SSH_ASKPASS" "alice@127.0.0.1's password: " > "$STUB_OUT/answer"
  "$SSH_ASKPASS" "Token: " > "$STUB_OUT/kbdint"
  "$SSH_ASKPASS" "Are you sure you want to continue connecting (yes/no)? " > "$STUB_OUT/hostkey"
  echo $? > "$STUB_OUT/hostkey_status"
fi
exit "${STUB_EXIT:-0}"
"""


@pytest.fixture
def clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """psql and ssh stand-ins that report how they were started (argv, environment)."""
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    bin_dir.mkdir()
    out.mkdir()
    for name in ("psql", "ssh"):
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("STUB_OUT", str(out))
    return out


def test_connect_psql_passes_the_token_in_the_environment_only(
        config: Config, provider: DemoOidcProvider, clock: FakeClock, clients: Path) -> None:
    token = str(signed_in(config, provider, clock)["token"])
    assert main(["connect", "-c", str(config.path), "shop", "--", "-c", "select 1"]) == 0
    argv = (clients / "argv").read_text().splitlines()
    assert argv == ["host='127.0.0.1' port='6543' user='alice' dbname='shop'", "-c",
                    "select 1"]
    assert (clients / "pgpassword").read_text() == token
    assert token not in (clients / "argv").read_text()


def test_connect_ssh_answers_password_prompts_only(
        config: Config, provider: DemoOidcProvider, clock: FakeClock, clients: Path) -> None:
    token = str(signed_in(config, provider, clock)["token"])
    assert main(["connect", "-c", str(config.path), "web", "--user", "bob", "--",
                 "uptime"]) == 0
    argv = (clients / "argv").read_text().splitlines()
    assert argv == ["-p", "2222", "-o", "PreferredAuthentications=keyboard-interactive,password",
                    "bob@127.0.0.1", "uptime"]
    assert token not in (clients / "argv").read_text()
    assert (clients / "answer").read_text() == token + "\n"
    assert (clients / "kbdint").read_text() == token + "\n"
    assert (clients / "hostkey").read_text() == ""  # a yes/no question is not answered
    assert (clients / "hostkey_status").read_text().strip() == "1"
    assert (clients / "require").read_text() == "force"
    helper = Path((clients / "askpass").read_text())
    assert not helper.exists() and token not in STUB  # the helper is gone; it held no token


def test_connect_failures(config: Config, provider: DemoOidcProvider, clock: FakeClock,
                          clients: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    path = str(config.path)
    assert main(["connect", "-c", path, "shop"]) == 1
    assert "not signed in: run gatewatch login" in capsys.readouterr().err
    signed_in(config, provider, clock)
    assert main(["connect", "-c", path, "nope"]) == 2
    assert "no connection 'nope'" in capsys.readouterr().err
    monkeypatch.setenv("STUB_EXIT", "3")
    assert main(["connect", "-c", path, "shop"]) == 1
    err = capsys.readouterr().err
    assert err == "gatewatch: psql exited with status 3\n"
