"""The gateway's answers to a target's authentication requests (RFC 5802/7677 SCRAM, MD5).

Sans-io: ``respond(code, payload)`` takes the body of one AuthenticationXXX message and returns
the PasswordMessage / SASL message to send back, or ``None`` when nothing is to be sent.
The password never leaves this object except inside the proofs the target asks for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from engine.pg import codec

AUTH_OK, AUTH_CLEARTEXT, AUTH_MD5, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL = (
    0,
    3,
    5,
    10,
    11,
    12,
)


class UpstreamAuthError(Exception):
    """The target asked for something we cannot or will not answer, or failed its own proof."""


class UpstreamAuthenticator:
    def __init__(self, user: str, password: str | None) -> None:
        self._user = user
        self._password = password
        self._nonce = ""
        self._client_first_bare = ""
        self._auth_message = b""
        self._salted = b""

    def respond(self, code: int, payload: bytes) -> bytes | None:
        try:
            return self._respond(code, payload)
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            # A target that sends an unusable challenge gets no answer (and no password).
            raise UpstreamAuthError(f"malformed authentication request from the target: {exc}"
                                    ) from exc

    def _respond(self, code: int, payload: bytes) -> bytes | None:
        if code == AUTH_OK:
            return None
        if code == AUTH_CLEARTEXT:
            return codec.password_message(self._require_password().encode() + b"\x00")
        if code == AUTH_MD5:
            if len(payload) != 4:
                raise UpstreamAuthError("malformed MD5 authentication request")
            inner = hashlib.md5(
                self._require_password().encode() + self._user.encode(), usedforsecurity=False
            ).hexdigest()
            outer = hashlib.md5(inner.encode() + payload, usedforsecurity=False).hexdigest()
            return codec.password_message(b"md5" + outer.encode() + b"\x00")
        if code == AUTH_SASL:
            mechanisms = [m.decode() for m in payload.split(b"\x00") if m]
            if "SCRAM-SHA-256" not in mechanisms:
                raise UpstreamAuthError(f"target offers no supported SASL mechanism: {mechanisms}")
            return self._client_first()
        if code == AUTH_SASL_CONTINUE:
            return self._client_final(payload)
        if code == AUTH_SASL_FINAL:
            self._verify_server(payload)
            return None
        raise UpstreamAuthError(f"target asks for unsupported authentication method {code}")

    def _require_password(self) -> str:
        if self._password is None:
            raise UpstreamAuthError("target asks for a password but the connection holds none")
        return self._password

    def _client_first(self) -> bytes:
        self._require_password()
        self._nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        # PostgreSQL takes the user from the StartupMessage; the SCRAM user name stays empty.
        self._client_first_bare = f"n=,r={self._nonce}"
        first = ("n,," + self._client_first_bare).encode()
        body = codec.cstr("SCRAM-SHA-256") + len(first).to_bytes(4, "big") + first
        return codec.password_message(body)

    def _client_final(self, payload: bytes) -> bytes:
        server_first = payload.decode()
        attrs = dict(part.split("=", 1) for part in server_first.split(",") if "=" in part)
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s"), attrs.get("i", "")
        if (not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce) or salt is None
                or not iterations.isdigit() or int(iterations) < 1):
            raise UpstreamAuthError("malformed SCRAM server-first message")
        self._salted = hashlib.pbkdf2_hmac(
            "sha256",
            self._require_password().encode(),
            base64.b64decode(salt, validate=True),
            int(iterations),
        )
        client_key = hmac.digest(self._salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        self._auth_message = f"{self._client_first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, self._auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        final = f"{without_proof},p={base64.b64encode(proof).decode()}"
        return codec.password_message(final.encode())

    def _verify_server(self, payload: bytes) -> None:
        text = payload.decode(errors="replace")
        if not text.startswith("v="):
            raise UpstreamAuthError("malformed SCRAM server-final message")
        server_key = hmac.digest(self._salted, b"Server Key", "sha256")
        expected = hmac.digest(server_key, self._auth_message, "sha256")
        if not hmac.compare_digest(base64.b64decode(text[2:], validate=True), expected):
            raise UpstreamAuthError("the target's SCRAM signature is wrong: refusing to go on")
