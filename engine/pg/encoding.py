"""The session's encodings: how the gateway decodes SQL text and names things as the target does.

PostgreSQL converts every string a client sends from ``client_encoding`` to the database's
``server_encoding`` before reading it, and both are reported in ParameterStatus. The gateway
decodes SQL text with the same encoding (strictly: the server refuses bytes that are not valid
in it, so the gateway does not guess either), so that the text judged and recorded is the text
the server reads (ARCHITECTURE.md invariant 11).

Names of prepared statements and portals are never decoded for identity: two different byte
strings must never become one name (``b'\\xfe'`` and ``b'\\xff'`` would both decode to U+FFFD
with a lenient decoder). A name is identified as the target holds it: the bytes after conversion
to the server encoding, cut to 63 bytes (PostgreSQL's hash tables of statements and portals
compare only NAMEDATALEN - 1 bytes, so longer names are the same name).

``reads_the_same`` says when a text cannot be read differently whatever the session's settings:
``standard_conforming_strings`` only changes what a backslash in a string means, and every
client encoding PostgreSQL accepts reads ASCII bytes as ASCII.
"""

from __future__ import annotations

from engine.masking.encodings import CODECS, canonical

NAME_BYTES = 63  # NAMEDATALEN - 1

__all__ = ["CODECS", "NAME_BYTES", "SessionEncoding", "canonical", "reads_the_same"]


def reads_the_same(raw: bytes) -> bool:
    """True when ``raw`` is read the same under any ``standard_conforming_strings`` and any
    client encoding: ASCII without a backslash."""
    return raw.isascii() and b"\\" not in raw


class SessionEncoding:
    """The client and server encodings the target reported, and what follows from them."""

    __slots__ = ("_convert", "_text", "client", "server")

    def __init__(self, client: str = "UTF8", server: str = "UTF8") -> None:
        self.client = client
        self.server = server
        self._text: str | None = "utf-8"  # codec of SQL text, None when it cannot be decoded
        self._convert = False  # names change bytes on their way to the server
        self._update()

    def report(self, name: str, value: str) -> None:
        """A ParameterStatus of ``client_encoding`` or ``server_encoding``."""
        if name == "client_encoding":
            self.client = canonical(value)
        elif name == "server_encoding":
            self.server = canonical(value)
        else:
            return
        self._update()

    def _update(self) -> None:
        # SQL_ASCII on the client side means "no conversion": the server reads the bytes as
        # its own encoding (and checks them), so text is decoded as that.
        source = self.server if self.client == "SQL_ASCII" else self.client
        self._text = CODECS.get(source)
        self._convert = self.client not in (self.server, "SQL_ASCII") and (
            self.server != "SQL_ASCII")

    @property
    def unreadable(self) -> str | None:
        """Why the gateway cannot decode the session's SQL text, or None."""
        if self._text is None:
            return f"the session's client_encoding is {self.client}, which the gateway cannot " \
                   "decode"
        return None

    def decode(self, raw: bytes) -> str | None:
        """SQL text as the server reads it, or None when it is not valid in the encoding."""
        if self._text is None:
            return None
        try:
            return raw.decode(self._text)
        except UnicodeDecodeError:
            return None

    def show(self, raw: bytes) -> str:
        """For messages and parameter previews only, never for identity."""
        return raw.decode(self._text or "utf-8", "replace")

    @property
    def codec(self) -> str:
        return self._text or "utf-8"

    def name(self, raw: bytes) -> bytes | None:
        """A prepared statement's or portal's name as the target holds it, or None when the
        gateway cannot tell (not valid in the client encoding, or no codec for it)."""
        if raw.isascii():  # every encoding converts ASCII to itself
            return raw[:NAME_BYTES] if len(raw) > NAME_BYTES else raw
        if self._convert:
            source, target = CODECS.get(self.client), CODECS.get(self.server)
            if source is None or target is None:
                return None
            try:
                raw = raw.decode(source).encode(target)
            except (UnicodeDecodeError, UnicodeEncodeError):
                return None
        return raw[:NAME_BYTES]

    def sql_name(self, name: str) -> bytes | None:
        """The name of ``PREPARE name`` / ``EXECUTE name`` as the target holds it, from the
        parser's reading (folded to lower case and cut to 63 bytes by PostgreSQL's rules for a
        UTF-8 database), or None when the database's rules may differ: a non-ASCII name in a
        database that is not UTF-8 (single-byte encodings fold case by the locale)."""
        if name.isascii() or self.server == "UTF8":
            return name.encode()
        return None
