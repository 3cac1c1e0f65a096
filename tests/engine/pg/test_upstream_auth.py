"""The gateway's answers to a target's authentication requests.

SCRAM-SHA-256 is checked against a small server written here from RFC 5802 and RFC 7677, so
that the client's proof is verified by independent code rather than by itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pytest

from engine.pg.codec import MessageReader
from engine.pg.upstream_auth import (
    AUTH_CLEARTEXT,
    AUTH_MD5,
    AUTH_OK,
    AUTH_SASL,
    AUTH_SASL_CONTINUE,
    AUTH_SASL_FINAL,
    UpstreamAuthenticator,
    UpstreamAuthError,
)


def password_body(data: bytes) -> bytes:
    """The body of the single PasswordMessage ('p') in ``data``."""
    [(tag, body)] = MessageReader(1 << 16).feed(data)
    assert tag == ord("p")
    return body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class ScramServer:
    """The target's side of SCRAM-SHA-256 (RFC 5802 section 3, RFC 7677)."""

    def __init__(self, password: str, iterations: int = 4096) -> None:
        self.salt = secrets.token_bytes(16)
        self.iterations = iterations
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), self.salt, iterations)
        self.stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
        self.server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.client_first_bare = ""
        self.server_first = ""
        self.auth_message = b""
        self.verified = False

    def first(self, sasl_initial: bytes) -> bytes:
        """SASLInitialResponse body → server-first-message."""
        mech, _, rest = sasl_initial.partition(b"\x00")
        assert mech == b"SCRAM-SHA-256"
        length = int.from_bytes(rest[:4], "big")
        client_first = rest[4:].decode()
        assert len(rest) - 4 == length
        gs2, _, bare = client_first.partition(",,")
        assert gs2 in ("n", "y"), f"unexpected channel binding flag in {client_first!r}"
        self.gs2_header = gs2 + ",,"
        self.client_first_bare = bare
        attrs = dict(a.split("=", 1) for a in bare.split(","))
        assert len(attrs["r"]) >= 16  # a real nonce
        self.nonce = attrs["r"] + b64(secrets.token_bytes(18))
        self.server_first = f"r={self.nonce},s={b64(self.salt)},i={self.iterations}"
        return self.server_first.encode()

    def final(self, client_final: bytes, *, tamper: bool = False) -> bytes:
        """SASLResponse body → server-final-message; sets ``verified``."""
        text = client_final.decode()
        without_proof, _, proof_attr = text.rpartition(",p=")
        attrs = dict(a.split("=", 1) for a in without_proof.split(","))
        assert base64.b64decode(attrs["c"]) == self.gs2_header.encode()
        assert attrs["r"] == self.nonce
        self.auth_message = (
            f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        )
        signature = hmac.digest(self.stored_key, self.auth_message, "sha256")
        proof = base64.b64decode(proof_attr)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        self.verified = hmac.compare_digest(hashlib.sha256(client_key).digest(), self.stored_key)
        server_signature = hmac.digest(self.server_key, self.auth_message, "sha256")
        if tamper:
            server_signature = bytes([server_signature[0] ^ 1]) + server_signature[1:]
        return f"v={b64(server_signature)}".encode()


def scram_exchange(
    client_password: str, server_password: str, *, tamper: bool = False
) -> tuple[ScramServer, UpstreamAuthenticator]:
    server = ScramServer(server_password)
    auth = UpstreamAuthenticator("gatewatch", client_password)
    initial = auth.respond(AUTH_SASL, b"SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00")
    assert initial is not None
    server_first = server.first(password_body(initial))
    response = auth.respond(AUTH_SASL_CONTINUE, server_first)
    assert response is not None
    server_final = server.final(password_body(response), tamper=tamper)
    assert auth.respond(AUTH_SASL_FINAL, server_final) is None
    return server, auth


# --- SCRAM-SHA-256 ---------------------------------------------------------------------------


def test_scram_proof_verifies_and_server_signature_is_accepted() -> None:
    server, auth = scram_exchange("s3cret pässword", "s3cret pässword")
    assert server.verified
    assert auth.respond(AUTH_OK, b"") is None


def test_scram_wrong_password_does_not_verify() -> None:
    # The test server is able to say no: the passing test above means something.
    server = ScramServer("right")
    auth = UpstreamAuthenticator("gatewatch", "wrong")
    initial = auth.respond(AUTH_SASL, b"SCRAM-SHA-256\x00\x00")
    assert initial is not None
    response = auth.respond(AUTH_SASL_CONTINUE, server.first(password_body(initial)))
    assert response is not None
    server_final = server.final(password_body(response))
    assert not server.verified
    # The real server's signature is computed from its own key: the client rejects it too.
    with pytest.raises(UpstreamAuthError, match="signature"):
        auth.respond(AUTH_SASL_FINAL, server_final)


def test_scram_wrong_server_signature_is_refused() -> None:
    with pytest.raises(UpstreamAuthError, match="signature is wrong"):
        scram_exchange("pw", "pw", tamper=True)


def test_scram_nonces_are_fresh() -> None:
    def nonce() -> bytes:
        auth = UpstreamAuthenticator("u", "pw")
        initial = auth.respond(AUTH_SASL, b"SCRAM-SHA-256\x00\x00")
        assert initial is not None
        return password_body(initial).rpartition(b"r=")[2]

    assert nonce() != nonce()


