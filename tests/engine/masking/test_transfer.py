"""File transfers masked in place: SFTP data replies and legacy scp files keep their lengths."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking import ValueMasker
from engine.masking.transfer import ScpMasker, SftpMasker, TransferError

CONTENT = ("id,email,card\n" + "".join(
    f"{i},person{i}@example.com,4111 1111 1111 1111\n" for i in range(300))).encode()
KEY_FILE = (b"config\n-----BEGIN OPENSSH PRIVATE KEY-----\n" + b"QUJD" * 19 + b"\n") * 1 + \
    (b"QUJD" * 19 + b"\n") * 400 + b"-----END OPENSSH PRIVATE KEY-----\nend\n"


def packet(kind: int, body: bytes) -> bytes:
    return struct.pack("!IB", len(body) + 1, kind) + body


def data(request: int, chunk: bytes) -> bytes:
    return packet(103, struct.pack("!II", request, len(chunk)) + chunk)


def replies(content: bytes, size: int) -> bytes:
    handle = packet(102, struct.pack("!I", 1) + struct.pack("!I", 4) + b"h001")
    body = b"".join(data(i + 2, content[at:at + size])
                    for i, at in enumerate(range(0, len(content), size)))
    return handle + body + packet(101, struct.pack("!II", 999, 1) + bytes(8))


def file_data(stream: bytes) -> bytes:
    out, pos = b"", 0
    while pos < len(stream):
        n = struct.unpack_from("!I", stream, pos)[0]
        if stream[pos + 4] == 103:
            out += stream[pos + 13:pos + 4 + n]
        pos += 4 + n
    return out


def through(masker: SftpMasker | ScpMasker, stream: bytes, cut: int) -> bytes:
    out = b"".join(masker.feed(stream[at:at + cut]) for at in range(0, len(stream), cut))
    return out + masker.flush()


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 5000), cut=st.integers(1, 9000))
def test_sftp_replies_of_any_size_in_any_chunks(size: int, cut: int) -> None:
    stream = replies(CONTENT, size)
    out = through(SftpMasker(ValueMasker(keep_length=True)), stream, cut)
    assert len(out) == len(stream)
    got = file_data(out)
    assert len(got) == len(CONTENT) and got.count(b"\n") == CONTENT.count(b"\n")
    assert b"@example.com" not in got and b"4111 1111" not in got


def test_a_private_key_in_a_transfer_becomes_stars_of_its_length() -> None:
    stream = replies(KEY_FILE, 1000)
    out = through(SftpMasker(ValueMasker(keep_length=True)), stream, 700)
    got = file_data(out)
    assert len(got) == len(KEY_FILE) and b"QUJD" not in got
    assert got.startswith(b"config\n") and got.endswith(b"\nend\n")


@pytest.mark.parametrize("bad", [
    b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", packet(103, b"\x00\x00\x00\x01\x00\x00\x00\x09ab"),
])
def test_what_is_not_sftp_is_refused(bad: bytes) -> None:
    with pytest.raises(TransferError):
        SftpMasker(ValueMasker(keep_length=True)).feed(bad)


def test_a_transfer_needs_a_length_keeping_masker() -> None:
    with pytest.raises(ValueError):
        SftpMasker(ValueMasker())
    with pytest.raises(ValueError):
        ScpMasker(ValueMasker())


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(1, 9000))
def test_scp_files_in_any_chunks(cut: int) -> None:
    stream = (b"T1700000000 0 1700000000 0\n" + b"C0644 %d a.csv\n" % len(CONTENT) + CONTENT
              + b"\x00D0755 0 sub\nC0600 %d k\n" % len(KEY_FILE) + KEY_FILE + b"\x00E\n"
              + b"\x01scp: warning\n")
    out = through(ScpMasker(ValueMasker(keep_length=True)), stream, cut)
    assert len(out) == len(stream)
    assert b"@example.com" not in out and b"4111 1111" not in out and b"QUJD" not in out
    assert b"C0644 %d a.csv\n" % len(CONTENT) in out and out.endswith(b"\x00E\n\x01scp: warning\n")


@pytest.mark.parametrize("bad", [b"C0644 size name\n", b"C" + b"x" * 70_000])
def test_a_broken_scp_header_is_refused(bad: bytes) -> None:
    with pytest.raises(TransferError):
        ScpMasker(ValueMasker(keep_length=True)).feed(bad)


# --- SFTP reads at chosen offsets ------------------------------------------------------------


def read(request: int, handle: bytes, offset: int, length: int) -> bytes:
    return packet(5, struct.pack("!II", request, len(handle)) + handle
                  + struct.pack("!QI", offset, length))


def close(request: int, handle: bytes) -> bytes:
    return packet(4, struct.pack("!II", request, len(handle)) + handle)


def statuses(stream: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(stream):
        n = struct.unpack_from("!I", stream, pos)[0]
        if stream[pos + 4] == 101:
            out.append(struct.unpack_from("!I", stream, pos + 5)[0])
        pos += 4 + n
    return out


def test_sftp_reads_in_order_are_masked_across_replies() -> None:
    masker = SftpMasker(ValueMasker(keep_length=True))
    masker.request(b"".join(read(i, b"h1", i * 7, 7) for i in range(len(CONTENT) // 7 + 1)))
    stream = b"".join(data(i, CONTENT[i * 7:i * 7 + 7]) for i in range(len(CONTENT) // 7 + 1))
    out = through(masker, stream, 1000)
    got = file_data(out)
    assert len(got) == len(CONTENT) and b"4111 1111" not in got and b"@example.com" not in got
    assert statuses(out) == []


@pytest.mark.parametrize("order", [
    [1, 0, 3, 2],  # pairs swapped: each reply is one piece of a card, never a whole one
    [0, 2, 1, 3],
    [2, 3],  # a file read from the middle
])
def test_sftp_reads_out_of_offset_order_are_refused(order: list[int]) -> None:
    line = b"4111 1111 1111 1111\n"  # 20 bytes, read 5 at a time
    masker = SftpMasker(ValueMasker(keep_length=True))
    masker.request(b"".join(read(i, b"h1", i * 5, 5) for i in order))
    out = masker.feed(b"".join(data(i, line[i * 5:i * 5 + 5]) for i in order)) + masker.flush()
    assert statuses(out), out
    assert b"1111" not in file_data(out).replace(b" ", b"")[:8] or len(statuses(out)) >= 2
    joined = b"".join(line[i * 5:i * 5 + 5] for i in order)
    assert joined.replace(b" ", b"") not in file_data(out).replace(b" ", b"")


def test_sftp_a_second_file_between_the_pieces_of_the_first_is_refused() -> None:
    masker = SftpMasker(ValueMasker(keep_length=True))
    masker.request(read(1, b"a", 0, 10) + read(2, b"b", 0, 10) + read(3, b"a", 10, 9))
    out = masker.feed(data(1, b"4111 1111 ") + data(2, b"hello worl") + data(3, b"1111 1111"))
    out += masker.flush()
    assert statuses(out) == [2]
    assert b"4111 1111 " not in file_data(out)
    # once the first is closed, the second may be read
    masker.request(close(4, b"a") + read(5, b"b", 0, 10))
    assert file_data(masker.feed(data(5, b"hello worl")) + masker.flush()) == b"hello worl"


def test_sftp_a_reply_to_no_read_is_refused() -> None:
    masker = SftpMasker(ValueMasker(keep_length=True))
    masker.request(read(1, b"a", 0, 19))
    out = masker.feed(data(9, b"4111 1111 1111 1111")) + masker.flush()
    assert statuses(out) == [9] and b"4111" not in out


# --- a client that reads in small pieces, one read at a time (outside attack on issue 14) ----

SECRETS = (b"name=app\ncard=4012888888881881\n"
           b"aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
           b"mail=grace.hopper@example.com\nend\n")


def read_at(request: int, offset: int, size: int) -> bytes:
    return packet(5, struct.pack("!I", request) + struct.pack("!I", 4) + b"h001"
                  + struct.pack("!QI", offset, size))


def pieces(value: bytes, n: int) -> set[bytes]:
    return {value[i:i + n] for i in range(len(value) - n + 1)}


@pytest.mark.parametrize("size", [1, 3, 8, 13, 64])
def test_reads_one_at_a_time_never_give_a_value_in_pieces(size: int) -> None:
    """Each read waits for its reply, so the gateway must release a reply whose end may be
    the start of a value: what it holds is starred, and so is the rest of that word."""
    masker = SftpMasker(ValueMasker(keep_length=True))
    got = b""
    for i, at in enumerate(range(0, len(SECRETS), size)):
        masker.request(read_at(i + 2, at, size))
        out = masker.feed(data(i + 2, SECRETS[at:at + size]))
        if masker.held:
            out += masker.flush(pause=True)
        assert not masker.held
        got += file_data(out)
    got += file_data(masker.flush())
    assert len(got) == len(SECRETS) and got.count(b"\n") == SECRETS.count(b"\n")
    for value in (b"4012888888881881", b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                  b"grace.hopper"):
        leaked = [p for p in pieces(value, 5) if p in got]
        assert not leaked, (value, leaked, got)
    # (What may start a value at a pause is starred: with tiny reads, nearly everything.)


def test_with_reads_in_flight_a_pause_releases_nothing() -> None:
    """A pipelined client (OpenSSH's sftp): its next replies complete what is held, so a
    quiet moment changes nothing and the file is masked exactly as when read whole."""
    size = 8
    masker = SftpMasker(ValueMasker(keep_length=True))
    for i, at in enumerate(range(0, len(SECRETS), size)):
        masker.request(read_at(i + 2, at, size))
    got = b""
    for i, at in enumerate(range(0, len(SECRETS), size)):
        got += file_data(masker.feed(data(i + 2, SECRETS[at:at + size])))
        got += file_data(masker.flush(pause=True))
    got += file_data(masker.feed(packet(101, struct.pack("!II", 99, 1) + bytes(8))))
    whole = SftpMasker(ValueMasker(keep_length=True))
    expected = file_data(through(whole, replies(SECRETS, len(SECRETS)), 10_000))
    assert got == expected and b"transfer-paused" not in str(masker.counts).encode()


# --- the record of an upload: WRITE data as one stream per file --------------------------------

from engine.masking.transfer import SftpUploadRecord  # noqa: E402


def write(request: int, offset: int, chunk: bytes, handle: bytes = b"h001") -> bytes:
    return packet(6, struct.pack("!I", request) + struct.pack("!I", len(handle)) + handle
                  + struct.pack("!Q", offset) + struct.pack("!I", len(chunk)) + chunk)


@pytest.mark.parametrize("size", [1, 7, 10, 64, 4096])
def test_an_upload_is_recorded_with_values_split_between_writes_masked(size: int) -> None:
    record = SftpUploadRecord(ValueMasker(keep_length=True))
    stream = b"".join(write(i + 2, at, SECRETS[at:at + size])
                      for i, at in enumerate(range(0, len(SECRETS), size)))
    stream += packet(4, struct.pack("!I", 99) + struct.pack("!I", 4) + b"h001")  # CLOSE
    out = b"".join(record.feed(stream[at:at + 5]) for at in range(0, len(stream), 5))
    out += record.flush()
    assert len(out) == len(stream)
    recorded = b"".join(chunk for chunk in _write_data(out))
    assert len(recorded) == len(SECRETS)
    for value in (b"4012888888881881", b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                  b"grace.hopper@example.com"):
        assert value not in recorded


def _write_data(stream: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(stream):
        n = struct.unpack_from("!I", stream, pos)[0]
        if stream[pos + 4] == 6:
            size = struct.unpack_from("!I", stream, pos + 9)[0]
            out.append(stream[pos + 13 + size + 12:pos + 4 + n])
        pos += 4 + n
    return out


@pytest.mark.parametrize("order", ["falling", "interleaved"])
def test_an_upload_written_out_of_order_keeps_no_data_in_the_record(order: str) -> None:
    """Re-attack on issue 14: 3-byte WRITEs at falling offsets, or 2-byte WRITEs alternating
    with another file, were each a stream of their own and recorded the card in clear."""
    record = SftpUploadRecord(ValueMasker(keep_length=True))
    pieces = [(at, SECRETS[at:at + 3]) for at in range(0, len(SECRETS), 3)]
    if order == "falling":
        stream = b"".join(write(i + 2, at, chunk) for i, (at, chunk) in
                          enumerate(reversed(pieces)))
    else:
        stream = b"".join(write(2 * i + 2, at, chunk) + write(2 * i + 3, at, b"zz", b"h002")
                          for i, (at, chunk) in enumerate(pieces))
    out = record.feed(stream) + record.flush()
    assert len(out) == len(stream)
    recorded = b"".join(_write_data(out))
    assert b"888" not in recorded and b"ENG" not in recorded  # no piece of a value
