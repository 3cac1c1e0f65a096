"""Reads that span rows or tables, for the operator's views: statistics and replay.

``SqliteStore`` reads one kind of row at a time (sessions, statements, output chunks with their
bytes). What the TUI and the replay need beyond that is here, so that SQL against the store
lives in ``store/`` only:

- ``statistics``: counts per connection, identity, outcome, rule and hour, and masked values
  per rule, column and hour (the TUI's statistics screen). A held statement its client
  withdrew (a cancel, a disconnect) is ``withdrawn``, never ``denied``: nobody refused it.
- ``terminal_channels``, ``chunk_rows``, ``chunk_bytes``: an SSH session's output as the
  replay indexes it, the chunk list *without* the bytes (an index over 100 MB must not read
  them) and then the bytes of a seq range, filtered to the channels shown.
- ``session_approvals``: a session's approval requests, oldest first.
- ``session_statements``: a session's statements with their ``outcome`` (as ``by_verdict``
  counts them), so that the replay, the TUI and ``gatewatch show`` say "withdrawn" alike.

All of them only read, on the store's reading connection; a read-only store will do.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from store.sqlite import SqliteStore

# (seq, t, channel, stream, size, data of a window-size chunk else None)
ChunkRow = tuple[int, float, int, str, int, bytes | None]

# name → [(key, count)], largest first, or newest hour first for the ``*_per_hour`` ones
Statistics = dict[str, list[tuple[str, int]]]

# A statement's outcome: its verdict, except that a held one the client withdrew is
# "withdrawn". PostgreSQL records such a statement as refused ("denied") with the approval
# request it waited on, whose status says "withdrawn"; SSH records a held command as "review"
# that ended "denied" with the broker's words ("approval request … withdrawn: …") or with "the
# client went away" when the session ended under it; any other such end is "denied" (by an
# operator, or the request expired), as PostgreSQL records it. An SSH command held and then
# run (it ended ok, in error or interrupted, but not for want of a recorded request) was
# "approved", as PostgreSQL records it; one still held stays "review".
OUTCOME = ("(select case when (st.verdict = 'denied' and exists (select 1 from approvals a"
           " where a.id = st.approval_id and a.status = 'withdrawn')) or (st.verdict = 'review'"
           " and st.status = 'denied' and (st.error like 'approval request % withdrawn%'"
           " or st.error like 'the client went away%')) then 'withdrawn'"
           " when st.verdict = 'review' and st.status = 'denied' then 'denied'"
           " when st.verdict = 'review' and st.status in ('ok', 'error', 'interrupted')"
           " and coalesce(st.error, '') not like 'the gateway could not record%'"
           " then 'approved'"
           " else st.verdict end)")

def outcome(verdict: str | None, status: str | None, error: str | None) -> str | None:
    """``OUTCOME`` for one statement's fields, where there is no database to ask (an export
    built from audit records): "withdrawn" for a held statement its client withdrew,
    "approved" or "denied" for one decided after a hold, else the verdict."""
    text = error or ""
    if verdict == "review" and status == "denied":
        withdrawn = (re.match(r"approval request .* withdrawn", text) is not None
                     or text.startswith("the client went away"))
        return "withdrawn" if withdrawn else "denied"
    if (verdict == "review" and status in ("ok", "error", "interrupted")
            and not text.startswith("the gateway could not record")):
        return "approved"
    return verdict


STATISTICS_QUERIES = {
    "by_connection": "select connection as k, count(*) as n from sessions group by 1"
                     " order by 2 desc",
    # agents show their vendor: "triage-agent (example-ai)"; only sessions that opened (a
    # failed login is no activity of the identity it named)
    "by_identity": "select coalesce(identity, '?') || coalesce(' (' || identity_vendor || ')',"
                   " '') as k, count(*) as n from sessions where status <> 'rejected'"
                   " group by 1 order by 2 desc limit 10",
    "by_verdict": f"select {OUTCOME} as k, count(*) as n from statements st group by 1"
                  " order by 2 desc",
    "by_rule": "select rule as k, count(*) as n from statements where rule is not null"
               " and verdict <> 'allow' group by 1 order by 2 desc limit 10",
    "blocks_per_hour": "select substr(started_at, 1, 13) as k, count(*) as n from statements"
                       f" st where {OUTCOME} in ('block', 'denied') group by 1 order by 1 desc"
                       " limit 24",
    "reviews_per_hour": "select substr(created_at, 1, 13) as k, count(*) as n from approvals"
                        " group by 1 order by 1 desc limit 24",
    # sessions.masked: {"rule:detector/column": n}; rule and detector or column, summed
    "masked": "select substr(m.key, 1, coalesce(nullif(instr(m.key, '/'), 0) - 1,"
              " length(m.key))) as k, sum(m.value) as n from sessions s,"
              " json_each(s.masked) m where s.masked is not null group by 1"
              " order by 2 desc limit 10",
    # the column (or "recorded", for statement texts) after the "/"; exemptions have none
    "masked_columns": "select substr(m.key, instr(m.key, '/') + 1) as k, sum(m.value) as n"
                      " from sessions s, json_each(s.masked) m where s.masked is not null"
                      " and instr(m.key, '/') > 0 group by 1 order by 2 desc limit 10",
    # over time: PostgreSQL counts per statement, SSH counts per session (its output)
    "masked_per_hour": "select substr(t, 1, 13) as k, sum(n) as n from ("
                       "select st.started_at as t, m.value as n from statements st,"
                       " json_each(st.masked) m where st.masked is not null"
                       " union all select s.started_at, m.value from sessions s,"
                       " json_each(s.masked) m where s.masked is not null"
                       " and s.protocol = 'ssh' and m.key not like '%:exempt')"
                       " group by 1 order by 1 desc limit 24",
}


# The same on a PostgreSQL store, where JSON objects are read with jsonb_each_text and
# instr() is strpos().
_PG_MASKED_KEYS = ("jsonb_each_text(s.masked::jsonb) m")
PG_STATISTICS_QUERIES = {
    **STATISTICS_QUERIES,
    "masked": "select substr(m.key, 1, coalesce(nullif(strpos(m.key, '/'), 0) - 1,"
              f" length(m.key))) as k, sum(m.value::bigint) as n from sessions s,"
              f" {_PG_MASKED_KEYS} where s.masked is not null group by 1"
              " order by 2 desc limit 10",
    "masked_columns": "select substr(m.key, strpos(m.key, '/') + 1) as k,"
                      f" sum(m.value::bigint) as n from sessions s, {_PG_MASKED_KEYS}"
                      " where s.masked is not null and strpos(m.key, '/') > 0 group by 1"
                      " order by 2 desc limit 10",
    "masked_per_hour": "select substr(t, 1, 13) as k, sum(n) as n from ("
                       "select st.started_at as t, m.value::bigint as n from statements st,"
                       " jsonb_each_text(st.masked::jsonb) m where st.masked is not null"
                       " union all select s.started_at, m.value::bigint from sessions s,"
                       f" {_PG_MASKED_KEYS} where s.masked is not null"
                       " and s.protocol = 'ssh' and m.key not like '%:exempt') q"
                       " group by 1 order by 1 desc limit 24",
}


def statistics(store: SqliteStore) -> Statistics:
    """Every statistic the TUI shows, by name (the keys of ``STATISTICS_QUERIES``)."""
    queries = PG_STATISTICS_QUERIES if store.dialect == "postgresql" else STATISTICS_QUERIES
    return {name: [(str(k), int(n or 0)) for k, n in store.conn.execute(sql)]
            for name, sql in queries.items()}


def terminal_channels(store: SqliteStore, session_id: str) -> list[int]:
    """Channels that recorded a window size: the ones that had a terminal (a PTY)."""
    rows = store.conn.execute(
        "SELECT DISTINCT channel FROM ssh_output WHERE session_id = ? AND stream = 'r'"
        " ORDER BY channel", (session_id,)).fetchall()
    return [int(r[0]) for r in rows]


def chunk_rows(store: SqliteStore, session_id: str, after: int,
               limit: int) -> list[ChunkRow]:
    """The next ``limit`` chunks after seq ``after``, without their bytes (``length()`` of a
    BLOB reads no overflow pages) except for window sizes, which are a few bytes."""
    rows: list[ChunkRow] = store.conn.execute(
        "SELECT seq, t, channel, stream, length(data),"
        " CASE WHEN stream = 'r' THEN data END FROM ssh_output"
        " WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (session_id, after, limit)).fetchall()
    return rows


def chunk_bytes(store: SqliteStore, session_id: str, first: int, last: int,
                channels: Collection[int]) -> dict[int, bytes]:
    """The output bytes (streams o and e) of ``channels`` with ``first <= seq <= last``."""
    if not channels:
        return {}
    marks = ",".join("?" * len(channels))
    rows = store.conn.execute(
        "SELECT seq, data FROM ssh_output WHERE session_id = ? AND seq >= ? AND seq <= ?"
        f" AND stream IN ('o', 'e') AND channel IN ({marks})",
        (session_id, first, last, *channels)).fetchall()
    return {int(seq): bytes(data) for seq, data in rows}


def session_approvals(store: SqliteStore, session_id: str) -> list[dict[str, Any]]:
    """The session's approval requests, oldest first, as rows of the approvals table."""
    cur = store.conn.execute(
        "SELECT * FROM approvals WHERE session_id = ? ORDER BY created_at", (session_id,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def session_statements(store: SqliteStore, session_id: str) -> list[dict[str, Any]]:
    """The session's statements in order, as rows of the statements table with ``outcome``:
    the verdict, but "withdrawn" for a held one its client withdrew (``OUTCOME``)."""
    cur = store.conn.execute(
        f"SELECT st.*, {OUTCOME} AS outcome FROM statements st WHERE st.session_id = ?"
        " ORDER BY st.seq", (session_id,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
