"""The output side of one SSH channel: masked before the client sees it and before it is recorded.

``ChannelOutput`` keeps a ``StreamMasker`` for each of the channel's output streams (stdout,
stderr) and says, for each piece of output, what the client gets and what the tape records
(ARCHITECTURE.md invariant 6). A masker holds back the tail of the stream where a value may still
be growing; ``flush`` releases it (the bridge calls it when a terminal has been quiet for a
moment, since a prompt has no line break after it, and at the end of the stream). The values
masked are counted into the session's counter, by rule and detector.

File transfer protocols (sftp, scp, rsync) cannot be rewritten without breaking them: their bytes
reach the client as they are and only the recording is masked — a known gap of invariant 6.
No I/O here: the bridge writes and records what it is told.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from engine.guardrail.commands import classify_command
from engine.guardrail.shellwords import ShellParseError
from engine.masking.policy import SessionMasking
from engine.masking.stream import StreamMasker

_TRANSFERS = frozenset({"scp", "rsync", "sftp-server", "internal-sftp"})


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
    def __init__(self, masking: SessionMasking, counts: Counter[str], *,
                 transfer: bool = False) -> None:
        assert masking.values is not None
        self._masking = masking
        self._counts = counts  # the session's: "rule:detector" → values masked
        self.transfer = transfer  # a file transfer: sent as it is, recorded masked
        self._maskers: dict[bool, StreamMasker] = {}  # stderr? → its masker

    @staticmethod
    def masks(masking: SessionMasking | None) -> bool:
        """Whether a session's masking applies to output at all."""
        return masking is not None and masking.active and masking.values is not None

    @property
    def held(self) -> bool:
        """Output is held back, waiting for more of it or for a flush."""
        return any(masker.held for masker in self._maskers.values())

    def feed(self, data: bytes, stderr: bool) -> Out:
        masker = self._maskers.get(stderr)
        if masker is None:
            assert self._masking.values is not None
            masker = self._maskers[stderr] = StreamMasker(self._masking.values)
        masked = self._counted(masker, masker.feed(data))
        return Out(stderr, data if self.transfer else masked, masked)

    def flush(self, *, end: bool = False) -> list[Out]:
        """What is held, masked as it stands; at the ``end`` of the output, also a character
        cut in the middle."""
        out = []
        for stderr, masker in self._maskers.items():
            if not (masker.held or end):
                continue
            masked = self._counted(masker, masker.flush())
            if masked:
                out.append(Out(stderr, b"" if self.transfer else masked, masked))
        return out

    def _counted(self, masker: StreamMasker, masked: bytes) -> bytes:
        for detector, n in masker.counts.items():
            self._counts[self._masking.count_key(detector)] += n
        masker.counts.clear()
        return masked
