"""The way back from the target: results masked before they reach the client, statements closed.

``ResultPath`` takes what the relay let through from the target, masks it (``ResultMasker``:
column rules by the table column behind each result column, value detectors on every value),
writes it to the client, and closes the records of the statements the same messages finished,
each with the masking counts of its own results. When a result comes from a table the catalog
has not looked up yet, what precedes it goes out, the rest is held (and the target is no longer
read) until the lookup is done: a row is never sent before the gateway knows its columns.

Masking is bounded per turn of the event loop (ARCHITECTURE.md invariant 8): one turn masks
slices of ``SLICE`` bytes of whole messages for ``TURN`` seconds at most; the rest waits in
order, the target is not read, and the masking goes on in the next turn, after the other
sessions' ready sockets.
(The event loop reads a socket up to 32 times, 256 KiB each, in one turn: 8 MB of hashed rows
masked inline held every other session for seconds, issue 14.)

A slice of ``OFF_LOOP`` bytes or more (a long message: a long value) is masked in a worker
thread, never in a turn of the loop, and there each value of ``LARGE_VALUE`` characters or more
is masked in pieces that give the interpreter away between them (``ResultMasker._bounded``): no
masking call on the loop reads more than ``OFF_LOOP`` bytes, none in the thread (but for a value
with no place to cut) more than about a piece. A message of 8-256 KiB was masked in one call
on the loop, and a value just under 1 MiB in one call in the thread, which held the
interpreter, and so the loop, for as long (outside attack round 13, finding 5).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from engine.masking import sqlstates
from engine.masking.flow import StatementFlow
from engine.masking.lineage import Analyzer, Missing
from engine.masking.masker import ValueMasker
from engine.masking.pg import HIDDEN_ERROR, ResultMasker, TextMasker
from engine.masking.policy import SessionMasking
from engine.masking.strategies import REDACT
from engine.pg import rowcount
from engine.pg.catalog import TableCatalog
from engine.pg.codec import ProtocolViolation
from engine.pg.encoding import SessionEncoding
from engine.pg.relay import GATEWAY_ERROR, StatementFinished
from engine.pg.side import Side
from engine.session import Session
from engine.tasks import spawn

log = logging.getLogger(__name__)

# Reported settings whose value is free text that set_config() may have set from a masked
# column: ``application_name``, and a ``TimeZone`` named '<…>+4' (POSIX zones take any name).
_FREE_TEXT_SETTINGS = (b"application_name\x00", b"TimeZone\x00")

SLICE = 8 * 1024  # bytes of whole messages masked at a time
OFF_LOOP = 2 * SLICE  # a slice this long is masked in a worker thread rather than inline
BATCH = 1 << 20  # bytes of whole messages a worker thread masks at a time (one hop per MiB)
TURN = 0.002  # seconds of masking in one turn of the event loop, before the rest waits


def _cut(data: bytes, pos: int, size: int) -> int:
    """Where the slice of ``data`` (whole messages, back to back) from ``pos`` ends: after the
    first message that reaches ``size`` bytes or more (at least one message)."""
    start, n = pos, len(data)
    while pos - start < size and n - pos >= 5:
        pos += 1 + int.from_bytes(data[pos + 1 : pos + 5], "big")
    return min(pos, n)


def _without_own(data: bytes) -> bytes:
    """``data`` (whole frontend messages) without the gateway's own Parse, Bind, Describe,
    Execute and Close under its reserved statement and portal name."""
    kept: list[bytes] = []
    pos, n = 0, len(data)
    own = rowcount.RESERVED + b"\x00"
    while n - pos >= 5:
        tag = data[pos]
        end = pos + 1 + int.from_bytes(data[pos + 1 : pos + 5], "big")
        body = data[pos + 5 : end]
        named = body[1:] if tag in (67, 68) else body  # Close, Describe: a kind byte first
        if not (tag in (66, 67, 68, 69, 80) and named.startswith(own)):
            kept.append(data[pos:end])
        pos = end
    kept.append(data[pos:])
    return b"".join(kept)


class ResultPath:
    def __init__(self, session: Session, client: Side, results: ResultMasker | None,
                 catalog: TableCatalog | None, *,
                 broken: Callable[[ProtocolViolation], None],
                 failed: Callable[[str], None], more_input: Callable[[], None]) -> None:
        self.session = session
        self.client = client
        self.upstream: Side | None = None
        self.results = results
        self.catalog = catalog
        self._broken = broken  # the target sent what cannot be read
        self._failed = failed  # the catalog lookup failed: end the session with this
        self._more_input = more_input  # the relay may take client input again
        self.held: bytearray | None = None  # backend bytes held while the catalog is read
        self._finished_held: list[StatementFinished] = []
        self.client_full = False
        # A worker thread masks with ``results``: statements the client sends meanwhile are
        # told to its flow when it is done (the flow is not changed under its feet).
        self._off_loop = False
        self._unsent: list[bytes] = []
        # The gateway's own ErrorResponses tagged ``GATEWAY_ERROR`` in what the relay lets
        # through, not yet tagged 'E' again (``_own``): they pass the masker untouched.
        self.own_errors = 0

    def mask_with(self, masking: SessionMasking, values: TextMasker,
                  catalog: TableCatalog | None,
                  encoding: SessionEncoding | None = None) -> ResultMasker:
        """Mask this session's results. With column rules, each result column follows its
        statement's lineage (``engine.masking.lineage``) back to table columns, read from the
        catalog by name; statements and portals are named as the relay names them
        (``encoding``: as the target holds them)."""
        flow = None
        if masking.columns and catalog is not None:
            encoding = encoding or SessionEncoding()
            flow = StatementFlow(Analyzer(catalog, masking.masked_source,
                                          names=masking.masked_name),
                                 name_key=encoding.name, sql_key=encoding.sql_name)
        if isinstance(values, ValueMasker):  # database values, each read whole
            values = values.for_values()
        self.results = ResultMasker(
            values, masking.column_rule if masking.columns else None,
            catalog.known if catalog is not None else None,
            flow=flow, lineage_rule=masking.lineage_rule if flow is not None else None)
        self.catalog = catalog
        return self.results

    def sent(self, data: bytes) -> None:
        """Frontend messages forwarded to the target: which statement each result is of. The
        gateway's own among them (the statistics read in front of a counted Bind, under the
        ``rowcount.RESERVED`` names) are not the client's: the relay drops their answers, so
        the flow must not wait for them (an error of the client's Execute was taken for the
        reading's, and went out unmasked)."""
        if self.results is not None and self.results.flow is not None:
            if rowcount.RESERVED in data:
                data = _without_own(data)
            if self._off_loop:
                self._unsent.append(data)
            else:
                self.results.flow.sent(data)

    def deliver(self, out: bytes, finished: list[StatementFinished]) -> None:
        """Backend bytes the relay let through, and the statements they finished."""
        if self.held is not None:  # a catalog lookup is under way: keep the order
            self.held += out
            self._finished_held += finished
        else:
            self._deliver(out, finished)

    def reply(self, data: bytes) -> None:
        """The gateway's own answer (a refused statement's error) comes after results of
        earlier statements that wait for a catalog lookup, never before them."""
        if self.held is not None:
            self.held += data
        else:
            self.client.write(data)

    def _deliver(self, out: bytes, finished: list[StatementFinished]) -> None:
        if out and self.results is not None:
            self._mask(out, finished, self.results)
            return
        if finished:
            self.finish(finished)
        if out:
            self.client.write(self._own(out))

    def _mask(self, out: bytes, finished: list[StatementFinished],
              results: ResultMasker) -> None:
        """Mask ``out`` slice by slice for up to ``TURN`` seconds; what is left waits, in
        order, for the next turn of the event loop, and the target is not read meanwhile
        (the statements it finishes close with it)."""
        started = time.perf_counter()
        pos, n = 0, len(out)
        while True:
            cut = _cut(out, pos, SLICE) if n - pos > SLICE else n
            head = out[pos:cut] if pos or cut < n else out
            last = cut == n
            if len(head) >= OFF_LOOP:
                # A long message (a long value) is masked in a worker thread, with the whole
                # messages after it up to ``BATCH``: other sessions go on meanwhile
                # (ARCHITECTURE.md invariant 8). This session's later results wait behind
                # it, in order, and the target is not read.
                if cut < n:
                    cut = _cut(out, pos, BATCH) if n - pos > BATCH else n
                    head, last = out[pos:cut], cut == n
                self.held = bytearray(out[cut:])
                self._finished_held = [] if last else list(finished)
                if self.upstream is not None:
                    self.upstream.pause_reading()
                spawn(self._rewrite_off_loop(head, finished if last else []),
                      f"pg session {self.session.id} masking")
                return
            try:
                masked, counts = results.rewrite(head)
            except ProtocolViolation as exc:
                self._broken(exc)
                return
            self._rewritten(head, finished if last else [], masked, counts)
            if last:
                return
            pos = cut
            if self.held is not None:  # a catalog lookup: its release goes on with the rest
                self.held += out[pos:]
                self._finished_held += finished
                return
            if self.session.ended:
                return
            if time.perf_counter() - started >= TURN:
                self.held, self._finished_held = bytearray(out[pos:]), list(finished)
                if self.upstream is not None:
                    self.upstream.pause_reading()
                asyncio.get_running_loop().call_soon(self._next_slice)
                return

    def _reported_settings(self, out: bytes) -> bytes:
        """A ParameterStatus reporting ``application_name`` or ``TimeZone`` set from a masked
        column (``set_config('application_name', national_id, false)``): its value is masked
        whole. Lineage keeps what settings were set from (``engine.masking.lineage``)."""
        masking = self.session.masking
        if self.catalog is None or masking is None or not any(
                name in out for name in _FREE_TEXT_SETTINGS):
            return out
        kept = self.catalog.derived("pg_settings", "setting")
        if not kept or masking.lineage_rule(kept) is None:
            return out
        pieces: list[bytes] = []
        pos = 0
        while pos + 5 <= len(out):
            end = pos + 1 + int.from_bytes(out[pos + 1:pos + 5], "big")
            if end > len(out):
                break
            name = out[pos + 5:end].partition(b"\x00")[0] + b"\x00"
            if out[pos] == ord("S") and name in _FREE_TEXT_SETTINGS:
                body = name + REDACT.mask.encode() + b"\x00"
                pieces.append(b"S" + (len(body) + 4).to_bytes(4, "big") + body)
            else:
                pieces.append(out[pos:end])
            pos = end
        pieces.append(out[pos:])
        return b"".join(pieces)

    async def _rewrite_off_loop(self, out: bytes, finished: list[StatementFinished]) -> None:
        results = self.results
        assert results is not None
        self._off_loop = True
        try:
            masked, counts = await asyncio.to_thread(results.rewrite, out)
        except ProtocolViolation as exc:
            self._broken(exc)
            return
        except Exception:  # a bug must not leave the session hung
            log.exception("session %s: masking failed", self.session.id)
            self._failed("the gateway could not mask this result")
            return
        finally:
            self._off_loop = False
            unsent, self._unsent = self._unsent, []
            if unsent and results.flow is not None:
                results.flow.sent(b"".join(unsent))
        if self.session.ended:
            return
        waiting, waiting_finished = self.held, self._finished_held
        self.held, self._finished_held = None, []
        self._rewritten(out, finished, masked, counts)
        if waiting:
            self.deliver(bytes(waiting), waiting_finished)
        elif waiting_finished:
            self.deliver(b"", waiting_finished)
        self._resume_unless_held()
        self._more_input()

    def _rewritten(self, out: bytes, finished: list[StatementFinished], masked: bytes,
                   counts: Counter[tuple[str, str]]) -> None:
        results = self.results
        assert results is not None
        if counts:
            self.session.masked.update(self.keys(counts))
        if masked and results.flow is not None:
            masked = self._reported_settings(masked)  # after the statements it ends learnt
        masked = self._own(masked)
        if results.stopped_at is not None:
            self.held = bytearray(out[results.stopped_at:])
            self._finished_held = list(finished)
            if self.upstream is not None:
                self.upstream.pause_reading()
            if masked:
                self.client.write(masked)
            names = results.missing_names
            if not results.missing and names is not None and self.catalog is not None:
                # Only names to check (each statement's once): answered by a callback.
                self.catalog.check_names(names.relations, names.functions, self._names_checked)
            else:
                spawn(self._look_up(results.missing, names),
                      f"pg session {self.session.id} catalog")
            return
        if finished:
            self.finish(finished)
        if masked:
            self.client.write(masked)

    def _own(self, data: bytes) -> bytes:
        """``data`` with the gateway's own errors tagged 'E' again: the gateway wrote them,
        and they carry nothing of the target's (its rule, reason and hint reach the client
        as written), while the masker screened every message of the target around them."""
        if not self.own_errors:
            return data
        pieces: list[bytes] = []
        pos = run = 0
        n = len(data)
        tag = GATEWAY_ERROR[0]
        while n - pos >= 5 and self.own_errors:
            end = pos + 1 + int.from_bytes(data[pos + 1 : pos + 5], "big")
            if data[pos] == tag:
                pieces.append(data[run:pos])
                pieces.append(b"E" + data[pos + 1 : end])
                run = end
                self.own_errors -= 1
            pos = end
        if not pieces:
            return data
        pieces.append(data[run:])
        return b"".join(pieces)

    async def _look_up(self, tables: frozenset[int], names: Missing | None) -> None:
        assert self.catalog is not None
        try:
            if tables:
                await self.catalog.resolve(tables)
            if names is not None and self.results is not None:
                # A failed lookup leaves the names unknown: lineage then fails closed on them,
                # without asking again, for the catalog's retry interval.
                results = self.results
                failed = not await self.catalog.resolve_names(names.relations, names.functions)
                _names_failed(results, failed)
                if failed:
                    asyncio.get_running_loop().call_later(
                        self.catalog.retry, _names_failed, results, False)
        except Exception:  # resolve fails closed itself; a bug must not leave the session hung
            log.exception("session %s: catalog lookup failed", self.session.id)
            self._failed("the gateway could not check this result's columns")
            return
        self._release()

    def _names_checked(self, found: bool) -> None:
        """The catalog answered the check of the names the held result's lineage used."""
        try:
            if self.results is not None:
                # A failed check leaves the names unknown: lineage then fails closed on them,
                # without asking again, for the catalog's retry interval.
                _names_failed(self.results, not found)
                if not found and self.catalog is not None:
                    asyncio.get_running_loop().call_later(
                        self.catalog.retry, _names_failed, self.results, False)
            self._release()
        except Exception:  # a bug must not leave the session hung
            log.exception("session %s: catalog check failed", self.session.id)
            self._failed("the gateway could not check this result's columns")

    def _next_slice(self) -> None:
        """The next turn of the event loop: the next slice of what waits is masked."""
        try:
            self._release()
        except Exception:  # a bug must not leave the session hung
            log.exception("session %s: masking failed", self.session.id)
            self._failed("the gateway could not mask this result")

    def _release(self) -> None:
        """What was held for a catalog lookup goes on (masked with what it found)."""
        held, finished = self.held, self._finished_held
        self.held, self._finished_held = None, []
        if self.session.ended or held is None:
            return
        self._deliver(bytes(held), finished)
        self._resume_unless_held()
        self._more_input()

    def _resume_unless_held(self) -> None:
        """Read from the target again, unless a catalog lookup holds what it sends: read
        ``held`` anew here, since what was just delivered may have started one (in the caller
        mypy and mypyc take it for the None it was set to before)."""
        if self.held is None and not self.client_full and self.upstream is not None:
            self.upstream.resume_reading()

    def drain_held(self) -> None:
        """The session ends: statements that finished at the target, whose results never
        reached the client, are recorded all the same."""
        held, self._finished_held = self._finished_held, []
        if held:
            self.finish(held)

    def finish(self, finished: list[StatementFinished]) -> None:
        """Close the records of ``finished``. Each result the target ended (with its masking
        counts) belongs to the next statement that finished with a result, in order: both
        come from the same backend messages. Several results for one statement (a
        multi-statement Query) all go to it; a Bind closed unexecuted at Sync, or a refused
        statement, had no result of its own."""
        per: dict[int, Counter[tuple[str, str]]] = {}
        ended = self.results.ended if self.results is not None else None
        if ended:
            receivers = [i for i, f in enumerate(finished)
                         if f.status in ("ok", "error") and f.command != "BIND"]
            for i in receivers:
                if not ended:
                    break
                per[i] = ended.popleft()
            if receivers:
                last = per.setdefault(receivers[-1], Counter())
                while ended:
                    last.update(ended.popleft())
        for i, f in enumerate(finished):
            counted = per.get(i)
            error, sqlstate = f.error, f.sqlstate
            if error is not None and self.results is not None:
                # The relay read the target's error; the record keeps what the client got
                # (ARCHITECTURE.md invariant 6): an error may quote a masked column's value,
                # and a hidden error's code is PostgreSQL's own or P0001 (``sqlstates``).
                error, _ = self.results.recorded_error(error)
                if error == HIDDEN_ERROR and sqlstate not in sqlstates.KNOWN:
                    sqlstate = sqlstates.RAISED
            self.session.finished(f.seq, f.status, command=f.command, rows=f.rows,
                                  sqlstate=sqlstate, error=error, at=f.finished,
                                  masked=self.keys(counted) if counted else None)

    def keys(self, counts: Counter[tuple[str, str]]) -> dict[str, int]:
        """Counts by (rule or detector, column) as the store keeps them: "rule:detector/column"
        for a detector, "rule:column/column" for a column rule."""
        masking = self.session.masking
        assert masking is not None
        keyed: dict[str, int] = {}
        for (name, column), n in counts.items():
            key = masking.count_key(name) if name in masking.rule_of else f"{name}:column"
            key = f"{key}/{column}" if column else key
            keyed[key] = keyed.get(key, 0) + n
        return keyed


def _names_failed(results: ResultMasker, failed: bool) -> None:
    """Whether the last check of catalog names failed: the masker and its statements' flow
    then use lineages with names not checked as they are, failing closed on them."""
    results.names_failed = failed
    if results.flow is not None:
        results.flow.names_failed = failed
