"""The gateway's memory of files written by lines whose output it could not read (issue 14).

Masking reads what a program prints. A line that transforms a secret (``rev .env``, ``fold -w5``,
``od -c``) has its output masked whole, and a line that leaves a transformed file behind masks the
rest of its connection (``engine.ssh.shellstate``, ``SshSession.taint``). But the file outlives
the connection: ``ssh host 'rev .env > /tmp/r'``, then a new connection's ``cat /tmp/r`` prints
the secret reversed, where no detector sees it. So the gateway remembers such files, per target
(``host:port``, and its host key: the same machine reached by another name), in a journal
beside the store (``<store>.ssh-written``: one JSON line per mark,
appended with ``O_APPEND`` so that every engine and worker process on the machine shares it, and
read again, from where it was left, before each check).

What is marked (``writes``) by a connection whose output is masked, before the line reaches the
target (one whose output is not masked saw the values in clear: what it writes, like what it
types, is its identity's to answer for):

- every file a line writes whose content comes from a program that may change what it reads
  (``transforms_output``): a redirection (``>``, ``>>``, ``>|``, ``&>``), ``tee``, ``sort -o``,
  ``uniq IN OUT``, ``dd of=``, ``xxd IN OUT``, ``sed -i``/``perl -i`` in place, ``split``'s
  pieces (a glob), the destination of ``cp``/``mv``/``install``/``ln``/``rsync`` (and the name
  a file copied into it would have there), ``script``'s typescript, ``gawk -i inplace``'s files;
- on a connection whose output is masked whole (it read a marked file, or left state the
  gateway could not follow), or by a line that reads a marked file, every file it names as
  written: its content was not seen;
- a copy is not a transform (``carried``): ``cp a b`` marks ``b`` when ``a`` may be a marked
  file, and ``cp -r d e``/``mv d e`` the place under ``e`` of each marked file under ``d``
  (a relative mark keeps matching a file copied under its own name). A copier prints nothing,
  so reading a marked file with it does not mask the connection.

A path is resolved against the working directory the gateway follows (``Cwd``), ``~`` and quotes
taken out. Where the directory is not known (an exec starts in a home directory the gateway does
not know; ``cd`` in the same line; a relative ``cd``), the path is kept relative: it may be that
name under any directory, and a later path matches it when it ends with those components (the
least aggressive choice that still fails closed — short of links the gateway did not see made).
A written name only known at run time (``> "$f"``, ``cp x /srv/$d``) marks the directory it is
known to be in (everything under it); with no such directory it marks "any path" for that
identity on that target — every later line of that identity there that reads a file is masked
whole (the name may only be known to the one who chose it: scoping it to the identity keeps
one odd line from masking the target for everyone; a redirection to such a name on a masked
connection is refused anyway, ``startup_write``). So does a path the journal should not keep:
one written by a line typed without echo (a password, perhaps), or one holding a value masking
finds (the journal keeps paths in clear, beside the store). A relative path read or written
where the directory is not known may be under any directory: it counts as under every directory
marked whole, and every relative mark counts as under a directory a recursive reader walks.

What is checked (``reads``), before a line is judged, on every later connection to the target,
whoever opens it: a word that may name a marked file, a file under a marked directory, a glob that
could match one (component by component), a directory that holds one for a recursive reader
(``grep -r``, ``find``, ``tar``, ``zip`` …), or a word only known at run time (``$f``,
``$(…)``) while anything is marked on the target. Programs that only print names (``ls``,
``cd``, ``stat`` …) are not readers, nor are copiers (above). A connection that reads one has
its output masked whole from then on, and an SFTP or scp download of one is refused.

A journal that cannot be read, or holds a line that is not a mark, fails closed: every path counts
as marked until it can be read. A mark that cannot be written is kept in this process's memory
(and logged) for its life. Marks are never forgotten: removing or rewriting the file does not
clear them (the gateway cannot tell the removal worked).

Not seen: a writer that does not say which files it writes (an editor, an interpreter, ``make``,
an archive unpacked, a program's own output files: marking every file they are named would mask
the files they only read, for everyone, for good), a link made before the file was marked, and
a file read through a path the gateway cannot tie to the one written (a hard link, a bind mount).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shlex
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from engine.guardrail.commands import CDPATH_SET, SHELLS, Cwd, classify_command, long_options
from engine.guardrail.shellwords import (
    Compound,
    ShellParseError,
    SimpleCommand,
    brace_expand,
    has_glob,
    parse,
    pipelines,
    unescape,
)
from engine.ssh.output import PLAIN_PROGRAMS, transforms_output
from engine.ssh.shellstate import destinations, writes_file

log = logging.getLogger(__name__)

SUFFIX = ".ssh-written"
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


class JournalUnreadable(Exception):
    """The journal of marks cannot be read, or holds what is not a mark."""


@dataclass(frozen=True)
class Mark:
    """A path written on ``target`` by a line whose output the gateway could not read.
    ``floating``: relative to a directory not known; ``tree``: everything under it too (a
    directory perhaps); ``anywhere``: the name was only known at run time, so any path of
    ``identity`` on ``target``."""

    target: str
    path: str
    identity: str
    session: str
    at: float
    floating: bool = False
    tree: bool = False
    anywhere: bool = False
    pattern: bool = False  # a glob: every name it matches (``split``'s pieces)
    host_key: str = ""  # the target's host key (fingerprint): the same machine by any name

    def describe(self) -> str:
        if self.anywhere:
            return "a file whose name the gateway could not see"
        return self.path if not self.floating else f"…/{self.path}" if self.path else "…"


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


def _place(text: str, pattern: bool, cwd: Cwd) -> list[Place]:
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
        return [Place(_parts(posixpath.normpath(text)), True, pattern)]
    if cwd is None or cwd & CDPATH_SET or not cwd:
        return [_floating(text, pattern)]
    return [Place(_parts(posixpath.normpath(posixpath.join(d, text))), True, pattern)
            if d.startswith("/") else _floating(posixpath.join(d, text), pattern)
            for d in sorted(cwd)]


def _floating(text: str, pattern: bool) -> Place:
    parts = [p for p in posixpath.normpath(text or ".").split("/") if p not in ("", ".")]
    while parts and parts[0] == "..":
        parts.pop(0)  # ../x: x, under some directory
    return Place(tuple(parts), False, pattern)


def _parts(path: str) -> tuple[str, ...]:
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


def names(mark: Mark, reads: Reads) -> bool:
    """Whether a line that reads ``reads`` may read what ``mark`` marks."""
    if mark.anywhere:
        return reads.any
    if reads.unknown:
        return True
    marked = Place(_parts(mark.path), not mark.floating, mark.pattern)
    for read in reads.files:
        if same(read, marked) or (mark.tree and under(read, marked)):
            return True
    for tree in reads.trees:
        if same(tree, marked) or under(marked, tree) or (mark.tree and under(tree, marked)):
            return True
    return False


# --- what a line reads and writes ----------------------------------------------------------------


def _stages(line: str) -> Iterator[SimpleCommand | Compound]:
    for pipeline in pipelines(parse(line)):
        yield from pipeline.stages


def _programs(stage: SimpleCommand) -> list[tuple[str, ...]]:
    """The commands a stage runs once wrappers are taken off (``sudo cp a b``: ``cp a b``)."""
    if not stage.argv:
        return []  # assignments only
    try:
        commands = classify_command(shlex.join(stage.argv)).commands
    except ShellParseError:
        return [stage.argv]
    return [c for c in commands if c] or [stage.argv]


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
    """The working directory for a line's paths: not known once it may change in the line."""
    try:
        for stage in _stages(line):
            if isinstance(stage, SimpleCommand) and stage.argv and _name(stage.argv[0]) in _CD:
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
            operands = _operands(name, argv[1:])
            if name == "dd":
                operands = [w[3:] for w in argv[1:] if w.startswith("if=")]
            recursive = name in _RECURSIVE_ALWAYS or _recursive(name, argv[1:])
            if recursive and not operands:
                operands = ["."]  # the working directory
            for word in operands:
                if word.startswith(_PROCESS_SUBSTITUTION):
                    continue  # <(…): its commands are walked with the line's
                if word in dynamic:
                    unknown = True
                    continue
                (trees if recursive else files).extend(place(word, cwd, patterns.get(word)))
    return Reads(tuple(files), tuple(trees), unknown)


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
            if _name(argv[0]) in _COPIERS or _name(argv[0]) in _NAMES_ONLY:
                continue
            if _name(argv[0]) not in PLAIN_PROGRAMS or transforms_output(shlex.join(argv)):
                return True
    return False


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
                            for p in (place(w, cwd) if w not in dynamic
                                      else [Place((), False, True)]))
            for destination in destinations(argv):
                if not _GLOB_START.search(destination):
                    out += [Copy(sources, d) for d in place(destination, cwd)]
    return out


