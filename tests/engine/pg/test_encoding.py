"""The session's encodings: SQL text decoded as the server reads it, names as it holds them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.pg.encoding import CODECS, SessionEncoding, reads_the_same


@pytest.mark.parametrize(("raw", "same"), [
    (b"SELECT abalance FROM pgbench_accounts WHERE aid = $1", True),
    (b"SELECT 'x\\'' ; DROP TABLE t; --'", False),  # a backslash: scs changes its meaning
    (b"SELECT E'\\n'", False),
    ("SELECT 'é'".encode(), False),  # non-ASCII: the client encoding changes its meaning
    (b"SELECT '\xe9'", False),
    (b"", True),
])
def test_reads_the_same(raw: bytes, same: bool) -> None:
    assert reads_the_same(raw) is same


def test_text_is_decoded_strictly_with_the_client_encoding() -> None:
    enc = SessionEncoding()
    assert enc.decode("SELECT 'é'".encode()) == "SELECT 'é'"
    assert enc.decode(b"SELECT '\xe9'") is None  # not UTF-8: the server refuses it too
    enc.report("client_encoding", "LATIN1")
    assert enc.decode(b"SELECT '\xe9'") == "SELECT 'é'"
    enc.report("client_encoding", "WIN1252")
    assert enc.decode(b"'\x80'") == "'€'"
    assert enc.show(b"'\x81'") == "'\ufffd'"  # shown, never judged


def test_sql_ascii_client_reads_as_the_server_encoding() -> None:
    enc = SessionEncoding("SQL_ASCII", "UTF8")
    assert enc.decode("é".encode()) == "é" and enc.decode(b"\xe9") is None


@pytest.mark.parametrize("name", ["MULE_INTERNAL", "EUC_TW"])
def test_encodings_without_a_codec_are_unreadable(name: str) -> None:
    enc = SessionEncoding()
    enc.report("client_encoding", name)
    assert enc.unreadable is not None and enc.decode(b"SELECT 1") is None


def test_every_listed_codec_exists() -> None:
    import codecs

    for codec in CODECS.values():
        codecs.lookup(codec)


def test_names_are_never_decoded_leniently() -> None:
    """Issue 12: b'\\xfe' and b'\\xff' both decoded to U+FFFD and became one name."""
    enc = SessionEncoding("LATIN1", "UTF8")
    assert enc.name(b"\xfe") == "þ".encode() and enc.name(b"\xff") == "ÿ".encode()
    utf8 = SessionEncoding()
    assert utf8.name(b"\xfe") == b"\xfe" and utf8.name(b"\xff") == b"\xff"  # the server: 22021


def test_names_are_cut_to_63_bytes_after_conversion() -> None:
    assert SessionEncoding().name(b"a" * 70) == b"a" * 63
    latin1 = SessionEncoding("LATIN1", "UTF8")
    assert latin1.name(b"\xe9" * 40) == ("é" * 40).encode()[:63]


def test_a_name_is_the_same_whatever_client_encoding_spelled_it() -> None:
    assert SessionEncoding("LATIN1").name(b"\xfe") == SessionEncoding("UTF8").name(
        "þ".encode())


def test_sql_names_in_a_database_that_is_not_utf8() -> None:
    enc = SessionEncoding("UTF8", "LATIN1")
    assert enc.sql_name("foo") == b"foo"
    assert enc.sql_name("é") is None  # folded by the locale there: not known
    assert SessionEncoding().sql_name("Ég") == "Ég".encode()


@settings(database=None, deadline=None, max_examples=300)
@given(st.binary(max_size=80), st.binary(max_size=80),
       st.sampled_from(["UTF8", "LATIN1", "WIN1251", "EUC_JP", "KOI8R", "SQL_ASCII"]))
def test_two_names_are_one_only_if_postgresql_says_so(a: bytes, b: bytes, client: str) -> None:
    """Distinct names stay distinct unless they convert to the same server name and agree in
    their first 63 bytes (PostgreSQL's own comparison)."""
    enc = SessionEncoding(client, "UTF8")
    ka, kb = enc.name(a), enc.name(b)
    if ka is not None and kb is not None and ka == kb and a != b:
        if client in ("UTF8", "SQL_ASCII"):
            assert a[:63] == b[:63]
        else:
            codec = CODECS[client]
            assert a.decode(codec).encode()[:63] == b.decode(codec).encode()[:63]
