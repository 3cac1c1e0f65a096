"""The paths a shell line reads and writes, as far as the gateway can name them (issue 14).

For the memory of files written by transforms (``engine.ssh.written``): ``reads`` says which
paths a line may print the content of (its readers' operands, input redirections; the directories
a recursive reader walks; a word only known at run time), ``writes`` which it writes
(redirections, ``tee``, ``sort -o``, ``dd of=``, ``sed -i``, a copier's destination …),
``copies`` what it copies as it is, and ``transforms`` whether what it writes may be what it read
changed (``transforms_output``, short of copiers). Words are read as the shell expands them
(quotes, braces, globs, ``~``), wrappers taken off (``sudo``, ``sh -c``).

Programs that name files in a script of their own are read too (``engine.guardrail.scriptwrites``):
awk's ``print > "f"`` and ``getline < "f"``, sed's ``w``, ``s///w`` and ``r``. What runs code
the line does not hold may write any file (``Written(None)``): a script in a file (``awk -f``,
``sed -f``), an ed or ex script and an editor told to run commands (``vim -es``, ``-c``,
``+cmd``), a shell or ``parallel`` fed code through a pipe or a file. A word a runner fills in
at run time (``xargs``'s input, its ``-I`` string, ``find -exec``'s ``{}``, ``parallel``'s
``{…}``) is one only known at run time (``RUNTIME``): a reader of it may read any file, a
writer writes where it is known to be. An archive unpacked (``tar x``, ``unzip``, ``7z x``,
``cpio -i``/``-p``) writes everything under where it lands; a file decompressed, its name
short of the suffix; any program, the file its output option names (``-o``, ``-out``,
``--output``); a command given in an option (``tar --to-command``), what it writes.

A path is a ``Place``: absolute, or relative to a directory the gateway does not know (an
exec's home, after ``cd`` in the same line, a relative ``cd``), which may be that name under any
directory: ``same`` and ``under`` say whether two places may be one path, or one under the
other, part by part (globs matched as globs). A path that climbs (``a/b/../c``) may lead
anywhere a link goes: its tail counts under any directory too.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from engine.guardrail.commands import CDPATH_SET, SHELLS, Cwd, classify_command, long_options
from engine.guardrail.scriptwrites import RUNTIME, ScriptFiles, awk_files, sed_files
from engine.guardrail.shellwords import (
    Compound,
    Script,
    ShellParseError,
    SimpleCommand,
    brace_expand,
    has_glob,
    parse,
    pipelines,
    unescape,
)
from engine.ssh.output import PLAIN_PROGRAMS, transforms_output
from engine.ssh.shellstate import destinations, leaves_state, writes_file
from engine.ssh.writeropts import WRITERS, copied, outputs, prefix_glob

# Programs whose path operands are names to them, not content they print.
_NAMES_ONLY = frozenset({
    "ls", "cd", "pushd", "popd", "pwd", "echo", "printf", "stat", "du", "df", "test", "[",
    "true", "false", ":", "exit", "sleep", "umask", "unset", "export", "stty", "id", "whoami",
    "groups", "hostname", "uname", "ps", "free", "uptime", "wc", "mkdir", "rmdir", "rm",
    "touch", "chmod", "chown", "chgrp", "kill", "which", "type", "basename", "dirname",
    "realpath", "readlink", "sync", "file",
})
# Programs that copy a file as it is: what they write is marked when what they read may be.
_COPIERS = frozenset({"cp", "mv", "install", "ginstall", "ln", "link", "rsync"})
_RECURSIVE_ALWAYS = frozenset({"rg", "ag", "ack", "find", "tar", "bsdtar", "zip", "7z", "7za",
                               "cpio", "rsync", "tree", "jar", "fd", "fdfind"})
_RECURSIVE_OPTIONS = {
    "grep": ("rR", ("--recursive", "--dereference-recursive", "--directories")),
    "egrep": ("rR", ("--recursive", "--dereference-recursive", "--directories")),
    "fgrep": ("rR", ("--recursive", "--dereference-recursive", "--directories")),
    "cp": ("rRa", ("--recursive", "--archive")), "scp": ("r", ()),
    "diff": ("r", ("--recursive",)), "zgrep": ("r", ("--recursive",)),
}
# Options whose value is a number, a pattern or a script, not a file the program prints: short
# letters by program, and long names.
_GREP_VALUES = "efmABCdD"
_WITH_VALUE = {
    "head": "nc", "tail": "ncs", "grep": _GREP_VALUES, "egrep": _GREP_VALUES,
    "fgrep": _GREP_VALUES, "zgrep": _GREP_VALUES, "rg": "efgmACtTM", "ag": "ABCmG",
    "sort": "ktST", "uniq": "fsw", "cut": "bcdf", "fold": "w", "od": "AjNtw", "xxd": "cglos",
    "base64": "w", "nl": "bdfhilnsvw", "sed": "el", "awk": "vFfi", "gawk": "vFfi",
    "column": "cst", "pr": "hlwo", "fmt": "w", "split": "abdlnt", "dd": "", "diff": "IxX",
    "cp": "S", "scp": "PicFloJSD", "rsync": "e", "tar": "bCT", "script": "cE",
}
_LONG_WITH_VALUE = frozenset({
    "--lines", "--bytes", "--max-count", "--regexp", "--context", "--after-context",
    "--before-context", "--key", "--field-separator", "--width", "--delimiter", "--fields",
    "--characters", "--expression", "--skip-fields", "--skip-chars", "--check-chars",
    "--sleep-interval", "--max-depth", "--glob", "--type", "--label", "--exclude",
    "--include", "--exclude-dir",
})
_PATTERN_FIRST = frozenset({"grep", "egrep", "fgrep", "zgrep", "rg", "ag", "ack"})
_CD = frozenset({"cd", "pushd", "popd"})
_MAX_NESTED = 4  # shells in shells (sh -c "sh -c …"): deeper is a line not read
_DEVICES = ("/dev/", "/proc/")
_PROCESS_SUBSTITUTION = ("<(", ">(")
_EXPANSION = re.compile(r"[$`]")
_GLOB_START = re.compile(r"[$`*?\[{]")


@dataclass(frozen=True)
class Place:
    """A path as far as the gateway can name it: absolute (``anchored``) or under a directory
    it does not know; its components may be glob patterns (a read)."""

    parts: tuple[str, ...]
    anchored: bool
    pattern: bool = False


@dataclass(frozen=True)
class Reads:
    """The paths a line may read: ``files`` (and everything under those a recursive reader
    walks: ``trees``), and whether a word only known at run time names one (``unknown``)."""

    files: tuple[Place, ...] = ()
    trees: tuple[Place, ...] = ()
    unknown: bool = False

    @property
    def any(self) -> bool:
        return bool(self.files or self.trees or self.unknown)


@dataclass(frozen=True)
class Written:
    """A path a line writes: ``tree`` when it may be a directory (or a name known only in
    part: everything under the part known); ``place`` None: no part of it is known."""

    place: Place | None
    tree: bool = False


# --- paths ---------------------------------------------------------------------------------------


def place(word: str, cwd: Cwd, pattern: str | None = None) -> list[Place]:
    """Where a path word may point, once ``~`` and the working directories are applied (one
    place per directory the line may run in; relative to an unknown one when none is known).
    ``pattern``: the word as the shell expands it (``SimpleCommand.patterns``: quoted
    characters escaped), its braces and globs kept as globs; without it, the word is taken as
    written, a glob character as a glob."""
    if pattern is None:
        return _place(word, has_glob(word), cwd)
    out: list[Place] = []
    for each in brace_expand(pattern) or [pattern]:
        globbed = has_glob(each)
        text = re.sub(r"\\(.)", lambda m: f"[{m.group(1)}]" if m.group(1) in "*?[]"
                      else m.group(1), each) if globbed else unescape(each)
        out += _place(text, globbed, cwd)
    return out


# /proc/PID/root and /proc/PID/cwd are other processes' views of the file system: what follows
# is a path from their root or working directory; their open files and mappings may be any file.
_PROC_VIEW = re.compile(r"^/+proc/+[^/]+/+(root|cwd)(/.*)?$")
_PROC_ANY = re.compile(r"^/+proc/+[^/]+/+(fd|fdinfo|map_files)(/|$)")


def _place(text: str, pattern: bool, cwd: Cwd) -> list[Place]:
    view = _PROC_VIEW.match(text)
    if view is not None:
        rest = view.group(2) or "/"
        inner = (_place(rest, pattern, cwd) if view.group(1) == "root"
                 else [_floating(rest.lstrip("/") or ".", pattern)])
        return [Place(path_parts(posixpath.normpath(text)), True, pattern), *inner]
    if _PROC_ANY.match(text):
        return [Place(path_parts(posixpath.normpath(text)), True, pattern),
                _floating("*", True)]  # an open file of another process: any
    climbs = text.split("/")
    if ".." in climbs[1:] and climbs[0] != "..":
        # a/b/../c: where ".." leads depends on what a/b is (a link goes elsewhere), so also
        # what follows the last "..", under any directory
        last = len(climbs) - 1 - climbs[::-1].index("..")
        return [*_place(posixpath.normpath(text), pattern, cwd),
                _floating("/".join(climbs[last + 1:]), pattern)]
    if text.startswith("~"):
        _, _, rest = text.partition("/")
        return [_floating(rest, pattern)]
    if text.startswith("/"):
        return [Place(path_parts(posixpath.normpath(text)), True, pattern)]
    if cwd is None or cwd & CDPATH_SET or not cwd:
        return [_floating(text, pattern)]
    return [Place(path_parts(posixpath.normpath(posixpath.join(d, text))), True, pattern)
            if d.startswith("/") else _floating(posixpath.join(d, text), pattern)
            for d in sorted(cwd)]


def _floating(text: str, pattern: bool) -> Place:
    parts = [p for p in posixpath.normpath(text or ".").split("/") if p not in ("", ".")]
    while parts and parts[0] == "..":
        parts.pop(0)  # ../x: x, under some directory
    return Place(tuple(parts), False, pattern)


def path_parts(path: str) -> tuple[str, ...]:
    """An absolute path's components."""
    return tuple(p for p in path.split("/") if p)