def _sources(name: str, argv: tuple[str, ...]) -> list[str]:
    """What a copier copies: its operands but the destination (``-t DIR``: all of them)."""
    words = argv[1:]
    operands = [w for w in _operands(name, words)]
    if "-t" in words or any(long_options(w.split("=", 1)[0], ("--target-directory",))
                            for w in words if w.startswith("--")):
        return [w for w in operands if w not in destinations(argv)]
    return operands[:-1]


def carried(copy: Copy, marks: Iterable[Mark]) -> list[Written]:
    """Where a copy puts the marked files among what it copies: a marked source file at the
    destination (or under it by its name), a marked file under a source directory at the same
    place under the destination; one under a directory the gateway cannot place makes the
    whole destination marked."""
    dest = copy.destination
    out: list[Written] = []
    for mark in marks:
        marked = Place(_parts(mark.path), not mark.floating, mark.pattern)
        for source in copy.sources:
            base = source.parts[-1:] if source.parts and not source.pattern else ()
            if mark.anywhere or not source.parts or (
                    mark.tree and under(source, marked)):
                out.append(Written(dest, True))
            elif same(source, marked):
                out += [Written(dest), Written(Place(dest.parts + base, dest.anchored))]
            elif marked.anchored:  # under the source: at the same place under the destination
                for k in range(len(marked.parts)):
                    if same(Place(marked.parts[:k], True), source):
                        rest = marked.parts[k:]
                        out += [Written(Place(dest.parts + rest, dest.anchored, marked.pattern),
                                        mark.tree),
                                Written(Place(dest.parts + base + rest, dest.anchored,
                                              marked.pattern), mark.tree)]
            else:
                # kept by its name below the destination, where the relative mark matches
                # it already — but for a mark of the source directory's own name
                if base and base[0] in marked.parts:
                    out.append(Written(dest, True))
    return out


