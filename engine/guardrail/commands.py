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

from engine.guardrail.shellwords import (
    MAX_DEPTH,
    MAX_LENGTH,
    Compound,
    Pipeline,
    Redirect,
    Script,
    ShellParseError,
    SimpleCommand,
    parse,
)

MAX_UNWRAP = 64  # wrappers around one command (sudo env nice …)
MAX_NESTED_CODE = 2 * MAX_LENGTH  # characters of code given to shells, parsed in turn

COMMAND_KINDS = frozenset({
    "RM", "RM RECURSIVE", "RM FORCE", "RM NO PRESERVE ROOT", "MKFS", "DD TO DEVICE",
    "WRITE TO DEVICE", "POWER", "DOWNLOAD TO SHELL", "DECODE TO SHELL", "CHMOD 777",
    "CHMOD 777 RECURSIVE", "CHOWN RECURSIVE", "FIREWALL FLUSH", "KUBECTL DELETE",
    "FORK BOMB", "EVAL", "INTERPRETER CODE", "SCRIPT FILE", "HISTORY OFF", "FIND DELETE",
})

# Reasons in ``opaque``.
RUNS_SCRIPT = "runs a script file"
RUNS_OUTPUT = "runs code that a command produces at run time"
EXPANDED_CODE = "runs shell code built from expansions at run time"
READS_INPUT = "runs commands from its standard input"


@dataclass(frozen=True)
class CommandFacts:
    """What one command line runs, as far as it can be seen."""

    text: str
    commands: tuple[tuple[str, ...], ...]
    programs: frozenset[str]
    kinds: frozenset[str]
    paths: frozenset[str]
    opaque: tuple[str, ...]

    def describe(self) -> str:
        parts = [", ".join(sorted(self.kinds)) or "no risky command"]
        if self.programs:
            parts.append("runs " + ", ".join(sorted(self.programs)))
        if self.paths:
            parts.append("on " + ", ".join(sorted(self.paths)))
        if self.opaque:
            parts.append("not seen: " + ", ".join(self.opaque))
        return "; ".join(parts)


def classify_command(line: str) -> CommandFacts:
    """The facts of a shell command line; raises ``ShellParseError`` when it cannot be read
    (or nests more than ``MAX_DEPTH`` levels deep), for the caller's fallback."""
    walker = _Walker()
    flow = walker.script(parse(line, max_depth=MAX_DEPTH), 0)
    if flow.reads not in ("", _ANY):
        walker.note(READS_INPUT)
    return CommandFacts(
        text=line,
        commands=tuple(walker.commands),
        programs=frozenset(walker.programs),
        kinds=frozenset(walker.kinds),
        paths=frozenset(walker.paths),
        opaque=tuple(walker.opaque),
    )