def _match(a: str, a_pattern: bool, b: str, b_pattern: bool) -> bool:
    if a_pattern and b_pattern:
        return True  # two globs may match one name (fail closed)
    if a_pattern:
        return fnmatchcase(b, a)
    return fnmatchcase(a, b) if b_pattern else a == b


def same(a: Place, b: Place) -> bool:
    """Whether ``a`` and ``b`` (either's parts perhaps globs) may be one path: alike part by
    part when both are absolute, else the shorter relative one alike with the other's end."""
    if (a.anchored and b.anchored and len(a.parts) != len(b.parts)) or (
            b.anchored and len(b.parts) < len(a.parts)) or (
            a.anchored and len(a.parts) < len(b.parts)):
        return False
    n = min(len(a.parts), len(b.parts))
    return all(_match(a.parts[len(a.parts) - i], a.pattern, b.parts[len(b.parts) - i],
                      b.pattern) for i in range(1, n + 1))


def under(inner: Place, outer: Place) -> bool:
    """Whether ``inner`` may be ``outer`` or a path under it. A relative ``inner`` may be under
    anything (its directory is not known)."""
    if not inner.anchored:
        return True
    return any(same(Place(inner.parts[:k], True, inner.pattern), outer)
               for k in range(len(inner.parts) + 1))


# --- what a line reads and writes ----------------------------------------------------------------


def _stages(line: str) -> Iterator[SimpleCommand | Compound]:
    for pipeline in pipelines(parse(line)):
        yield from pipeline.stages


def _fed_input(script: Script) -> set[int]:
    """The stages (``id``) whose standard input is not the terminal's or the exec's, whose
    lines the gateway judges: a pipe, a file, a here-document."""
    fed: set[int] = set()
    for pipeline in pipelines(script):
        for i, stage in enumerate(pipeline.stages):
            if i or any(r.op in ("<", "0<", "<<", "<<-", "<<<", "<>", "0<>")
                        for r in stage.redirects):
                fed.add(id(stage))
    return fed


def _programs(stage: SimpleCommand) -> list[tuple[str, ...]]:
    """The commands a stage runs once wrappers are taken off (``sudo cp a b``: ``cp a b``).
    A word a runner fills in at run time (``xargs``'s input, its ``-I`` string, ``find
    -exec``'s ``{}``, ``parallel``'s ``{…}``) holds ``RUNTIME`` where its value goes."""
    if not stage.argv:
        return []  # assignments only
    try:
        commands = [c for c in classify_command(shlex.join(stage.argv)).commands if c]
    except ShellParseError:
        return [stage.argv]
    fed = _fed_marker(stage.argv, commands)
    out: list[tuple[str, ...]] = []
    for argv in commands:
        name = _name(argv[0])
        if name == "find" and _FIND_EXEC & set(argv):
            out.append(argv)
            out += _find_exec(argv)
            break  # what classify found for -exec follows: read again, {} as RUNTIME
        if name in _RUNNERS:
            out.append(argv)
            continue
        words = [RUNTIME if w == "(input)" else w for w in argv[1:]]
        if fed is not None:
            words = [fed.sub(RUNTIME, w) for w in words]
        if fed is not None and fed.pattern == _PARALLEL_FIELD and not any(
                RUNTIME in w for w in words):
            words.append(RUNTIME)  # parallel appends its arguments
        out.append((argv[0], *words))
    return out or [stage.argv]


_RUNNERS = frozenset({"xargs", "parallel", "find"})
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_PARALLEL_FIELD = r"\{[^{}]*\}"


