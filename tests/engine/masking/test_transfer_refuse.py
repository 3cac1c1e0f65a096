"""SFTP requests on files the transfer may not give (``SftpMasker(refuse=…)``): opening one for
reading, renaming or linking it ends the transfer before the request reaches the target; opening
it to write, or another file, passes."""

from __future__ import annotations

import struct

import pytest

from engine.masking import ValueMasker
from engine.masking.transfer import SftpMasker, TransferRefused


def packet(kind: int, body: bytes) -> bytes:
    return struct.pack("!IB", len(body) + 1, kind) + body


def string(text: bytes) -> bytes:
    return struct.pack("!I", len(text)) + text


def open_request(path: bytes, flags: int) -> bytes:
    return packet(3, struct.pack("!I", 7) + string(path) + struct.pack("!II", flags, 0))


MARKED = b"/srv/reversed.txt"


def masker(asked: list[str]) -> SftpMasker:
    def refuse(path: str) -> str | None:
        asked.append(path)
        return "written by a transform" if path.encode() == MARKED else None
    return SftpMasker(ValueMasker(keep_length=True), refuse)


@pytest.mark.parametrize("request_bytes", [
    open_request(MARKED, 0x1),  # read
    open_request(MARKED, 0x3),  # read and write
    packet(18, struct.pack("!I", 8) + string(MARKED) + string(b"/srv/new")),  # rename
    packet(18, struct.pack("!I", 8) + string(b"/srv/new") + string(MARKED)),
    packet(20, struct.pack("!I", 9) + string(MARKED) + string(b"/srv/link")),  # symlink
    packet(200, struct.pack("!I", 10) + string(b"posix-rename@openssh.com") + string(MARKED)
           + string(b"/srv/new")),
    packet(200, struct.pack("!I", 11) + string(b"hardlink@openssh.com") + string(MARKED)
           + string(b"/srv/hard")),
    # its size and times (round 11): a stat, an lstat, an open that keeps its content (fstat)
    packet(17, struct.pack("!I", 14) + string(MARKED)),
    packet(7, struct.pack("!I", 15) + string(MARKED)),
    open_request(MARKED, 0x2 | 0x8),
])
def test_a_request_on_a_refused_file_ends_the_transfer(request_bytes: bytes) -> None:
    asked: list[str] = []
    sftp = masker(asked)
    with pytest.raises(TransferRefused, match="written by a transform"):
        # cut anywhere: the request is read whole first
        sftp.request(request_bytes[:5])
        sftp.request(request_bytes[5:])
    assert MARKED.decode() in asked


@pytest.mark.parametrize("request_bytes", [
    open_request(MARKED, 0x2 | 0x8 | 0x10),  # write, create, truncate: nothing read back
    open_request(b"/srv/plain.txt", 0x1),
    packet(200, struct.pack("!I", 12) + string(b"statvfs@openssh.com") + string(MARKED)),
    packet(11, struct.pack("!I", 13) + string(b"/srv/other")),  # opendir: asked of its entries
    packet(17, struct.pack("!I", 16) + string(b"/srv/plain.txt")),
])
def test_other_requests_pass(request_bytes: bytes) -> None:
    masker([]).request(request_bytes)


def test_a_directory_is_listed_only_when_none_of_its_entries_is_refused() -> None:
    asked: list[str] = []
    sftp = masker(asked)
    sftp.request(packet(11, struct.pack("!I", 17) + string(b"/srv/")))
    sftp.request(packet(11, struct.pack("!I", 18) + string(b"")))
    assert asked == ["/srv/*", "*"]  # the entries' sizes and times come back with them


def test_a_request_the_gateway_cannot_read_is_refused() -> None:
    short = packet(3, struct.pack("!I", 7) + struct.pack("!I", 50) + b"/srv")
    with pytest.raises(TransferRefused):
        masker([]).request(short)


def test_without_refuse_nothing_is_asked() -> None:
    SftpMasker(ValueMasker(keep_length=True)).request(open_request(MARKED, 0x1))


@pytest.mark.parametrize("request_bytes", [
    packet(20, struct.pack("!I", 9) + string(b"/srv/plain") + string(b"/srv/link")),
    packet(200, struct.pack("!I", 11) + string(b"hardlink@openssh.com") + string(b"/srv/plain")
           + string(b"/srv/hard")),
])
def test_no_link_is_made_over_sftp(request_bytes: bytes) -> None:
    """Issue 14, F24: a transform writing through the link later would be read through the
    file's other name, which no mark names."""
    with pytest.raises(TransferRefused, match="links are not made"):
        masker([]).request(request_bytes)