class _Arg(NamedTuple):
    """One word of a command as the walker sees it."""

    text: str
    dynamic: bool = False  # holds an expansion only known at run time
    computed: bool = False  # holds a command or process substitution
    sources: frozenset[str] = frozenset()  # what those produce: "download", "decode"


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
    def __init__(self) -> None:
        self.commands: list[tuple[str, ...]] = []
        self.programs: set[str] = set()
        self.kinds: set[str] = set()
        self.paths: set[str] = set()
        self.opaque: dict[str, None] = {}  # ordered, each reason once
        self.nested_code = 0

    def note(self, reason: str) -> None:
        self.opaque.setdefault(reason)

    def add_paths(self, args: Iterable[_Arg | str]) -> None:
        for arg in args:
            text = arg if isinstance(arg, str) else arg.text
            if not text:
                continue
            path = _normpath(text)
            self.paths.add(path)
            parent, _, last = path.rpartition("/")
            if not isinstance(arg, str) and arg.dynamic and last and set(last) == {"*"}:
                self.paths.add(parent or "/")  # dir/* empties dir: judge it as dir

    def to_shell(self, sources: Iterable[str]) -> None:
        self.kinds.update(_TO_SHELL[source] for source in sources)

    # --- the tree -----------------------------------------------------------------------

    def script(self, script: Script, depth: int) -> _Flow:
        sources: set[str] = set()
        reads = ""
        for pipeline in script:
            flow = self.pipeline(pipeline, depth)
            sources |= flow.sources
            if reads in ("", _ANY):
                reads = flow.reads or reads
        return _Flow(frozenset(sources), reads)

    def pipeline(self, pipeline: Pipeline, depth: int) -> _Flow:
        flows = [self.stage(stage, depth) for stage in pipeline.stages]
        upstream: set[str] = set()
        for i, flow in enumerate(flows):
            if i and flow.reads:
                self.to_shell(upstream)
                echoed = flows[i - 1].echo
                if flow.reads == _ANY:
                    pass  # already reported as a program name known only at run time
                elif echoed is None:
                    self.note(READS_INPUT)
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
            flow = self.script(stage.body, depth)
        else:
            _assignments(self, stage.assignments, depth)
            args = [_Arg(text, i in stage.unresolved, i in words,
                         frozenset(words.get(i, ()))) for i, text in enumerate(stage.argv)]
            flow = self.invoke(args, depth) if args else _Flow()
        if flow.reads not in ("", _ANY) and stdin is not None:
            fed = self.run_input(stdin, flow.reads, depth)  # a file, or text on the line
            flow = flow._replace(sources=flow.sources | fed.sources, reads=fed.reads)
        sources = flow.sources.union(*words.values(), *redirected.values())
        if feeds:  # a >( … ) that runs code: this command's output is its input
            if flow.sources:
                self.to_shell(flow.sources)
            else:
                flow = flow._replace(reads=flow.reads or feeds)
        return flow._replace(sources=sources)

    def substitutions(self, stage: SimpleCommand | Compound, depth: int
                      ) -> tuple[dict[int, set[str]], dict[int, set[str]], str]:
        """Walk the commands inside words; what they produce, per argv index and per
        redirection, and the language of a ``>( … )`` that runs code."""
        words: dict[int, set[str]] = {}
        redirected: dict[int, set[str]] = {}
        feeds = ""
        for sub in stage.substitutions:
            flow = self.script(sub.script, depth)
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
            if op in (">", ">>", ">|", "<>", "&>", "&>>") or (
                    op == ">&" and not redirect.target.isdigit() and redirect.target != "-"):
                self.write_to(redirect.target)

    def write_to(self, target: str) -> None:
        path = _normpath(target)
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
            if head.dynamic or head.computed:
                self.note(f"{head.text} as program name")
                self.to_shell(head.sources)
                if wrapped and args[1:] and not args[1].text.startswith("-"):  # sudo $OPTS rm
                    args = args[1:]
                    continue
                self.commands.append(tuple(a.text for a in args))
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
        if _is_script_path(head.text):
            self.kinds.add("SCRIPT FILE")
            self.note(RUNS_SCRIPT)
        if program in SHELLS or program in _OTHER_SHELLS:
            return self.shell(program, rest, depth, via_xargs)
        family = _interpreter(program)
        if family is not None:
            return self.interpreter(program, _INTERPRETERS[family], rest, depth, via_xargs)
        handler = _HANDLERS.get(program)
        if handler is None and program.startswith("mkfs."):
            handler = _mkfs
        flow = (handler(self, rest, depth) if handler is not None else None) or _Flow()
        return flow._replace(sources=flow.sources | _produces(program, rest),
                             echo=_echo_text(program, rest))

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
        if i >= len(args):
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
            return _Flow()
        if code.dynamic:
            self.note(EXPANDED_CODE)
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


def _getopt(args: list[_Arg], with_arg: str = "", long_with_arg: tuple[str, ...] = (),
            optional: str = "") -> _Options:
    """Options up to the first operand or ``--``, as getopt reads them: ``-uroot``,
    ``-Eu root``, ``--user root``, ``--user=root``, ``--us root``."""
    found: dict[str, _Arg] = {}
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
            if eq:
                found[name] = arg._replace(text=value)
            elif any(option.startswith(name) for option in long_with_arg) and len(name) > 3:
                found[name] = _nth(args, i) or _Arg("")
                i += 1
            else:
                found[name] = _Arg("")
            continue
        for j, letter in enumerate(word[1:], 2):
            if letter in with_arg or letter in optional:
                given = arg._replace(text=word[j:])
                if not given.text and letter in with_arg:
                    given = _nth(args, i) or _Arg("")
                    i += 1
                found["-" + letter] = given
                break
            found["-" + letter] = _Arg("")
    return _Options(found, args[i:])


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


