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

A command is taken to transform its output (``transforms_output``) unless every program it
runs, in every stage of every pipeline once wrappers (``sudo``, ``nice``, ``timeout`` …) are
unwrapped, is one that prints what it reads, or metadata, unchanged (``PLAIN_PROGRAMS``: ``cat``,
``head``, ``grep``, ``ls`` … with the options that would cut or re-encode refused: ``grep -o``,
``head -c``), no word holds a value only known at run time (``$x``, ``$(…)``: a shell slices and
splits them) and no here-document expands one. ``awk``, ``sed``, ``tr``, an interpreter, an
unknown program and a line the gateway cannot read transform (ARCHITECTURE.md invariant 9): their
output is text the masker cannot read, so it is masked whole (every byte but white space becomes
``*``; counted as ``output-transform``). On an exec channel that is its whole output. At an
interactive shell the bridge tells ``ChannelOutput`` of each judged line sent (``line_sent``):
bash's readline turns bracketed paste off once it has read a line and on again with the next
prompt (``ESC[?2004l`` … ``ESC[?2004h``), which delimits each command's output. Those switches
are bytes in the stream like any other, so a program can print them: only a transform that
cannot print an escape at all (``prints_no_escapes``: ``od``, ``xxd``, ``base64`` …) has its
output masked whole up to the next prompt — not the prompt, nor the echo of the line. Any other
transform masks the rest of the channel whole from the moment its line is read: the gateway
cannot tell the shell's next prompt from one the program forged. So do a shell that does not
show those switches and a line that may go on writing after its prompt (``&``, ``setsid``, a job
suspended while masked whole). A line that leaves state behind (``engine.ssh.shellstate``)
masks every channel of the connection whole (``taint``, from the bridge).
No I/O here: the bridge writes and records what it is told.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable
from typing import NamedTuple

from engine.guardrail.commands import SHELLS, classify_command, long_options
from engine.guardrail.shellwords import (
    Script,
    ShellParseError,
    SimpleCommand,
    parse,
    pipelines,
)
from engine.masking.masker import ValueMasker
from engine.masking.policy import SessionMasking
from engine.masking.stream import StreamMasker
from engine.masking.terminal import TerminalMasker
from engine.masking.transfer import ScpMasker, SftpMasker, SftpUploadRecord

_TRANSFERS = frozenset({"scp", "rsync", "sftp-server", "internal-sftp"})
# Programs that print what they read, or metadata, unchanged: a value in their output stands as
# it stood in the file, where the masker finds it. ``echo``/``printf`` print their arguments, which
# are on the command line (recorded masked) as long as none is only known at run time. Not
# ``sort`` nor ``uniq``: where a masked line lands among lines the user chose (``sort secret
# probes``), or which neighbour it is merged with (``uniq -w 6``), spells what masking hid.
PLAIN_PROGRAMS = frozenset({
    "cat", "head", "tail", "grep", "egrep", "fgrep", "wc", "tee", "ls", "pwd",
    "cd", "ps", "df", "du", "free", "uptime", "id", "whoami", "groups", "hostname", "uname",
    "date", "env", "printenv", "stat", "echo", "printf", "true", "false", ":", "exit",
    "sleep", "test", "[", "export", "unset", "stty", "umask", "read",
})
# Options that make a plain program cut or re-encode what it prints: short letters (in any
# cluster, also ``-5c``) and long names, also abbreviated (``--only``, ``--by=120``).
_CUTTING = {
    "grep": ("o", ("--only-matching",)), "egrep": ("o", ("--only-matching",)),
    "fgrep": ("o", ("--only-matching",)),
    "head": ("c", ("--bytes",)), "tail": ("c", ("--bytes",)),
    "cat": ("vATet", ("--show-all", "--show-nonprinting", "--show-tabs")),
    "date": ("f", ("--file",)),
}
# Wrappers that run the command they are given and change nothing of what it prints.
_TRANSPARENT = frozenset({
    "sudo", "doas", "su", "runuser", "env", "command", "builtin", "exec", "nice", "ionice",
    "timeout", "time", "stdbuf", "chrt", "taskset", "prlimit", "setpriv", "sg", "newgrp",
})
_SYSTEM_BIN = ("/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/", "/usr/local/bin/")
_SHELL_OPTIONS = frozenset("ceu")  # sh -c CODE, with -e/-u at most (not -l: start-up files)
_DETACHING = frozenset({"setsid", "nohup", "disown", "bg", "at", "batch", "systemd-run",
                        "daemonize", "start-stop-daemon", "screen", "tmux"})
_RUNS_CODE = frozenset({"INTERPRETER CODE", "SCRIPT FILE", "EVAL", "COMMAND IN OPTION"})
_MAX_NESTED = 4
_LITERAL_ARITHMETIC = re.compile(r"\$\(\([0-9+*/%() -]*\)\)")  # $((2+3)): from the line only
OUTPUT_TRANSFORM = "output-transform"  # the count of output masked whole
# Transforms whose output cannot hold an escape (control characters come out as numbers or
# as base64), so no forged prompt switch: their end at the next prompt can be believed. The
# options that print bytes raw are refused (``xxd -r``, ``base64 -d``, ``od -S``).
_NO_ESCAPES = {
    "od": ("S", ("--strings",)), "xxd": ("r", ("-revert",)),
    "base64": ("dD", ("--decode",)), "base32": ("d", ("--decode",)),
    "seq": ("fs", ("--format", "--separator")),
    "true": ("", ()), "false": ("", ()), ":": ("", ()), "sleep": ("", ()),
    "test": ("", ()), "[": ("", ()), "umask": ("", ()), "unset": ("", ()),
    "export": ("p", ()), "cd": ("", ("-",)),
    # print their words, which are on the line: when no word spells an escape
    "echo": ("e", ()), "printf": ("", ()),
}
_SPELLS_ESCAPE = re.compile(r"\\[^nt\\]|%[0-9.+ #-]*[bc]")  # \e, \033, \x1b, \u, %b, %c
_WHITE = frozenset(b" \t\r\n")
_STARRED = bytes(b if b in _WHITE else 42 for b in range(256))
_PLAIN, _WHOLE, _REST = "plain", "whole", "rest"  # how a line's output is masked at a shell
PASTE_OFF = b"\x1b[?2004l"  # readline has read a line: the command runs
PASTE_ON = b"\x1b[?2004h"  # readline reads the next one: the prompt


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
    """Whether a command line may print what it reads other than unchanged: unless every
    program it runs is a plain one (``PLAIN_PROGRAMS``), fed nothing only known at run time
    (fail closed: a line the gateway cannot read transforms)."""
    return not _plain(command, 0)


def prints_no_escapes(command: str) -> bool:
    """Whether nothing a line prints can hold an escape, and so forge a prompt switch: every
    program it runs is one of ``_NO_ESCAPES``, with no word only known at run time."""
    try:
        facts = classify_command(command)
        script = parse(command)
    except ShellParseError:
        return False
    if (facts.opaque or facts.unknown_program or facts.program_patterns or not facts.commands
            or "$'" in command or facts.programs - {_name(argv[0]) for argv in facts.commands
                                                     if argv}
            or any(isinstance(stage, SimpleCommand) and stage.unresolved  # a glob, $x: a name
                   for pipeline in pipelines(script) for stage in pipeline.stages)):
        return False  # … in an error message could hold one
    for argv in facts.commands:
        spec = _NO_ESCAPES.get(_name(argv[0])) if argv else None
        if spec is None:
            return False
        letters, long_names = spec
        if argv[0] == "export" and len(argv) == 1:
            return False  # it prints every variable
        if argv[0] in ("echo", "printf") and any(_SPELLS_ESCAPE.search(w) for w in argv[1:]):
            return False
        for word in argv[1:]:
            if long_options(word, long_names):  # ``--dec`` is ``--decode``
                return False
            if word.startswith("-") and not word.startswith("--") and set(word[1:]) & set(letters):
                return False
            if word in long_names:
                return False
    return True


def detaches(command: str) -> bool:
    """Whether a line may go on writing once its prompt is back: a pipeline run in the
    background, or a program that detaches one."""
    try:
        facts = classify_command(command)
        script = parse(command)
    except ShellParseError:
        return True
    return bool(facts.programs & _DETACHING) or any(p.background for p in pipelines(script))


def _plain(command: str, depth: int) -> bool:
    try:
        facts = classify_command(command)
        script = parse(command)
    except ShellParseError:
        return False
    if (depth > _MAX_NESTED or facts.opaque or facts.unknown_program or facts.program_patterns
            or facts.kinds & _RUNS_CODE or _runtime_words(script)):
        return False
    heads = {argv[0] for argv in facts.commands if argv}
    if facts.programs - {_name(h) for h in heads} - _TRANSPARENT:
        return False  # a wrapper that changes what its command prints (xargs, watch, strace)
    return all(argv and _plain_command(argv, depth) for argv in facts.commands)


def _name(word: str) -> str:
    """A program's name: bare, or in a system directory (``./cat`` is not ``cat``)."""
    if "/" not in word:
        return word
    return word.rsplit("/", 1)[1] if word.startswith(_SYSTEM_BIN) else word


def _plain_command(argv: tuple[str, ...], depth: int) -> bool:
    name = _name(argv[0])
    if name in SHELLS:  # sh -c CODE (its last word): plain when CODE is
        options = argv[1:-1]
        flags = set("".join(o[1:] for o in options))
        return (bool(options) and "c" in flags and flags <= _SHELL_OPTIONS
                and all(o.startswith("-") and len(o) > 1 for o in options)
                and _plain(argv[-1], depth + 1))
    if name not in PLAIN_PROGRAMS:
        return False
    letters, long_names = _CUTTING.get(name, ("", ()))
    for word in argv[1:]:
        if word == "--":
            break
        if word.startswith("--"):
            if long_options(word, long_names):  # ``--only`` is ``--only-matching``
                return False
        elif word[:1] in "-+" and len(word) > 1 and set(word[1:]) & set(letters):
            return False
    return True


def _runtime_words(script: Script) -> bool:
    """A word only known at run time (``$x``, ``$(…)``: a shell may slice, split or join it) or
    a here-document or here-string that expands one."""
    for pipeline in pipelines(script):
        for stage in pipeline.stages:
            redirects = stage.redirects
            if isinstance(stage, SimpleCommand) and any(
                    set(_LITERAL_ARITHMETIC.sub("", stage.argv[i])) & set("$`(")
                    for i in stage.dynamic):
                return True
            if any(r.op.lstrip("0123456789").startswith("<<") and r.unresolved
                   for r in redirects):
                return True
    return False



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

    def __init__(self, masking: SessionMasking | None, counts: Counter[str], *,
                 sftp: bool = False) -> None:
        self._masking = masking
        self._counts = counts
        self._masker: StreamMasker | SftpUploadRecord | None = None
        if ChannelOutput.masks(masking) and masking is not None and masking.values is not None:
            values = masking.values
            # An SFTP client's requests: the data of its WRITEs, read as one stream per file
            # (``SftpUploadRecord``), not the packets' bytes (a value split by a header).
            self._masker = (SftpUploadRecord(ValueMasker(
                values.detectors, values.strategies, key=values.key, keep_length=True))
                if sftp else StreamMasker(values))

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
    masked), None for ordinary output. ``whole``: every byte masked (an output transform, or
    a terminal whose commands cannot be told apart any more); ``until_prompt``: masked whole
    until readline's first prompt (an exec that transforms and starts a shell whose lines are
    judged: ``bash -i``, ``perl -e 'exec "bash"'``), then command by command. ``screen``: the
    client's terminal (columns, rows), whose output is shown at once. ``refuse``: an SFTP
    transfer's files that may not be read (``SftpMasker``)."""

    def __init__(self, masking: SessionMasking, counts: Counter[str], *,
                 transfer: str | None = None, whole: bool = False,
                 until_prompt: bool = False,
                 screen: tuple[int, int] | None = None,
                 refuse: Callable[[str], str | None] | None = None) -> None:
        assert masking.values is not None
        self._masking = masking
        self._counts = counts  # the session's: "rule:detector" → values masked
        self.transfer = transfer
        self.whole = whole
        self._maskers: dict[bool, StreamMasker | TerminalMasker] = {}  # stderr? → its masker
        self._screen = screen if transfer is None and screen else None
        self._files: SftpMasker | ScpMasker | None = None
        # At a terminal: the judged lines sent, not yet begun (how each is masked: _PLAIN,
        # _WHOLE up to its prompt, _REST of the channel), whether the command running now is
        # masked whole, and the start of a switch cut by a chunk.
        self._lines: deque[str] = deque()
        self._running_whole = until_prompt
        self._cut = b""
        self._delimited = until_prompt  # once a shell's commands are told apart, always
        self._running = until_prompt  # the last switch was readline's off: a command runs
        # a command whose output was masked whole ran here: the channel's exit status may be
        # its (``awk '{exit substr($2,1,2)}' f``), so it is hidden too (``hides_status``)
        self._transformed = whole or until_prompt
        if transfer in ("sftp", "scp"):
            values = masking.values
            kept = ValueMasker(values.detectors, values.strategies, key=values.key,
                               keep_length=True)
            self._files = SftpMasker(kept, refuse) if transfer == "sftp" else ScpMasker(kept)

    @staticmethod
    def masks(masking: SessionMasking | None) -> bool:
        """Whether a session's masking applies to output at all."""
        return masking is not None and masking.active and masking.values is not None

    @property
    def held(self) -> bool:
        """Output is held back, waiting for more of it or for a flush."""
        return bool(self._cut) or any(masker.held for masker in self._maskers.values()) or (
            self._files is not None and self._files.held)

    def line_sent(self, transforms: bool, *, delimited: bool, detaches: bool = False,
                  ends: bool = False, secret: bool = False) -> None:
        """A judged line went to an interactive shell: ``transforms`` (``transforms_output``);
        ``delimited``: readline reads it, so bracketed paste goes off when it runs and on at
        the next prompt; ``detaches`` (``detaches``): it may write after its prompt; ``ends``
        (``prints_no_escapes``): its output cannot forge the next prompt. A line that
        transforms and cannot be delimited masks the rest of the channel whole; one that may
        forge its end does so from the moment the shell reads it. A ``secret`` line (typed
        at a password prompt, not readline's) is the input of the command running now, if the
        shell's switches say one runs; otherwise it may be a line for a shell that shows no
        switches (``PS1='Password: '`` in dash), and masks the rest of the channel whole."""
        if secret:
            if not (self._delimited and self._running):
                self.whole = True
            return
        self._transformed = self._transformed or transforms
        if transforms and (detaches or not delimited):
            self.whole = True
        elif delimited:
            self._lines.append(_PLAIN if not transforms else _WHOLE if ends else _REST)
            self._delimited = True

    def taint(self) -> None:
        """A line left state behind that the gateway cannot follow (``leaves_state``): the rest
        of the channel is masked whole, and its exit status may be made of that state."""
        self.whole = True
        self._transformed = True

    @property
    def hides_status(self) -> bool:
        """Whether the channel's exit status may carry what its output could not show: a
        command masked whole ran on it (a transform's exit status is a byte of its own
        choosing), or state the gateway cannot follow was left on it (``taint``). Then only
        success or failure (0 or 1) reaches the client and the record. (Output masked whole
        for a line typed where no prompt was seen — a password, or a line typed ahead of an
        interrupted command's prompt — carries nothing read from files: the status stays.)"""
        return self._transformed

    def suspended(self) -> None:
        """The client sent Ctrl-Z: a command masked whole may be resumed after its prompt
        (``bg``), so the rest of the channel is masked whole."""
        if self._running_whole:
            self.whole = True

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
        if self._delimited and not stderr and not self.whole and self.transfer is None:
            return self._commands(data)
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

    def _commands(self, data: bytes) -> Out:
        """Terminal output cut at readline's switches: from bracketed paste off (a line read,
        its command runs) to on (the next prompt), a command's output, masked whole if its
        line transforms — or if it is not known which line it is (ARCHITECTURE.md invariant
        9): a line ahead of it that transforms, or no line sent that the shell reads."""
        data, self._cut = self._cut + data, b""
        on, off = data.rfind(PASTE_ON), data.rfind(PASTE_OFF)
        if on >= 0 or off >= 0:
            self._running = off > on
        sent, recorded = bytearray(), bytearray()
        at = 0
        while at < len(data):
            switch = PASTE_ON if self._running_whole else PASTE_OFF
            found = data.find(switch, at)
            end = found + len(switch) if found >= 0 else _switch_start(data, at)
            piece = data[at:end]
            self._cut, at = (b"", end) if found >= 0 else (data[end:], len(data))
            if self._running_whole:
                if found >= 0:  # the prompt is back: it and what follows as usual
                    self._running_whole = False
                    piece, prompt = piece[:-len(switch)], piece[-len(switch):]
                out = self._starred(piece)
                sent += out.sent
                recorded += out.recorded
                piece = prompt if found >= 0 else b""
            out = self._as_usual(piece)
            sent += out.sent
            recorded += out.recorded
            if found >= 0 and switch == PASTE_OFF:  # a line was read: its command runs
                how = self._lines.popleft() if self._lines else _WHOLE
                self._running_whole = how != _PLAIN or any(k != _PLAIN for k in self._lines)
                if self._running_whole:  # what masking held of the echo goes first
                    for held in self.flush():
                        sent += held.sent
                        recorded += held.recorded
                if how == _REST:  # its end could be forged: nothing after it is believed
                    self.whole = True
                    out = self._starred(self._cut + data[at:])
                    self._cut = b""
                    sent += out.sent
                    recorded += out.recorded
                    break
        return Out(False, bytes(sent), bytes(recorded))

    def _starred(self, data: bytes) -> Out:
        if data.translate(None, b" \t\r\n"):
            self._counts[f"{OUTPUT_TRANSFORM}:{OUTPUT_TRANSFORM}"] += 1
        masked = data.translate(_STARRED)
        return Out(False, masked, masked)

    def _as_usual(self, data: bytes) -> Out:
        self._delimited = False
        try:
            return self.feed(data, False) if data else Out(False, b"", b"")
        finally:
            self._delimited = True

    def flush(self, *, end: bool = False) -> list[Out]:
        """What is held, masked as it stands; at the ``end`` of the output, also a character
        cut in the middle."""
        out = []
        if self._cut:
            cut, self._cut = self._cut, b""
            out.append(self._starred(cut) if self._running_whole or self.whole
                       else self._as_usual(cut))
        if self._files is not None and (self._files.held or end):
            masked = (self._files.flush(pause=not end) if isinstance(self._files, SftpMasker)
                      else self._files.flush())
            self._count(self._files.counts)
            if masked:
                out.append(Out(False, masked, masked))
        for stderr, masker in self._maskers.items():
            if isinstance(masker, TerminalMasker):  # what is shown is committed too
                sent, masked = masker.flush(end=end)
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


def _switch_start(data: bytes, at: int) -> int:
    """Where a bracketed-paste switch may begin at the end of ``data`` (cut by the chunk),
    else ``len(data)``."""
    start = data.rfind(b"\x1b", max(at, len(data) - len(PASTE_ON) + 1))
    if start >= 0 and (PASTE_ON.startswith(data[start:]) or PASTE_OFF.startswith(data[start:])):
        return start
    return len(data)
