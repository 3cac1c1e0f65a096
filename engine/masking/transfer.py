"""File transfers from an SSH target, masked in place: SFTP's file data and legacy scp's files.

A transfer cannot take a mask that changes a length: SFTP frames every reply with its length
and scp announces each file's size. So transfers are masked with a length-keeping masker
(``ValueMasker(keep_length=True)``): a partial mask stays as it is, any other (redact, hash,
a key block) becomes one ``*`` per byte of the value, separators kept. The file's bytes are
fed to a ``StreamMasker``, so that a value split between two replies is masked as if whole.

- ``SftpMasker`` reads the target's SFTP packets (uint32 length, type, ...). The data of each
  ``SSH_FXP_DATA`` reply is fed to the stream masker, and a reply goes out once all of its bytes
  are released, rewritten in place; other packets go out as they are, after every reply before
  them (the stream is flushed first, since a status or a handle ends a file). A reply whose
  bytes are still held waits for the next reply (clients keep many reads in flight) or for
  ``flush``, which the bridge calls when the target is quiet: a client with no other read in
  flight waits for it, so it goes out — with the last run of printable ASCII it holds starred,
  since it may be the start of a value the next read completes, and the rest of that run
  starred when it comes (a client reading a few bytes at a time gets stars for most of a text
  file; binary data outside printable ASCII passes as it is). All replies are read as one
  stream, so the client's READ requests are followed too (``request``, from the bridge): a
  reply is masked only as the next bytes of the one file being read, from offset 0 on; a
  read at another offset, of a second file before the first is closed, or a reply to no
  read is refused with a failure status in its place (reads at chosen offsets would
  otherwise give each value in pieces that no detector recognises). A request that opens for
  reading, renames or links a file ``refuse`` names (the SSH side's files written by
  transforms, whose content no detector reads) ends the transfer before it reaches the target
  (``TransferRefused``): a handle the target opened could still be guessed and read, or copied
  on the target (``copy-data``), and a new name would not be remembered.
- ``ScpMasker`` reads the legacy scp protocol the target's ``scp -f`` speaks: control lines
  (``C0644 size name``, ``D``, ``E``, ``T``, warnings), acknowledgements (a NUL byte), and
  after each ``C`` line exactly ``size`` bytes of file, masked and flushed at the file's end.

File names in directory listings (``SSH_FXP_NAME`` replies: ``ls``, ``realpath``,
``readlink``) are masked like output, each name and its ``ls -l`` line: a value made a file
name (``mkdir 4111…``) is not listed in clear.

What a transfer's masking cannot do: read a compressed or binary format (a zip of a CSV, a
database file) — values inside it pass, as in terminal output.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

from engine.masking.masker import ValueMasker
from engine.masking.stream import StreamMasker, starred

SSH_FXP_OPEN = 3
SSH_FXP_LSTAT = 7
SSH_FXP_OPENDIR = 11
SSH_FXP_STAT = 17
SSH_FXP_READ = 5
SSH_FXP_CLOSE = 4
SSH_FXP_RENAME = 18
SSH_FXP_SYMLINK = 20
SSH_FXP_EXTENDED = 200
SSH_FXP_STATUS = 101
SSH_FXP_DATA = 103
SSH_FXP_NAME = 104
SSH_FXF_READ = 0x1
SSH_FXF_TRUNC = 0x10
_TWO_PATHS = (b"posix-rename@openssh.com", b"hardlink@openssh.com")
SSH_FX_FAILURE = 4
_PRINTABLE = bytes(range(0x20, 0x7F))  # printable ASCII: what values are written with
OUT_OF_ORDER = ("the gateway masks file data read in order only: this read was refused (read "
                "the file from its start, in order, without other files in between)")
MAX_PACKET = 1 << 24  # bytes: OpenSSH's sftp-server sends at most 256 KiB; more is not SFTP
MAX_LINE = 1 << 16  # bytes of an scp control line


class TransferError(ValueError):
    """The target's side of a transfer is not the protocol it should be."""


class TransferRefused(TransferError):
    """The client asked for a file the transfer may not give: the message says why."""


