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

What a line reads and writes is read by ``engine.ssh.linepaths``. What is marked (``writes``) by
a connection whose output is masked, before the line reaches the
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
A path of another process's memory, descriptors or arguments (``/proc/PID/fd/0``: what a transform
printed may wait in a pipe, in no file) counts as read from a marked file whether or not anything
is marked (``engine.ssh.procpaths``); a transform that pipes into a process run in the background
or detached (``rev f | setsid sleep 600 &``) marks "any path" of its identity, as a name only
known at run time does (not a metadata mark: no name is made from the data).

A process left running after its line (``engine.ssh.lingering``: ``&``, ``nohup``, ``setsid``,
a loop, ``tail -f``, ``sleep``, a named pipe made) is not judged again, and may copy what a
later transform writes where it reads into a file no line names (``tail -f x > t &``, then ``rev
s >> x``; a ``cat`` waiting on a FIFO). The rule: such a line marks every file it writes,
transform or not, and, when it writes anything or runs what the gateway cannot read, leaves a
``lingers`` mark for its identity on the target; from then on a line there that writes a file
from output the gateway could not read marks "any path" of its identity and of every identity
with a ``lingers`` mark (anywhere marks are scoped to an identity, so each one that may read the
copy gets its own). Marks never expire, so neither does this. A line judged before a file it
reads was marked (``tail -f x``, ``sleep 4; cat x``) may print what the transform wrote: the
session checks the connection's last line, and those it left running, again whenever output
arrives and the journal has grown (``SshSession.recheck``), and masks the connection whole.