def writes(line: str, cwd: Cwd = None, depth: int = 0, *,
           unreadable: bool = True) -> list[Written]:
    """Every path ``line`` names as written: redirections, and what writers write (``tee``,
    ``sort -o``, ``cp``'s destination, ``sed -i``'s files …). A line the gateway cannot read
    writes a name it does not know (unless it is not ``unreadable``, as in ``reads``)."""
    if depth > _MAX_NESTED:
        return [Written(None)]
    try:
        stages = list(_stages(line))
    except ShellParseError:
        return [Written(None)] if unreadable else []
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
        for argv in programs:
            name = _name(argv[0])
            if (code := _code(argv)) is not None:
                out += writes(code, cwd, depth + 1)
                continue
            for word, tree in _targets(name, argv):
                if name in ("split", "csplit") and word not in dynamic:
                    out += [Written(p, tree) for p in place(word, cwd)]  # a glob of pieces
                    continue
                out += _written(word, word in unresolved, cwd, tree=tree,
                                pattern=None if word in dynamic else patterns.get(word))
    return out


def _targets(name: str, argv: tuple[str, ...]) -> list[tuple[str, bool]]:
    """What a writer writes, and whether it may be a directory (whose files it writes)."""
    words = argv[1:]
    operands = [w for w in words if not w.startswith("-") or w == "-"]
    found = [(w, False) for w in destinations(argv)]
    if name in _COPIERS:  # a file copied into a directory lands there by its own name
        found += [(d.rstrip("/") + "/" + _name(source.rstrip("/")), False)
                  for d in destinations(argv) for source in _sources(name, argv)]
    if name == "sort" or name == "shuf" or name == "iconv":
        found += [(words[i + 1], False) for i, w in enumerate(words[:-1]) if w in ("-o",)]
        found += [(w[2:], False) for w in words if w.startswith("-o") and len(w) > 2]
        found += [(w.split("=", 1)[1], False) for w in words
                  if "=" in w and long_options(w.split("=", 1)[0], ("--output",))]
    elif name == "uniq" and len(operands) > 1:
        found.append((operands[1], False))
    elif name == "xxd" and len(operands) > 1:
        found.append((operands[1], False))
    elif name in ("sed", "perl") and any(
            w.startswith("-i") or (w.startswith("-") and not w.startswith("--") and "i" in w)
            or long_options(w.split("=", 1)[0], ("--in-place",)) for w in words):
        found += [(w, False) for w in operands[1:]]  # every file after the script
    elif name in ("split", "csplit"):
        prefix = operands[2] if name == "split" and len(operands) > 2 else (
            operands[-1] if name == "split" and len(operands) == 2 else "x")
        found.append((re.sub(r"([*?\[])", r"[\1]", prefix) + "*", False))
    elif name == "script":  # a terminal recorder: its typescript holds what was shown
        found += [(w, False) for w in _operands(name, words)]
    elif name in ("awk", "gawk") and "inplace" in words:  # gawk -i inplace: sed -i's kin
        files = _operands(name, words)
        program_file = any(w.startswith("-f") or w.startswith("--file") for w in words)
        found += [(w, False) for w in (files if program_file else files[1:])]
    return [(w, tree) for w, tree in found if w and w != "-"]


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
    if cwd is not None and cwd and not cwd & CDPATH_SET:
        return [Written(p, True) for p in place(".", cwd)]
    return [Written(None)]