def _sudo(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, "aCcDgpRrTtUu", ("--askpass", "--close-from", "--chdir", "--group",
                                           "--host", "--prompt", "--chroot", "--role", "--type",
                                           "--command-timeout", "--other-user", "--user",
                                           "--login-class"), optional="h")
    if {"-e", "--edit", "-l", "--list", "-v", "--validate", "-V", "--version", "-K",
            "--remove-timestamp"} & opts.found.keys():
        return None
    rest = _skip_assignments(opts.rest)
    if not rest and {"-s", "--shell", "-i", "--login"} & opts.found.keys():
        return [_SH]
    return rest or None


def _doas(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, "Cu")
    if "-C" in opts.found:
        return None
    return opts.rest or ([_SH] if "-s" in opts.found else None)


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
            if name not in ("--command", "--session-command", "--shell", "--group",
                            "--supp-group", "--whitelist-environment", "--user"):
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


def _xargs(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, "adEILnPs", ("--arg-file", "--delimiter", "--max-args", "--max-procs",
                                       "--max-chars", "--process-slot-var"), optional="eil")
    return opts.rest or [_Arg("echo")]


def _command(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args)
    return None if {"-v", "-V"} & opts.found.keys() else opts.rest or None


def _chroot(args: list[_Arg]) -> list[_Arg] | None:
    rest = _getopt(args, long_with_arg=("--userspec", "--groups")).rest
    return (rest[1:] or [_SH, _Arg("-i")]) if rest else None


def _watch(args: list[_Arg]) -> list[_Arg] | None:
    opts = _getopt(args, "nq", ("--interval",), optional="d")
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


def _kubectl_host(args: list[_Arg]) -> list[_Arg] | None:
    return args if args and args[0].text == "kubectl" else None


_WRAPPERS: dict[str, _Wrapper] = {
    "sudo": _sudo, "doas": _doas, "su": _su, "runuser": _su, "env": _env, "xargs": _xargs,
    "command": _command, "chroot": _chroot, "watch": _watch, "script": _script,
    "busybox": _busybox, "k3s": _kubectl_host, "microk8s": _kubectl_host,
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
    w.add_paths(operands)


def _grants_everyone_everything(mode: str) -> bool:
    """777, 0777, a+rwx, ugo=rwx, +rwx, u+rwx,go+rwX …"""
    if re.fullmatch(r"[0-7]{3,5}", mode):
        return mode.endswith("777")
    granted: dict[str, set[str]] = {"u": set(), "g": set(), "o": set()}
    for clause in mode.split(","):
        match = re.fullmatch(r"([ugoa]*)((?:[-+=][rwxXst]*)+)", clause)
        if match is None:
            return False
        who = match.group(1) or "a"
        for op, perms in re.findall(r"([-+=])([rwxXst]*)", match.group(2)):
            for cls in ("ugo" if "a" in who else who):
                if op in "+=":
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
    if mode is not None and _grants_everyone_everything(mode):
        w.kinds.add("CHMOD 777")
        if recursive:
            w.kinds.add("CHMOD 777 RECURSIVE")
    w.add_paths(operands)


def _chown(w: _Walker, args: list[_Arg], depth: int) -> None:
    options, operands = _split_options(args)
    known = ("--recursive", "--from", "--reference", "--changes", "--silent", "--quiet",
             "--verbose", "--dereference", "--no-dereference", "--preserve-root",
             "--no-preserve-root", "--help", "--version")
    names = {_long(o, known) for o in options if o.startswith("--")}
    if "--recursive" in names or any("R" in o for o in options if not o.startswith("--")):
        w.kinds.add("CHOWN RECURSIVE")
    w.add_paths(operands if "--reference" in names else operands[1:])


def _dd(w: _Walker, args: list[_Arg], depth: int) -> None:
    for arg in args:
        if arg.text.startswith("of="):
            path = _normpath(arg.text[3:]) if arg.text[3:] else ""
            w.add_paths([path])
            if _is_device(path):
                w.kinds.add("DD TO DEVICE")


def _mkfs(w: _Walker, args: list[_Arg], depth: int) -> None:
    w.kinds.add("MKFS")
    operands = [a for a in args if not a.text.startswith("-")]
    w.add_paths([a for a in operands if "/" in a.text] or operands[-1:])


def _writes(w: _Walker, args: list[_Arg], depth: int) -> None:
    """tee, shred, blkdiscard: their operands are written to."""
    for arg in _split_options(args)[1]:
        w.write_to(arg.text)


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
            i += "=" not in word and len(name) > 3 and any(o.startswith(name)
                                                           for o in long_with_arg)
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
        elif re.fullmatch(r"-[a-zA-Z]*[FX][a-zA-Z]*", word):
            w.kinds.add("FIREWALL FLUSH")


def _nft(w: _Walker, args: list[_Arg], depth: int) -> None:
    if "flush" in " ".join(a.text for a in args).split():
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
        "--log-file", "--profile", "--profile-output", "--password", "--username", "--v"))
    if operands[:1] == ["delete"]:
        w.kinds.add("KUBECTL DELETE")