A file a transform wrote may carry what it read in its size, times and name too (one file per
digit, sized by the digit). Every path mark covers its metadata: a line that may show a marked
file's size or times (``linepaths.lists``: ``ls -l``, ``stat``, ``du``, ``wc``, ``find
-printf`` …), or those of the entries of a directory that holds one, masks its connection whole
as a read does; an SFTP stat, lstat, open that keeps the content, or listing of the directory
is refused (``download``, asked of ``DIR/*`` for a listing).

A journal that cannot be read, or holds a line that is not a mark, fails closed: every path counts
as marked until it can be read. A mark that cannot be written is kept in this process's memory
(and logged) for its life. Marks are never forgotten: removing or rewriting the file does not
clear them (the gateway cannot tell the removal worked).

A second name of a file made by a line of a masked connection (``ln``, ``link``, ``cp -l``,
``cp -s``) marks both names when it is made: what a transform writes later through one is
read through the other.

Names, times and process arguments (issue 14): a line whose output may be what it read changed
and that puts it into the words of a command (``rev f | xargs mkdir``, ``touch -d
@$(cut -c6- f) x``, ``… | while read v; do …``: ``linepaths.names_from_data``), or a line of a
connection masked whole that names a value only known at run time (``mkdir "$x"`` after
``x=$(rev f)``), leaves a ``metadata`` mark for its identity on the target: plain programs
print names and times (``ls``, ``stat``, ``ps``, ``echo *``, a prompt), so from then on every
output of that identity there is masked whole and its file transfers refused
(``Memory.metadata``). Another identity's listing of those names is not masked whole (its
detectors still apply, to SFTP listings too).

Not seen: a writer that does not say which files it writes (an interpreter, ``make``, what an
interactive editor saves: marking every file they are named would mask the files they only
read, for everyone, for good; scripted editors, awk and sed scripts, archives unpacked and
programs' output options are read by ``linepaths`` and ``scriptwrites``), a link made by a
connection whose output is not masked or by a program the gateway does not read (an
interpreter, an SFTP client's ``ln`` before the file was marked), and a file read through a
path the gateway cannot tie to the one written (a link made before, a bind mount).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.guardrail.commands import Cwd
from engine.ssh.linepaths import (
    Copy,
    Place,
    Reads,
    Written,
    copies,
    links,
    lists,
    names_from_data,
    path_parts,
    place,
    reads,
    same,
    transforms,
    under,
    words_from_values,
    writes,
)
from engine.ssh.lingering import lingers
from engine.ssh.procpaths import parks, process_memory, sensitive_path
from engine.ssh.procpaths import why as why_process
from engine.ssh.shellstate import leaves_state

log = logging.getLogger(__name__)

SUFFIX = ".ssh-written"


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
    # ``identity`` put what it read, changed, into metadata on ``target`` (names, times, a
    # process's arguments: ``linepaths.names_from_data``): no file of it, every output of it
    metadata: bool = False
    # ``identity`` left a process running on ``target`` after its line (``lingering``): no
    # file of it; a later transform that writes a file there marks more (``Memory.wrote``)
    lingers: bool = False

    @property
    def path_mark(self) -> bool:
        """A mark of files (a path, or any path of its identity), not of metadata or of a
        process left running."""
        return not (self.metadata or self.lingers)

    def describe(self) -> str:
        if self.lingers:
            return "a process left running after its line"
        if self.metadata:
            return "file names, times or process arguments made from data"
        if self.anywhere:
            return "a file whose name the gateway could not see"
        return self.path if not self.floating else f"…/{self.path}" if self.path else "…"


def names(mark: Mark, reads: Reads) -> bool:
    """Whether a line that reads ``reads`` may read what ``mark`` marks."""
    if not mark.path_mark:
        return False  # no file: every output of its identity (``Memory.metadata``), or a
        # process left running (``Memory.wrote``)
    if mark.anywhere:
        return reads.any
    if reads.unknown:
        return True
    marked = _place_of(mark)
    plain = marked.anchored and not marked.pattern  # then, for plain absolute reads, strings
    for read in reads.files:
        if plain and read.anchored and not read.pattern:
            if _at_or_under(read.parts, marked.parts if mark.tree else None, marked.parts):
                return True
        elif same(read, marked) or (mark.tree and under(read, marked)):
            return True
    for tree in reads.trees:
        if plain and tree.anchored and not tree.pattern:
            if (_at_or_under(marked.parts, tree.parts, tree.parts)
                    or (mark.tree and _at_or_under(tree.parts, marked.parts, marked.parts))):
                return True
        elif same(tree, marked) or under(marked, tree) or (
                mark.tree and under(tree, marked)):
            return True
    return False


@functools.lru_cache(maxsize=1 << 16)
def _place_of(mark: Mark) -> Place:
    return Place(path_parts(mark.path), not mark.floating, mark.pattern)


def _at_or_under(path: tuple[str, ...], top: tuple[str, ...] | None,
                 exact: tuple[str, ...]) -> bool:
    """``path`` is ``exact``, or under ``top`` (None: only ``exact``)."""
    return path == exact or (top is not None and path[:len(top)] == top)


def carried(copy: Copy, marks: Iterable[Mark]) -> list[Written]:
    """Where a copy puts the marked files among what it copies: a marked source file at the
    destination (or under it by its name), a marked file under a source directory at the same
    place under the destination; one under a directory the gateway cannot place makes the
    whole destination marked."""
    dest = copy.destination
    out: list[Written] = []
    for mark in marks:
        if not mark.path_mark:
            continue
        marked = _place_of(mark)
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

    def size(self) -> tuple[int, int, int]:
        """The journal's inode and length, and how many marks this process could not write
        to it: a cheap sign that marks were added (or the journal replaced)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return (-1, -1, len(self._unwritten))
        return (st.st_ino, st.st_size, len(self._unwritten))

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
                and (not (m.anywhere or m.metadata) or m.identity == self.identity)]

    def _lingering(self) -> set[str] | None:
        """The identities that left a process running on this target (any identity's: its
        process may copy what this one writes where it reads); None: not known."""
        try:
            marks = self.journal.marks()
        except JournalUnreadable:
            return None
        return {m.identity for m in marks if m.lingers and (
            m.target == self.target or (self.host_key and m.host_key == self.host_key))}

    def metadata(self) -> str | None:
        """Why every output of this identity on this target is masked whole (and its file
        transfers refused), or None: it put what it read, changed, into file names, times or
        process arguments there (``linepaths.names_from_data``), which plain programs print
        (``ls``, ``stat``, ``ps``, a prompt, an SFTP listing). Such a mark is never forgotten,
        like a file's: the names may stay. A journal that cannot be read counts as one."""
        marks = self._marks()
        if marks is None:
            return ("the gateway's record of what transforms left on this target cannot be "
                    "read")
        for mark in marks:
            if mark.metadata:
                return _why(mark)
        return None

    def read(self, lines: Iterable[str], cwd: Cwd = None, *, shell: bool = True) -> str | None:
        """Which marked path one of ``lines`` (readings of one line, the first the one shown)
        may read, said for the user, or None. ``shell``: the first reading is a line for the
        shell, which reads anything when the gateway cannot read it (the others are guesses,
        and a line typed into a program is not one, as in ``reads``)."""
        marks = self._marks()
        for i, line in enumerate(lines):
            # another process's memory, descriptors, arguments (``procpaths``): a transform may
            # have parked its output there, in a pipe, with no file to mark
            if (other := process_memory(line, cwd, unreadable=shell and not i)) is not None:
                return why_process(other)
            found = reads(line, cwd, unreadable=shell and not i)
            if not found.any:
                if (listed := self._listed(line, cwd, marks, unreadable=shell and not i)):
                    return listed
                continue
            if marks is None:
                return ("the gateway's record of files written by transforms cannot be read "
                        "(every file on this target counts as one)")
            named = Reads(found.files, found.trees)  # what it names, words known
            marks = [m for m in marks if m.path_mark]
            for mark in marks:
                if names(mark, named) or (mark.anywhere and found.any):
                    return _why(mark)
            if found.unknown and marks:
                return ("the line reads a file only known when it runs, and files written on "
                        "this target by commands whose output the gateway could not read may "
                        f"be it ({len(marks)} remembered)")
            if (listed := self._listed(line, cwd, marks, unreadable=shell and not i)):
                return listed
        return None

    def _listed(self, line: str, cwd: Cwd, marks: list[Mark] | None, *,
                unreadable: bool) -> str | None:
        """Which marked file's metadata ``line`` may print (``ls -l``, ``stat``, ``du``,
        ``wc -c``, ``find -printf``: ``linepaths.lists``), said for the user, or None. A
        transform that wrote the file may have put what it read into its size, times or
        name as well as its content."""
        shown = lists(line, cwd, unreadable=unreadable)
        if not shown.any:
            return None
        if marks is None:
            return ("the gateway's record of files written by transforms cannot be read "
                    "(every file on this target counts as one)")
        marks = [m for m in marks if m.path_mark]
        named = Reads(shown.files, shown.trees)
        for mark in marks:
            if mark.anywhere or names(mark, named):
                return (f"{_why(mark)}; its size, times and name may hold what that command "
                        "read")
        if shown.unknown and marks:
            return ("the line shows the size or times of a file only known when it runs, and "
                    "files written on this target by commands whose output the gateway could "
                    f"not read may be it ({len(marks)} remembered)")
        return None

    def download(self, path: str) -> str | None:
        """Why an SFTP request on ``path`` (absolute, or relative to the home directory) is
        refused, or None."""
        if sensitive_path(path):
            return f"refused: {why_process(path)}"
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
        into_names = False  # what it read may become names, times, arguments
        lingering = False  # it leaves a process running (``lingering.lingers``)
        transformed = False  # what it writes may be what it read changed
        for i, line in enumerate(lines):
            found: list[Written] = []
            if names_from_data(line, unreadable=shell and not i) or (
                    unseen and (shell or i) and words_from_values(line)):
                into_names = True
            if lingers(line, unreadable=shell and not i):
                # what the process writes later may be what a later transform wrote where it
                # reads (``tail -f x > t &``): every file it names is marked now, as written;
                # one that writes nothing the gateway cannot see leaves nothing (``sleep 9 &``)
                left = writes(line, cwd, unreadable=shell and not i)
                lingering |= bool(left) or leaves_state(line)
                found += left
            if unseen or transforms(line):
                made_now = writes(line, cwd, unreadable=shell and not i)
                found += made_now
                transformed = transformed or bool(made_now)
                # a name only known at run time, written by a transform (``awk '{print >
                # $2}'``), or by a line whose output is masked whole (a variable it names may
                # hold what an earlier line read): what was read may be that name
                into_names |= any(w.place is None for w in made_now)
            elif made := copies(line, cwd):
                known = self._marks() if known is None else known
                found += [w for c in made for w in (
                    carried(c, known) if known is not None else [Written(c.destination, True)])]
            # a second name of a file (a hard link, a symbolic one): what is written later
            # through one is read through the other, so both are marked now
            found += links(line, cwd)
            # what a transform printed, left in a pipe to a process that outlives the line
            # (``rev f | setsid sleep 600 &``): no file holds it, any may (``/proc/PID/fd/0``)
            if (unseen or transforms(line)) and parks(line):
                found.append(Written(None))
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
        if into_names:
            mark = Mark(self.target, "", self.identity, self.session, now, metadata=True,
                        host_key=self.host_key)
            new.setdefault(("", False, False, True), mark)
        if lingering:
            mark = Mark(self.target, "", self.identity, self.session, now, lingers=True,
                        host_key=self.host_key)
            new.setdefault(("", True, True, True), mark)
        if transformed:
            # a process left running on the target (by any identity) may copy what this line
            # writes into files no line named (``tail -f x > t &`` before ``rev s >> x``; a
            # ``cat`` on a named pipe): every path of this identity and of each identity that
            # left one is marked (a journal not read: this identity's)
            others = self._lingering()
            identities = ({self.identity} if others is None else
                          others | {self.identity} if others or lingering else set())
            for identity in sorted(identities):
                mark = Mark(self.target, "", identity, self.session, now, anywhere=True,
                            host_key=self.host_key)
                new.setdefault((f"\0{identity}", False, False, False), mark)
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