# --- the journal -------------------------------------------------------------------------------


class Journal:
    """The marks of every process on the machine: appended one JSON line each, read again from
    where it was left before each check (from the start once the file is replaced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._marks: list[Mark] = []
        self._offset = 0
        self._inode: tuple[int, int] | None = None
        self._damaged: str | None = None
        self._unwritten: list[Mark] = []  # could not be written: kept for this process's life
        self.unreadable: str | None = None  # the trouble last logged

    def marks(self) -> list[Mark]:
        """Every mark so far; ``JournalUnreadable`` when the journal cannot be read."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._marks, self._offset, self._inode, self._damaged = [], 0, None, None
            return list(self._unwritten)
        except OSError as exc:
            raise JournalUnreadable(f"{self.path}: {exc}") from exc
        try:
            st = os.fstat(fd)
            inode = (st.st_dev, st.st_ino)
            if inode != self._inode or st.st_size < self._offset:
                self._marks, self._offset, self._inode, self._damaged = [], 0, inode, None
            if self._damaged is None and st.st_size > self._offset:
                os.lseek(fd, self._offset, os.SEEK_SET)
                data = b""
                while chunk := os.read(fd, 1 << 20):
                    data += chunk
                whole = data.rfind(b"\n") + 1  # a line still being appended waits
                for raw in data[:whole].splitlines():
                    if raw.strip():
                        self._marks.append(self._parse(raw))
                self._offset += whole
        except OSError as exc:
            raise JournalUnreadable(f"{self.path}: {exc}") from exc
        except ValueError as exc:
            self._damaged = str(exc)
        finally:
            os.close(fd)
        if self._damaged is not None:
            raise JournalUnreadable(f"{self.path}: {self._damaged}")
        return self._marks + self._unwritten

    def _parse(self, raw: bytes) -> Mark:
        try:
            fields = json.loads(raw)
            mark = Mark(**fields)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"a line that is not a mark at byte {self._offset}") from exc
        if not (isinstance(mark.target, str) and isinstance(mark.path, str)
                and isinstance(mark.identity, str)):
            raise ValueError(f"a mark without its target, path or identity at {self._offset}")
        return mark

    def add(self, marks: Iterable[Mark]) -> None:
        """Append marks (one ``write`` each, so that processes do not interleave them); one
        that cannot be written is logged and kept in memory."""
        for mark in marks:
            data = (json.dumps(asdict(mark), separators=(",", ":")) + "\n").encode()
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    if os.write(fd, data) != len(data):
                        raise OSError("short write")
                finally:
                    os.close(fd)
            except OSError as exc:
                log.error("cannot write the mark of %s on %s to %s (kept in memory only): %s",
                          mark.describe(), mark.target, self.path, exc)
                self._unwritten.append(mark)


_JOURNALS: dict[Path, Journal] = {}


def journal_for(store: Path) -> Journal:
    """The journal beside ``store``, one per process."""
    path = store.with_name(store.name + SUFFIX)
    if path not in _JOURNALS:
        _JOURNALS[path] = Journal(path)
    return _JOURNALS[path]