class SftpMasker:
    """``refuse``: why a file the client opens for reading (its name as sent: absolute, or
    relative to the home directory) may not be read, or None."""

    def __init__(self, masker: ValueMasker,
                 refuse: Callable[[str], str | None] | None = None) -> None:
        if not masker.keep_length:
            raise ValueError("a transfer needs a masker that keeps lengths")
        self._refuse = refuse
        self._masker = masker
        self._stream = StreamMasker(masker)
        self._continuing = False  # a word starred at a pause goes on in the next reply
        self._buf = bytearray()
        self._pending: deque[tuple[bytes, int]] = deque()  # DATA replies: header, data length
        self._released = bytearray()  # masked file bytes not placed in a reply yet
        # The client's READ requests (``request``): id → (handle, offset). Once requests are
        # seen, a DATA reply is masked only as the next bytes of the file being read: the one
        # stream of bytes must be one file in offset order, or a value read in pieces at
        # chosen offsets (or between another file's pieces) would pass in clear.
        self._tracked = False
        self._requests = bytearray()
        self._reads: dict[int, tuple[bytes, int]] = {}
        self._handle: bytes | None = None  # the file being read, and where it is at
        self._offset = 0

    @property
    def counts(self) -> Counter[str]:
        return self._stream.counts

    @property
    def held(self) -> bool:
        return bool(self._pending)

    def feed(self, data: bytes) -> bytes:
        """What the client may have of the target's bytes so far: whole packets only."""
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            n = int.from_bytes(buf[pos:pos + 4], "big")
            if n < 1 or n > MAX_PACKET:
                raise TransferError(f"an SFTP packet of {n} bytes")
            if len(buf) - pos < 4 + n:
                break
            packet = bytes(buf[pos:pos + 4 + n])
            pos += 4 + n
            if packet[4] == SSH_FXP_NAME:
                packet = self._names(packet)
            if packet[4] == SSH_FXP_DATA:
                if n < 9 or int.from_bytes(packet[9:13], "big") != n - 9:
                    raise TransferError("an SFTP data reply whose lengths do not agree")
                if self._tracked and not self._in_order(packet, n - 9):
                    # Refused in its place, without flushing: the file read in order may
                    # have a value's first half held back, its second half still to come.
                    self._pending.append((_status(packet[5:9], OUT_OF_ORDER), 0))
                    out.append(self._drain())
                    continue
                self._pending.append((packet[:13], n - 9))
                data = packet[13:]
                if self._continuing:
                    # The rest of what went out starred at a pause (a run of printable
                    # ASCII: a value's characters): starred too, up to its end (``flush``).
                    run = len(data) - len(data.lstrip(_PRINTABLE))
                    self._released += starred(data[:run])
                    data = data[run:]
                    self._continuing = not data
                self._released += self._stream.feed(data)
                out.append(self._drain())
            elif self._tracked and n >= 5 and (
                    int.from_bytes(packet[5:9], "big") not in self._reads):
                # A reply to another request (a stat, a listing) ends no file: in its place.
                self._pending.append((packet, 0))
                out.append(self._drain())
            else:  # the end of the file (EOF to a read), or untracked
                self._reads.pop(int.from_bytes(packet[5:9], "big"), None)
                out.append(self.flush())
                out.append(packet)
        del buf[:pos]
        return b"".join(out)

    def _names(self, packet: bytes) -> bytes:
        """A NAME reply with each file name and its long form masked (a value made a name
        is listed masked); a reply that does not parse ends the transfer."""
        if len(packet) < 13:
            raise TransferError("an SFTP name reply too short")
        count = int.from_bytes(packet[9:13], "big")
        at = 13
        body = bytearray(packet[4:13])
        for _ in range(count):
            strings = _strings(packet, at, 2)
            if strings is None:
                raise TransferError("an SFTP name reply that does not parse")
            at += 8 + len(strings[0]) + len(strings[1])
            end = _attrs_end(packet, at)
            if end is None:
                raise TransferError("an SFTP name reply whose attributes do not parse")
            for name in strings:
                text, fired = self._masker.mask(name.decode("utf-8", "surrogateescape"))
                self._stream.counts.update(fired)
                masked = text.encode("utf-8", "surrogateescape")
                body += len(masked).to_bytes(4, "big") + masked
            body += packet[at:end]
            at = end
        body += packet[at:]
        return len(body).to_bytes(4, "big") + bytes(body)

    def request(self, data: bytes) -> None:
        """The client's bytes to the target: which file and offset each READ asks for."""
        self._tracked = True
        self._requests += data
        buf = self._requests
        pos = 0
        while len(buf) - pos >= 4:
            n = int.from_bytes(buf[pos:pos + 4], "big")
            if n < 1 or n > MAX_PACKET:
                raise TransferError(f"an SFTP request of {n} bytes")
            if len(buf) - pos < 4 + n:
                break
            packet = bytes(buf[pos:pos + 4 + n])
            pos += 4 + n
            if self._refuse is not None:
                self._screen(packet)
            if packet[4] in (SSH_FXP_READ, SSH_FXP_CLOSE) and n >= 9:
                size = int.from_bytes(packet[9:13], "big")
                handle = packet[13:13 + size]
                if packet[4] == SSH_FXP_CLOSE:
                    if handle == self._handle:
                        self._handle = None
                elif 13 + size + 8 <= len(packet):
                    offset = int.from_bytes(packet[13 + size:13 + size + 8], "big")
                    self._reads[int.from_bytes(packet[5:9], "big")] = (handle, offset)
        del buf[:pos]

    def _screen(self, packet: bytes) -> None:
        """Raise ``TransferRefused`` for a request that opens for reading, renames or links a
        path ``refuse`` names (or that the gateway cannot read), or that shows its size and
        times: a STAT or LSTAT of it, an OPEN that keeps its content (then FSTAT), an
        OPENDIR of the directory that holds it (asked as ``DIR/*``: its entries)."""
        assert self._refuse is not None
        kind = packet[4]
        paths: list[bytes] | None
        name: list[bytes] | None = None
        if kind == SSH_FXP_OPEN:
            paths = _strings(packet, 9, 1)
            if paths is None or len(packet) < 9 + 4 + len(paths[0]) + 4:
                raise TransferRefused("the gateway could not read this request")
            flags_at = 9 + 4 + len(paths[0])
            flags = int.from_bytes(packet[flags_at:flags_at + 4], "big")
            if not flags & SSH_FXF_READ and flags & SSH_FXF_TRUNC:
                return  # written anew: nothing of what it held stays
        elif kind in (SSH_FXP_STAT, SSH_FXP_LSTAT):
            paths = _strings(packet, 9, 1)
        elif kind == SSH_FXP_OPENDIR:
            paths = _strings(packet, 9, 1)
            if paths is not None:  # its entries' sizes and times come back with their names
                paths = [paths[0].rstrip(b"/") + b"/*" if paths[0] else b"*"]
        elif kind in (SSH_FXP_RENAME, SSH_FXP_SYMLINK):
            paths = _strings(packet, 9, 2)
        elif kind == SSH_FXP_EXTENDED:
            name = _strings(packet, 9, 1)
            if name is None or name[0] not in _TWO_PATHS:
                return
            paths = _strings(packet, 9 + 4 + len(name[0]), 2)
        else:
            return
        if paths is None:
            raise TransferRefused("the gateway could not read this request")
        for path in paths:
            why = self._refuse(path.decode("utf-8", "surrogateescape"))
            if why is not None:
                raise TransferRefused(why)
        if kind == SSH_FXP_SYMLINK or (kind == SSH_FXP_EXTENDED and name is not None
                                       and name[0] == b"hardlink@openssh.com"):
            # a file written later through one name would be read through the other, which
            # the SSH side's marks do not know (they follow the links made by shell lines)
            raise TransferRefused("links are not made over SFTP while output is masked "
                                  "(make them with ln in a command)")

    def _in_order(self, packet: bytes, size: int) -> bool:
        """Whether a DATA reply holds the next bytes of the file being read (a first read at
        offset 0 starts a file; the file before it must have been closed)."""
        read = self._reads.pop(int.from_bytes(packet[5:9], "big"), None)
        if read is None:
            return False
        handle, offset = read
        if handle != self._handle:
            if self._handle is not None or offset != 0:
                return False
            self._handle, self._offset = handle, 0
        if offset != self._offset:
            return False
        self._offset += size
        return True

    def flush(self, *, pause: bool = False) -> bytes:
        """Every data reply waiting, masked as the stream stands (a packet that is not file
        data: the file ended); at a ``pause`` (a quiet target: a client reading in pieces so
        small that one read is all it has asked for), what the stream holds back may be the
        start of a value the next read completes, where no detector would know the rest:
        it is starred whole, and so is the rest of its word when it comes. While the client
        has other reads in flight nothing is released at a pause: their replies will come."""
        if not self._pending or (pause and self._reads):
            return b""  # (other reads are in flight: their replies come, and complete it)
        if pause:
            held = self._stream.tail
            self._released += self._stream.flush_starred()
            self._continuing = bool(held) and " " <= held[-1] <= "~"
        else:
            self._released += self._stream.flush()
            self._continuing = False
        out = self._drain()
        if self._pending or self._released:
            raise TransferError("masking changed the length of SFTP file data")
        return out

    def _drain(self) -> bytes:
        return _placed(self._pending, self._released)


