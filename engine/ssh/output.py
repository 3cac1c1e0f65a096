"""The output side of one SSH channel: masked before the client sees it and before it is recorded.

``ChannelOutput`` keeps a ``StreamMasker`` for each of the channel's output streams (stdout,
stderr) and says, for each piece of output, what the client gets and what the tape records
(ARCHITECTURE.md invariant 6). A masker holds back the tail of the stream where a value may still
be growing; at a terminal (``screen``) the client sees that tail at once and has it rewritten if
a value completes later (``TerminalMasker``), while the tape waits for the decision. ``flush``
releases what is held (the bridge calls it when output is ``held`` and the target has been quiet
for a moment, since a prompt has no line break after it, and at the end of the stream). The
values masked are counted into the session's counter, by rule and detector.

File transfers follow the connection's ``ssh.transfers``: ``mask`` (the default) rewrites the
file data of SFTP replies and of legacy scp in place with a length-keeping mask
(``engine.masking.transfer``), so the client gets what the tape records; ``allow`` passes their
bytes as they are (the recording is still masked). A download the gateway cannot read (rsync
``--sender``) is refused under ``mask`` (an rsync upload passes: only acknowledgements come
back), as is every transfer under ``refuse`` (the bridge does that).

A command whose output re-encodes its input (``rev``, ``fold``, ``base64``, ``xxd``, ``od``,
``tr``, a compressor...: ``transforms_output``) turns a file the gateway would mask into text it
cannot read: on an exec channel its whole output is masked (every byte but white space becomes
``*``; counted as ``output-transform``), failing closed (ARCHITECTURE.md invariant 9).
No I/O here: the bridge writes and records what it is told.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from engine.guardrail.commands import classify_command
from engine.guardrail.shellwords import ShellParseError
from engine.masking.masker import ValueMasker
from engine.masking.policy import SessionMasking
from engine.masking.stream import StreamMasker
from engine.masking.terminal import TerminalMasker
from engine.masking.transfer import ScpMasker, SftpMasker

_TRANSFERS = frozenset({"scp", "rsync", "sftp-server", "internal-sftp"})
# Programs whose output re-encodes what they read: reversed, folded, dumped, encoded,
# translated, compressed, converted. The gateway cannot mask a value in what they print.
OUTPUT_TRANSFORMS = frozenset({
    "rev", "fold", "fmt", "cut", "tr", "od", "xxd", "hexdump", "hd", "base64", "base32",
    "basenc", "uuencode", "gzip", "bzip2", "xz", "zstd", "lz4", "compress", "iconv", "openssl",
    "gpg", "column", "paste", "split", "expand", "unexpand", "shuf",
})
OUTPUT_TRANSFORM = "output-transform"  # the count of an exec's output masked whole
_WHITE = frozenset(b" \t\r\n")
_STARRED = bytes(b if b in _WHITE else 42 for b in range(256))


def transfer_kind(command: str | None) -> str | None:
    """What file transfer a channel's command (None: the sftp subsystem) runs: "sftp",
    "scp", "upload" (rsync to the target), another ("rsync"), or None for none."""
    if command is None:
        return "sftp"
    try:
        programs = classify_command(command).programs
    except ShellParseError:
        return None
    found = programs & _TRANSFERS
    if not found:
        return None
    if found & {"sftp-server", "internal-sftp"}:
        return "sftp" if found <= {"sftp-server", "internal-sftp"} else "rsync"
    if found == {"scp"}:
        return "scp"
    if found == {"rsync"} and "--sender" not in command.split():
        return "upload"  # rsync's server receiving: what goes back is acknowledgements
    return "rsync"


def transforms_output(command: str) -> bool:
    """Whether a command line runs a program whose output re-encodes its input (a line the
    gateway cannot parse is taken as one: fail closed)."""
    try:
        programs = classify_command(command).programs
    except ShellParseError:
        return True
    return bool(programs & OUTPUT_TRANSFORMS)


def transfers_files(command: str) -> bool:
    """The server side of a file transfer (``scp -t``, ``rsync --server``)."""
    try:
        facts = classify_command(command)
    except ShellParseError:
        return False
    return bool(facts.programs & _TRANSFERS)


class Out(NamedTuple):
    stderr: bool
    sent: bytes  # to the client
    recorded: bytes  # to the tape


class InputRecord:
    """What the tape records of a data channel's input (an exec's stdin): masked like output
    (ARCHITECTURE.md invariant 6). The client's bytes reach the target as they are."""

    def __init__(self, masking: SessionMasking | None, counts: Counter[str]) -> None:
        self._masking = masking
        self._counts = counts
        self._masker = (StreamMasker(masking.values) if ChannelOutput.masks(masking)
                        and masking is not None and masking.values is not None else None)

    def feed(self, data: bytes) -> bytes:
        if self._masker is None:
            return data
        return self._counted(self._masker.feed(data))

    def flush(self) -> bytes:
        return self._counted(self._masker.flush()) if self._masker is not None else b""

    def _counted(self, masked: bytes) -> bytes:
        assert self._masker is not None and self._masking is not None
        for detector, n in self._masker.counts.items():
            self._counts[self._masking.count_key(detector)] += n
        self._masker.counts.clear()
        return masked