def _eval(w: _Walker, args: list[_Arg], depth: int) -> _Flow:
    w.kinds.add("EVAL")
    return w.run_code(_joined(args), "sh", depth) if args else _Flow()


def _source(w: _Walker, args: list[_Arg], depth: int) -> _Flow:
    w.kinds.add("EVAL")
    operands = args[1:] if args[:1] and args[0].text == "--" else args
    return w.run_file(operands[0], "sh", depth) if operands else _Flow()


def _find(w: _Walker, args: list[_Arg], depth: int) -> _Flow:
    """find's starting points; ``-delete``; the commands of ``-exec … ;`` (``{}`` stands for
    the starting point when there is one)."""
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
            w.add_paths(starts or ["."])
        elif word in ("-exec", "-execdir", "-ok", "-okdir"):
            inner: list[_Arg] = []
            while i < len(args) and args[i].text not in (";", "+"):
                arg = args[i]
                if arg.text == "{}" and len(starts) == 1:
                    arg = starts[0]._replace(dynamic=True)
                inner.append(arg)
                i += 1
            i += 1
            inner_flow = w.nested(inner, depth)
            flow = _Flow(flow.sources | inner_flow.sources)
    return flow


_HISTORY_OFF = re.compile(r"HISTFILE\+?=(/dev/null)?|(HISTSIZE|HISTFILESIZE|SAVEHIST)\+?=0")


def _assignments(w: _Walker, words: Iterable[str], depth: int) -> None:
    """History switched off; PROMPT_COMMAND's code (it runs at every prompt)."""
    for word in words:
        if _HISTORY_OFF.fullmatch(word):
            w.kinds.add("HISTORY OFF")
        name, _, value = word.partition("=")
        if name.rstrip("+") == "PROMPT_COMMAND":
            w.run_code(_Arg(value), "sh", depth)


def _declare(w: _Walker, args: list[_Arg], depth: int) -> None:
    _assignments(w, (a.text for a in args), depth)


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
    texts = [a.text for a in args]
    if any(t.startswith("+") and "o" in t and texts[i + 1:i + 2] == ["history"]
           for i, t in enumerate(texts)):
        w.kinds.add("HISTORY OFF")


def _history(w: _Walker, args: list[_Arg], depth: int) -> None:
    if any(re.fullmatch(r"-[a-z]*c[a-z]*", a.text) for a in args):
        w.kinds.add("HISTORY OFF")


_HANDLERS: dict[str, _Handler] = {
    "rm": _rm, "chmod": _chmod, "chown": _chown, "dd": _dd, "tee": _writes,
    "shred": _writes, "blkdiscard": _writes,
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