def test_scram_server_nonce_must_extend_the_client_nonce() -> None:
    auth = UpstreamAuthenticator("u", "pw")
    auth.respond(AUTH_SASL, b"SCRAM-SHA-256\x00\x00")
    with pytest.raises(UpstreamAuthError, match="server-first"):
        auth.respond(AUTH_SASL_CONTINUE, b"r=someoneelse,s=c2FsdA==,i=4096")


@pytest.mark.parametrize(
    "template",
    ["r={nonce}x,i=4096", "r={nonce}x,s=c2FsdA==", "r={nonce}x,s=c2FsdA==,i=many"],
)
def test_scram_malformed_server_first(template: str) -> None:
    auth = UpstreamAuthenticator("u", "pw")
    initial = auth.respond(AUTH_SASL, b"SCRAM-SHA-256\x00\x00")
    assert initial is not None
    nonce = password_body(initial).rpartition(b"r=")[2].decode()
    with pytest.raises(UpstreamAuthError, match="malformed"):
        auth.respond(AUTH_SASL_CONTINUE, template.format(nonce=nonce).encode())


@pytest.mark.parametrize(
    "template",
    [b"r={nonce}x,s=c2FsdA==,i=0", b"r={nonce}x,s=abc,i=4096", b"r={nonce}x,s=c2FsdA==,i=1\xff"],
    ids=["zero-iterations", "bad-base64-salt", "not-utf8"],
)
def test_scram_server_first_that_cannot_be_used_is_an_auth_error(template: bytes) -> None:
    auth = UpstreamAuthenticator("u", "pw")
    initial = auth.respond(AUTH_SASL, b"SCRAM-SHA-256\x00\x00")
    assert initial is not None
    nonce = password_body(initial).rpartition(b"r=")[2]
    with pytest.raises(UpstreamAuthError):
        auth.respond(AUTH_SASL_CONTINUE, template.replace(b"{nonce}", nonce))


def test_scram_malformed_server_final() -> None:
    server = ScramServer("pw")
    auth = UpstreamAuthenticator("u", "pw")
    initial = auth.respond(AUTH_SASL, b"SCRAM-SHA-256\x00\x00")
    assert initial is not None
    auth.respond(AUTH_SASL_CONTINUE, server.first(password_body(initial)))
    with pytest.raises(UpstreamAuthError, match="malformed SCRAM server-final"):
        auth.respond(AUTH_SASL_FINAL, b"e=invalid-proof")


def test_scram_server_final_that_is_not_base64() -> None:
    server = ScramServer("pw")
    auth = UpstreamAuthenticator("u", "pw")
    initial = auth.respond(AUTH_SASL, b"SCRAM-SHA-256\x00\x00")
    assert initial is not None
    auth.respond(AUTH_SASL_CONTINUE, server.first(password_body(initial)))
    with pytest.raises(UpstreamAuthError):
        auth.respond(AUTH_SASL_FINAL, b"v=abc")


def test_sasl_without_scram_sha_256_is_refused() -> None:
    auth = UpstreamAuthenticator("u", "pw")
    with pytest.raises(UpstreamAuthError, match="no supported SASL mechanism"):
        auth.respond(AUTH_SASL, b"SCRAM-SHA-256-PLUS\x00OAUTHBEARER\x00\x00")


def test_sasl_without_password_is_refused() -> None:
    auth = UpstreamAuthenticator("u", None)
    with pytest.raises(UpstreamAuthError, match="holds none"):
        auth.respond(AUTH_SASL, b"SCRAM-SHA-256\x00\x00")


# --- MD5, cleartext, others ------------------------------------------------------------------


def test_md5_response() -> None:
    salt = b"\x01\x02\xfe\xff"
    auth = UpstreamAuthenticator("gw_md5", "hunter2")
    reply = auth.respond(AUTH_MD5, salt)
    assert reply is not None
    inner = hashlib.md5(b"hunter2gw_md5").hexdigest()
    expected = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
    assert password_body(reply) == expected.encode() + b"\x00"


def test_md5_depends_on_the_salt() -> None:
    auth = UpstreamAuthenticator("u", "pw")
    assert auth.respond(AUTH_MD5, b"aaaa") != auth.respond(AUTH_MD5, b"bbbb")


@pytest.mark.parametrize("salt", [b"", b"abc", b"abcde"])
def test_md5_malformed_salt(salt: bytes) -> None:
    with pytest.raises(UpstreamAuthError, match="malformed MD5"):
        UpstreamAuthenticator("u", "pw").respond(AUTH_MD5, salt)


def test_cleartext_password() -> None:
    reply = UpstreamAuthenticator("u", "pä ss").respond(AUTH_CLEARTEXT, b"")
    assert reply is not None
    assert password_body(reply) == "pä ss".encode() + b"\x00"


@pytest.mark.parametrize("code", [AUTH_CLEARTEXT, AUTH_MD5])
def test_missing_password(code: int) -> None:
    auth = UpstreamAuthenticator("u", None)
    with pytest.raises(UpstreamAuthError, match="holds none"):
        auth.respond(code, b"salt")


def test_trust_needs_no_password() -> None:
    assert UpstreamAuthenticator("u", None).respond(AUTH_OK, b"") is None


@pytest.mark.parametrize("code", [2, 6, 7, 8, 9, 99, -1])  # Kerberos, SCM, GSS, SSPI, ...
def test_unsupported_method(code: int) -> None:
    with pytest.raises(UpstreamAuthError, match=f"unsupported authentication method {code}"):
        UpstreamAuthenticator("u", "pw").respond(code, b"")
