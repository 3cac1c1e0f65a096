"""``gatewatch login`` and ``gatewatch connect NAME``: tokens from the provider, not from people.

``login`` runs the OAuth 2.0 device authorization grant (RFC 8628) against ``identity.oidc``:
it shows a URL and a short code, the person signs in there (on any device), and the CLI polls
the token endpoint at the pace the provider asks for. The tokens are cached in
``$XDG_CACHE_HOME/gatewatch/token.json`` (directory 0700, file 0600, written atomically) and
refreshed with the refresh token when they expire. ``operator_token`` is the one place other
commands (the TUI, approve/deny) get the operator's token from.

``connect`` starts ``psql`` or ``ssh`` for a connection of the policies file with that token:
``PGPASSWORD`` for psql, an askpass helper for ssh — the token is never on a command line, so
it never shows in ``ps``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from engine.config import Config, Connection, OidcSettings
from engine.identity.fetch import FetchError, discover, post_form
from engine.identity.oidc import claim_at, unverified_claims

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_EARLY = 30.0  # refresh this long before expiry: a token must outlive the login it is used for


class LoginError(Exception):
    """A failed sign-in or connect: one line for stderr; ``status`` 1 (failed) or 2 (usage)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# the token cache ---------------------------------------------------------------------------
def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gatewatch" / "token.json"


