"""Shell command lines → facts in the operator's words (the SSH side of ``classify``).

``classify_command`` parses a line with ``shellwords`` and walks every simple command it can
see: the commands of lists and pipelines, of ``$( … )``, backquotes and ``<( … )``, of groups,
subshells, ``if``/``while``/``case`` bodies and function definitions. Each command is
normalised before it is judged: the program is the basename of argv[0] (``/bin/rm`` → ``rm``);
wrappers are unwrapped to the command they run (``sudo``, ``doas``, ``su -c``, ``runuser``,
``pkexec``, ``env`` (``-S`` too), ``nice``, ``nohup``, ``timeout``, ``xargs``, ``exec``,
``command``, ``builtin``, ``time``, ``stdbuf``, ``ionice``, ``chroot``, ``setsid``, ``watch``,
``script -c``, ``busybox APPLET``, ``find -exec``, ``k3s``/``microk8s kubectl``); and code
given to a shell is parsed in turn: ``sh -c '…'`` (bash, dash, zsh, ksh, busybox sh …),
``eval``, a here-document or here-string fed to a shell, ``echo '…' | sh``, and code stored
to run later (``alias``, ``trap``, ``PROMPT_COMMAND``), up to ``MAX_DEPTH`` levels in all.
Pipelines are followed: a downloader's or decoder's output that reaches a shell or an
interpreter reading its standard input, through any stages, is ``DOWNLOAD TO SHELL`` or
``DECODE TO SHELL``, as is such output given as a shell's code (``sh -c "$(curl …)"``,
``bash <(curl …)``, ``source <(…)``).

The facts: ``kinds`` (``COMMAND_KINDS``), ``programs`` (every program name, wrappers and
shells included), ``commands`` (the normalised argv of every command after unwrapping, shells
included), ``paths`` (the operands of rm, chmod, chown, dd ``of=``, mkfs, ``find -delete``,
tee/shred and of redirections into devices, through ``posixpath.normpath``; an unquoted
``dir/*`` also counts as ``dir``), and ``opaque``: why part of the line cannot be judged.

What still escapes, and is at best reported in ``opaque``:

- the contents of a script file (``./deploy.sh``, ``bash x.sh``, ``source x``), of code given
  to an interpreter (``python -c``, ``perl -e``), and what either does with ``system()``;
- programs that run commands from their own arguments and are not unwrapped here: ``awk``'s
  ``system()``, ``sed``'s ``e``, ``vim -c '!…'``, ``git -c core.pager=…``, ``ssh host cmd``
  (it runs elsewhere), ``tar --to-command``, ``rsync -e``, ``parallel``, ``make``, …;
- anything only known at run time: ``$VAR`` (as an operand it is kept as written; as a
  program name, or inside code given to a shell, it is reported), ``sh -c '…' _ ARGS``'s
  positional parameters, globs, the output of command substitutions, the input ``xargs``
  turns into arguments, what a shell reads from its standard input when that is not on the
  line (reported);
- the state of an interactive shell: aliases and functions defined on earlier lines (those
  defined on a judged line are judged there), ``cd`` before relative paths, ``PATH`` and
  ``hash`` changes (an ``rm`` that is not ``/bin/rm``), ``BASH_ENV``;
- a non-POSIX shell's code (``fish -c``, ``csh -c``) is reported, not parsed.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from engine.guardrail.scriptwrites import sed_script
from engine.guardrail.shellwords import (
    MAX_DEPTH,
    MAX_LENGTH,
    Compound,
    Pipeline,
    Redirect,
    Script,
    ShellParseError,
    SimpleCommand,
    brace_expand,
    glob_regex,
    has_glob,
    history_expansion,
    parse,
    simple_commands,
    unescape,
)

MAX_UNWRAP = 64  # wrappers around one command (sudo env nice …)
MAX_NESTED_CODE = 2 * MAX_LENGTH  # characters of code given to shells, parsed in turn

COMMAND_KINDS = frozenset({
    "RM", "RM RECURSIVE", "RM FORCE", "RM NO PRESERVE ROOT", "MKFS", "DD TO DEVICE",
    "WRITE TO DEVICE", "POWER", "DOWNLOAD TO SHELL", "DECODE TO SHELL", "CHMOD 777",
    "CHMOD 777 RECURSIVE", "CHOWN RECURSIVE", "FIREWALL FLUSH", "KUBECTL DELETE",
    "FORK BOMB", "EVAL", "INTERPRETER CODE", "SCRIPT FILE", "HISTORY OFF", "FIND DELETE",
    "CHMOD RECURSIVE", "RSYNC DELETE", "TAR REMOVE FILES", "NETWORK REDIRECT", "KEY BINDING",
    "COMMAND IN OPTION",
})

# Reasons in ``opaque``.
RUNS_SCRIPT = "runs a script file"
RUNS_OUTPUT = "runs code that a command produces at run time"
EXPANDED_CODE = "runs shell code built from expansions at run time"
READS_INPUT = "runs commands from its standard input"
UNKNOWN_PROGRAM = "a program only known at run time"
UNKNOWN_PATH = "a path only known at run time"
HISTORY = "history expansion runs a line the gateway does not see"
PIPED_CODE = "runs code another command writes into it at run time"


Cwd = frozenset[str] | None  # the working directories a line may run in; None: unknown
# Unknown, and CDPATH may be set (an earlier line changed it): a relative ``cd`` goes anywhere
CDPATH_SET: frozenset[str] = frozenset({"\0CDPATH"})


@dataclass(frozen=True)
class CommandFacts:
    """What one command line runs, as far as it can be seen.

    What the gateway cannot read is said apart from what it saw, so that the rules can judge
    it by the strictest rule that could apply (ARCHITECTURE.md invariant 9): ``maybe_kinds``
    are kinds that hold if an unseen value is what it could be (``rm $OPTS x`` may be
    ``RM RECURSIVE``); ``unknown_program``: a program name only known at run time, which may
    be anything (every kind, every program); ``unknown_paths``: a path operand of a
    destructive command only known at run time (or relative, where the working directory is
    not known); ``program_patterns``/``path_patterns``: globs that name programs or paths,
    kept as patterns. ``readings`` says how words the gateway expanded were read."""

    text: str
    commands: tuple[tuple[str, ...], ...]
    programs: frozenset[str]
    kinds: frozenset[str]
    paths: frozenset[str]
    opaque: tuple[str, ...]
    maybe_kinds: frozenset[str] = frozenset()
    unknown_program: bool = False
    unknown_paths: bool = False
    program_patterns: frozenset[str] = frozenset()
    path_patterns: frozenset[str] = frozenset()
    readings: tuple[str, ...] = ()
    cwd_after: Cwd = None  # where the shell may be once the line ran
    cdpath: bool = False  # it may change CDPATH (any spelling, or code not seen): from then
    # on a relative ``cd`` may go anywhere

    @property
    def unseen(self) -> bool:
        """Whether anything a rule could look at is not known."""
        return bool(self.maybe_kinds or self.unknown_program or self.unknown_paths
                    or self.program_patterns or self.path_patterns)

    def describe(self) -> str:
        parts = [", ".join(sorted(self.kinds)) or "no risky command"]
        if self.programs:
            parts.append("runs " + ", ".join(sorted(self.programs)))
        if self.paths:
            parts.append("on " + ", ".join(sorted(self.paths)))
        if self.opaque:
            parts.append("not seen: " + ", ".join(self.opaque))
        return "; ".join(parts)


def classify_command(line: str, cwd: Cwd = None) -> CommandFacts:
    """The facts of a shell command line; raises ``ShellParseError`` when it cannot be read
    (or nests more than ``MAX_DEPTH`` levels deep), for the caller's fallback. ``cwd``: the
    directories the line may start in (None: not known), for its relative paths."""
    walker = _Walker(cwd)
    flow = walker.script(parse(line, max_depth=MAX_DEPTH), 0)
    if flow.reads not in ("", _ANY):
        walker.note(READS_INPUT)
    history = history_expansion(line)
    if history is not None:
        walker.note(HISTORY)
        walker.unknown_program(f"{history} (history expansion)")
    if walker.dynamic_code and walker.produced:
        walker.to_shell(walker.produced)  # curl … | while read l; do eval "$l"; done
    return CommandFacts(
        text=line,
        commands=tuple(walker.commands),
        programs=frozenset(walker.programs),
        kinds=frozenset(walker.kinds),
        paths=frozenset(walker.paths),
        opaque=tuple(walker.opaque),
        maybe_kinds=frozenset(walker.maybe_kinds - walker.kinds),
        unknown_program=walker.any_program,
        unknown_paths=walker.any_path,
        program_patterns=frozenset(walker.program_patterns),
        path_patterns=frozenset(walker.path_patterns),
        readings=tuple(dict.fromkeys(walker.readings)),
        cwd_after=None if walker.cdpath else walker.cwds,
        cdpath=walker.cdpath,
    )


_SHELLISH = re.compile(r"[;&|`\n]|\$\(|\(\(|^\s*(?:for|while|until|if|case|select|function|"
                       r"coproc|time|exec|eval|\{|\(|\[\[|!)(?:\s|\(|$)")


def could_be_shell(text: str) -> bool:
    """Whether text the gateway could not parse may still be a command to a shell: it holds
    a separator, a substitution or a keyword, or starts with a program the gateway knows.
    Bash reads more than the gateway's parser, so such text is never let through because it
    does not parse."""
    if _SHELLISH.search(text):
        return True
    first = text.split(None, 1)[0] if text.strip() else ""
    return _program_name(first.strip("'\"\\")) in KNOWN_PROGRAMS


class _Arg(NamedTuple):
    """One word of a command as the walker sees it."""

    text: str
    dynamic: bool = False  # not literal: an expansion only known at run time, or a pattern
    computed: bool = False  # holds a command or process substitution
    sources: frozenset[str] = frozenset()  # what those produce: "download", "decode"
    pattern: str = ""  # a glob or ~ the shell expands (escaped, see shellwords), when that
    # is all that is not literal in it

    @property
    def runtime(self) -> bool:
        """Its value is only known when the line runs."""
        return self.computed or (self.dynamic and not self.pattern)


class _Input(NamedTuple):
    """A redirected standard input: a file (``<``) or text (here-document or here-string)."""

    kind: str
    arg: _Arg


class _Flow(NamedTuple):
    """What a stage means for the stages after it in a pipeline."""

    sources: frozenset[str] = frozenset()  # its output carries downloaded or decoded data
    reads: str = ""  # it runs code read from its standard input: "sh", the interpreter, or
    # _ANY: the program is only known at run time and may be a shell
    echo: str | None = None  # the constant text an ``echo`` writes (parsed if fed to a shell)


_ANY = "?"
_TO_SHELL = {"download": "DOWNLOAD TO SHELL", "decode": "DECODE TO SHELL"}


class _Walker:
    def __init__(self, cwd: Cwd = None) -> None:
        self.commands: list[tuple[str, ...]] = []
        self.programs: set[str] = set()
        self.kinds: set[str] = set()
        self.paths: set[str] = set()
        self.opaque: dict[str, None] = {}  # ordered, each reason once
        self.nested_code = 0
        self.maybe_kinds: set[str] = set()
        self.any_program = False
        self.any_path = False
        self.program_patterns: set[str] = set()
        self.path_patterns: set[str] = set()
        self.readings: list[str] = []
        self.cdpath = bool(cwd is not None and cwd & CDPATH_SET)  # CDPATH may be set: a
        self.cwds: Cwd = None if self.cdpath else cwd  # relative cd may go anywhere
        self.produced: set[str] = set()  # what any stage downloads or decodes
        self.dynamic_code = False  # code only known at run time runs somewhere

    def note(self, reason: str) -> None:
        self.opaque.setdefault(reason)

    def unknown_program(self, what: str) -> None:
        """A program only known at run time: it may be any program, with any kind."""
        self.note(f"{what} as program name")
        self.any_program = self.dynamic_code = True
        self.cwds = None  # and it may be a function or script that changes directory
        self.cdpath = True  # … or CDPATH

    def unknown_path(self) -> None:
        self.note(UNKNOWN_PATH)
        self.any_path = True

    def resolve(self, text: str) -> list[str] | None:
        """The absolute paths a path operand names in the working directories the line may
        run in; None if they cannot be known."""
        if text.startswith("/"):
            return [_normpath(text)]
        if self.cwds is None:
            return None
        return [_normpath(posixpath.join(cwd, text)) for cwd in sorted(self.cwds)]

    def add_paths(self, args: Iterable[_Arg | str], below: bool = False) -> None:
        """Path operands of a destructive command; ``below``: it acts on everything under
        them too (``rm -r``, ``find``), which is kept as the pattern ``path/*``."""
        for arg in args:
            if isinstance(arg, str):
                arg = _Arg(arg)
            text = arg.text
            if not text:
                continue
            if arg.runtime or (arg.pattern.startswith("~")):
                self.unknown_path()  # $DIR, $(…), ~user: only known at run time
                continue
            if _climbs(text):  # a/b/../c: where ".." leads depends on what a/b is (a
                self.unknown_path()  # symbolic link goes elsewhere); as text, too
            resolved = self.resolve(text)
            if resolved is None:
                self.unknown_path()  # relative, and where the line runs is not known
                continue
            for path in resolved:
                self.paths.add(path)
                parent, _, last = path.rpartition("/")
                if arg.pattern and last and set(last) == {"*"}:
                    self.paths.add(parent or "/")  # dir/* empties dir: judge it as dir
                if arg.pattern and has_glob(arg.pattern):
                    self.path_patterns.update(self.resolve(arg.pattern) or [path])
                if below:
                    self.path_patterns.add(path.rstrip("/") + "/*")

    def to_shell(self, sources: Iterable[str]) -> None:
        self.kinds.update(_TO_SHELL[source] for source in sources)

    def piped_code(self, language: str) -> None:
        """A shell or interpreter runs what another stage writes into it (``printf … | sh``,
        ``cat f | sh``, ``gzip -dc x | perl``): code only known at run time. For a shell it may
        be any command (the strictest rule that could apply decides); for an interpreter it
        is interpreter code."""
        self.note(PIPED_CODE)
        if language == "sh":
            self.unknown_program("code piped into a shell")
        else:
            self.kinds.add("INTERPRETER CODE")

    # --- the tree -----------------------------------------------------------------------

    def script(self, script: Script, depth: int) -> _Flow:
        """The pipelines of a list, with the working directory each may run in: after
        ``cd X &&`` it is X, after ``cd X ||`` the one before, after ``cd X;`` either."""
        sources: set[str] = set()
        reads = ""
        before = succeeded = anywhere = self.cwds  # anywhere: where the list may end
        for pipeline in script:
            if pipeline.after == "&&":
                self.cwds = succeeded
            elif pipeline.after == "||":
                self.cwds = before
            else:
                self.cwds = _either(before, succeeded)
            before = self.cwds
            flow = self.pipeline(pipeline, depth)
            succeeded = self.cwds
            anywhere = _either(_either(anywhere, before), succeeded)
            sources |= flow.sources
            if reads in ("", _ANY):
                reads = flow.reads or reads
        self.cwds = anywhere  # a failed step of a chain ends it wherever it had got
        return _Flow(frozenset(sources), reads)

    def pipeline(self, pipeline: Pipeline, depth: int) -> _Flow:
        cwds = self.cwds
        flows = [self.stage(stage, depth) for stage in pipeline.stages]
        if len(pipeline.stages) > 1 or pipeline.background:
            self.cwds = cwds  # each stage ran in a subshell of its own
        upstream: set[str] = set()
        for i, flow in enumerate(flows):
            if i and flow.reads:
                self.to_shell(upstream)
                echoed = flows[i - 1].echo
                if flow.reads == _ANY:
                    pass  # already reported as a program name known only at run time
                elif echoed is None:
                    self.piped_code(flow.reads)
                else:
                    self.run_code(_Arg(echoed), flow.reads, depth)
            upstream |= flow.sources
        return _Flow(frozenset(upstream), flows[0].reads if flows else "")

    def stage(self, stage: SimpleCommand | Compound, depth: int) -> _Flow:
        words, redirected, feeds = self.substitutions(stage, depth)
        self.redirects(stage.redirects)
        stdin = _stdin(stage.redirects, redirected)
        if isinstance(stage, Compound):
            if stage.kind == "function" and _recurses_in_background(stage.name, stage.body):
                self.kinds.add("FORK BOMB")
            cwds = self.cwds
            if stage.kind == "function":
                self.cwds = None  # it runs later, wherever the shell is then
            flow = self.script(stage.body, depth)
            if stage.kind in ("subshell", "function"):
                self.cwds = cwds
        else:
            _assignments(self, stage.assignments, depth)
            args = self.words(stage, words)
            flow = self.invoke(args, depth) if args else _Flow()
        if stdin is not None and stdin.kind == "file" and _is_network(stdin.arg.text):
            flow = flow._replace(sources=flow.sources | {"download"})
        if (stdin is not None and stdin.kind == "text" and isinstance(stage, SimpleCommand)
                and stage.argv and _program_name(stage.argv[0]) == "cat"
                and len(stage.argv) == 1):
            flow = flow._replace(echo=stdin.arg.text)  # cat <<EOF | sh: the text is code
            if stdin.arg.dynamic or stdin.arg.computed:
                flow = flow._replace(echo=None)
        if flow.reads not in ("", _ANY) and stdin is not None:
            fed = self.run_input(stdin, flow.reads, depth)  # a file, or text on the line
            flow = flow._replace(sources=flow.sources | fed.sources, reads=fed.reads)
        sources = flow.sources.union(*words.values(), *redirected.values())
        if feeds:  # a >( … ) that runs code: this command's output is its input
            if flow.sources:
                self.to_shell(flow.sources)
            else:
                flow = flow._replace(reads=flow.reads or feeds)
        self.produced |= sources
        return flow._replace(sources=sources)

    def words(self, stage: SimpleCommand, computed: dict[int, set[str]]) -> list[_Arg]:
        """The command's words as the shell will have them: brace expansion makes several
        words of one (``{rm,-rf,X}`` is ``rm -rf X``); globs and ``~`` stay patterns."""
        args: list[_Arg] = []
        for i, text in enumerate(stage.argv):
            pattern = stage.patterns[i] if i < len(stage.patterns) else ""
            runtime = i in stage.dynamic or i in computed
            sources = frozenset(computed.get(i, ()))
            pieces = brace_expand(pattern) if "{" in pattern and i in stage.unresolved \
                else [pattern]
            if pieces is None:  # more words than are worth reading: any of them
                args.append(_Arg(text, True, i in computed, sources))
                continue
            if len(pieces) > 1 or pieces[0] != pattern:
                self.readings.append(f"{text} as {' '.join(unescape(p) for p in pieces)}")
            for piece in pieces:
                word = text if piece == pattern else unescape(piece)
                expands = has_glob(piece) or piece.startswith("~")
                dynamic = runtime or expands
                args.append(_Arg(word, dynamic, i in computed, sources,
                                 piece if expands and not runtime else ""))
        return args

    def substitutions(self, stage: SimpleCommand | Compound, depth: int
                      ) -> tuple[dict[int, set[str]], dict[int, set[str]], str]:
        """Walk the commands inside words; what they produce, per argv index and per
        redirection, and the language of a ``>( … )`` that runs code. They run in
        subshells: a ``cd`` in them changes nothing after."""
        words: dict[int, set[str]] = {}
        redirected: dict[int, set[str]] = {}
        feeds = ""
        cwds = self.cwds
        for sub in stage.substitutions:
            flow = self.script(sub.script, depth)
            self.cwds = cwds
            if flow.reads and sub.kind == ">(":
                feeds = flow.reads
            elif flow.reads not in ("", _ANY):
                self.note(READS_INPUT)
            if sub.word is not None:
                words.setdefault(sub.word, set()).update(flow.sources)
            elif sub.redirect is not None:
                redirected.setdefault(sub.redirect, set()).update(flow.sources)
        return words, redirected, feeds

    def redirects(self, redirects: tuple[Redirect, ...]) -> None:
        for redirect in redirects:
            op = redirect.op.lstrip("0123456789")
            if _is_network(redirect.target) and op not in ("<<", "<<-", "<<<"):
                self.kinds.add("NETWORK REDIRECT")  # bash's /dev/tcp: a shell on a socket
            if op in (">", ">>", ">|", "<>", "&>", "&>>") or (
                    op == ">&" and not redirect.target.isdigit() and redirect.target != "-"):
                self.write_to(_Arg(redirect.target, redirect.unresolved))

    def write_to(self, target: _Arg) -> None:
        """A file written to: a device that holds data, or the kernel's sysrq trigger; where
        the file is only known at run time and could be one, the kinds may hold."""
        text = target.text
        if _names_inputrc(target):
            self.kinds.add("KEY BINDING")  # readline's key bindings, read by the next shell
        if target.dynamic or _climbs(text):
            if _could_be_device(text, self.cwds):
                self.maybe_kinds.update({"WRITE TO DEVICE", "POWER"})
                self.unknown_path()
            return
        resolved = self.resolve(text)
        if resolved is None:
            if _DEVICE_NAME.fullmatch(text):  # sda, where the line runs is not known
                self.maybe_kinds.add("WRITE TO DEVICE")
                self.unknown_path()
            return
        for path in resolved:
            if _is_device(path):
                self.kinds.add("WRITE TO DEVICE")
                self.paths.add(path)
            elif path == "/proc/sysrq-trigger":
                self.kinds.add("POWER")

    # --- one command --------------------------------------------------------------------

    def invoke(self, args: list[_Arg], depth: int) -> _Flow:
        """Unwrap wrappers down to the command that runs, and judge it."""
        via_xargs = wrapped = False
        for _ in range(MAX_UNWRAP):
            head = args[0]
            if head.pattern and has_glob(head.pattern):
                return self.patterned(head, args[1:], depth)
            if head.runtime:
                self.unknown_program(head.text)
                self.to_shell(head.sources)
                self.commands.append(tuple(a.text for a in args))
                if wrapped and args[1:] and not args[1].text.startswith("-"):  # sudo $OPTS rm
                    args = args[1:]  # … or sudo $CMD /etc: both readings are judged
                    continue
                return _Flow(head.sources, reads=_ANY)
            if not head.text:
                return _Flow()  # '' is not a command
            program = _program_name(head.text)
            self.programs.add(program)
            unwrap = _WRAPPERS.get(program)
            inner = unwrap(args[1:]) if unwrap is not None else None
            if not inner:
                break
            via_xargs |= program == "xargs"
            wrapped = True
            args = inner
        else:
            raise ShellParseError(f"a command is wrapped in more than {MAX_UNWRAP} wrappers")
        rest = args[1:]
        self.commands.append((program, *(a.text for a in rest)))
        if any(_names_inputrc(a) for a in args):
            self.kinds.add("KEY BINDING")  # readline's key bindings, by any program or path
        if any("CDPATH" in a.text or a.runtime for a in args) and program in _SETS_VARIABLES:
            self.cdpath = True
        if _is_script_path(head.text):
            self.kinds.add("SCRIPT FILE")
            self.note(RUNS_SCRIPT)
        if any(a.runtime or (a.pattern and a.pattern[0] in "*?[") for a in rest):
            # an operand only known at run time may be any option too (rm $X, rm * with a
            # file named -rf): what the program's options can make of it may hold
            self.maybe_kinds |= _OPTION_KINDS.get(program, frozenset())
        if program in SHELLS or program in _OTHER_SHELLS:
            return self.shell(program, rest, depth, via_xargs)
        family = _interpreter(program)
        if family is not None:
            return self.interpreter(program, _INTERPRETERS[family], rest, depth, via_xargs)
        handler = _HANDLERS.get(program)
        if handler is None and program.startswith("mkfs."):
            handler = _mkfs
        if handler is None and program not in _INERT and program not in KNOWN_PROGRAMS:
            self.speculate(rest, depth)
        flow = (handler(self, rest, depth) if handler is not None else None) or _Flow()
        return flow._replace(sources=flow.sources | _produces(program, rest),
                             echo=_echo_text(program, rest))

    def speculate(self, args: list[_Arg], depth: int) -> None:
        """A program the gateway knows nothing of may run its operands as a command
        (``taskset 1 rm -rf X``, ``strace -f rm …``) or an option's value as code (``-c``,
        ``--command``, ``-e``): where an operand names a program the gateway knows, the rest
        is judged as that command too, and such an option's value as shell code (a value that
        is not shell words is left alone: it may be anything else)."""
        cwds, cdpath = self.cwds, self.cdpath
        for j, arg in enumerate(args):
            name, eq, value = arg.text.partition("=")
            if not arg.runtime and (name in _COMMAND_OPTIONS or long_options(
                    arg.text, _COMMAND_OPTIONS)) and (eq or j + 1 < len(args)):
                code = arg._replace(text=value) if eq else args[j + 1]
                try:
                    parsed = parse(code.text, max_depth=MAX_DEPTH - depth - 1)
                except ShellParseError:
                    continue
                if any(_program_name(c.argv[0]) in KNOWN_PROGRAMS
                       for c in simple_commands(parsed) if c.argv):
                    self.kinds.add("COMMAND IN OPTION")
                    self.run_code(code, "sh", depth)
            elif (not arg.runtime and not arg.text.startswith("-")
                  and _program_name(arg.text) in _RUNNABLE and depth + 1 <= MAX_DEPTH):
                self.readings.append(f"{' '.join(a.text for a in args[j:])} as a command "
                                     "the program runs")
                self.invoke(args[j:], depth + 1)
                break
        self.cwds, self.cdpath = cwds, cdpath or self.cdpath

    def patterned(self, head: _Arg, rest: list[_Arg], depth: int) -> _Flow:
        """A program named by a glob (``/???/rm``, ``reboo?``): judged as every program it
        can name that the gateway knows of; the pattern is kept for rules that name others."""
        name = head.pattern.rstrip("/").rpartition("/")[2] or head.pattern
        self.program_patterns.add(unescape(name))
        self.note(f"{head.text} as program name (a pattern)")
        matches = glob_regex(name)
        names = sorted(n for n in KNOWN_PROGRAMS if matches.fullmatch(n))
        self.readings.append(f"{head.text} as " + (", ".join(names) or "no program known "
                                                     "to the gateway"))
        if _is_script_path(head.text) and not names:
            self.kinds.add("SCRIPT FILE")
            self.note(RUNS_SCRIPT)
        flows = [self.invoke([_Arg(n), *rest], depth) for n in names]
        self.commands.append((head.text, *(a.text for a in rest)))
        reads = next((f.reads for f in flows if f.reads), "")
        return _Flow(frozenset().union(*(f.sources for f in flows)), reads)

    def shell(self, program: str, args: list[_Arg], depth: int, via_xargs: bool) -> _Flow:
        """``sh -c CODE``, ``sh FILE``, or ``sh`` reading its standard input; ``via_xargs``:
        xargs supplies the missing code."""
        language = "sh" if program in SHELLS else program
        command = from_stdin = False
        i = 0
        while i < len(args):
            arg = args[i]
            word = arg.text
            if word in ("-", "--"):
                i += 1
                break
            if arg.dynamic or arg.computed or len(word) < 2 or word[0] not in "-+":
                break
            i += 1
            if word.startswith("--"):
                i += word in ("--rcfile", "--init-file")
                continue
            for letter in word[1:]:
                command |= word[0] == "-" and letter == "c"
                from_stdin |= word[0] == "-" and letter == "s"
                i += letter in "oO"  # -o OPTION, -O SHOPT
        operands = args[i:]
        if command:
            if not operands:  # xargs supplies the code
                return _Flow(reads=language if via_xargs else "")
            return self.run_code(operands[0], language, depth)
        if from_stdin or not operands:
            return _Flow(reads=language)
        return self.run_file(operands[0], language, depth)

    def interpreter(self, program: str, spec: _Interpreter, args: list[_Arg], depth: int,
                    via_xargs: bool) -> _Flow:
        i = 0
        while i < len(args):
            arg = args[i]
            word = arg.text
            if word == "--":
                i += 1
                break
            if arg.dynamic or arg.computed or len(word) < 2 or word[0] != "-":
                break
            i += 1
            if word.startswith("--"):
                name, eq, value = word.partition("=")
                if name in spec.long_code:
                    code = _Arg(value, arg.dynamic) if eq else _nth(args, i)
                    return self.interpreter_code(code, program, depth, via_xargs)
                i += name in spec.long_arg and not eq
                continue
            for j, letter in enumerate(word[1:], 2):
                attached = word[j:]
                if letter in spec.code:
                    code = arg._replace(text=attached) if attached else _nth(args, i)
                    return self.interpreter_code(code, program, depth, via_xargs)
                if letter in spec.module:
                    return _Flow()  # python -m: a module by name, not code on the line
                if letter in spec.with_arg or letter in spec.attached:
                    i += letter in spec.with_arg and not attached
                    break
        if i >= len(args) or (args[i].text == "-" and not args[i].runtime):
            # no code and no script: it reads its code from its standard input (a REPL at a
            # terminal, or whatever is fed to it): not shell words, and not seen
            self.kinds.add("INTERPRETER CODE")
            self.note(f"{program} reads its code from its standard input")
            return _Flow(reads=program)
        return self.run_file(args[i], program, depth)

    def interpreter_code(self, code: _Arg | None, program: str, depth: int,
                         via_xargs: bool) -> _Flow:
        if code is None:  # python -c with its code missing, or supplied by xargs
            return _Flow(reads=program if via_xargs else "")
        return self.run_code(code, program, depth)

    # --- code that runs -----------------------------------------------------------------

    def run_code(self, code: _Arg, language: str, depth: int) -> _Flow:
        """``code`` runs as a program in ``language`` ("sh": parsed and judged in turn)."""
        self.to_shell(code.sources)
        if language != "sh":
            self.kinds.add("INTERPRETER CODE")
            self.note(f"{language} code is not judged")
            return _Flow()
        if code.computed:
            self.note(RUNS_OUTPUT)
            self.unknown_program("code a command produces")
            return _Flow()
        if code.runtime:
            self.note(EXPANDED_CODE)
            self.unknown_program("code built at run time")
        if depth + 1 > MAX_DEPTH:
            raise ShellParseError(f"the command line nests more than {MAX_DEPTH} levels deep")
        self.nested_code += len(code.text)
        if self.nested_code > MAX_NESTED_CODE:
            raise ShellParseError("the command line gives too much code to shells to check")
        return self.script(parse(code.text, max_depth=MAX_DEPTH - depth - 1), depth + 1)

    def run_file(self, arg: _Arg, language: str, depth: int) -> _Flow:
        """A script named by ``arg`` runs: a file, standard input, or a process
        substitution's output."""
        if not (arg.dynamic or arg.computed) and arg.text in ("-", "/dev/stdin", "/dev/fd/0"):
            return _Flow(reads=language)
        self.to_shell(arg.sources)
        if arg.computed:
            self.note(RUNS_OUTPUT)
        else:
            self.kinds.add("SCRIPT FILE")
            self.note(RUNS_SCRIPT)
        return _Flow()

    def run_input(self, stdin: _Input, language: str, depth: int) -> _Flow:
        """A shell or interpreter runs its standard input, redirected on the line."""
        if stdin.kind == "file":
            return self.run_file(stdin.arg, language, depth)
        return self.run_code(stdin.arg, language, depth)

    def nested(self, args: list[_Arg], depth: int) -> _Flow:
        """A command another one runs (``find -exec``)."""
        if not args:
            return _Flow()
        if depth + 1 > MAX_DEPTH:
            raise ShellParseError(f"the command line nests more than {MAX_DEPTH} levels deep")
        return self.invoke(args, depth + 1)


def _stdin(redirects: tuple[Redirect, ...], redirected: dict[int, set[str]]) -> _Input | None:
    """The last redirection of file descriptor 0, if any."""
    found: _Input | None = None
    for i, redirect in enumerate(redirects):
        op = redirect.op.lstrip("0123456789")
        fd = redirect.op[:len(redirect.op) - len(op)]
        if fd not in ("", "0") or op not in ("<", "<<", "<<-", "<<<"):
            continue
        text = redirect.target + "\n" if op == "<<<" else redirect.target
        arg = _Arg(text, redirect.unresolved, i in redirected, frozenset(redirected.get(i, ())))
        found = _Input("file" if op == "<" else "text", arg)
    return found


def _recurses_in_background(name: str, body: Script) -> bool:
    """A function that calls itself in a pipeline or in the background: ``:(){ :|:& };:``."""
    for pipeline in body:
        for stage in pipeline.stages:
            if isinstance(stage, Compound):
                if _recurses_in_background(name, stage.body):
                    return True
            elif (len(pipeline.stages) > 1 or pipeline.background) and stage.argv[:1] == (name,):
                return True
    return False


# --- names ----------------------------------------------------------------------------------

# Shells whose code is POSIX shell words: what they are given (``-c``, a here-document, a
# pipe) is parsed in turn. Wrappers that start one (``sudo -s``, ``su``, ``busybox sh``) are
# unwrapped to it, so a name here is in ``programs`` whenever such a shell runs.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "lksh", "pdksh",
                    "oksh", "ash", "rbash", "yash", "posh"})
_OTHER_SHELLS = frozenset({"csh", "tcsh", "fish", "nu", "xonsh", "elvish", "pwsh"})
_SYSTEM_DIRS = frozenset({"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin",
                          "/usr/local/sbin", "/usr/libexec", "/snap/bin"})
_SCRIPT_SUFFIXES = (".sh", ".bash", ".zsh", ".ksh", ".py", ".pl", ".rb", ".js", ".php", ".lua")
_HARMLESS_DEVICES = frozenset({"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                               "/dev/urandom", "/dev/stdin", "/dev/stdout", "/dev/stderr",
                               "/dev/console", "/dev/ptmx"})
_HARMLESS_DEVICE_PREFIXES = ("/dev/tty", "/dev/fd/", "/dev/pts/", "/dev/shm/", "/dev/tcp/",
                             "/dev/udp/", "/dev/mqueue/")
_DOWNLOADERS = frozenset({"curl", "wget", "wget2", "fetch", "http", "https", "xh", "GET",
                          "lwp-request", "nc", "ncat", "netcat"})


_DEVICE_NAME = re.compile(r"(?:sd|hd|vd|xvd|nvme|mmcblk|md|dm-|loop|nbd|sr|st|nst|fd)[a-z0-9]*"
                          r"(?:p?[0-9]+)?|(?:mapper|disk|block)/.*")


def _is_network(path: str) -> bool:
    """bash's /dev/tcp and /dev/udp: a redirection to or from them is a socket."""
    return path.startswith(("/dev/tcp/", "/dev/udp/"))


def _climbs(text: str) -> bool:
    """Whether a path goes up (``..``) after a component it went down into: where it then
    is depends on what that component is (a symbolic link leads elsewhere)."""
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return any(p == ".." for p in parts[next((i for i, p in enumerate(parts) if p != ".."),
                                             len(parts)):])


def _could_be_device(text: str, cwds: Cwd) -> bool:
    """Whether a target only known at run time could be a device or /proc/sysrq-trigger:
    its literal beginning does not rule it out."""
    if _climbs(text):
        return True  # ~root/../dev/sda, x/../../dev/sda
    cut = re.search(r"[$`*?\[~]", text)
    prefix = text[:cut.start()] if cut else text
    if text.startswith("~"):
        return False  # a home directory is not /dev
    if not prefix:
        return True
    if not prefix.startswith("/"):
        if cwds is None:
            return bool(_DEVICE_NAME.match(prefix)) or ("/" not in prefix and any(
                d.startswith(prefix) for d in ("dev", "proc")))
        starts = [posixpath.join(c, prefix) for c in cwds]
    else:
        starts = [prefix]
    return any(t.startswith(start) or start.startswith(t)
               for start in starts for t in ("/dev/", "/proc/sysrq-trigger"))


def _names_inputrc(arg: _Arg) -> bool:
    """A word that is, or as a pattern could be, readline's key bindings file."""
    if "inputrc" in arg.text.lower():
        return True
    last = arg.pattern.rpartition("/")[2]  # a leading dot is never matched by a pattern
    return has_glob(last) and last.startswith(("\\.", ".")) and bool(
        glob_regex(last).fullmatch(".inputrc"))


def _either(a: Cwd, b: Cwd) -> Cwd:
    """Where the shell is when it may be in either place."""
    return None if a is None or b is None else a | b


def _program_name(word: str) -> str:
    return posixpath.basename(word.rstrip("/")) or word


def _normpath(path: str) -> str:
    norm = posixpath.normpath(path)
    return "/" + norm.lstrip("/") if norm.startswith("//") else norm


def _is_device(path: str) -> bool:
    """A device that holds data (a disk, partition, mapper or md volume): not /dev/null,
    terminals, /dev/fd, or bash's /dev/tcp."""
    return (path.startswith("/dev/") and path not in _HARMLESS_DEVICES
            and not path.startswith(_HARMLESS_DEVICE_PREFIXES))


def _is_script_path(word: str) -> bool:
    """A program that is a script, or a file outside the system directories (./deploy)."""
    if word.endswith(_SCRIPT_SUFFIXES):
        return True
    return "/" in word and posixpath.dirname(_normpath(word)) not in _SYSTEM_DIRS


def _nth(args: list[_Arg], i: int) -> _Arg | None:
    return args[i] if i < len(args) else None


def _split_options(args: list[_Arg]) -> tuple[list[str], list[_Arg]]:
    """GNU style (rm, chown): options anywhere before ``--``; (options, operands)."""
    options: list[str] = []
    operands: list[_Arg] = []
    for i, arg in enumerate(args):
        if arg.text == "--" and not arg.dynamic:
            operands += args[i + 1:]
            break
        if len(arg.text) > 1 and arg.text.startswith("-") and not arg.dynamic:
            options.append(arg.text)
        else:
            operands.append(arg)
    return options, operands


def long_options(word: str, known: Iterable[str]) -> list[str]:
    """Every option of ``known`` a long option word (``--X`` or ``--X=…``) may name: itself
    when known, else each option it is a prefix of. getopt_long takes any unambiguous prefix
    (``grep --only`` is ``--only-matching``, ``env --split`` is ``--split-string``); an
    ambiguous one makes the program refuse, so counting it as every option it could be fails
    closed. Not a long option: none."""
    if not word.startswith("--") or word == "--":
        return []
    name = word.partition("=")[0]
    known = tuple(known)
    if name in known:
        return [name]
    return [option for option in known if option.startswith(name) and option.startswith("--")]


def _long(word: str, known: tuple[str, ...]) -> str:
    """The long option ``word`` names, allowing getopt's unambiguous abbreviations."""
    name = word.partition("=")[0]
    if name in known:
        return name
    matches = [option for option in known if option.startswith(name)]
    return matches[0] if len(matches) == 1 and len(name) > 2 else ""


class _Options(NamedTuple):
    found: dict[str, _Arg]  # "-u" / "--user" → value (text "" for a flag)
    rest: list[_Arg]  # from the first operand on
    unique: frozenset[str]  # the options named for certain (not by an ambiguous prefix)


def _getopt(args: list[_Arg], with_arg: str = "", long_with_arg: tuple[str, ...] = (),
            optional: str = "", long_flags: tuple[str, ...] = ()) -> _Options:
    """Options up to the first operand or ``--``, as getopt reads them: ``-uroot``,
    ``-Eu root``, ``--user root``, ``--user=root``, ``--us root``. A long option is found
    under every known name it abbreviates (``long_options``), and takes the next word when
    one of them takes an argument."""
    found: dict[str, _Arg] = {}
    unique: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        word = arg.text
        if arg.dynamic or arg.computed or len(word) < 2 or word[0] != "-":
            break
        i += 1
        if word == "--":
            break
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            names = long_options(word, long_with_arg + long_flags)
            given = arg._replace(text=value) if eq else _Arg("")
            if not eq and set(names) & set(long_with_arg):
                given = _nth(args, i) or _Arg("")
                i += 1
            for option in {name, *names}:
                found[option] = given
            unique.update([name, *names] if len(names) <= 1 else [name])
            continue
        for j, letter in enumerate(word[1:], 2):
            if letter in with_arg or letter in optional:
                given = arg._replace(text=word[j:])
                if not given.text and letter in with_arg:
                    given = _nth(args, i) or _Arg("")
                    i += 1
                found["-" + letter] = given
                unique.add("-" + letter)
                break
            found["-" + letter] = _Arg("")
            unique.add("-" + letter)
    return _Options(found, args[i:], frozenset(unique))


def _skip_assignments(args: list[_Arg]) -> list[_Arg]:
    i = 0
    while i < len(args) and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", args[i].text):
        i += 1
    return args[i:]


def _joined(args: list[_Arg]) -> _Arg:
    """Words joined into one string of code, as ``eval`` and ``watch`` do."""
    return _Arg(" ".join(a.text for a in args), any(a.dynamic for a in args),
                any(a.computed for a in args), frozenset().union(*(a.sources for a in args)))


# --- wrappers: the command they run, or None when they run none (a leaf) ---------------------

_Wrapper = Callable[[list[_Arg]], list[_Arg] | None]
_SH = _Arg("sh")


_SUDO_FLAGS = ("--edit", "--list", "--validate", "--version", "--remove-timestamp", "--shell",
               "--login", "--help", "--background", "--preserve-env", "--set-home",
               "--non-interactive", "--stdin", "--bell", "--reset-timestamp",
               "--preserve-groups")


def _sudo(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, "aCcDgpRrTtUu", ("--askpass", "--close-from", "--chdir", "--group",
                                           "--host", "--prompt", "--chroot", "--role", "--type",
                                           "--command-timeout", "--other-user", "--user",
                                           "--login-class"), optional="h",
                   long_flags=_SUDO_FLAGS)
    if {"-e", "--edit", "-l", "--list", "-v", "--validate", "-V", "--version", "-K",
            "--remove-timestamp"} & opts.unique:
        return None  # only when named for certain: ``--l`` may be ``--login``
    rest = _skip_assignments(opts.rest)
    if not rest and {"-s", "--shell", "-i", "--login"} & opts.found.keys():
        return [_SH]
    return rest or None


def _doas(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, "Cu")
    if "-C" in opts.found:
        return None
    return opts.rest or ([_SH] if "-s" in opts.found else None)


_SU_WITH_ARG = ("--command", "--session-command", "--shell", "--user", "--group",
                "--supp-group", "--whitelist-environment")
_SU_LONG = (*_SU_WITH_ARG, "--login", "--preserve-environment", "--pty", "--fast", "--help",
            "--version", "--no-pty")


def _su(args: list[_Arg]) -> list[_Arg] | None:
    """``su [-] [user] -c CMD`` (options anywhere): sh -c CMD; without -c, a shell."""
    code: _Arg | None = None
    shell = "sh"
    user_command = False  # runuser -u USER -- CMD
    operands: list[_Arg] = []
    i = 0
    while i < len(args):
        arg = args[i]
        word = arg.text
        i += 1
        if word == "--":
            operands += args[i:]
            break
        if word == "-":  # a login shell
            continue
        if len(word) < 2 or word[0] != "-" or arg.dynamic:
            operands.append(arg)
            continue
        name, eq, value = word.partition("=")
        if word.startswith("--"):
            names = long_options(word, _SU_LONG)
            # an ambiguous prefix is each option it may be, the one that runs code first
            name = next((n for n in _SU_WITH_ARG if n in names), "")
            if not name:
                continue
            given = arg._replace(text=value) if eq else (_nth(args, i) or _Arg(""))
            i += not eq
            letter = {"--command": "c", "--session-command": "c", "--shell": "s",
                      "--user": "u"}.get(name, "")
        else:
            letter = next((c for c in word[1:] if c in "csgGwu"), "")
            if not letter:
                continue
            attached = word[word.index(letter) + 1:]
            given = arg._replace(text=attached) if attached else (_nth(args, i) or _Arg(""))
            i += not attached
        if letter == "c":
            code = given
        elif letter == "s" and not given.dynamic:
            shell = _program_name(given.text)
        user_command |= letter == "u"
    if user_command:
        return operands or None
    if code is not None:
        return [_Arg(shell), _Arg("-c"), code]
    return [_Arg(shell), *operands[1:]]


def _env(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, "uCSPa", ("--unset", "--chdir", "--split-string", "--argv0"))
    split = opts.found.get("-S") or opts.found.get("--split-string")
    rest = opts.rest
    if split is not None:  # env -S 'rm -rf /': the string's words come first
        try:
            words = shlex.split(split.text)
        except ValueError:
            raise ShellParseError("the string given to env -S has unbalanced quotes") from None
        return [_Arg("env"), *(_Arg(w, split.dynamic or "$" in w) for w in words), *rest]
    if rest and rest[0].text == "-":
        rest = rest[1:]
    return _skip_assignments(rest) or None


def _after_options(with_arg: str = "", long_with_arg: tuple[str, ...] = (),
                   optional: str = "", skip: int = 0) -> _Wrapper:
    """A wrapper whose command follows its options (and ``skip`` more words)."""
    def unwrap(args: list[_Arg]) -> list[_Arg] | None:
        return _getopt(args, with_arg, long_with_arg, optional).rest[skip:] or None
    return unwrap


_INPUT = _Arg("(input)", dynamic=True)  # words xargs reads from its input


def _xargs(args: list[_Arg]) -> list[_Arg] | None:
    """The command xargs runs, with what it reads from its input as words only known at run
    time: appended, or put where ``-I``'s replacement string stands (in any word)."""
    opts = _getopt(args, "adEILnPs", ("--arg-file", "--delimiter", "--max-args", "--max-procs",
                                       "--max-chars", "--process-slot-var", "--replace"),
                   optional="eil")
    rest = opts.rest or [_Arg("echo")]
    replace = opts.found.get("-I") or opts.found.get("-i") or opts.found.get("--replace")
    if replace is None:
        if rest[0].text in SHELLS or _interpreter(_program_name(rest[0].text)):
            return rest  # the walker knows that xargs supplies their code
        return [*rest, _INPUT]
    marker = replace.text or "{}"
    return [rest[0], *(a._replace(dynamic=True, pattern="") if marker in a.text else a
                       for a in rest[1:])]


def _command(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args)
    return None if {"-v", "-V"} & opts.found.keys() else opts.rest or None


def _chroot(args: list[_Arg]) -> list[_Arg] | None:
    rest = _getopt(args, long_with_arg=("--userspec", "--groups")).rest
    return (rest[1:] or [_SH, _Arg("-i")]) if rest else None


def _watch(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, "nq", ("--interval",), optional="d",
                   long_flags=("--exec", "--beep", "--color", "--no-color", "--chgexit",
                               "--differences", "--errexit", "--equexit", "--no-title",
                               "--no-wrap", "--precise", "--no-linewrap"))
    if not opts.rest:
        return None
    if {"-x", "--exec"} & opts.found.keys():
        return opts.rest
    return [_SH, _Arg("-c"), _joined(opts.rest)]


def _script(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, "cEIOBTm", ("--command", "--log-io", "--log-in", "--log-out",
                                      "--log-timing", "--echo", "--logging-format"),
                   optional="t")
    code = opts.found.get("-c") or opts.found.get("--command")
    return [_SH, _Arg("-c"), code] if code is not None else [_SH]


def _busybox(args: list[_Arg]) -> list[_Arg] | None:
    return args if args and not args[0].text.startswith("-") else None


def _taskset(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, long_flags=("--pid", "--all-tasks", "--cpu-list"))
    return None if {"-p", "--pid"} & opts.unique else opts.rest[1:] or None


def _setarch(args: list[_Arg]) -> list[_Arg] | None:
    """``setarch ARCH [options] [program …]``: without a program, a shell."""
    if args and not args[0].text.startswith("-"):
        args = args[1:]
    return _getopt(args).rest or [_SH]


def _shell_if_none(with_arg: str = "", long_with_arg: tuple[str, ...] = ()) -> _Wrapper:
    """A wrapper that starts a shell when given no command (unshare, nsenter)."""
    def unwrap(args: list[_Arg]) -> list[_Arg] | None:
        return _getopt(args, with_arg, long_with_arg).rest or [_SH]
    return unwrap


_FLOCK_LONG = ("--command", "--timeout", "--wait", "--conflict-exit-code", "--shared",
               "--exclusive", "--unlock", "--nonblock", "--nb", "--close", "--no-fork",
               "--fcntl", "--verbose", "--help", "--version")


def _flock(args: list[_Arg]) -> list[_Arg] | None:
    """``flock [options] FILE COMMAND…``, ``flock [options] FILE -c CODE``, ``flock FD``."""
    operands: list[_Arg] = []
    i = 0
    while i < len(args):
        arg = args[i]
        word = arg.text
        i += 1
        if operands and not word.startswith("-"):
            return operands[1:] + args[i - 1:]
        names = long_options(word, _FLOCK_LONG)
        if word == "-c" or "--command" in names:
            code = arg._replace(text=word.partition("=")[2]) if "=" in word \
                else _nth(args, i)
            return [_SH, _Arg("-c"), code] if code is not None else None
        if word in ("-w", "-E") or ({"--timeout", "--wait", "--conflict-exit-code"}
                                    & set(names) and "=" not in word):
            i += 1
        elif not word.startswith("-") or arg.runtime:
            operands.append(arg)
    return None


def _sg(args: list[_Arg]) -> list[_Arg] | None:
    """``sg [-] GROUP [-c] COMMAND``: the command runs in ``/bin/sh -c``; none: a shell."""
    rest = [a for a in args if a.text != "-"][1:]
    if rest[:1] and rest[0].text == "-c":
        rest = rest[1:]
    return [_SH, _Arg("-c"), _joined(rest)] if rest else [_SH]


def _kubectl_host(args: list[_Arg]) -> list[_Arg] | None:
    return args if args and args[0].text == "kubectl" else None


_WRAPPERS: dict[str, _Wrapper] = {
    "sudo": _sudo, "doas": _doas, "su": _su, "runuser": _su, "env": _env, "xargs": _xargs,
    "command": _command, "chroot": _chroot, "watch": _watch, "script": _script,
    "busybox": _busybox, "k3s": _kubectl_host, "microk8s": _kubectl_host,
    "xtables-legacy-multi": _busybox, "xtables-nft-multi": _busybox, "xtables-multi": _busybox,
    "nice": _after_options("n", ("--adjustment",)),
    "nohup": _after_options(),
    "timeout": _after_options("sk", ("--signal", "--kill-after"), skip=1),
    "exec": _after_options("a"),
    "builtin": _after_options(),
    "time": _after_options("fo", ("--format", "--output")),
    "stdbuf": _after_options("ioe", ("--input", "--output", "--error")),
    "ionice": _after_options("cnpPu", ("--class", "--classdata", "--pid", "--pgid", "--uid")),
    "setsid": _after_options(),
    "pkexec": _after_options(long_with_arg=("--user",)),
    "taskset": _taskset, "setarch": _setarch,
    **{name: _after_options() for name in ("linux32", "linux64", "uname26", "i386",
                                           "x86_64")},
    "unshare": _shell_if_none("SGRw", ("--setuid", "--setgid", "--root", "--wd",
                                        "--propagation", "--setgroups", "--map-user",
                                        "--map-group", "--map-users", "--map-groups")),
    "nsenter": _shell_if_none("tSGrwTCU", ("--target", "--setuid", "--setgid", "--root",
                                            "--wd")),
    "flock": _flock, "sg": _sg, "newgrp": lambda args: [_SH],
    "prlimit": _after_options("po", ("--pid", "--output"), optional="cdefilmnqrstxy"),
    "setpriv": _after_options(),
    "chrt": _after_options(skip=1), "numactl": _after_options("CcmNpPi"),
    "strace": _after_options("eoOpPsuIXbS"), "ltrace": _after_options("eoOpsuanS"),
    "firejail": _after_options(), "bwrap": _after_options(), "faketime": _after_options(skip=1),
    "fakeroot": _after_options(), "eatmydata": _after_options(), "nocache": _after_options(),
    "catchsegv": _after_options(), "proxychains": _after_options("f"),
    "proxychains4": _after_options("f"), "torsocks": _after_options(),
    "systemd-run": _after_options("pEuM", ("--property", "--setenv", "--unit",
                                             "--machine", "--description", "--slice",
                                             "--uid", "--gid", "--working-directory")),
    "runcon": _after_options("urtl"), "cgexec": _after_options("g"),
    "dbus-launch": _after_options(), "xvfb-run": _after_options("nsfe"),
    "sshpass": _after_options("pfde"),
}


# --- interpreters ---------------------------------------------------------------------------

class _Interpreter(NamedTuple):
    code: str  # option letters whose value is program text (python -c)
    with_arg: str = ""  # letters taking a value, attached or the next word
    attached: str = ""  # letters taking only an attached value (perl -Mstrict)
    module: str = ""  # letters naming a module to run instead of a script (python -m)
    long_code: tuple[str, ...] = ()
    long_arg: tuple[str, ...] = ()


_INTERPRETERS = {
    "python": _Interpreter("c", "WXQ", module="m"),
    "perl": _Interpreter("eE", attached="IMmix0lDdCV"),
    "ruby": _Interpreter("e", "IrCEF", attached="Kx0W"),
    "node": _Interpreter("ep", "r", long_code=("--eval", "--print"),
                         long_arg=("--require", "--import", "--loader", "--title")),
    "php": _Interpreter("rBRE", "cdzfF"),
    "lua": _Interpreter("e", "l"),
    "rscript": _Interpreter("e"),
}
_INTERPRETER_NAMES = re.compile(
    r"(?P<python>(?:python|pypy)[0-9.]*)|(?P<perl>perl[0-9.]*)|(?P<ruby>ruby[0-9.]*)"
    r"|(?P<node>node|nodejs)|(?P<php>php[0-9.]*)|(?P<lua>lua[0-9.]*|luajit)"
    r"|(?P<rscript>Rscript)")


def _interpreter(program: str) -> str | None:
    match = _INTERPRETER_NAMES.fullmatch(program)
    return match.lastgroup if match else None


# --- what ordinary programs do --------------------------------------------------------------

_Handler = Callable[[_Walker, list[_Arg], int], "_Flow | None"]


def _rm(w: _Walker, args: list[_Arg], depth: int) -> None:
    w.kinds.add("RM")
    options, operands = _split_options(args)
    known = ("--force", "--interactive", "--one-file-system", "--no-preserve-root",
             "--preserve-root", "--recursive", "--dir", "--verbose", "--help", "--version")
    for option in options:
        name = _long(option, known) if option.startswith("--") else ""
        if name == "--recursive" or (not name and not option.startswith("--")
                                     and ("r" in option or "R" in option)):
            w.kinds.add("RM RECURSIVE")
        if name == "--force" or (not name and not option.startswith("--") and "f" in option):
            w.kinds.add("RM FORCE")
        if name == "--no-preserve-root":
            w.kinds.add("RM NO PRESERVE ROOT")
    w.add_paths(operands, below="RM RECURSIVE" in w.kinds)


def _grants_everyone_everything(mode: str) -> bool:
    """777, 0777, a+rwx, ugo=rwx, +rwx, u+rwx,go+rwX, u=rwx,go=u … (what the mode may
    grant, whatever the file had: ``go=u`` copies the owner's bits)."""
    if re.fullmatch(r"[0-7]{3,5}", mode):
        return mode.endswith("777")
    granted: dict[str, set[str]] = {"u": set(), "g": set(), "o": set()}
    for clause in mode.split(","):
        match = re.fullmatch(r"([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)", clause)
        if match is None:
            return False
        who = match.group(1) or "a"
        for op, perms in re.findall(r"([-+=])([rwxXst]*|[ugo])", match.group(2)):
            if perms in ("u", "g", "o"):
                perms = "".join(granted[perms]) or "rwx"  # a copy: at most everything
            for cls in ("ugo" if "a" in who else who):
                if op == "=":
                    granted[cls] = set(perms.replace("X", "x"))
                elif op == "+":
                    granted[cls] |= set(perms.replace("X", "x"))
    return all({"r", "w", "x"} <= perms for perms in granted.values())


def _chmod(w: _Walker, args: list[_Arg], depth: int) -> None:
    recursive = reference = ended = False
    mode: str | None = None
    operands: list[_Arg] = []
    known = ("--recursive", "--reference", "--changes", "--silent", "--quiet", "--verbose",
             "--preserve-root", "--no-preserve-root", "--help", "--version")
    for arg in args:
        word = arg.text
        if not ended and word == "--":
            ended = True
        elif not ended and word.startswith("--"):
            name = _long(word, known)
            recursive |= name == "--recursive"
            reference |= name == "--reference"
        elif not ended and len(word) > 1 and word[0] == "-" and set(word[1:]) <= set("RcfvHLP"):
            recursive |= "R" in word
        elif mode is None and not reference:
            mode = word
        else:
            operands.append(arg)
    if recursive:
        w.kinds.add("CHMOD RECURSIVE")
    if mode is not None and _grants_everyone_everything(mode):
        w.kinds.add("CHMOD 777")
        if recursive:
            w.kinds.add("CHMOD 777 RECURSIVE")
    elif mode is not None and mode[:1] in ("$", "`"):
        w.maybe_kinds.add("CHMOD 777 RECURSIVE" if recursive else "CHMOD 777")
    w.add_paths(operands, below=recursive)


def _chown(w: _Walker, args: list[_Arg], depth: int) -> None:
    options, operands = _split_options(args)
    known = ("--recursive", "--from", "--reference", "--changes", "--silent", "--quiet",
             "--verbose", "--dereference", "--no-dereference", "--preserve-root",
             "--no-preserve-root", "--help", "--version")
    names = {_long(o, known) for o in options if o.startswith("--")}
    recursive = "--recursive" in names or any("R" in o for o in options
                                              if not o.startswith("--"))
    if recursive:
        w.kinds.add("CHOWN RECURSIVE")
    w.add_paths(operands if "--reference" in names else operands[1:], below=recursive)


def _dd(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``of=``: resolved against the working directory; bash expands ``~`` after ``=``."""
    for arg in args:
        if arg.text.startswith("of=") and arg.text[3:]:
            target = arg._replace(text=arg.text[3:])
            if target.text.startswith("~"):
                target = target._replace(dynamic=True, pattern=target.text)
            w.add_paths([target])
            kinds = set(w.kinds), set(w.maybe_kinds)
            w.write_to(target)
            if "WRITE TO DEVICE" in w.kinds - kinds[0]:
                w.kinds.discard("WRITE TO DEVICE")  # dd's own kind says it
                w.kinds.add("DD TO DEVICE")
            if "WRITE TO DEVICE" in w.maybe_kinds - kinds[1]:
                w.maybe_kinds.add("DD TO DEVICE")


def _mkfs(w: _Walker, args: list[_Arg], depth: int) -> None:
    w.kinds.add("MKFS")
    operands = [a for a in args if not a.text.startswith("-")]
    w.add_paths([a for a in operands if "/" in a.text] or operands[-1:])


def _writes(w: _Walker, args: list[_Arg], depth: int) -> None:
    """tee, shred, blkdiscard: their operands are written to."""
    for arg in _split_options(args)[1]:
        w.write_to(arg)


def _power(w: _Walker, args: list[_Arg], depth: int) -> None:
    w.kinds.add("POWER")


def _init(w: _Walker, args: list[_Arg], depth: int) -> None:
    if any(a.text in ("0", "6") for a in args):
        w.kinds.add("POWER")


_FIREWALL_UNITS = frozenset({"firewalld", "ufw", "nftables", "iptables", "ip6tables",
                             "netfilter-persistent"})


def _operands(args: list[_Arg], with_arg: str, long_with_arg: tuple[str, ...]) -> list[str]:
    """Operands with options anywhere (subcommand CLIs: systemctl, kubectl)."""
    operands: list[str] = []
    i = 0
    while i < len(args):
        word = args[i].text
        i += 1
        if word == "--":
            return operands + [a.text for a in args[i:]]
        if len(word) < 2 or word[0] != "-":
            operands.append(word)
        elif word.startswith("--"):
            name = word.partition("=")[0]
            i += "=" not in word and (name in long_with_arg or (
                len(name) > 3 and any(o.startswith(name) for o in long_with_arg)))
        else:
            for j, letter in enumerate(word[1:], 2):
                if letter in with_arg:
                    i += j == len(word)
                    break
    return operands


def _systemctl(w: _Walker, args: list[_Arg], depth: int) -> None:
    operands = _operands(args, "tsHMpnoP", ("--type", "--state", "--property", "--signal",
                                             "--host", "--machine", "--lines", "--output",
                                             "--root", "--kill-whom", "--job-mode", "--what",
                                             "--message", "--when", "--reboot-argument"))
    verb, units = (operands[0], operands[1:]) if operands else ("", [])
    targets = {"poweroff.target", "reboot.target", "halt.target", "kexec.target"}
    if verb in ("poweroff", "reboot", "halt", "kexec", "soft-reboot") or (
            verb in ("isolate", "start") and targets & set(units)):
        w.kinds.add("POWER")
    if verb in ("stop", "disable", "mask", "kill") and any(
            u.removesuffix(".service") in _FIREWALL_UNITS for u in units):
        w.kinds.add("FIREWALL FLUSH")


def _service(w: _Walker, args: list[_Arg], depth: int) -> None:
    texts = [a.text for a in args]
    if len(texts) >= 2 and texts[0] in _FIREWALL_UNITS and texts[1] == "stop":
        w.kinds.add("FIREWALL FLUSH")


def _iptables(w: _Walker, args: list[_Arg], depth: int) -> None:
    for arg in args:
        word = arg.text
        if word.startswith("--") and len(word) > 3 and (
                "--flush".startswith(word) or ("--delete-chain".startswith(word)
                                               and len(word) > len("--delete"))):
            w.kinds.add("FIREWALL FLUSH")
        elif re.fullmatch(r"-[a-zA-Z]*[FXPDZ][a-zA-Z]*", word) or (
                word.startswith("--") and len(word) > 3
                and any(o.startswith(word) for o in ("--policy", "--delete", "--zero"))):
            w.kinds.add("FIREWALL FLUSH")  # flushed, deleted, or its policy changed


def _nft(w: _Walker, args: list[_Arg], depth: int) -> None:
    """A ruleset loaded from a file (``-f``, standard input too) replaces or changes what
    is there, as does ``flush``, ``delete`` or ``destroy``; interactive mode (``-i``) reads
    commands."""
    words = " ".join(a.text for a in args).replace(";", " ").split()
    if {"flush", "delete", "destroy", "reset", "replace"} & set(words) or any(
            re.fullmatch(r"-[a-zA-Z]*[fi][a-zA-Z]*|--file(=.*)?|--interactive", a.text)
            for a in args):
        w.kinds.add("FIREWALL FLUSH")


def _ufw(w: _Walker, args: list[_Arg], depth: int) -> None:
    operands = [a.text for a in args if not a.text.startswith("-")]
    if operands[:1] in (["disable"], ["reset"]):
        w.kinds.add("FIREWALL FLUSH")


def _kubectl(w: _Walker, args: list[_Arg], depth: int) -> None:
    operands = _operands(args, "nsv", (
        "--namespace", "--context", "--cluster", "--user", "--server", "--kubeconfig",
        "--token", "--as", "--as-group", "--as-uid", "--certificate-authority", "--client-key",
        "--client-certificate", "--request-timeout", "--cache-dir", "--tls-server-name",
        "--log-file", "--profile", "--profile-output", "--password", "--username", "--v",
        "--vmodule", "--output", "--selector", "--field-selector", "--filename"))
    # a flag the gateway does not know may take a value: "delete" anywhere among the words
    texts = [a.text for a in args]
    if "delete" in operands or "drain" in operands or (
            "replace" in operands and any(t.startswith("--force") for t in texts)) or (
            "apply" in operands and any(t.startswith("--prune") for t in texts)):
        w.kinds.add("KUBECTL DELETE")


def _eval(w: _Walker, args: list[_Arg], depth: int) -> _Flow:
    w.kinds.add("EVAL")
    return w.run_code(_joined(args), "sh", depth) if args else _Flow()


def _source(w: _Walker, args: list[_Arg], depth: int) -> _Flow:
    w.kinds.add("EVAL")
    w.cdpath = True  # a file run in this shell may set anything (CDPATH, PS1 …)
    operands = args[1:] if args[:1] and args[0].text == "--" else args
    return w.run_file(operands[0], "sh", depth) if operands else _Flow()


def _find(w: _Walker, args: list[_Arg], depth: int) -> _Flow:
    """find's starting points; ``-delete``; the commands of ``-exec … ;`` and ``-ok``, which
    run on every file below them: ``{}`` stands for the starting point when there is one
    (and is only known at run time otherwise, or inside a longer word: a file's name is then
    part of code); removing, chmod and chown there are recursive. A command that reads its
    standard input (``-exec sh \\;``) reads find's."""
    if any(a.runtime for a in args[1:]):  # find . $EXPR: may be -exec anything, or -delete
        w.unknown_program("find's expression built at run time")
    i = 0
    while i < len(args) and (args[i].text in ("-H", "-L", "-P") or args[i].text[:2] == "-O"):
        i += 1
    starts: list[_Arg] = []
    while i < len(args) and not args[i].text.startswith(("-", "(", "!", ")")):
        starts.append(args[i])
        i += 1
    flow = _Flow()
    while i < len(args):
        word = args[i].text
        i += 1
        if word == "-delete":
            w.kinds.add("FIND DELETE")
            w.add_paths(starts or ["."], below=True)
        elif word in ("-exec", "-execdir", "-ok", "-okdir"):
            inner: list[_Arg] = []
            while i < len(args) and args[i].text not in (";", "+"):
                arg = args[i]
                if arg.text == "{}" and len(starts) == 1 and word in ("-exec", "-ok"):
                    arg = starts[0]
                elif "{}" in arg.text:
                    arg = arg._replace(dynamic=True, pattern="")
                inner.append(arg)
                i += 1
            i += 1
            kinds = set(w.kinds)
            inner_flow = w.nested(inner, depth)
            added = w.kinds - kinds
            if added & {"RM", "RM RECURSIVE"} or (inner and _program_name(inner[0].text)
                                                  in ("unlink", "shred", "rmdir")):
                w.kinds.add("FIND DELETE")
                w.add_paths(starts or ["."], below=True)
            elif added & _OPTION_KINDS["chmod"] | added & _OPTION_KINDS["chown"] or (
                    inner and _program_name(inner[0].text) in ("chmod", "chown")):
                w.add_paths(starts or ["."], below=True)
            if "CHMOD 777" in added:
                w.kinds.add("CHMOD 777 RECURSIVE")
            if inner and _program_name(inner[0].text) == "chmod":
                w.kinds.add("CHMOD RECURSIVE")
            if inner and _program_name(inner[0].text) == "chown":
                w.kinds.add("CHOWN RECURSIVE")
            flow = _Flow(flow.sources | inner_flow.sources, flow.reads or inner_flow.reads)
    return flow


_HISTORY_OFF = re.compile(r"HISTFILE\+?=(/dev/null)?|(HISTSIZE|HISTFILESIZE|SAVEHIST)\+?=0")


# Variables whose value the shell (or a program it runs) later expands or runs as code.
_PROMPTS = frozenset({"PS0", "PS1", "PS2", "PS3", "PS4"})  # expanded: $( … ) in them runs
_COMMAND_VARIABLES = frozenset({"PROMPT_COMMAND", "PAGER", "MANPAGER", "GIT_PAGER", "EDITOR",
                                "VISUAL", "FCEDIT", "LESSOPEN", "LESSCLOSE", "GIT_SSH_COMMAND",
                                "GIT_EDITOR", "GIT_EXTERNAL_DIFF", "SUDO_ASKPASS", "SSH_ASKPASS",
                                "GIT_ASKPASS", "BROWSER", "SYSTEMD_PAGER"})


def _assignments(w: _Walker, words: Iterable[str], depth: int) -> None:
    """History switched off; code the shell runs later — PROMPT_COMMAND at every prompt,
    ``$( … )`` in PS0/PS1/PS2/PS4 whenever a prompt or trace line is drawn, the commands a
    pager or editor variable names; variables that change what later words mean: PATH
    (which file a program name is), CDPATH (where a ``cd`` goes), INPUTRC (key bindings),
    histchars (history expansion), BASH_ENV and ENV (a file every shell runs)."""
    for word in words:
        if _HISTORY_OFF.fullmatch(word):
            w.kinds.add("HISTORY OFF")
        name, _, value = word.partition("=")
        name = re.sub(r"\[.*", "", name.rstrip("+"))  # NAME[1]=, NAME+=
        if name.startswith("-"):
            continue  # an option of declare/export
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            w.unknown_program(f"a variable named at run time ({name})")  # export $V=…
            continue
        if "CDPATH" in word:
            w.cdpath = True  # declare -x CD""PATH=…, export CDPATH, declare -n r=CDPATH
            w.cwds = None
        if name in _PROMPTS:
            quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            w.run_code(_Arg(": " + quoted), "sh", depth)
        elif name in _COMMAND_VARIABLES:
            w.run_code(_Arg(value.removeprefix("|").replace("%s", "FILE")), "sh", depth)
        elif name == "PATH" and any(
                d not in _SYSTEM_DIRS and d not in ("$PATH", "${PATH}")
                for d in value.split(":")):
            w.kinds.add("SCRIPT FILE")
            w.note("programs may be found in directories PATH adds")
        elif name == "INPUTRC":
            w.kinds.add("KEY BINDING")
        elif name == "histchars":
            w.note(HISTORY)
            w.unknown_program("history expansion with other characters")
        elif name in ("BASH_ENV", "ENV") and value:
            w.kinds.add("SCRIPT FILE")
            w.note(RUNS_SCRIPT)


def _declare(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``export``/``declare``/``local``…: their assignments; a word only known at run time
    may assign anything (PS1, CDPATH), and ``declare -n`` makes a name another variable."""
    if any(a.runtime for a in args):
        w.unknown_program("a variable assigned at run time")
    if any(a.text.startswith("-") and "n" in a.text for a in args):
        w.cdpath = True
        w.cwds = None
    _assignments(w, (a.text for a in args if not a.runtime), depth)


def _reads_variable(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``read``, ``mapfile``, ``printf -v``: a variable set to what is only known at run
    time; one the shell runs or expands later (PS1, PROMPT_COMMAND …) is unseen code."""
    names = {re.sub(r"\[.*", "", a.text) for a in args}
    if any(a.runtime for a in args) or names & (_PROMPTS | _COMMAND_VARIABLES | {
            "BASH_ENV", "ENV", "INPUTRC", "histchars", "PATH"}):
        w.unknown_program("a variable the shell runs, set at run time")
    if "CDPATH" in names:
        w.cdpath = True
        w.cwds = None


def _alias(w: _Walker, args: list[_Arg], depth: int) -> None:
    """An alias's text runs when the alias is used, on a later line: judge it now."""
    for arg in args:
        name, eq, value = arg.text.partition("=")
        if eq and name and not name.startswith("-"):
            w.run_code(arg._replace(text=value), "sh", depth)


def _trap(w: _Walker, args: list[_Arg], depth: int) -> _Flow | None:
    """``trap CODE SIGNAL…``: the code runs when the signal (or EXIT) comes."""
    operands = [a for a in args if a.text != "--"]
    if len(operands) < 2 or operands[0].text.startswith("-") or operands[0].text.isdigit():
        return None
    return w.run_code(operands[0], "sh", depth)


def _unset(w: _Walker, args: list[_Arg], depth: int) -> None:
    if any(a.text == "HISTFILE" for a in args):
        w.kinds.add("HISTORY OFF")


def _set(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``set +o history``; ``set -o vi``/``emacs`` (and their ``+o``): readline's keymap, so
    keys mean something else; ``set -o`` with a word only known at run time: either."""
    texts = [a.text for a in args]
    if any(t.startswith("+") and "o" in t and texts[i + 1:i + 2] == ["history"]
           for i, t in enumerate(texts)):
        w.kinds.add("HISTORY OFF")
    for i, t in enumerate(texts):
        if t[:1] in "-+" and "o" in t and i + 1 < len(args) and (
                texts[i + 1] in ("vi", "emacs") or args[i + 1].runtime):
            w.kinds.add("KEY BINDING")
        if t[:1] in "-+" and "T" in t[1:] and not t.startswith("--"):
            w.note("DEBUG and RETURN traps run inside functions")


def _history(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``-c`` clears the history; ``-s``, ``-r``, ``-n`` (and ``-p``, which expands) put
    lines the gateway never judged where history expansion (``!!``) runs them later."""
    if any(re.fullmatch(r"-[a-z]*c[a-z]*", a.text) for a in args):
        w.kinds.add("HISTORY OFF")
    if any(re.fullmatch(r"-[a-z]*[srnp][a-z]*", a.text) or a.runtime for a in args):
        w.note(HISTORY)
        w.unknown_program("history written or expanded (a line the gateway does not see)")


def _cd(w: _Walker, args: list[_Arg], depth: int) -> None:
    """Where the shell goes: known for an absolute directory, or a relative one from a known
    place; unknown for ``cd`` (home), ``cd -``, ``popd``, a word known only at run time, and
    a relative one once CDPATH is set."""
    operands = [a for a in args if a.runtime or not (a.text.startswith(("-", "+"))
                                                     and len(a.text) > 1)]
    target = operands[0] if operands else None
    physical = any(a.text.startswith("-") and "P" in a.text and not a.runtime for a in args
                   if a not in operands)
    if (target is None or physical or target.dynamic or target.text == "-" or (
            w.cdpath and not target.text.startswith(("/", "./", "../")))):
        w.cwds = None
        return
    if not target.text:
        return
    resolved = w.resolve(target.text)
    w.cwds = frozenset(resolved) if resolved is not None else None


def _popd(w: _Walker, args: list[_Arg], depth: int) -> None:
    w.cwds = None


_RSYNC_REMOVES = ("--remove-source-files", "--remove-sent-files", "--delete",
                  "--delete-before", "--delete-during", "--delete-delay", "--delete-after",
                  "--delete-excluded", "--delete-missing-args")


def _rsync(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``--delete`` (and its kin) removes files at the destination that the source lacks;
    ``--remove-source-files`` the sources. ``-e``'s command runs here."""
    deletes = removes_sources = False
    operands: list[_Arg] = []
    i = 0
    while i < len(args):
        arg = args[i]
        word = arg.text
        i += 1
        if word == "--":
            operands += args[i:]
            break
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            names = set(long_options(word, (*_RSYNC_WITH_ARG, *_RSYNC_REMOVES)))
            deletes |= name.startswith("--del") or any(n.startswith("--del") for n in names)
            removes_sources |= bool(names & {"--remove-source-files", "--remove-sent-files"})
            if "--rsh" in names:
                code = arg._replace(text=value) if eq else _nth(args, i)
                if code is not None:
                    w.run_code(code, "sh", depth)
            i += not eq and bool(names & _RSYNC_WITH_ARG)
        elif word.startswith("-") and len(word) > 1 and not arg.runtime:
            for j, letter in enumerate(word[1:], 2):
                if letter in "eBfTM":
                    rsh = arg._replace(text=word[j:]) if word[j:] else _nth(args, i)
                    i += not word[j:]
                    if letter == "e" and rsh is not None:
                        w.run_code(rsh, "sh", depth)
                    break
        else:
            operands.append(arg)
    local = [a for a in operands if not re.match(r"[^/]*:|rsync://", a.text)]
    if deletes and operands:
        w.kinds.add("RSYNC DELETE")
        w.add_paths([operands[-1]] if operands[-1] in local else [], below=True)
    if removes_sources:
        w.kinds.add("RSYNC DELETE")
        w.add_paths([a for a in local if a is not operands[-1]])


_RSYNC_WITH_ARG = frozenset({
    "--rsh", "--rsync-path", "--filter", "--exclude", "--include", "--exclude-from",
    "--include-from", "--files-from", "--temp-dir", "--compare-dest", "--copy-dest",
    "--link-dest", "--log-file", "--password-file", "--port", "--sockopts", "--out-format",
    "--log-file-format", "--bwlimit", "--timeout", "--contimeout", "--chmod", "--chown",
    "--usermap", "--groupmap", "--max-size", "--min-size", "--max-delete", "--backup-dir",
    "--suffix", "--partial-dir", "--skip-compress", "--compress-level", "--checksum-choice",
    "--block-size", "--modify-window", "--iconv", "--remote-option", "--outbuf", "--address",
    "--info", "--debug", "--read-batch", "--write-batch", "--only-write-batch"})
_TAR_CODE = ("--to-command", "--checkpoint-action", "--use-compress-program", "--info-script",
             "--new-volume-script", "--rsh-command", "--rmt-command")
_TAR_LONG = ("--remove-files", "--file", "--directory", "--files-from", "--exclude",
             "--exclude-from", "--owner", "--group", "--mode", "--mtime", "--transform",
             "--xform", "--label", "--format", "--blocking-factor", "--record-size",
             "--tape-length", "--newer", "--after-date", "--newer-mtime", "--suffix",
             "--backup", "--checkpoint", "--volno-file", "--index-file", "--level",
             "--listed-incremental", "--starting-file", "--strip-components", *_TAR_CODE)


def _tar(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``--remove-files`` deletes what was archived; ``--to-command``, ``-I``,
    ``--checkpoint-action=exec=`` and the volume scripts run commands."""
    remove = False
    operands: list[_Arg] = []
    commands: list[_Arg] = []
    i = 0
    while i < len(args):
        arg = args[i]
        word = arg.text
        i += 1
        if arg.runtime:
            operands.append(arg)
        elif word == "--":
            operands += args[i:]
            break
        elif word.startswith("--"):
            name, eq, value = word.partition("=")
            full = _long(name, _TAR_LONG) or name
            remove |= full == "--remove-files"
            given = arg._replace(text=value) if eq else _nth(args, i)
            i += not eq and full in _TAR_LONG[1:]
            if full in _TAR_CODE and given is not None:
                if full == "--checkpoint-action":
                    if not given.text.startswith("exec="):
                        continue
                    given = given._replace(text=given.text[5:])
                commands.append(given)
        elif (word.startswith("-") and len(word) > 1) or (i == 1 and re.fullmatch(
                r"[A-Za-z]+", word)):
            dashed = word.startswith("-")
            letters = word[1:] if dashed else word
            for j, letter in enumerate(letters, 1):
                if letter not in "fCTXbgHKLNVIF":
                    continue
                attached = letters[j:] if dashed else ""
                given = arg._replace(text=attached) if attached else _nth(args, i)
                i += not attached
                if letter in "IF" and given is not None:
                    commands.append(given)
                if attached:
                    break
        else:
            operands.append(arg)
    if remove:
        w.kinds.add("TAR REMOVE FILES")
        w.add_paths(operands)
    for code in commands:
        w.kinds.add("COMMAND IN OPTION")
        w.run_code(code, "sh", depth)


_SORT_LONG = (
    "--ignore-leading-blanks", "--dictionary-order", "--ignore-case", "--general-numeric-sort",
    "--ignore-nonprinting", "--month-sort", "--human-numeric-sort", "--numeric-sort",
    "--random-sort", "--random-source", "--reverse", "--sort", "--version-sort", "--batch-size",
    "--check", "--compress-program", "--debug", "--files0-from", "--key", "--merge", "--output",
    "--stable", "--buffer-size", "--field-separator", "--temporary-directory", "--parallel",
    "--unique", "--zero-terminated", "--help", "--version")
# sort's long options that take a value as the next word when not given with ``=``.
_SORT_VALUED = frozenset({"--random-source", "--sort", "--batch-size", "--compress-program",
                          "--files0-from", "--key", "--output", "--buffer-size",
                          "--field-separator", "--temporary-directory", "--parallel"})


def _sort(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``--compress-program=PROG`` runs PROG on sort's temporary files (and what it prints
    becomes sort's output): a command in an option, judged as shell code."""
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.text == "--":
            break
        if arg.runtime or not arg.text.startswith("--"):  # (a run-time word: _OPTION_KINDS)
            continue
        name, eq, value = arg.text.partition("=")
        full = _long(name, _SORT_LONG)
        if full in _SORT_VALUED and not eq:
            given = _nth(args, i)
            i += 1
        else:
            given = arg._replace(text=value) if eq else None
        if full == "--compress-program" and given is not None:
            w.kinds.add("COMMAND IN OPTION")
            w.run_code(given, "sh", depth)


_AWK_STRING = r'"((?:[^"\\]|\\.)*)"'
_AWK_COMMANDS = (re.compile(r"\bsystem\s*\(\s*" + _AWK_STRING + r"\s*\)"),
                 re.compile(r"\|&?\s*" + _AWK_STRING),
                 re.compile(_AWK_STRING + r"\s*\|&?\s*getline"))
_AWK_RUNS = re.compile(r"\bsystem\s*\(|\|&?\s*[^|\s]|\|&?\s*$|\|\s*getline|@\s*[A-Za-z_(]"
                       r"|@load|@include")


def _awk(w: _Walker, args: list[_Arg], depth: int) -> _Flow | None:
    """awk's program: ``system()``, ``print | "cmd"`` and ``"cmd" | getline`` run commands:
    a literal one is judged as shell code, anything else is code known only at run time."""
    program: _Arg | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        word = arg.text
        if arg.runtime or word == "--" or not word.startswith("-") or len(word) < 2:
            i += word == "--"
            break
        i += 1
        name = word.partition("=")[0]
        names = long_options(word, _AWK_LONG)
        if name in ("-f", "-E", "-i", "-l") or (
                word[:2] in ("-f", "-E", "-i", "-l") and len(word) > 2) or (
                {"--file", "--exec", "--include", "--load"} & set(names)):
            w.kinds.add("SCRIPT FILE")  # a program file, a library, a shared object
            w.note(RUNS_SCRIPT)
            return None
        if word == "-e" or "--source" in names:
            program = arg._replace(text=word.partition("=")[2]) if "=" in word \
                else _nth(args, i)
            i += "=" not in word
        elif word in ("-v", "-F") or ({"--assign", "--field-separator"} & set(names)
                                      and "=" not in word):
            i += 1
    if program is None:
        program = _nth(args, i)
    if program is None:
        return None
    if program.runtime:
        w.kinds.add("INTERPRETER CODE")
        w.unknown_program("awk code built at run time")
        return None
    code = program.text
    if not _AWK_RUNS.search(code):
        return None
    w.kinds.add("INTERPRETER CODE")
    literal: list[tuple[int, str]] = []
    for n, pattern in enumerate(_AWK_COMMANDS):
        literal += [(n, re.sub(r"\\(.)", r"\1", m.group(1))) for m in pattern.finditer(code)]
    if len(literal) < len(_AWK_RUNS.findall(code)) or not literal or "@" in code:
        w.unknown_program("a command awk builds at run time")
    reads = ""
    for n, text in literal:
        flow = w.run_code(_Arg(text), "sh", depth)
        if flow.reads and n == 1:  # print | "sh": the shell runs what awk prints
            w.unknown_program("commands awk prints to a shell")
        elif flow.reads:
            reads = reads or flow.reads  # system("sh"): a shell on awk's standard input
    return _Flow(reads=reads)


_SED_LONG = ("--expression", "--file", "--in-place", "--line-length", "--null-data",
             "--zero-terminated", "--quiet", "--silent", "--regexp-extended", "--separate",
             "--sandbox", "--debug", "--posix", "--follow-symlinks", "--unbuffered",
             "--binary", "--help", "--version")
_AWK_LONG = ("--file", "--exec", "--include", "--load", "--source", "--assign",
             "--field-separator", "--bignum", "--characters-as-bytes", "--copyright",
             "--debug", "--dump-variables", "--gen-pot", "--help", "--lint", "--lint-old",
             "--non-decimal-data", "--no-optimize", "--optimize", "--posix", "--pretty-print",
             "--profile", "--re-interval", "--sandbox", "--traditional", "--use-lc-numeric",
             "--version", "--csv", "--trace")


def _sed(w: _Walker, args: list[_Arg], depth: int) -> None:
    """GNU sed's ``e`` command and ``s///e`` flag run shell commands."""
    scripts: list[_Arg] = []
    operands: list[_Arg] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        names = [] if arg.runtime else long_options(arg.text, _SED_LONG)
        eq = "=" in arg.text
        if arg.text == "-e" or ("--expression" in names and not eq):
            value = _nth(args, i)
            i += 1
            if value is not None:
                scripts.append(value)
        elif "--expression" in names:
            scripts.append(arg._replace(text=arg.text.partition("=")[2]))
        if arg.text == "-f" or "--file" in names:
            w.kinds.add("SCRIPT FILE")
            w.note(RUNS_SCRIPT)
            i += arg.text == "-f" or not eq
        elif not arg.text.startswith("-") or arg.runtime:
            operands.append(arg)
    if not scripts and operands:
        scripts.append(operands[0])
    for script in scripts:
        if script.runtime:
            w.unknown_program("sed script built at run time")
        else:
            read = sed_script(script.text)
            if read.commands or read.unknown:  # ``e``, ``s///e``, or what it cannot read
                w.kinds.add("INTERPRETER CODE")
                w.unknown_program("a command sed builds at run time")


def _unlink(w: _Walker, args: list[_Arg], depth: int) -> None:
    """unlink, rmdir: a delete of their operands."""
    w.kinds.add("RM")
    w.add_paths(_split_options(args)[1])


def _mv(w: _Walker, args: list[_Arg], depth: int) -> None:
    """mv takes its sources away from where they were (a delete there) and may replace the
    destination: both count as deletes of those paths (a directory moved: all below it)."""
    options, operands = _split_options(args)
    target = next((o.partition("=")[2] for o in options
                   if long_options(o, ("--target-directory",))), None)
    if any(re.fullmatch(r"-[a-zA-Z]*t", o) for o in options):
        target = ""  # -t DIR: the directory was read as an operand
    if len(operands) < 2 and target is None:
        return
    w.kinds.add("RM")
    w.kinds.add("RM RECURSIVE")
    w.add_paths(operands, below=True)


def _chgrp(w: _Walker, args: list[_Arg], depth: int) -> None:
    """chgrp is chown of the group: judged as chown."""
    _chown(w, args, depth)


def _truncate(w: _Walker, args: list[_Arg], depth: int) -> None:
    """truncate throws away a file's contents: a delete of what the file held."""
    options, operands = _split_options(args)
    w.kinds.add("RM")
    with_value = any(re.fullmatch(r"-[a-zA-Z]*[sr]", o) for o in options)
    w.add_paths(operands[1:] if with_value else operands)
    for arg in operands:
        w.write_to(arg)


def _shred(w: _Walker, args: list[_Arg], depth: int) -> None:
    """shred overwrites its operands; ``-u``/``--remove`` deletes them too."""
    operands = _split_options(args)[1]
    w.kinds.add("RM")
    w.add_paths(operands)
    for arg in operands:
        w.write_to(arg)


def _ln(w: _Walker, args: list[_Arg], depth: int) -> None:
    """A link to a path is a way to act on that path under another name, which the gateway
    will not recognise later (``ln -s /srv /tmp/l; rm -rf /tmp/l/x``): a link made to a path
    may be any destructive command on it, so the strictest rule on that path decides."""
    options, operands = _split_options(args)
    if any(o.startswith("-") and "t" in o.lstrip("-")[:1] for o in options):
        sources = operands[1:]
    else:
        sources = operands[:-1] if len(operands) > 1 else operands
    before = set(w.paths)
    w.add_paths(sources, below=True)
    if w.paths != before or w.any_path:
        w.maybe_kinds |= _LINKED
        w.readings.append("a link to " + ", ".join(a.text for a in sources)
                          + " as any destructive command on it")


_LINKED = frozenset({"RM", "RM RECURSIVE", "RM FORCE", "CHMOD RECURSIVE", "CHMOD 777",
                     "CHOWN RECURSIVE", "FIND DELETE", "RSYNC DELETE", "TAR REMOVE FILES"})


def _at(w: _Walker, args: list[_Arg], depth: int) -> _Flow | None:
    """at and batch read the commands of a job from their standard input (or ``-f FILE``);
    they run later, in a shell."""
    opts = _getopt(args, "fqtF")
    if {"-l", "-r", "-d", "-c", "-V"} & opts.found.keys():
        return None
    if "-f" in opts.found:
        w.kinds.add("SCRIPT FILE")
        w.note(RUNS_SCRIPT)
        return None
    return _Flow(reads="sh")


def _parallel(w: _Walker, args: list[_Arg], depth: int) -> _Flow | None:
    """GNU parallel runs its command with arguments after ``:::``, or each line of its input
    as a command when it has none."""
    cut = next((i for i, a in enumerate(args) if a.text in (":::", "::::", ":::+")), len(args))
    opts = _getopt(args[:cut], "jSaIdEPX", ("--jobs", "--sshlogin", "--arg-file",
                                            "--delimiter", "--joblog", "--results"))
    if not opts.rest:
        return _Flow(reads="sh")
    w.run_code(_joined([a._replace(dynamic=True, pattern="") if "{" in a.text else a
                        for a in opts.rest]), "sh", depth)
    return None


_SSH_COMMAND_OPTIONS = ("proxycommand", "localcommand", "knownhostscommand",
                        "remotecommand", "permitlocalcommand", "match")


def _ssh(w: _Walker, args: list[_Arg], depth: int) -> None:
    """ssh, scp, sftp: ``-o ProxyCommand=…`` (and LocalCommand, KnownHostsCommand, Match
    exec) runs here; ``-F`` names a configuration that may hold such commands; scp and
    sftp's ``-S`` name the program to run."""
    for i, arg in enumerate(args):
        word = arg.text
        value: _Arg | None = None
        if word == "-o":
            value = _nth(args, i + 1)
        elif word.startswith("-o"):
            value = arg._replace(text=word[2:])
        elif word in ("-F", "-S") or (word[:2] in ("-F", "-S") and len(word) > 2):
            w.kinds.add("COMMAND IN OPTION")
            w.note("runs commands a file or option names")
        if value is None:
            continue
        key, _, rest = value.text.replace("=", " ", 1).partition(" ")
        if value.runtime or key.lower() in _SSH_COMMAND_OPTIONS:
            w.kinds.add("COMMAND IN OPTION")
            if key.lower() in ("proxycommand", "localcommand", "knownhostscommand"):
                try:
                    w.run_code(value._replace(text=rest.strip()), "sh", depth)
                except ShellParseError:
                    w.unknown_program("an ssh option's command")


_GIT_SAFE_CONFIG = re.compile(r"(?i)(user|color|advice|init|i18n|column|safe|http|status|log|"
                              r"format|merge\.conflictstyle|pull\.rebase|push\.default|"
                              r"core\.(quotepath|autocrlf|filemode|ignorecase))\b")


def _git(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``git -c KEY=VALUE``: an alias starting with ``!`` is shell code, and many keys name
    programs git runs (core.pager, core.sshCommand, diff.external, filters …)."""
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        word = args[i].text
        i += 1
        if word in ("-c", "--config-env") or word.startswith("--config-env="):
            value = word.partition("=")[2] if "=" in word else (
                args[i].text if i < len(args) else "")
            i += "=" not in word
            key, _, setting = value.partition("=")
            if args[i - 1].runtime or not _GIT_SAFE_CONFIG.match(key):
                w.kinds.add("COMMAND IN OPTION")
                w.note(f"git -c {key} may name a command git runs")
            if key.lower().startswith("alias.") and setting.startswith("!"):
                w.run_code(_Arg(setting[1:]), "sh", depth)
        elif word in ("-C", "--git-dir", "--work-tree", "--namespace", "--exec-path"):
            i += 1
        elif word.startswith("--exec-path") or word.startswith("--upload-pack"):
            w.kinds.add("COMMAND IN OPTION")


def _zip(w: _Walker, args: list[_Arg], depth: int) -> None:
    """zip's ``-TT CMD``/``--unzip-command CMD`` runs CMD to test the archive."""
    for i, arg in enumerate(args):
        name, eq, value = arg.text.partition("=")
        if arg.text.startswith("-TT") or name == "--unzip-command":
            code = (arg._replace(text=arg.text[3:]) if len(arg.text) > 3 and not eq else
                    arg._replace(text=value) if eq else _nth(args, i + 1))
            w.kinds.add("COMMAND IN OPTION")
            if code is not None:
                w.run_code(code, "sh", depth)


_TMUX_SAFE = frozenset({"ls", "list-sessions", "list-windows", "lsw", "list-panes", "lsp",
                        "attach", "a", "at", "attach-session", "detach", "detach-client",
                        "has-session", "has", "kill-session", "kill-server", "kill-window",
                        "kill-pane", "display-message", "display", "info", "start-server",
                        "rename-session", "rename-window", "select-window", "select-pane",
                        "list-keys", "lsk", "show-options", "show", "capture-pane"})


def _multiplexer(w: _Walker, args: list[_Arg], depth: int) -> None:
    """tmux and screen run commands they are given (``tmux new -d CMD``, ``send-keys``,
    ``run-shell``, ``screen -X stuff``): outside what only lists or attaches, what they run
    is COMMAND IN OPTION, and each word that could be code is judged as code too."""
    operands = [a for a in args if not a.text.startswith("-")]
    if not operands or (operands[0].text in _TMUX_SAFE and len(operands) < 4):
        return
    w.kinds.add("COMMAND IN OPTION")
    w.note("runs commands given to a terminal multiplexer")
    for arg in operands:
        if arg.runtime:
            w.unknown_program("a command given to a terminal multiplexer")
            continue
        try:
            w.run_code(arg, "sh", depth)
        except ShellParseError:
            w.unknown_program("a command given to a terminal multiplexer")


def _complete(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``complete -C CMD``/``compgen -C``: CMD runs at each completion; ``-F FUNC`` a
    function defined elsewhere."""
    for i, arg in enumerate(args):
        if arg.text in ("-C", "-F") or (arg.text[:2] in ("-C", "-F") and len(arg.text) > 2):
            code = arg._replace(text=arg.text[2:]) if len(arg.text) > 2 else _nth(args, i + 1)
            w.kinds.add("COMMAND IN OPTION")
            if code is not None and arg.text.startswith("-C"):
                w.run_code(code, "sh", depth)


def _crontab(w: _Walker, args: list[_Arg], depth: int) -> None:
    """A crontab installed from a file or standard input runs its commands later."""
    opts = _getopt(args, "uT")
    if {"-l", "-r", "-T"} & opts.found.keys() and not opts.rest:
        return
    w.kinds.add("SCRIPT FILE")
    w.note(RUNS_SCRIPT)


def _firewall_restore(w: _Walker, args: list[_Arg], depth: int) -> None:
    """iptables-restore and its kin replace the rule set with what they read."""
    w.kinds.add("FIREWALL FLUSH")


def _bind(w: _Walker, args: list[_Arg], depth: int) -> None:
    """readline key bindings: a macro or ``-x`` command runs text the gateway never sees as
    a line. Listing them (``-p``, ``-P``, ``-v``, ``-V``, ``-s``, ``-S``, ``-l``) is fine."""
    if any(a.text not in ("-p", "-P", "-v", "-V", "-s", "-S", "-l") for a in args):
        w.kinds.add("KEY BINDING")


def _fc(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``fc`` runs lines from the history (``fc -s``, or what an editor leaves): unseen."""
    if not any(a.text.startswith("-") and "l" in a.text for a in args):
        w.note(HISTORY)
        w.unknown_program("fc (a line from the history)")


def _loads_code(w: _Walker, args: list[_Arg], depth: int) -> None:
    """``enable -f`` loads a builtin from a shared object; ``hash -p`` names a program's
    file."""
    if any(a.text.startswith(("-f", "-p")) for a in args):
        w.kinds.add("SCRIPT FILE")
        w.note(RUNS_SCRIPT)


_HANDLERS: dict[str, _Handler] = {
    "rm": _rm, "chmod": _chmod, "chown": _chown, "dd": _dd, "tee": _writes,
    "shred": _shred, "blkdiscard": _writes,
    "mkfs": _mkfs, "mke2fs": _mkfs, "mkswap": _mkfs, "wipefs": _mkfs, "mkdosfs": _mkfs,
    "mkntfs": _mkfs,
    "shutdown": _power, "reboot": _power, "halt": _power, "poweroff": _power,
    "init": _init, "telinit": _init, "systemctl": _systemctl, "service": _service,
    "iptables": _iptables, "ip6tables": _iptables, "iptables-legacy": _iptables,
    "ip6tables-legacy": _iptables, "iptables-nft": _iptables, "ip6tables-nft": _iptables,
    "nft": _nft, "ufw": _ufw,
    "kubectl": _kubectl, "oc": _kubectl, "microk8s.kubectl": _kubectl,
    "eval": _eval, "source": _source, ".": _source, "find": _find,
    "export": _declare, "declare": _declare, "typeset": _declare, "readonly": _declare,
    "local": _declare, "alias": _alias, "trap": _trap, "unset": _unset, "set": _set,
    "history": _history,
    "cd": _cd, "pushd": _cd, "popd": _popd, "rsync": _rsync, "tar": _tar, "gtar": _tar,
    "bsdtar": _tar, "sort": _sort, "awk": _awk, "gawk": _awk, "mawk": _awk, "nawk": _awk,
    "sed": _sed, "gsed": _sed, "bind": _bind, "fc": _fc, "enable": _loads_code, "hash": _loads_code,
    "unlink": _unlink, "rmdir": _unlink, "mv": _mv, "chgrp": _chgrp, "truncate": _truncate,
    "ln": _ln, "at": _at, "batch": _at, "parallel": _parallel, "ssh": _ssh, "scp": _ssh,
    "sftp": _ssh, "git": _git, "zip": _zip, "tmux": _multiplexer, "screen": _multiplexer,
    "complete": _complete, "compgen": _complete, "crontab": _crontab,
    "read": _reads_variable, "mapfile": _reads_variable, "readarray": _reads_variable,
    "printf": lambda w, args, depth: _reads_variable(w, args[1:], depth)
    if args[:1] and args[0].text.startswith("-v") else None,
    "ebtables": _iptables, "arptables": _iptables, "ebtables-legacy": _iptables,
    "arptables-legacy": _iptables, "ebtables-nft": _iptables, "arptables-nft": _iptables,
    **{name: _firewall_restore for name in (
        "iptables-restore", "ip6tables-restore", "iptables-legacy-restore",
        "ip6tables-legacy-restore", "iptables-nft-restore", "ip6tables-nft-restore",
        "ebtables-restore", "arptables-restore", "ipset")},
}

# Kinds a program's options decide: an operand only known at run time may be such an option.
_OPTION_KINDS: dict[str, frozenset[str]] = {
    "rm": frozenset({"RM RECURSIVE", "RM FORCE", "RM NO PRESERVE ROOT"}),
    "chmod": frozenset({"CHMOD 777", "CHMOD 777 RECURSIVE", "CHMOD RECURSIVE"}),
    "chown": frozenset({"CHOWN RECURSIVE"}),
    "find": frozenset({"FIND DELETE"}),
    "rsync": frozenset({"RSYNC DELETE"}),
    "tar": frozenset({"TAR REMOVE FILES", "COMMAND IN OPTION"}),
    "sort": frozenset({"COMMAND IN OPTION"}),
    "dd": frozenset({"DD TO DEVICE"}),
    "tee": frozenset({"WRITE TO DEVICE"}), "shred": frozenset({"WRITE TO DEVICE"}),
    "iptables": frozenset({"FIREWALL FLUSH"}), "ip6tables": frozenset({"FIREWALL FLUSH"}),
    "nft": frozenset({"FIREWALL FLUSH"}), "ufw": frozenset({"FIREWALL FLUSH"}),
    "kubectl": frozenset({"KUBECTL DELETE"}), "oc": frozenset({"KUBECTL DELETE"}),
    "systemctl": frozenset({"POWER", "FIREWALL FLUSH"}), "init": frozenset({"POWER"}),
    "telinit": frozenset({"POWER"}), "bind": frozenset({"KEY BINDING"}),
    "awk": frozenset({"INTERPRETER CODE"}), "sed": frozenset({"INTERPRETER CODE"}),
}


def _produces(program: str, args: list[_Arg]) -> frozenset[str]:
    """What a program writes to its standard output that is worth following down a pipe."""
    if program in _DOWNLOADERS:
        return frozenset({"download"})
    words = [a.text for a in args]
    short = [w for w in words if re.fullmatch(r"-[A-Za-z]+", w)]
    decodes = (
        (program in ("base64", "base32", "basenc", "gbase64")
         and (any("d" in w or "D" in w for w in short)
              or any(len(w) > 3 and "--decode".startswith(w) for w in words)))
        or (program == "xxd" and (any("r" in w for w in short) or "-revert" in words))
        or (program == "openssl" and "-d" in words)
        or program == "uudecode"
    )
    return frozenset({"decode"}) if decodes else frozenset()


def _echo_text(program: str, args: list[_Arg]) -> str | None:
    """What ``echo`` prints, when it is constant and plain (no escapes, no -e)."""
    if program != "echo":
        return None
    words = args[1:] if args[:1] and args[0].text == "-n" else args
    if any(a.dynamic or a.computed or "\\" in a.text or a.text.startswith("-") for a in words):
        return None
    return " ".join(a.text for a in words)


# Every program name the gateway knows something about: a glob in a program word is judged as
# each of these it matches (``/???/rm``, ``reboo?``, ``mk?s.ext4``).
KNOWN_PROGRAMS = frozenset({
    *_HANDLERS, *_WRAPPERS, *SHELLS, *_OTHER_SHELLS, *_DOWNLOADERS,
    *(f"mkfs.{fs}" for fs in ("ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "fat", "msdos",
                              "ntfs", "exfat", "f2fs", "minix", "cramfs", "bfs", "jfs",
                              "reiserfs", "nilfs2", "udf")),
    "python", "python2", "python3", "pypy", "pypy3", "perl", "ruby", "node", "nodejs", "php",
    "lua", "luajit", "Rscript", *(f"python3.{n}" for n in range(6, 15)),
    "base64", "base32", "basenc", "xxd", "openssl", "uudecode", "unlink", "rmdir", "truncate",
    "fdisk", "sfdisk", "sgdisk", "parted", "wipefs", "kill", "pkill", "killall", "crontab",
    "userdel", "passwd", "mv", "cp", "ln", "install",
})
# Programs known to do nothing with their operands but read them (or print them): no
# operand of theirs is speculated to be a command.
_INERT = frozenset({
    "echo", "printf", "man", "info", "whatis", "apropos", "which", "whereis", "type", "help",
    "grep", "egrep", "fgrep", "rg", "ag", "ack", "apt", "apt-get", "apt-cache", "dpkg", "rpm",
    "yum", "dnf", "pip", "pip3", "npm", "cat", "less", "more", "head", "tail", "wc", "sort",
    "uniq", "file", "stat", "ls", "test", "[", "[[", "true", "false", ":", "locate", "pgrep",
    "pkill", "killall", "kill", "ps", "diff", "cmp", "tldr", "basename", "dirname", "realpath",
    "readlink", "mkdir", "touch", "date", "id", "whoami", "hostname", "uname", "printenv",
    "let", "expr", "seq", "shift", "return", "exit", "wait", "jobs", "fg", "bg", "disown",
    "ulimit", "umask", "getent", "sleep", "cut", "tr", "column", "jq", "yq", "nl", "od",
    "hexdump", "md5sum", "sha256sum", "sha1sum", "cksum", "du", "df", "free", "uptime",
    "w", "who", "last", "lsblk", "blkid", "mount", "findmnt", "ip", "ss", "netstat", "ping",
    "dig", "host", "nslookup", "journalctl", "dmesg", "tput", "clear", "reset", "stty",
})
# Operand words a program may run as a command: judged as that command when a program the
# gateway does not know has them (``taskset 1 rm …``).
_RUNNABLE = frozenset(KNOWN_PROGRAMS - _INERT - {"cd", "pushd", "popd", "export", "declare",
                                                 "typeset", "readonly", "local", "unset",
                                                 "set", "history", "alias", "hash"})
_COMMAND_OPTIONS = frozenset({"-c", "--command", "-e", "--exec", "--eval", "-x", "--execute",
                              "--run", "--shell-command", "-TT"})
# Builtins that set variables from their words (CDPATH among them).
_SETS_VARIABLES = frozenset({"export", "declare", "typeset", "readonly", "local", "read",
                             "mapfile", "readarray", "printf", "let", "eval", "source", "."})