SSH_FXP_WRITE = 6


class SftpUploadRecord:
    """What the tape records of an SFTP client's requests: the data of its WRITEs masked as
    one stream per file written in order (a value split between two WRITE packets is masked
    as if whole: the outside attack on issue 14 recorded ``4012888888`` and ``881881`` in
    clear), lengths kept; the data of a WRITE that neither starts a file nor continues the one
    being written is recorded starred; every other request as it is. Records only: the
    client's bytes reach the target unchanged."""

    def __init__(self, masker: ValueMasker) -> None:
        if not masker.keep_length:
            raise ValueError("an upload's record needs a masker that keeps lengths")
        self._stream = StreamMasker(masker)
        self._buf = bytearray()
        self._pending: deque[tuple[bytes, int]] = deque()  # WRITEs: all but data, its length
        self._released = bytearray()
        self._file: tuple[bytes, int] | None = None  # the handle written, the next offset

    @property
    def counts(self) -> Counter[str]:
        return self._stream.counts

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            n = int.from_bytes(buf[pos:pos + 4], "big")
            if n < 1 or n > MAX_PACKET:  # not SFTP: recorded masked as plain text from here
                rest = bytes(buf[pos:])
                del buf[:]
                return b"".join(out) + self.flush() + starred(rest)
            if len(buf) - pos < 4 + n:
                break
            packet = bytes(buf[pos:pos + 4 + n])
            pos += 4 + n
            write = _write(packet)
            if write is None:
                out.append(self.flush())
                out.append(packet)
                continue
            handle, offset, at = write
            if self._file != (handle, offset):
                out.append(self.flush())
                if offset != 0:
                    # Not the next bytes of the file being written, nor a file's start (writes
                    # in pieces at falling offsets, or two files interleaved): no stream reads
                    # the pieces together, so the record keeps none of this data.
                    out.append(packet[:at] + starred(packet[at:]))
                    self._file = None
                    continue
            self._file = (handle, offset + len(packet) - at)
            self._pending.append((packet[:at], len(packet) - at))
            self._released += self._stream.feed(packet[at:])
            out.append(self._drain())
        del buf[:pos]
        return b"".join(out)

    def flush(self) -> bytes:
        self._released += self._stream.flush()
        out = self._drain()
        rest, self._released = bytes(self._released), bytearray()
        return out + rest  # (lengths kept: nothing is left but by a broken masker)

    def _drain(self) -> bytes:
        return _placed(self._pending, self._released)


