"""Markers on a session's timeline: commands, blocks, approvals, masking, and its end.

Built from the store's records, not from the output: a command's marker is at the time it
was judged (``started_at``: the moment the user pressed Enter, before any of its output);
an approval's decision at the time it was decided; the end at ``ended_at``, as ``kill`` when
an operator ended the session (its ``end_reason`` says "killed by …").

A statement's kind is its outcome (``store.reads.OUTCOME``). PostgreSQL records a held
statement when it is decided, with the request it waited on: its marker is that decision —
``approved`` (it ran), ``denied``, or ``withdrawn`` by its client (a cancel, a disconnect),
which nobody refused and is never drawn as a denial (issue 16) — labelled with who decided and
why, and the request's own marker is not added (n/p would stop twice at one moment). An SSH
command is recorded when it is held (``review``); its request's marker says later what became
of it. n/p move through commands: markers of statements (with a ``seq``), not decisions on
their own. Masking markers are
per statement: PostgreSQL records masked counts per statement; SSH records them for the whole
session only (the output is one stream), so an SSH replay has no masking markers —
``SessionInfo.masked`` has its totals.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from recordings.replay import source
from store import SqliteStore

Kind = Literal["command", "block", "review", "withdrawn", "approved", "denied", "masked",
               "kill", "end"]
KINDS: tuple[Kind, ...] = ("command", "block", "review", "withdrawn", "approved", "denied",
                           "masked", "kill", "end")
# What n/p move through: every command the user ran or tried to run (a statement's marker:
# one with a ``seq``; an SSH command's later decision is not a command of its own).
COMMAND_KINDS: frozenset[Kind] = frozenset({"command", "block", "review", "withdrawn",
                                            "approved", "denied"})
_BY_OUTCOME: dict[str, Kind] = {"allow": "command", "approved": "approved", "block": "block",
                                "denied": "denied", "review": "review",
                                "withdrawn": "withdrawn"}
_BY_STATUS: dict[str, Kind] = {"approved": "approved", "withdrawn": "withdrawn"}


def outcome(st: dict[str, Any]) -> str:
    """A statement row's outcome: ``outcome`` as ``store.reads.session_statements`` reads it,
    else its verdict (rows read some other way)."""
    return str(st.get("outcome") or st.get("verdict") or "allow")


@dataclass(frozen=True, slots=True)
class Marker:
    t: float  # seconds from the session's start
    kind: Kind
    label: str
    seq: int | None = None  # the statement (command) it belongs to


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def statement_markers(info: source.SessionInfo, statements: Iterable[dict[str, Any]],
                      decisions: Mapping[str, str] | None = None) -> Iterator[Marker]:
    """``decisions``: approval request id → how it was decided ("denied by bob: not now",
    "withdrawn: canceled by the client"), said on the marker of the statement that waited
    on it."""
    for st in statements:
        at = source.epoch(st.get("started_at"))
        if at is None:
            continue
        t = max(at - info.started, 0.0)
        # held at this time (SSH): the approval's marker tells the rest
        kind: Kind = ("review" if st.get("verdict") == "review"
                      else _BY_OUTCOME.get(outcome(st), "command"))
        label = _one_line(st.get("text") or "")
        if st.get("rule") and kind != "command":
            label = f"{label} (rule {st['rule']})"
        if kind in ("approved", "denied", "withdrawn"):
            how = (decisions or {}).get(st.get("approval_id") or "")
            label = f"{label}: {how or kind}"
        yield Marker(t, kind, label, st.get("seq"))
        masked = source.counts(st.get("masked"))
        if masked:
            total = sum(masked.values())
            what = ", ".join(sorted(masked))
            yield Marker(t, "masked", f"{total} value(s) masked: {_one_line(what, 80)}",
                         st.get("seq"))


def decision(req: dict[str, Any]) -> str:
    """How a request was decided: "approved by bob", "denied by bob: not now", "withdrawn:
    canceled by the client", "expired: …"."""
    by = f" by {req['decided_by']}" if req.get("decided_by") else ""
    why = f": {req['decision_reason']}" if req.get("decision_reason") else ""
    return f"{req.get('status') or 'pending'}{by}{why}"


def approval_markers(info: source.SessionInfo, approvals: Iterable[dict[str, Any]],
                     told: Collection[str] = ()) -> Iterator[Marker]:
    """Decisions on the session's approval requests, but for those a statement's marker says
    already (``told``: the requests statements name)."""
    for req in approvals:
        at = source.epoch(req.get("decided_at"))
        status = req.get("status") or "pending"
        if at is None or status == "pending" or req["id"] in told:
            continue
        kind = _BY_STATUS.get(status, "denied")  # expired: no approval, as good as denied
        yield Marker(max(at - info.started, 0.0), kind,
                     f"{decision(req)} — {_one_line(req.get('statement') or '', 80)}")


def end_marker(info: source.SessionInfo) -> Marker | None:
    if info.length is None:
        return None
    reason = info.end_reason or info.status
    kind: Kind = "kill" if reason.startswith("killed by") else "end"
    return Marker(info.length, kind, _one_line(reason))


def _counts(marker: Marker, kinds: Collection[Kind]) -> bool:
    """``marker`` is one of ``kinds``; a decision without a statement (an SSH command's
    approval, its ``seq`` None) is no command for n/p."""
    return marker.kind in kinds and (marker.seq is not None
                                     or marker.kind not in COMMAND_KINDS)


class Markers(Sequence[Marker]):
    """A session's markers in time order, with next/previous by kind."""

    def __init__(self, markers: Iterable[Marker]) -> None:
        # in time, and at the same time in the order of KINDS (a command before its masking)
        self._markers = sorted(markers, key=lambda m: (m.t, KINDS.index(m.kind)))
        self._times = [m.t for m in self._markers]

    @classmethod
    def load(cls, store: SqliteStore, info: source.SessionInfo,
             statements: Iterable[dict[str, Any]] | None = None) -> Markers:
        """From the store: the session's statements (unless given), approval requests and
        end."""
        rows = list(source.statements(store, info.id) if statements is None else statements)
        requests = source.approvals(store, info.id)
        told = {st["approval_id"] for st in rows if st.get("approval_id")}
        decisions = {str(r["id"]): decision(r) for r in requests}
        found = [*statement_markers(info, rows, decisions),
                 *approval_markers(info, requests, told)]
        end = end_marker(info)
        return cls([*found, end] if end is not None else found)

    def __getitem__(self, i: int) -> Marker:  # type: ignore[override]
        return self._markers[i]

    def __len__(self) -> int:
        return len(self._markers)

    def next(self, t: float, kinds: Collection[Kind] = COMMAND_KINDS) -> Marker | None:
        """The first marker of ``kinds`` strictly after ``t`` (of ``COMMAND_KINDS``: a
        statement's, not a decision of its own)."""
        for i in range(bisect_right(self._times, t), len(self._markers)):
            if _counts(self._markers[i], kinds):
                return self._markers[i]
        return None

    def previous(self, t: float, kinds: Collection[Kind] = COMMAND_KINDS) -> Marker | None:
        """The last marker of ``kinds`` strictly before ``t`` (as ``next``)."""
        for i in range(bisect_left(self._times, t) - 1, -1, -1):
            if _counts(self._markers[i], kinds):
                return self._markers[i]
        return None

    def between(self, start: float, end: float) -> list[Marker]:
        """Markers with ``start <= t < end`` (to draw one cell of a timeline bar)."""
        return self._markers[bisect_left(self._times, start):bisect_left(self._times, end)]