def _fed_marker(argv: tuple[str, ...],
                commands: list[tuple[str, ...]]) -> re.Pattern[str] | None:
    """What stands, in the words of the command a runner in ``argv`` runs, for what it fills
    in: xargs's ``-I``/``-i``/``--replace`` string, parallel's ``{}`` fields. (xargs is a
    wrapper: it comes before the command it runs, not among its words.)"""
    if any(_name(c[0]) == "parallel" for c in commands):
        return re.compile(_PARALLEL_FIELD)
    first = argv.index(commands[0][0]) if commands and commands[0][0] in argv else len(argv)
    for i, word in enumerate(argv[:first]):
        if _name(word) != "xargs":
            continue
        rest = argv[i + 1:]
        for j, option in enumerate(rest):
            if option == "--" or not option.startswith("-"):
                break
            if option.startswith("--"):
                if long_options(option.split("=", 1)[0], ("--replace",)):
                    return re.compile(re.escape(option.partition("=")[2] or "{}"))
            elif option.startswith("-I"):
                value = option[2:] or (rest[j + 1] if j + 1 < len(rest) else "{}")
                return re.compile(re.escape(value or "{}"))
            elif option.startswith("-i"):
                return re.compile(re.escape(option[2:] or "{}"))
        return None
    return None


def _find_exec(argv: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The commands of find's ``-exec … ;`` (and ``-execdir``, ``-ok``), each file found
    where ``{}`` stands (``RUNTIME``), wrappers taken off."""
    out: list[tuple[str, ...]] = []
    i = 0
    while i < len(argv):
        if argv[i] not in _FIND_EXEC:
            i += 1
            continue
        inner: list[str] = []
        i += 1
        while i < len(argv) and argv[i] not in (";", "+"):
            inner.append(argv[i].replace("{}", RUNTIME))
            i += 1
        if not inner:
            continue
        try:
            found = [c for c in classify_command(shlex.join(inner)).commands if c]
        except ShellParseError:
            found = []
        out += found or [tuple(inner)]
    return out


def _name(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _code(argv: tuple[str, ...]) -> str | None:
    """The code a shell runs (``sh -c CODE``, ``bash -ec CODE``), or None."""
    if _name(argv[0]) not in SHELLS:
        return None
    words = argv[1:]
    for i, word in enumerate(words):
        if not word.startswith("-") or word.startswith("--"):
            return None
        if "c" in word[1:]:
            return words[i + 1] if i + 1 < len(words) else None
    return None


def _line_cwd(line: str, cwd: Cwd) -> Cwd:
    """The working directory for a line's paths: not known once it may change in the line
    (``cd``; ``find -execdir`` runs its command in each found file's directory)."""
    try:
        for stage in _stages(line):
            if isinstance(stage, SimpleCommand) and stage.argv and (
                    _name(stage.argv[0]) in _CD or {"-execdir", "-okdir"} & set(stage.argv)):
                return None
    except ShellParseError:
        return None
    return cwd


def reads(line: str, cwd: Cwd = None, depth: int = 0, *, unreadable: bool = True) -> Reads:
    """The paths ``line`` may read (a line the gateway cannot read: any, or none when it is
    not ``unreadable``: a guessed reading of a line that does not parse is no line at all)."""
    if depth > _MAX_NESTED:
        return Reads(unknown=True)
    try:
        stages = list(_stages(line))
    except ShellParseError:
        return Reads(unknown=unreadable)
    cwd = _line_cwd(line, cwd)
    files: list[Place] = []
    trees: list[Place] = []
    unknown = False
    for stage in stages:
        for redirect in stage.redirects:
            op = redirect.op.lstrip("0123456789")
            if op in ("<", "<>"):
                if redirect.unresolved and _EXPANSION.search(redirect.target):
                    unknown = True
                else:
                    files += place(redirect.target, cwd)
        if not isinstance(stage, SimpleCommand):
            continue
        dynamic = {stage.argv[i] for i in stage.dynamic}
        patterns = dict(zip(stage.argv, stage.patterns, strict=False))
        for word in _xargs_files(stage.argv):  # xargs -a FILE: its input, as words
            if word in dynamic:
                unknown = True
            else:
                files += place(word, cwd)
        for argv in _programs(stage):
            name = _name(argv[0])
            if (code := _code(argv)) is not None:
                inner = reads(code, cwd, depth + 1)
                files += inner.files
                trees += inner.trees
                unknown = unknown or inner.unknown
                continue
            if name in _NAMES_ONLY or name in _COPIERS or name == "tee":
                continue  # a copier prints nothing: what it copies is followed (``copies``)
            if name in _SCRIPT_EDITORS and _scripted(name, argv):
                unknown = True  # its script may read any file (ed's ``r``, ex's ``:r``)
            if (script := _script_files(name, argv, dynamic)) is not None:
                unknown = unknown or script.unknown
                for word in script.reads:
                    if RUNTIME in word:
                        unknown = True
                    else:
                        files += place(word, cwd)
                for command in script.commands:
                    inner = reads(command, cwd, depth + 1)
                    files += inner.files
                    trees += inner.trees
                    unknown = unknown or inner.unknown
            operands = _operands(name, argv[1:])
            if name == "dd":
                operands = [w[3:] for w in argv[1:] if w.startswith("if=")]
            recursive = name in _RECURSIVE_ALWAYS or _recursive(name, argv[1:])
            if recursive and not operands:
                operands = ["."]  # the working directory
            for word in operands:
                if word.startswith(_PROCESS_SUBSTITUTION):
                    continue  # <(…): its commands are walked with the line's
                if word in dynamic or RUNTIME in word:
                    unknown = True
                    continue
                (trees if recursive else files).extend(place(word, cwd, patterns.get(word)))
    return Reads(tuple(files), tuple(trees), unknown)


# Programs that show what a file's metadata holds — its size, times, counts, type — always, and
# ``ls``, ``find``, ``date`` with the options that do. A transform that writes a file may have
# put what it read there (one file per digit, sized by the digit): ``lists``.
_SHOWS_METADATA = frozenset({"stat", "du", "wc", "file", "test", "[", "[[", "tree", "lsattr",
                             "getfacl", "getfattr", "dir", "vdir", "cmp", "diff"})
_LISTS_HERE = frozenset({"ls", "dir", "vdir", "du", "find", "tree"})  # none named: "."
_RECURSIVE_LISTERS = frozenset({"du", "find", "tree"})
# ls options that show only names, in the order of their names (``-v``, ``-X`` sort names)
_LS_NAMES = frozenset("aA1CxmFpdRbqQNBDwvXIT")
_LS_NAMES_LONG = ("--all", "--almost-all", "--color", "--classify", "--file-type",
                  "--indicator-style", "--quoting-style", "--escape", "--literal", "--hide",
                  "--ignore", "--width", "--directory", "--recursive", "--hide-control-chars",
                  "--show-control-chars", "--group-directories-first", "--zero",
                  "--ignore-backups", "--dired", "--tabsize", "--hyperlink")
# find's words that choose by name or depth and print names only
_FIND_NAMES = frozenset({"-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename",
                         "-regex", "-iregex", "-type", "-xtype", "-maxdepth", "-mindepth",
                         "-print", "-print0", "-o", "-a", "-or", "-and", "-not", "!", "(", ")",
                         "-depth", "-prune", "-L", "-P", "-H", "-xdev", "-mount", "-follow",
                         "-true", "-false", "-regextype", "-quit", ","})


def _shows_metadata(name: str, words: tuple[str, ...]) -> bool:
    """Whether a command may print a file's size, times, counts or type."""
    if name in _SHOWS_METADATA:
        return True
    if name == "ls":
        for word in words:
            if word == "--":
                break
            if word.startswith("--"):
                if not long_options(word.split("=", 1)[0], _LS_NAMES_LONG):
                    return True
            elif word.startswith("-") and set(word[1:]) - _LS_NAMES:
                return True
        return False
    if name == "find":
        return any(w.startswith("-") and w not in _FIND_NAMES for w in words)
    if name == "date":
        return any(w.startswith(("-r", "--ref")) or (
            w.startswith("-") and not w.startswith("--") and "r" in w) for w in words)
    return False


def lists(line: str, cwd: Cwd = None, depth: int = 0, *, unreadable: bool = True) -> Reads:
    """The paths whose metadata ``line`` may print (``_shows_metadata``): each it names, what a
    directory it names holds (its entries: ``Place`` with a glob last; everything under it
    for ``du``, ``find``, ``tree``, ``ls -R``), the working directory when it names none;
    a word only known at run time may be any path (a line the gateway cannot read: any,
    unless not ``unreadable``, as in ``reads``)."""
    if depth > _MAX_NESTED:
        return Reads(unknown=True)
    try:
        stages = list(_stages(line))
    except ShellParseError:
        return Reads(unknown=unreadable)
    cwd = _line_cwd(line, cwd)
    files: list[Place] = []
    trees: list[Place] = []
    unknown = False
    for stage in stages:
        if not isinstance(stage, SimpleCommand):
            continue
        dynamic = {stage.argv[i] for i in stage.dynamic}
        patterns = dict(zip(stage.argv, stage.patterns, strict=False))
        for argv in _programs(stage):
            name = _name(argv[0])
            if (code := _code(argv)) is not None:
                inner = lists(code, cwd, depth + 1)
                files += inner.files
                trees += inner.trees
                unknown = unknown or inner.unknown
                continue
            words = argv[1:]
            if not _shows_metadata(name, words):
                continue
            if name == "find":
                operands = list(itertools.takewhile(
                    lambda w: not w.startswith("-") and w not in ("(", "!"), words))
            elif name == "date":
                operands = [w.split("=", 1)[1] if "=" in w else w[2:] for w in words
                            if w.startswith(("-r", "--ref")) and (w[2:] or "=" in w)]
                operands += [words[k + 1] for k, w in enumerate(words[:-1])
                             if w in ("-r", "--reference")]
            else:
                operands = [w for w in _operands(name, words) if w not in ("]", "]]")]
            if not operands and name in _LISTS_HERE:
                operands = ["."]
            recursive = name in _RECURSIVE_LISTERS or (name == "ls" and any(
                w == "--recursive" or (w.startswith("-") and not w.startswith("--")
                                       and "R" in w) for w in words))
            for word in operands:
                if word in dynamic or RUNTIME in word:
                    unknown = True
                    continue
                for where in place(word, cwd, patterns.get(word)):
                    if recursive:
                        trees.append(where)
                    else:  # the file, or a directory's entries
                        files += [where, Place((*where.parts, "*"), where.anchored, True)]
    return Reads(tuple(files), tuple(trees), unknown)


def _xargs_files(argv: tuple[str, ...]) -> list[str]:
    """The files an ``xargs`` in ``argv`` reads its input from (``-a FILE``, ``-aFILE``,
    ``--arg-file[=]FILE``): the words of the command it runs (``_programs`` takes the
    wrapper off, and its options with it)."""
    out: list[str] = []
    for i, word in enumerate(argv):
        if _name(word) != "xargs":
            continue
        rest = argv[i + 1:]
        j = 0
        while j < len(rest) and rest[j].startswith("-") and rest[j] != "--":
            option = rest[j]
            if option in ("-a", "--arg-file") and j + 1 < len(rest):
                out.append(rest[j + 1])
                j += 1
            elif option.startswith("--arg-file="):
                out.append(option.split("=", 1)[1])
            elif option.startswith("-a") and not option.startswith("--"):
                out.append(option[2:])
            elif option in ("-n", "-L", "-s", "-P", "-d", "-E", "-I", "--max-args",
                            "--max-lines", "--max-chars", "--max-procs", "--delimiter",
                            "--replace", "--process-slot-var"):
                j += 1  # its value
            j += 1
        break
    return out


def _operands(name: str, words: tuple[str, ...]) -> list[str]:
    """The words of a command that may name a file: its operands, and option values written
    ``--opt=VALUE`` (not the value of an option known to take a number or a pattern, nor a
    grep's pattern when it is the first operand)."""
    letters = _WITH_VALUE.get(name, "")
    out: list[str] = []
    explicit = False
    skip = False
    ended = False
    for word in words:
        if skip:
            skip = False
        elif not ended and word == "--":
            ended = True
        elif not ended and word.startswith("--"):
            key = word.split("=", 1)[0]
            explicit = explicit or key in ("--regexp", "--file")
            if "=" in word:
                if key not in _LONG_WITH_VALUE:
                    out.append(word.split("=", 1)[1])
            else:
                skip = key in _LONG_WITH_VALUE
        elif not ended and word.startswith("-") and len(word) > 1:
            for i, letter in enumerate(word[1:]):
                if letter in letters:
                    explicit = explicit or letter in "ef"
                    skip = i == len(word) - 2  # its value is the next word
                    break
        else:
            out.append(word)
    if name in _PATTERN_FIRST and not explicit and out:
        out = out[1:]
    return [w for w in out if w]


def _recursive(name: str, words: tuple[str, ...]) -> bool:
    letters, long_names = _RECURSIVE_OPTIONS.get(name, ("", ()))
    if not letters:
        return False
    for word in words:
        if word == "--":
            break
        if word.startswith("--"):
            if long_options(word.split("=", 1)[0], long_names):
                return "--directories" not in word or word.endswith("recurse")
        elif word.startswith("-") and set(word[1:]) & set(letters):
            return True
    return False


def transforms(line: str, depth: int = 0) -> bool:
    """Whether what ``line`` writes may be what it read transformed: ``transforms_output``,
    short of commands that copy files as they are (``cp``, ``mv`` …), which are judged by what
    they read."""
    if depth > _MAX_NESTED:
        return True
    if not transforms_output(line):
        return False
    try:
        stages = list(_stages(line))
    except ShellParseError:
        return True
    for stage in stages:
        if any(r.op.lstrip("0123456789").startswith("<<") and r.unresolved
               for r in stage.redirects):
            return True  # a here-document or here-string that expands a value
        if not isinstance(stage, SimpleCommand):
            continue
        if stage.dynamic:
            return True
        for argv in _programs(stage):
            if (code := _code(argv)) is not None:
                if transforms(code, depth + 1):
                    return True
                continue
            if _name(argv[0]) in _NAMES_ONLY:
                continue
            if any(RUNTIME in w for w in argv):
                return True  # files a runner names at run time (``xargs cp -t d``)
            if _name(argv[0]) in _COPIERS:
                continue
            if _name(argv[0]) not in PLAIN_PROGRAMS or transforms_output(shlex.join(argv)):
                return True
    return False


def names_from_data(line: str, depth: int = 0, *, unreadable: bool = True) -> bool:
    """Whether ``line`` may put what it read, changed, where no output shows it: into the
    words of a command it runs (``rev f | xargs mkdir``, ``touch -d @$(cut -c6- f) x``,
    ``… | while read v; do mkdir "$v"; done``) — file names, times, modes, a background
    process's arguments — which plain programs print later (``ls``, ``stat``, ``ps``, a
    prompt showing the working directory) and no detector recognises. Only a line whose output
    may be what it read changed (``transforms_output``) counts; a command substitution, a
    word a runner fills in from input (short of names printed by programs that only print
    names: ``find . | xargs grep -l x``), or a variable read from input does (the gateway
    cannot follow the value, so it fails closed: ``written.Memory.metadata``). A line that
    does not parse counts when it is ``unreadable`` (the shell's, as in ``reads``)."""
    if depth > _MAX_NESTED:
        return True
    try:
        parse(line)
    except ShellParseError:
        return unreadable
    if not (transforms_output(line) or leaves_state(line)):
        return False
    try:
        commands = [c for c in classify_command(line).commands if c]
        stages = list(_stages(line))
    except ShellParseError:
        return unreadable
    if ("$(" in line or "`" in line) and words_from_values(line):
        return True  # a substitution: its output becomes words (an assignment: state)
    programs: list[tuple[str, ...]] = []
    for stage in stages:
        if isinstance(stage, SimpleCommand):
            programs += _programs(stage)
    # inside loops and groups, as classified (xargs's input as RUNTIME)
    programs += [(c[0], *(RUNTIME if w == "(input)" else w for w in c[1:])) for c in commands]
    for i, argv in enumerate(programs):
        if (code := _code(argv)) is not None:
            if names_from_data(code, depth + 1):
                return True
            continue
        if _name(argv[0]) in _READS_WORDS:
            return True
        # a runner's words (xargs's input, find's {}): from data unless every other program
        # of the line only prints names (``find . | xargs grep -l x``: names stay names)
        if any(RUNTIME in w for w in argv) and any(
                j != i and other != argv and _name(other[0]) not in _NAMES_ONLY | _RUNNERS
                for j, other in enumerate(programs)):
            return True
    return False


def words_from_values(line: str) -> bool:
    """Whether a command of ``line`` has a word only known at run time (a variable, a
    substitution, a runner's input), short of words only printed: on a connection whose
    output is masked whole, such a word may hold what an earlier line read (``x=$(rev f)``,
    then ``mkdir "$x"``)."""
    try:
        script = parse(line)
    except ShellParseError:
        return True
    return _values_in(script)


def _values_in(script: Script) -> bool:
    """``words_from_values`` of a parsed line; a function's body runs when it is called (a
    later line), not where it is defined."""
    for pipeline in script:
        programs = [argv for stage in pipeline.stages if isinstance(stage, SimpleCommand)
                    for argv in _programs(stage)]
        for stage in pipeline.stages:
            if isinstance(stage, SimpleCommand):
                if stage.argv and stage.dynamic and _name(stage.argv[0]) not in _PRINTS_ONLY:
                    return True
                # a runner's words: its input (``xargs -a f mkdir``, ``cat f | xargs …``),
                # unless only names feed it (``ls | xargs cat``)
                fed = [argv for argv in _programs(stage)
                       if _name(argv[0]) not in _PRINTS_ONLY and any(RUNTIME in w
                                                                    for w in argv[1:])]
                if fed and (_xargs_files(stage.argv) or any(
                        other not in fed and _name(other[0]) not in _NAMES_ONLY | _RUNNERS
                        for other in programs)):
                    return True
                if any(_values_in(sub.script) for sub in stage.substitutions):
                    return True
            elif stage.kind != "function" and _values_in(stage.body):
                return True
    return False


# builtins whose words only go to output or a test (masked, or a status clamped), nowhere they
# stay: no process, file or variable keeps them
_PRINTS_ONLY = frozenset({"echo", "printf", "test", "[", "[[", ":", "true", "false", "let",
                          "return", "shift", "exit"})
# builtins that make variables (words of later commands) of their input
_READS_WORDS = frozenset({"read", "mapfile", "readarray"})


def links(line: str, cwd: Cwd = None, depth: int = 0) -> list[Written]:
    """The names a line makes of one file (``ln``, ``link``, ``cp -l``/``--link``, ``cp
    -s``/``--symbolic-link``), each operand and the name made under a destination directory:
    a file written later through one name is read through the other, so both are marked when
    the link is made (``written.Memory.wrote``). A name only known at run time is any name
    (``Written(None)``)."""
    if depth > _MAX_NESTED:
        return [Written(None)]
    try:
        stages = list(_stages(line))
    except ShellParseError:
        return []
    cwd = _line_cwd(line, cwd)
    out: list[Written] = []
    for stage in stages:
        if not isinstance(stage, SimpleCommand):
            continue
        dynamic = {stage.argv[i] for i in stage.dynamic}
        for argv in _programs(stage):
            if (code := _code(argv)) is not None:
                out += links(code, cwd, depth + 1)
                continue
            if not _makes_link(argv):
                continue
            operands = [w for w in argv[1:] if not w.startswith("-")]
            base = operands[0].rstrip("/").rsplit("/", 1)[-1] if operands else ""
            if len(operands) == 1:
                operands.append(base)  # ``ln -s /x``: the link is made here, by that name
            elif operands[-1].count("/") and not operands[-1].endswith("/"):
                # a symbolic link's relative target is read from the link's directory
                folder = posixpath.dirname(operands[-1])
                operands[:-1] = [w for o in operands[:-1] for w in (
                    (o,) if o.startswith(("/", "~")) else (o, f"{folder}/{o}"))]
            for word in operands:
                if word in dynamic or RUNTIME in word:
                    out.append(Written(None))
                    continue
                for where in place(word, cwd):
                    out.append(Written(where))
                    if base and word is operands[-1] and len(operands) > 1:
                        out.append(Written(Place((*where.parts, base), where.anchored)))
    return out


def _makes_link(argv: tuple[str, ...]) -> bool:
    name = _name(argv[0])
    if name in ("ln", "link"):
        return True
    if name != "cp":
        return False
    return any(w in ("--link", "--symbolic-link") or (
        w.startswith("-") and not w.startswith("--") and ("l" in w or "s" in w))
        for w in argv[1:])


@dataclass(frozen=True)
class Copy:
    """Files copied as they are (``cp``, ``mv`` …): from ``sources`` to ``destination``."""

    sources: tuple[Place, ...]
    destination: Place


def copies(line: str, cwd: Cwd = None, depth: int = 0) -> list[Copy]:
    """The copies ``line`` makes (a source only known at run time is any path: ``Place``
    with no parts, relative)."""
    if depth > _MAX_NESTED:
        return []
    try:
        stages = list(_stages(line))
    except ShellParseError:
        return []
    cwd = _line_cwd(line, cwd)
    out: list[Copy] = []
    for stage in stages:
        if not isinstance(stage, SimpleCommand):
            continue
        dynamic = {stage.argv[i] for i in stage.dynamic}
        for argv in _programs(stage):
            if (code := _code(argv)) is not None:
                out += copies(code, cwd, depth + 1)
                continue
            if _name(argv[0]) not in _COPIERS:
                continue
            sources = tuple(p for w in _sources(_name(argv[0]), argv)
                            for p in (place(w, cwd) if w not in dynamic and RUNTIME not in w
                                      else [Place((), False, True)]))
            for destination in _destinations(argv):
                if not _GLOB_START.search(destination):
                    out += [Copy(sources, d) for d in place(destination, cwd)]
    return out


def _sources(name: str, argv: tuple[str, ...]) -> list[str]:
    """What a copier copies: its operands but the destination (``-t DIR``: all of them), read
    with its own grammar where the gateway has it."""
    if (moved := copied(name, argv[1:])) is not None:
        return list(moved.sources)
    words = argv[1:]
    operands = [w for w in _operands(name, words)]
    if "-t" in words or any(long_options(w.split("=", 1)[0], ("--target-directory",))
                            for w in words if w.startswith("--")):
        return [w for w in operands if w not in _destinations(argv)]
    return operands[:-1]


def _destinations(argv: tuple[str, ...]) -> list[str]:
    """``destinations``, but for a copier told its directory (``-t DIR``) that alone: its
    last operand is then a file it copies (``xargs cp -t d`` puts its input there)."""
    found = destinations(argv)
    if copied(_name(argv[0]) if argv else "", argv[1:]) is not None:
        return found  # read with its grammar: the directory already
    words = argv[1:]
    if _name(argv[0]) in _COPIERS and _name(argv[0]) not in ("tee", "dd") and (
            "-t" in words or any(long_options(w.split("=", 1)[0], ("--target-directory",))
                                 for w in words if w.startswith("--"))):
        return found[:-1] or found
    return found


def writes(line: str, cwd: Cwd = None, depth: int = 0, *,
           unreadable: bool = True) -> list[Written]:
    """Every path ``line`` names as written: redirections, and what writers write (``tee``,
    ``sort -o``, ``cp``'s destination, ``sed -i``'s files …). A line the gateway cannot read
    writes a name it does not know (unless it is not ``unreadable``, as in ``reads``)."""
    if depth > _MAX_NESTED:
        return [Written(None)]
    try:
        script = parse(line)
    except ShellParseError:
        return [Written(None)] if unreadable else []
    stages = [stage for pipeline in pipelines(script) for stage in pipeline.stages]
    fed_input = _fed_input(script)
    cwd = _line_cwd(line, cwd)
    out: list[Written] = []
    for stage in stages:
        for redirect in stage.redirects:
            if writes_file(redirect):
                out += _written(redirect.target, redirect.unresolved, cwd, tree=False)
        if not isinstance(stage, SimpleCommand):
            continue
        dynamic = {stage.argv[i] for i in stage.dynamic}
        unresolved = {stage.argv[i] for i in stage.unresolved}
        patterns = dict(zip(stage.argv, stage.patterns, strict=False))
        programs = _programs(stage)
        if stage.argv and _name(stage.argv[0]) == "script":
            programs.append(stage.argv)  # a wrapper that also writes its typescript
        if _runs_option_code(stage.argv):
            for given in _option_codes(stage.argv):  # tar --to-command="cat > f" …
                out += writes(f"cat | {given}", cwd, depth + 1, unreadable=False)
        for argv in programs:
            name = _name(argv[0])
            if (code := _code(argv)) is not None:
                out += writes(code, cwd, depth + 1)
                continue
            if id(stage) in fed_input and _reads_code(name, argv):
                out.append(Written(None))  # code it reads at run time may write any file
            if name in _SCRIPT_EDITORS and _scripted(name, argv):
                out.append(Written(None))  # and the files it edits (ed's ``w``)
                out += [w for word in _edited(argv) for w in _written(
                    word, word in unresolved or RUNTIME in word, cwd, tree=False)]
            if (named := _script_files(name, argv, dynamic)) is not None:
                if named.unknown:
                    out.append(Written(None))
                for word in named.writes:
                    out += _written(word, RUNTIME in word, cwd, tree=False)
                for command in named.commands:  # its input is the script's (print | "sh")
                    out += writes(f"cat | {command}", cwd, depth + 1)
            if (told := outputs(name, argv[1:])) is not None and told.anywhere:
                out.append(Written(None))  # ``split --filter``: a command writes the pieces
            for word, tree in _targets(name, argv):
                if name in ("split", "csplit") and word not in dynamic and RUNTIME not in word:
                    out += [Written(p, tree) for p in place(word, cwd)]  # a glob of pieces
                    continue
                if tree and word == "." and not _known(cwd):
                    out.append(Written(None))  # unpacked where the gateway does not know
                    continue
                fed = RUNTIME in word
                out += _written(word, word in unresolved or fed, cwd, tree=tree,
                                pattern=None if word in dynamic or fed else patterns.get(word))
    return out


def _runs_option_code(argv: tuple[str, ...]) -> bool:
    """Whether a program runs commands given in its options (``tar --to-command``, ``-I``,
    ``--checkpoint-action=exec=``, ``ssh -o LocalCommand=``, ``tmux new CMD`` …): their
    redirections are not among the commands the line runs."""
    try:
        return "COMMAND IN OPTION" in classify_command(shlex.join(argv)).kinds
    except ShellParseError:
        return True


def _option_codes(argv: tuple[str, ...]) -> list[str]:
    """Every word of ``argv`` that may be code given to it, whole or after an ``=``."""
    out: list[str] = []
    for word in argv[1:]:
        out.append(word)
        if "=" in word:
            value = word.partition("=")[2]
            out += [value, value.partition("=")[2]] if "=" in value else [value]
    return [w for w in out if w.strip()]


def _known(cwd: Cwd) -> bool:
    return cwd is not None and bool(cwd) and not cwd & CDPATH_SET


def _script_files(name: str, argv: tuple[str, ...],
                  dynamic: set[str]) -> ScriptFiles | None:
    """The files an awk program or a sed script names (None: not one of them); a word only
    known at run time (``dynamic``) is given as ``RUNTIME``."""
    words = tuple(RUNTIME if w in dynamic else w for w in argv[1:])
    if name in _AWKS:
        return awk_files(words)
    if name in ("sed", "gsed"):
        return sed_files(words)
    return None


_AWKS = frozenset({"awk", "gawk", "mawk", "nawk", "original-awk", "bwk-awk", "goawk"})
# Editors that may run commands they are given rather than typed at their screen: ed and ex
# always (their commands come from the standard input, which the exec's client or a pipe may
# fill), vi and its kin, emacs when told to (``-e``, ``-s``, ``-c``, ``+cmd``, ``--batch`` …).
_SCRIPT_EDITORS = frozenset({"ed", "red", "ex", "vi", "vim", "nvim", "view", "vimdiff", "gvim",
                             "rvim", "rview", "vimx", "nex", "nvi", "elvis", "emacs", "vile"})
_EDITOR_SCRIPTING = frozenset({"-e", "-E", "-s", "-es", "-Es", "-c", "-S", "--cmd",
                               "--headless", "-", "-W", "-w", "--batch", "-batch", "--script",
                               "-l", "--load", "--eval", "-x", "-f", "--funcall", "-u"})


def _scripted(name: str, argv: tuple[str, ...]) -> bool:
    """Whether an editor runs commands it is given: ed and ex always; the others when an
    option or a ``+cmd`` says so."""
    if name in ("ed", "red", "ex", "nex"):
        return True
    return any(w in _EDITOR_SCRIPTING or w.startswith("+") or w.startswith(("--eval",
               "--script", "--load", "--funcall", "--cmd"))
               or (w.startswith("-") and not w.startswith("--") and len(w) > 1
                   and set(w[1:]) & set("esEScWwu"))
               for w in argv[1:])


_EDITOR_VALUES = frozenset({"-c", "-S", "--cmd", "-s", "-W", "-w", "-u", "-U", "-i", "-l",
                            "--load", "--eval", "-f", "--funcall", "-T", "-t", "-q", "-r",
                            "-p", "--script", "-L", "--insert", "-x"})


def _edited(argv: tuple[str, ...]) -> list[str]:
    """The files an editor is given (its operands, not its options' values)."""
    out: list[str] = []
    skip = False
    for word in argv[1:]:
        if skip:
            skip = False
        elif word in _EDITOR_VALUES and _name(argv[0]) not in ("ed", "red"):
            skip = True
        elif not word.startswith(("-", "+")):
            out.append(word)
    return out


def _reads_code(name: str, argv: tuple[str, ...]) -> bool:
    """A shell that runs code from its standard input (``… | sh``, ``bash -s < f``), or
    ``parallel`` running the lines it reads as commands: when that input is not the one the
    gateway judges line by line, what they write is not on the line."""
    if name == "parallel":
        return len(argv) == 1 or all(w.startswith("-") for w in argv[1:])
    if name not in SHELLS:
        return False
    operands = [w for w in argv[1:] if not w.startswith(("-", "+"))]
    return not operands or any(w.startswith("-") and not w.startswith("--") and "s" in w
                               for w in argv[1:])


def _targets(name: str, argv: tuple[str, ...]) -> list[tuple[str, bool]]:
    """What a writer writes, and whether it may be a directory (whose files it writes)."""
    words = argv[1:]
    operands = [w for w in words if not w.startswith("-") or w == "-"]
    found = [(w, False) for w in _destinations(argv)]
    if name in _COPIERS:  # a file copied into a directory lands there by its own name
        found += [(d.rstrip("/") + "/" + _name(source.rstrip("/")), False)
                  for d in _destinations(argv) for source in _sources(name, argv)]
    if (given := outputs(name, words)) is not None:  # read with the program's own grammar
        found += [(w, False) for w in given.files]
        found += [(prefix_glob(p), False) for p in given.prefixes]
    elif name == "perl" and any(
            w.startswith("-i") or (w.startswith("-") and not w.startswith("--") and "i" in w)
            or long_options(w.split("=", 1)[0], ("--in-place",)) for w in words):
        found += [(w, False) for w in operands[1:]]  # every file after the script
    elif name == "script":  # a terminal recorder: its typescript holds what was shown
        found += [(w, False) for w in _operands(name, words)]
    elif name in ("tar", "bsdtar", "gtar"):  # the archive it creates: -f FILE, cf FILE …
        found += _tar_archive(words)
        found += _unpacked(name, words)
    elif name in _DECOMPRESSORS or (name in _COMPRESSORS and any(
            w in ("-d", "--decompress", "--uncompress") or (
                w.startswith("-") and not w.startswith("--") and "d" in w) for w in words)):
        if not any(w in ("-c", "--stdout", "--to-stdout") or (
                w.startswith("-") and not w.startswith("--") and "c" in w) for w in words):
            found += [(_stem(w) + "*", False) for w in _operands(name, words)]
    elif name in _COMPRESSORS and not any(
            w in ("-c", "--stdout", "--to-stdout") or (w.startswith("-") and not w.startswith("--")
                                                       and "c" in w) for w in words):
        suffix = "*" if any(w.startswith(("-S", "--suffix")) for w in words) else (
            _COMPRESSORS[name])
        found += [(re.sub(r"([*?\[])", r"[\1]", w) + suffix, False)
                  for w in _operands(name, words)]
    elif name in ("zip", "7z", "7za") and operands:
        archive = operands[1] if name != "zip" and len(operands) > 1 else operands[0]
        found += [(archive, False), (archive + "*", False)]  # zip adds .zip when it has none
    elif name in ("awk", "gawk") and "inplace" in words:  # gawk -i inplace: sed -i's kin
        files = _operands(name, words)
        program_file = any(w.startswith("-f") or w.startswith("--file") for w in words)
        found += [(w, False) for w in (files if program_file else files[1:])]
    if name in _UNPACKERS:
        found += _unpacked(name, words)
    if name not in WRITERS:
        found += _output_option(name, words)
    return [(w, tree) for w, tree in found if w and w != "-"]


# The option by which a program says where it writes (``openssl enc -out F``, ``gpg -o F``,
# ``zstd -d -o F``, ``curl -o F``, ``wget -O F``): whatever the program, its value is written.
_OUTPUT_SHORT = frozenset({"-o", "-out", "-outfile", "-output"})
_OUTPUT_LONG = ("--output", "--output-file", "--outfile", "--output-document", "--out-file")


def _output_option(name: str, words: tuple[str, ...]) -> list[tuple[str, bool]]:
    """The files a program's output options name (``-o F``, ``--output=F`` …)."""
    short = _OUTPUT_SHORT | ({"-O"} if name == "wget" else set())
    found = [(words[i + 1], False) for i, w in enumerate(words[:-1]) if w in short]
    for i, w in enumerate(words):
        if not w.startswith("--") or not long_options(w.split("=", 1)[0], _OUTPUT_LONG):
            continue
        if "=" in w:
            found.append((w.split("=", 1)[1], False))
        elif i + 1 < len(words):
            found.append((words[i + 1], False))
    return found


def _stem(word: str) -> str:
    """A compressed file's name without its suffix, as a glob (``a.tar.gz``: ``a.tar``)."""
    escaped = re.sub(r"([*?\[])", r"[\1]", word)
    head, _, base = escaped.rpartition("/")
    if "." in base.lstrip("."):
        base = base[:base.rindex(".")]
    return f"{head}/{base}" if head or escaped.startswith("/") else base


_DECOMPRESSORS = frozenset({"gunzip", "bunzip2", "unxz", "unlzma", "unzstd", "lz4cat",
                            "uncompress", "unpigz", "lunzip"})
_UNPACKERS = frozenset({"unzip", "7z", "7za", "7zr", "cpio", "ar", "pax", "unrar", "rar",
                        "jar"})


def _unpacked(name: str, words: tuple[str, ...]) -> list[tuple[str, bool]]:
    """Where an archive is unpacked: every file under that directory (``tar x -C DIR``,
    ``unzip -d DIR``, ``7z x -oDIR``, ``cpio -i -D DIR``, ``cpio -p DIR`` …; the working
    directory by default). Nothing for a listing, or an unpacking to the standard output."""
    first = words[0] if words else ""
    flags = "".join(w[1:] for w in words if w.startswith("-") and not w.startswith("--"))
    longs = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    if name in ("tar", "bsdtar", "gtar"):
        cluster = first.lstrip("-") if re.fullmatch(r"-?[A-Za-z]+", first) else ""
        extracts = "x" in cluster or "x" in flags or bool(
            {o for w in longs for o in long_options(w, ("--extract", "--get"))})
        if not extracts or "O" in cluster + flags or {
                o for w in longs for o in long_options(w, ("--to-stdout", "--to-command"))}:
            return []
        dirs = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-C"]
        dirs += [w[2:] for w in words if w.startswith("-C") and len(w) > 2]
        dirs += [w.split("=", 1)[1] for w in words if w.startswith("--") and "=" in w
                 and long_options(w.split("=", 1)[0], ("--directory",))]
        dirs += [words[i + 1] for i, w in enumerate(words[:-1])
                 if w.startswith("--") and "=" not in w and long_options(w, ("--directory",))]
        if cluster and "C" in cluster:  # old style: the C's value is among the next words
            dirs += [w for w in words[1:] if not w.startswith("-")]
        return [(d, True) for d in dirs or ["."]]
    if name == "unzip":
        if set(flags) & set("lptvZ"):
            return []
        dirs = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-d"]
        dirs += [w[2:] for w in words if w.startswith("-d") and len(w) > 2]
        return [(d, True) for d in dirs or ["."]]
    if name in ("7z", "7za", "7zr"):
        if first not in ("x", "e"):
            return []
        dirs = [w[2:] for w in words if w.startswith("-o")]
        return [(d, True) for d in dirs or ["."]]
    if name == "cpio":
        if "p" in flags or {o for w in longs for o in long_options(w, ("--pass-through",))}:
            operands = [w for w in words if not w.startswith("-")]
            return [(d, True) for d in operands[-1:] or ["."]]
        if not ("i" in flags or {o for w in longs for o in long_options(w, ("--extract",))}):
            return []
        dirs = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-D"]
        dirs += [w.split("=", 1)[1] for w in words if w.startswith("--directory=")]
        return [(d, True) for d in dirs or ["."]]
    if name == "pax":
        if "r" not in flags:
            return []
        operands = [w for w in words if not w.startswith("-")]
        return [(operands[-1] if "w" in flags and operands else ".", True)]
    if name in ("unrar", "rar") and first in ("x", "e"):
        operands = [w for w in words[1:] if not w.startswith("-")]
        last = operands[-1:] if len(operands) > 1 and operands[-1].endswith("/") else []
        return [(d, True) for d in [*last, "."]]
    if name in ("ar", "jar") and "x" in first:
        return [(".", True)]
    return []


# Compressors that write FILE and a suffix beside each FILE they are given (unless -c).
_COMPRESSORS = {"gzip": ".gz", "pigz": ".gz", "bzip2": ".bz2", "pbzip2": ".bz2", "xz": ".xz",
                "lzma": ".lzma", "zstd": ".zst", "lz4": ".lz4", "lzip": ".lz", "compress": ".Z"}


def _tar_archive(words: tuple[str, ...]) -> list[tuple[str, bool]]:
    """The archive a tar line names: the word after a cluster holding f (``-czf x``, ``czf
    x``, ``-f x``), or ``--file=x`` / ``--file x``. Without one it writes $TAPE or the
    standard output (a redirection, seen as such)."""
    found: list[tuple[str, bool]] = []
    for i, w in enumerate(words):
        if w.startswith("--file"):
            value = w.partition("=")[2] or (words[i + 1] if i + 1 < len(words) else "")
            found.append((value, False))
        elif (re.fullmatch(r"-[A-Za-z]+" if i else r"-?[A-Za-z]+", w) and "f" in w
              and i + 1 < len(words)):
            found.append((words[i + 1], False))
    return found


def _written(word: str, unresolved: bool, cwd: Cwd, *, tree: bool,
             pattern: str | None = None) -> list[Written]:
    """The marks for a written word: the paths it names; for a name known only in part, the
    directory it is known to be in (``pattern``: as in ``place``, for braces)."""
    if word.startswith(_DEVICES) and not _GLOB_START.search(word):
        return []  # /dev/null, /dev/tty …: nothing to read back
    if word.startswith(_PROCESS_SUBSTITUTION):
        return []  # >(…): a pipe; what its commands write is walked with them
    if pattern is not None:
        expanded = brace_expand(pattern) or [pattern]
        if not any(has_glob(each) for each in expanded):  # a/{b,c}: a/b and a/c
            return [Written(p, tree) for each in expanded
                    for p in _place(unescape(each), False, cwd)]
    if not unresolved or not _GLOB_START.search(word):
        return [Written(p, tree) for p in place(word, cwd)]
    known = word[:_GLOB_START.search(word).start()]  # type: ignore[union-attr]
    directory = known.rpartition("/")[0] if "/" in known else ""
    if known.startswith("/") and not directory:
        directory = "/"
    if directory:
        return [Written(p, True) for p in place(directory, cwd)]
    if known and _known(cwd):  # out_$n: in the working directory (``$f`` may be any path)
        return [Written(p, True) for p in place(".", cwd)]
    return [Written(None)]