def _cache_key(settings: OidcSettings) -> str:
    return f"{settings.issuer} {settings.client_id}"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    if st.st_mode & 0o077 or st.st_uid != os.getuid():
        raise LoginError(f"{path} is readable by others or not yours: remove it, then "
                         "sign in again with gatewatch login")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # unreadable or torn: as if there were no cache
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.parent.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise LoginError(f"{path.parent} is writable by others or not yours: the token "
                         "cache needs a private directory")
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)  # a leftover of a crashed run; never written through
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _store(settings: OidcSettings, answer: dict[str, Any], clock: Callable[[], float],
           previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cache a token endpoint's answer; returns the cached entry."""
    token = answer.get(settings.login_token)
    if not isinstance(token, str) or not token:
        raise LoginError(f"the provider returned no {settings.login_token}")
    claims = unverified_claims(token) or {}
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        exp = clock() + float(answer.get("expires_in") or 300)
    entry = {"token": token, "expires_at": float(exp),
             "refresh_token": answer.get("refresh_token") or (previous or {}).get(
                 "refresh_token")}
    path = cache_path()
    data = _read_cache(path)
    data[_cache_key(settings)] = entry
    _write_cache(path, data)
    return entry


# the device flow ---------------------------------------------------------------------------
def _settings(config: Config) -> OidcSettings:
    if config.oidc is None:
        raise LoginError(f"{config.path} has no identity.oidc section: sign-in needs the "
                         "identity provider", 2)
    if not config.oidc.client_id:
        raise LoginError(f"{config.path}: identity.oidc.client_id is not set (the public "
                         "client registered for the CLI)", 2)
    return config.oidc


def _endpoints(settings: OidcSettings) -> dict[str, Any]:
    try:
        return discover(settings.issuer, timeout=settings.http_timeout)
    except FetchError as exc:
        raise LoginError(f"cannot reach the identity provider: {exc}") from None


def login(config: Config, *, out: TextIO | None = None,
          sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Sign in with the device flow and cache the token; returns the cached entry."""
    out = out or sys.stdout
    settings = _settings(config)
    assert settings.client_id is not None
    doc = _endpoints(settings)
    device_url, token_url = doc.get("device_authorization_endpoint"), doc.get("token_endpoint")
    if not isinstance(device_url, str) or not isinstance(token_url, str):
        raise LoginError(f"{settings.issuer} does not offer the device flow (no "
                         "device_authorization_endpoint)")
    timeout = settings.http_timeout
    try:
        status, start = post_form(device_url, {"client_id": settings.client_id,
                                               "scope": " ".join(settings.scopes)},
                                  timeout=timeout)
        if status != 200 or not isinstance(start.get("device_code"), str):
            raise LoginError(f"the provider refused to start a sign-in: {_oauth_error(start)}")
        uri = start.get("verification_uri_complete") or start.get("verification_uri")
        print(f"To sign in, open {uri}\nand check that it shows the code {start.get('user_code')}",
              file=out, flush=True)
        interval = float(start.get("interval") or 5)
        deadline = clock() + float(start.get("expires_in") or 600)
        while True:
            sleep(interval)
            if clock() > deadline:
                raise LoginError("the sign-in code expired before it was used: run gatewatch "
                                 "login again")
            status, answer = post_form(token_url, {"grant_type": DEVICE_GRANT,
                                                   "device_code": start["device_code"],
                                                   "client_id": settings.client_id},
                                       timeout=timeout)
            if status == 200:
                break
            error = answer.get("error")
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += 5  # RFC 8628 §3.5: for this and every later request
                continue
            if error == "access_denied":
                raise LoginError("the sign-in was refused at the provider")
            if error == "expired_token":
                raise LoginError("the sign-in code expired: run gatewatch login again")
            raise LoginError(f"sign-in failed: {_oauth_error(answer)}")
    except FetchError as exc:
        raise LoginError(f"sign-in failed: {exc}") from None
    return _store(settings, answer, clock)


def _oauth_error(body: dict[str, Any]) -> str:
    error = str(body.get("error") or "unknown error")
    detail = body.get("error_description")
    return f"{error} ({detail})" if detail else error


def operator_token(config: Config, *, clock: Callable[[], float] = time.time) -> str:
    """The cached token of whoever ran ``gatewatch login``, refreshed when it is about to
    expire and a refresh token was given. Raises ``LoginError`` with what to do next."""
    settings = _settings(config)
    entry = _read_cache(cache_path()).get(_cache_key(settings))
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        raise LoginError("not signed in: run gatewatch login")
    if clock() < float(entry.get("expires_at") or 0) - _EARLY:
        return str(entry["token"])
    refresh = entry.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise LoginError("your token has expired: run gatewatch login")
    doc = _endpoints(settings)
    token_url = doc.get("token_endpoint")
    if not isinstance(token_url, str):
        raise LoginError(f"{settings.issuer} names no token_endpoint")
    assert settings.client_id is not None
    try:
        status, answer = post_form(token_url, {"grant_type": "refresh_token",
                                               "refresh_token": refresh,
                                               "client_id": settings.client_id},
                                   timeout=settings.http_timeout)
    except FetchError as exc:
        raise LoginError(f"cannot refresh the token: {exc}") from None
    if status != 200:
        raise LoginError(f"your sign-in has ended ({_oauth_error(answer)}): run gatewatch login")
    return str(_store(settings, answer, clock, entry)["token"])


def token_for(config: Config, explicit: str | None = None) -> str:
    """An operator's token: ``--token``, else ``$GATEWATCH_TOKEN``, else the cached sign-in."""
    if explicit:
        return explicit
    if os.environ.get("GATEWATCH_TOKEN"):
        return os.environ["GATEWATCH_TOKEN"]
    if config.oidc is None:
        raise LoginError("no operator token: set GATEWATCH_TOKEN or pass --token", 2)
    return operator_token(config)


# connect -----------------------------------------------------------------------------------
_ASKPASS = """#!/bin/sh
# Gatewatch askpass: answers ssh's password prompt with the token from the environment, and
# nothing else (a host key question gets no answer, so ssh stops rather than saying yes).
case "$1" in
  *assword*|*oken*) printf '%s\\n' "$GATEWATCH_ASKPASS_TOKEN" ;;
  *) exit 1 ;;
esac
"""


def _login_name(settings: OidcSettings, token: str) -> str:
    claims = unverified_claims(token) or {}
    name = claim_at(claims, settings.username_claim) or claims.get("sub")
    if not isinstance(name, str) or not name:
        raise LoginError("the cached token names no user: pass --user")
    return name


def _conninfo(**values: str) -> str:
    def quote(v: str) -> str:
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{k}={quote(v)}" for k, v in values.items())


def connect_command(conn: Connection, token: str, user: str, dbname: str | None,
                    extra: list[str]) -> tuple[list[str], dict[str, str]]:
    """The client's argv and environment (the token only in the environment)."""
    host = conn.listen_host if conn.listen_host not in ("0.0.0.0", "::") else "127.0.0.1"
    env = dict(os.environ)
    if conn.kind == "postgres":
        psql = shutil.which("psql")
        if psql is None:
            raise LoginError("psql is not installed (apt install postgresql-client)")
        db = dbname or (conn.databases[0] if conn.databases else user)
        env["PGPASSWORD"] = token
        info = _conninfo(host=host, port=str(conn.listen_port), user=user, dbname=db)
        return [psql, info, *extra], env
    ssh = shutil.which("ssh")
    if ssh is None:
        raise LoginError("ssh is not installed (apt install openssh-client)")
    env.update({"GATEWATCH_ASKPASS_TOKEN": token, "SSH_ASKPASS_REQUIRE": "force"})
    return [ssh, "-p", str(conn.listen_port), "-o",
            "PreferredAuthentications=keyboard-interactive,password",
            f"{user}@{host}", *extra], env


def connect(config: Config, name: str, *, user: str | None = None, dbname: str | None = None,
            extra: list[str] | None = None) -> int:
    conn = config.connection(name)
    if conn is None:
        known = ", ".join(c.name for c in config.connections) or "none"
        raise LoginError(f"no connection {name!r} in {config.path} (known: {known})", 2)
    token = token_for(config)
    login_user = user or _login_name(_settings(config), token)
    argv, env = connect_command(conn, token, login_user, dbname, list(extra or []))
    with tempfile.TemporaryDirectory(prefix="gatewatch-askpass-") as tmp:
        if conn.kind == "ssh":
            helper = Path(tmp) / "askpass"
            helper.write_text(_ASKPASS)
            helper.chmod(0o700)
            env["SSH_ASKPASS"] = str(helper)
        try:
            code = subprocess.run(argv, env=env, check=False).returncode
        except OSError as exc:
            raise LoginError(f"cannot start {Path(argv[0]).name}: {exc.strerror}") from None
    if code != 0:
        raise LoginError(f"{Path(argv[0]).name} exited with status {code}")
    return 0


def command(config: Config, args: argparse.Namespace) -> int:
    """``gatewatch login`` / ``gatewatch connect``: exit 0, 1 (failed) or 2 (usage)."""
    try:
        if args.command == "login":
            entry = login(config)
            who = _login_name(_settings(config), entry["token"])
            until = time.strftime("%H:%M", time.localtime(entry["expires_at"]))
            print(f"signed in as {who} (token cached in {cache_path()}, valid until {until})")
            return 0
        extra = list(args.args or [])
        return connect(config, args.name, user=args.user, dbname=args.dbname, extra=extra)
    except LoginError as exc:
        print(f"gatewatch: {exc}", file=sys.stderr)
        return exc.status
    except OSError as exc:
        print(f"gatewatch: {exc.strerror or exc}", file=sys.stderr)
        return 1