def _placed(pending: deque[tuple[bytes, int]], released: bytearray) -> bytes:
    """The packets waiting for their data (each: all but its data, and the data's length)
    whose masked data has been released, in order: what may go out (or be recorded) now."""
    out: list[bytes] = []
    while pending and len(released) >= pending[0][1]:
        head, size = pending.popleft()
        out.append(head + bytes(released[:size]))
        del released[:size]
    return b"".join(out)


def _write(packet: bytes) -> tuple[bytes, int, int] | None:
    """A WRITE request's handle, offset and where its data starts; None for anything else."""
    if len(packet) < 13 or packet[4] != SSH_FXP_WRITE:
        return None
    size = int.from_bytes(packet[9:13], "big")
    at = 13 + size + 8 + 4
    if at > len(packet) or int.from_bytes(packet[at - 4:at], "big") != len(packet) - at:
        return None
    return packet[13:13 + size], int.from_bytes(packet[13 + size:13 + size + 8], "big"), at


def _strings(packet: bytes, at: int, count: int) -> list[bytes] | None:
    """``count`` SFTP strings (uint32 length, bytes) from ``at``; None if the packet is short."""
    out = []
    for _ in range(count):
        if at + 4 > len(packet):
            return None
        size = int.from_bytes(packet[at:at + 4], "big")
        if at + 4 + size > len(packet):
            return None
        out.append(packet[at + 4:at + 4 + size])
        at += 4 + size
    return out