class Memory:
    """One SSH connection's view of the marks of its ``target``, as ``identity``: those made
    through ``target`` (``host:port``), or through any name of the machine whose host key is
    ``host_key`` (set once the target is connected)."""

    host_key = ""

    def __init__(self, journal: Journal, target: str, identity: str, session: str) -> None:
        self.journal = journal
        self.target = target
        self.identity = identity
        self.session = session

    def _marks(self) -> list[Mark] | None:
        """This target's marks that apply to this identity; None: the journal is unreadable."""
        try:
            marks = self.journal.marks()
        except JournalUnreadable as exc:
            if self.journal.unreadable != str(exc):  # once for each new trouble
                self.journal.unreadable = str(exc)
                log.error("session %s: the journal of written files is unreadable, every "
                          "path counts as written until it is mended: %s", self.session, exc)
            return None
        return [m for m in marks
                if (m.target == self.target or (self.host_key and m.host_key == self.host_key))
                and (not m.anywhere or m.identity == self.identity)]

    def read(self, lines: Iterable[str], cwd: Cwd = None, *, shell: bool = True) -> str | None:
        """Which marked path one of ``lines`` (readings of one line, the first the one shown)
        may read, said for the user, or None. ``shell``: the first reading is a line for the
        shell, which reads anything when the gateway cannot read it (the others are guesses,
        and a line typed into a program is not one, as in ``reads``)."""
        marks = self._marks()
        for i, line in enumerate(lines):
            found = reads(line, cwd, unreadable=shell and not i)
            if not found.any:
                continue
            if marks is None:
                return ("the gateway's record of files written by transforms cannot be read "
                        "(every file on this target counts as one)")
            named = Reads(found.files, found.trees)  # what it names, words known
            for mark in marks:
                if names(mark, named) or (mark.anywhere and found.any):
                    return _why(mark)
            if found.unknown and marks:
                return ("the line reads a file only known when it runs, and files written on "
                        "this target by commands whose output the gateway could not read may "
                        f"be it ({len(marks)} remembered)")
        return None

    def download(self, path: str) -> str | None:
        """Why an SFTP request on ``path`` (absolute, or relative to the home directory) is
        refused, or None."""
        marks = self._marks()
        if marks is None:
            return ("the gateway's record of files written by transforms cannot be read, so "
                    "no file is downloaded from this target")
        found = Reads(files=tuple(place(path if path.startswith("/") else "~/" + path, None)))
        for mark in marks:
            if names(mark, found):
                return f"refused: {_why(mark)}"
        return None

    def wrote(self, lines: Iterable[str], cwd: Cwd = None, *, unseen: bool = False,
              shell: bool = True, blind: bool = False,
              hide: Callable[[str], bool] | None = None) -> list[Mark]:
        """Mark what ``lines`` (readings of one line) write: every path when its content may
        not have been seen (``unseen``: the connection's output is masked whole, or the line
        reads a marked file), else only what a transforming line writes (``shell`` as in
        ``read``). A path is not kept where it would keep what should not be: a line typed
        without echo (``blind``: a password perhaps), a path that holds a value masking finds
        (``hide``); "any path" of the identity is marked instead."""
        now = time.time()
        new: dict[tuple[str, bool, bool, bool], Mark] = {}  # one mark per path
        known: list[Mark] | None = None
        for i, line in enumerate(lines):
            found: list[Written] = []
            if unseen or transforms(line):
                found = writes(line, cwd, unreadable=shell and not i)
            elif made := copies(line, cwd):
                known = self._marks() if known is None else known
                found = [w for c in made for w in (
                    carried(c, known) if known is not None else [Written(c.destination, True)])]
            for written in found:
                if written.place is not None and (blind or (hide is not None and hide(
                        "/".join(written.place.parts)))):
                    written = Written(None)
                if written.place is None:
                    mark = Mark(self.target, "", self.identity, self.session, now, anywhere=True,
                                host_key=self.host_key)
                else:
                    where = written.place
                    path = "/".join(where.parts)
                    mark = Mark(self.target, "/" + path if where.anchored else path,
                                self.identity, self.session, now, floating=not where.anchored,
                                tree=written.tree, pattern=where.pattern,
                                host_key=self.host_key)
                new.setdefault((mark.path, mark.floating, mark.tree, mark.pattern), mark)
        marks = list(new.values())
        if marks:
            self.journal.add(marks)
            log.info("session %s: marked as written by a transform on %s: %s", self.session,
                     self.target, ", ".join(m.describe() for m in marks))
        return marks


def _why(mark: Mark) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(mark.at))
    return (f"{mark.describe()} was written on this target by a command whose output the "
            f"gateway could not read (session {mark.session}, {when})")