class ChannelOutput:
    """``transfer``: "sftp" or "scp" masked in place, "allow" sent as it is (recorded
    masked), None for ordinary output. ``whole``: every byte masked (an output transform).
    ``screen``: the client's terminal (columns, rows), whose output is shown at once."""

    def __init__(self, masking: SessionMasking, counts: Counter[str], *,
                 transfer: str | None = None, whole: bool = False,
                 screen: tuple[int, int] | None = None) -> None:
        assert masking.values is not None
        self._masking = masking
        self._counts = counts  # the session's: "rule:detector" → values masked
        self.transfer = transfer
        self.whole = whole
        self._maskers: dict[bool, StreamMasker | TerminalMasker] = {}  # stderr? → its masker
        self._screen = screen if transfer is None and screen and screen[0] > 0 else None
        self._files: SftpMasker | ScpMasker | None = None
        if transfer in ("sftp", "scp"):
            values = masking.values
            kept = ValueMasker(values.detectors, values.strategies, key=values.key,
                               keep_length=True)
            self._files = SftpMasker(kept) if transfer == "sftp" else ScpMasker(kept)

    @staticmethod
    def masks(masking: SessionMasking | None) -> bool:
        """Whether a session's masking applies to output at all."""
        return masking is not None and masking.active and masking.values is not None

    @property
    def held(self) -> bool:
        """Output is held back, waiting for more of it or for a flush."""
        return any(masker.held for masker in self._maskers.values()) or (
            self._files is not None and self._files.held)

    @property
    def quiet_flush(self) -> bool:
        """Held output must be released once the target is quiet even without a terminal: an
        SFTP client may wait for the reply held back."""
        return self.transfer == "sftp"

    def sent(self, data: bytes) -> None:
        """The client's bytes to the target: an SFTP transfer learns which file and offset
        each read is of (``SftpMasker.request``). Raises ``TransferError`` like ``feed``."""
        if isinstance(self._files, SftpMasker):
            self._files.request(data)

    def feed(self, data: bytes, stderr: bool) -> Out:
        """Raises ``TransferError`` when a transfer's bytes are not its protocol."""
        if self.whole:
            if data.translate(None, b" \t\r\n"):
                self._counts[f"{OUTPUT_TRANSFORM}:{OUTPUT_TRANSFORM}"] += 1
            masked = data.translate(_STARRED)
            return Out(stderr, masked, masked)
        if self._files is not None and not stderr:
            masked = self._files.feed(data)
            self._count(self._files.counts)
            return Out(stderr, masked, masked)
        masker = self._maskers.get(stderr)
        if masker is None:
            assert self._masking.values is not None
            masker = self._maskers[stderr] = (
                StreamMasker(self._masking.values) if self._screen is None
                else TerminalMasker(self._masking.values, *self._screen))
        if isinstance(masker, TerminalMasker):
            sent, masked = masker.feed(data)
            self._count(masker.counts)
            return Out(stderr, sent, masked)
        masked = self._counted(masker, masker.feed(data))
        return Out(stderr, data if self.transfer == "allow" else masked, masked)

    def flush(self, *, end: bool = False) -> list[Out]:
        """What is held, masked as it stands; at the ``end`` of the output, also a character
        cut in the middle."""
        out = []
        if self._files is not None and (self._files.held or end):
            masked = self._files.flush()
            self._count(self._files.counts)
            if masked:
                out.append(Out(False, masked, masked))
        for stderr, masker in self._maskers.items():
            if isinstance(masker, TerminalMasker):  # what is shown is committed too
                sent, masked = masker.flush()
                self._count(masker.counts)
                if sent or masked:
                    out.append(Out(stderr, sent, masked))
                continue
            if not (masker.held or end):
                continue
            masked = self._counted(masker, masker.flush())
            if masked:
                out.append(Out(stderr, b"" if self.transfer == "allow" else masked, masked))
        return out

    def resize(self, cols: int, rows: int) -> None:
        """The client's terminal changed size."""
        if self._screen is not None:
            self._screen = (cols, rows)
            for masker in self._maskers.values():
                if isinstance(masker, TerminalMasker):
                    masker.resize(cols, rows)

    def _counted(self, masker: StreamMasker, masked: bytes) -> bytes:
        self._count(masker.counts)
        return masked

    def _count(self, counts: Counter[str]) -> None:
        for detector, n in counts.items():
            self._counts[self._masking.count_key(detector)] += n
        counts.clear()