def _attrs_end(packet: bytes, at: int) -> int | None:
    """Where the SFTP ATTRS starting at ``at`` end (None: the packet is short)."""
    if at + 4 > len(packet):
        return None
    flags = int.from_bytes(packet[at:at + 4], "big")
    at += 4
    at += 8 if flags & 0x1 else 0  # size
    at += 8 if flags & 0x2 else 0  # uid, gid
    at += 4 if flags & 0x4 else 0  # permissions
    at += 8 if flags & 0x8 else 0  # access and modification times
    if flags & 0x80000000:  # extended: count, then name and data strings
        if at + 4 > len(packet):
            return None
        pairs = int.from_bytes(packet[at:at + 4], "big")
        at += 4
        for _ in range(pairs):
            strings = _strings(packet, at, 2)
            if strings is None:
                return None
            at += 8 + len(strings[0]) + len(strings[1])
    return at if at <= len(packet) else None


def _status(request_id: bytes, message: str) -> bytes:
    """An SSH_FXP_STATUS reply (failure) to a request, with the reason."""
    text = message.encode()
    body = (bytes([SSH_FXP_STATUS]) + request_id + SSH_FX_FAILURE.to_bytes(4, "big")
            + len(text).to_bytes(4, "big") + text + (0).to_bytes(4, "big"))
    return len(body).to_bytes(4, "big") + body


class ScpMasker:
    def __init__(self, masker: ValueMasker) -> None:
        if not masker.keep_length:
            raise ValueError("a transfer needs a masker that keeps lengths")
        self._stream = StreamMasker(masker)
        self._line = bytearray()
        self._left = 0  # bytes of the current file still to come
        self._fed = 0  # of the current file, fed to the stream masker
        self._sent = 0  # of the current file, released

    @property
    def counts(self) -> Counter[str]:
        return self._stream.counts

    @property
    def held(self) -> bool:
        return False  # file data is released whole at the file's end, which always comes

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos, n = 0, len(data)
        while pos < n:
            if self._left:
                piece = data[pos:pos + self._left]
                pos += len(piece)
                self._left -= len(piece)
                self._fed += len(piece)
                masked = self._stream.feed(piece)
                if not self._left:
                    masked += self._stream.flush()
                self._sent += len(masked)
                out.append(masked)
                if not self._left and self._sent != self._fed:
                    raise TransferError("masking changed the length of an scp file")
                continue
            if not self._line and data[pos] == 0:  # an acknowledgement
                out.append(data[pos:pos + 1])
                pos += 1
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._line += data[pos:]
                if len(self._line) > MAX_LINE:
                    raise TransferError("an scp control line without its end")
                break
            line = bytes(self._line) + data[pos:newline + 1]
            self._line.clear()
            pos = newline + 1
            out.append(line)
            if line[:1] == b"C":  # C<mode> <size> <name>: the file's bytes follow
                fields = line[1:].split(b" ", 2)
                if len(fields) < 3 or not fields[1].isdigit():
                    raise TransferError("an scp file header without its size")
                self._left, self._fed, self._sent = int(fields[1]), 0, 0
        return b"".join(out)

    def flush(self) -> bytes:
        return b""
