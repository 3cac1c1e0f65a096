"""A small OpenID provider on loopback, for the demo and the tests — never for production.

It speaks just enough of OpenID Connect and OAuth 2.0 for Gatewatch to be exercised against a
real provider over real HTTP: discovery, a JWKS with key rotation, and a token endpoint for
client credentials (agents), the device authorization grant (RFC 8628, what ``gatewatch login``
uses) and refresh tokens. Tokens are signed with joserfc (authlib's JOSE library).

The HTTP side is the standard library's ``ThreadingHTTPServer`` in a daemon thread: the provider
then answers whether its caller is synchronous (the CLI) or an asyncio engine, without a web
framework. Its principals: the demo's sample user (``alice``), the approver (``oncall``), the
CLI's public client (``gatewatch-cli``) and an agent (``triage-agent``, vendor ``example-ai``).
Tests approve a pending device login with ``approve(user_code, user)``; a person uses the form
at ``/device`` with the user's demo password.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey
from joserfc.jws import JWSRegistry

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_USER_CODE_LETTERS = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: no vowels, no look-alikes


class OAuthError(Exception):
    def __init__(self, error: str, description: str = "", status: int = 400) -> None:
        super().__init__(description or error)
        self.error, self.description, self.status = error, description, status


@dataclass
class DemoUser:
    name: str
    subject: str
    groups: list[str]
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))


@dataclass
class DemoClient:
    client_id: str
    secret: str | None  # None: a public client (the CLI)
    agent: bool = False
    vendor: str | None = None
    groups: list[str] = field(default_factory=list)


@dataclass
class _DeviceGrant:
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    interval: int
    last_poll: float | None = None
    user: str | None = None
    denied: bool = False


class DemoOidcProvider:
    def __init__(self, *, audience: str = "gatewatch", port: int = 0,
                 token_lifetime: int = 900, device_interval: int = 5,
                 clock: Callable[[], float] = time.time) -> None:
        self.audience = audience
        self.token_lifetime = token_lifetime
        self.device_interval = device_interval
        self.clock = clock
        self.users = {u.name: u for u in (DemoUser("alice", "u-1001", ["engineering"]),
                                          DemoUser("oncall", "u-1002", ["operators"]))}
        self.clients = {c.client_id: c for c in (
            DemoClient("gatewatch-cli", None),
            DemoClient("triage-agent", secrets.token_urlsafe(24), agent=True,
                       vendor="example-ai", groups=["agents"]),
        )}
        self.hits: Counter[str] = Counter()  # request path → count, for tests
        self._keys: list[tuple[str, Key]] = []  # (alg, key); the last one signs
        self._devices: dict[str, _DeviceGrant] = {}
        self._refresh: dict[str, tuple[str, str]] = {}  # refresh token → (user, client)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.rotate_key()

    # lifecycle ---------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def start(self) -> DemoOidcProvider:
        # A short poll interval: shutdown() waits for the serving loop to look up.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="demo-oidc")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> DemoOidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def demo_info(self, agent: str = "triage-agent") -> dict[str, Any]:
        """The demo JSON's ``oidc`` entry: a client-credentials token from ``token_endpoint``,
        presented as the password of ``pg_user``, opens a session as the agent."""
        client = self.clients[agent]
        return {"issuer": self.issuer, "token_endpoint": self.token_endpoint,
                "client_id": client.client_id, "client_secret": client.secret,
                "pg_user": client.client_id}

    # keys --------------------------------------------------------------------------------
    def rotate_key(self, alg: str = "RS256") -> str:
        """Publish a new key and sign with it from now on; earlier keys stay published (tokens
        they signed still verify) until ``retire_keys``. Returns the new key's id."""
        kid = f"demo-{len(self._keys) + 1}-{secrets.token_hex(4)}"
        if alg == "ES256":
            key: Key = ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig"})
        else:
            key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})
        with self._lock:
            self._keys.append((alg, key))
        return kid

    def retire_keys(self) -> None:
        """Stop publishing every key but the one that signs now."""
        with self._lock:
            del self._keys[:-1]

    @property
    def signing_key(self) -> Key:
        return self._keys[-1][1]

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [{**k.as_dict(private=False), "alg": alg} for alg, k in self._keys]}

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        """A token over ``claims`` with the current key (extra ``headers`` for tests)."""
        alg, key = self._keys[-1]
        header = {"alg": alg, "kid": key.get("kid"), **(headers or {})}
        return jwt.encode(header, claims, key,
                          registry=JWSRegistry(algorithms=[alg], strict_check_header=False))

    # tokens ------------------------------------------------------------------------------
    def _base_claims(self, audience: str | None = None, lifetime: int | None = None
                     ) -> dict[str, Any]:
        now = int(self.clock())
        return {"iss": self.issuer, "aud": audience or self.audience, "iat": now, "nbf": now,
                "exp": now + (self.token_lifetime if lifetime is None else lifetime),
                "jti": secrets.token_hex(8)}

    def user_token(self, name: str, *, client_id: str = "gatewatch-cli",
                   audience: str | None = None, lifetime: int | None = None,
                   **overrides: Any) -> str:
        user = self.users[name]
        claims = {**self._base_claims(audience, lifetime), "sub": user.subject,
                  "preferred_username": user.name, "groups": list(user.groups),
                  "azp": client_id, "client_id": client_id, **overrides}
        return self.sign(claims)

    def agent_token(self, client_id: str = "triage-agent", *, lifetime: int | None = None,
                    **overrides: Any) -> str:
        client = self.clients[client_id]
        claims = {**self._base_claims(None, lifetime), "sub": client.client_id,
                  "groups": list(client.groups), "kind": "agent", "vendor": client.vendor,
                  "azp": client.client_id, "client_id": client.client_id, **overrides}
        return self.sign(claims)

    def _user_grant(self, name: str, client_id: str) -> dict[str, Any]:
        refresh = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh[refresh] = (name, client_id)
        user = self.users[name]
        id_claims = {**self._base_claims(client_id), "sub": user.subject,
                     "preferred_username": name, "groups": list(user.groups)}
        return {"access_token": self.user_token(name, client_id=client_id),
                "id_token": self.sign(id_claims), "refresh_token": refresh,
                "token_type": "Bearer", "expires_in": self.token_lifetime}

    # device flow -------------------------------------------------------------------------
    def pending_user_codes(self) -> list[str]:
        with self._lock:
            return [g.user_code for g in self._devices.values()
                    if g.user is None and not g.denied]

    def approve(self, user_code: str, user: str) -> bool:
        """Let the device that shows ``user_code`` sign in as ``user`` (the user's consent)."""
        if user not in self.users:
            return False
        with self._lock:
            for grant in self._devices.values():
                if grant.user_code == user_code.upper() and grant.expires_at > self.clock():
                    grant.user = user
                    return True
        return False

    def deny(self, user_code: str) -> bool:
        with self._lock:
            for grant in self._devices.values():
                if grant.user_code == user_code.upper():
                    grant.denied = True
                    return True
        return False

    def _device_authorization(self, form: dict[str, str], client: DemoClient) -> dict[str, Any]:
        code = "".join(secrets.choice(_USER_CODE_LETTERS) for _ in range(8))
        user_code = f"{code[:4]}-{code[4:]}"
        device_code = secrets.token_urlsafe(32)
        with self._lock:
            self._devices[device_code] = _DeviceGrant(
                user_code, client.client_id, form.get("scope", ""),
                self.clock() + 600, self.device_interval)
        return {"device_code": device_code, "user_code": user_code,
                "verification_uri": f"{self.issuer}/device",
                "verification_uri_complete": f"{self.issuer}/device?user_code={user_code}",
                "expires_in": 600, "interval": self.device_interval}

    def _device_token(self, form: dict[str, str], client: DemoClient) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            grant = self._devices.get(form.get("device_code", ""))
            if grant is None or grant.client_id != client.client_id:
                raise OAuthError("invalid_grant", "unknown device code")
            if grant.expires_at <= now:
                del self._devices[form["device_code"]]
                raise OAuthError("expired_token", "the device code has expired")
            if grant.denied:
                del self._devices[form["device_code"]]
                raise OAuthError("access_denied", "the user refused")
            if grant.user is None:
                too_soon = grant.last_poll is not None and now - grant.last_poll < grant.interval
                grant.last_poll = now
                if too_soon:
                    grant.interval += 5  # RFC 8628 §3.5
                    raise OAuthError("slow_down", f"poll at most every {grant.interval} s")
                raise OAuthError("authorization_pending", "waiting for the user")
            del self._devices[form["device_code"]]
            user = grant.user
        return self._user_grant(user, client.client_id)

    # token endpoint ----------------------------------------------------------------------
    def _client(self, form: dict[str, str], authorization: str | None) -> DemoClient:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            try:
                raw = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                raise OAuthError("invalid_client", "bad Basic credentials", 401) from None
            client_id, _, secret = (urllib.parse.unquote(p) for p in raw.partition(":"))
        client = self.clients.get(client_id or "")
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if client.secret is not None and not hmac.compare_digest(
                (secret or "").encode(), client.secret.encode()):
            raise OAuthError("invalid_client", "wrong client secret", 401)
        return client

    def _token(self, form: dict[str, str], client: DemoClient) -> dict[str, Any]:
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if not client.agent:
                raise OAuthError("unauthorized_client", "client credentials are for agents")
            return {"access_token": self.agent_token(client.client_id), "token_type": "Bearer",
                    "expires_in": self.token_lifetime}
        if grant == DEVICE_GRANT:
            return self._device_token(form, client)
        if grant == "refresh_token":
            with self._lock:  # rotation: a refresh token is good for one use
                owner = self._refresh.pop(form.get("refresh_token", ""), None)
            if owner is None or owner[1] != client.client_id:
                raise OAuthError("invalid_grant", "unknown refresh token")
            return self._user_grant(owner[0], client.client_id)
        raise OAuthError("unsupported_grant_type", f"grant type {grant!r}")

    def discovery(self) -> dict[str, Any]:
        i = self.issuer
        return {"issuer": i, "jwks_uri": f"{i}/jwks", "token_endpoint": f"{i}/token",
                "device_authorization_endpoint": f"{i}/device_authorization",
                "grant_types_supported": ["client_credentials", DEVICE_GRANT, "refresh_token"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post", "none"],
                "response_types_supported": ["token"], "subject_types_supported": ["public"]}

    def handle(self, method: str, path: str, form: dict[str, str],
               authorization: str | None) -> tuple[int, str, str]:
        """One request → (status, content type, body). Protocol errors are OAuth JSON."""
        with self._lock:
            self.hits[path] += 1
        try:
            if method == "GET" and path == "/.well-known/openid-configuration":
                return _json(200, self.discovery())
            if method == "GET" and path == "/jwks":
                return _json(200, self.jwks())
            if method == "GET" and path == "/device":
                return 200, "text/html; charset=utf-8", _form(form.get("user_code", ""))
            if method == "POST" and path == "/device/approve":
                user = self.users.get(form.get("username", ""))
                ok = user is not None and hmac.compare_digest(
                    form.get("password", "").encode(), user.password.encode()) and \
                    self.approve(form.get("user_code", ""), user.name)
                page = "Signed in: you may close this page." if ok else "Not approved."
                return (200 if ok else 403), "text/html; charset=utf-8", page
            if method == "POST" and path == "/device_authorization":
                return _json(200, self._device_authorization(form, self._client(form, None)))
            if method == "POST" and path == "/token":
                return _json(200, self._token(form, self._client(form, authorization)))
        except OAuthError as exc:
            return _json(exc.status, {"error": exc.error, "error_description": exc.description})
        return _json(404, {"error": "not_found"})


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, str]:
    return status, "application/json", json.dumps(body)


def _form(user_code: str) -> str:
    return ("<!doctype html><title>Gatewatch demo sign-in</title><form method=post "
            "action=/device/approve><p>Code <input name=user_code value=\""
            f"{html.escape(user_code)}\"><p>User <input name=username><p>Password <input "
            "name=password type=password><p><button>Sign in</button></form>")


def _handler(provider: DemoOidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            form = dict(urllib.parse.parse_qsl(url.query))
            if method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                if length > 65536:
                    self.send_error(413)
                    return
                form.update(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            status, ctype, body = provider.handle(method, url.path, form,
                                                  self.headers.get("Authorization"))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the demo's terminal belongs to the TUI

    return Handler
