"""``sessions``, ``show`` and ``verify``: read the store, print for people or as JSON."""

from __future__ import annotations

import json
from typing import Any

from engine import shown
from store import SqliteStore, reads, verify


def _short_time(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


def _table(rows: list[list[str]], headers: list[str], below: list[str] | None = None) -> str:
    """``rows`` under ``headers``; ``below``: text shown under each row (empty: none)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if below and below[i]:
            lines.append(below[i])
    return "\n".join(lines)


BELOW_LINES = 40  # lines of a statement shown under its row (``--json`` has them all)


def _lines_below(text: str) -> str:
    """A statement of several lines, line by line under its row (its cell marks the breaks
    with ⏎ and is cut): a line after a ``--`` comment is its own line, never the comment's."""
    if len(shown.lines(text.rstrip())) < 2:
        return ""
    return shown.block(text.rstrip(), indent="      ", limit=BELOW_LINES)


def sessions(store: SqliteStore, *, as_json: bool, limit: int) -> str:
    rows = store.sessions(limit)
    if as_json:
        return json.dumps(rows)
    if not rows:
        return "no sessions recorded yet"
    headers = ["ID", "IDENTITY", "CONNECTION", "CLIENT", "APPLICATION", "DATABASE", "STARTED",
               "ENDED", "STMTS", "STATUS"]
    table = [
        [r["id"], (r["identity"] or "-") + (f" ({r['identity_vendor']})"
                                            if r.get("identity_vendor") else ""),
         r["connection"], r["client_addr"] or "-",
         (r["application_name"] or "-")[:20], r["database"] or "-", _short_time(r["started_at"]),
         _short_time(r["ended_at"]), str(r["statements"]),
         r["status"] + (f" ({r['end_reason']})" if r["end_reason"] else "")]
        for r in rows
    ]
    return _table(table, headers)


def show(store: SqliteStore, session: dict[str, Any], *, as_json: bool) -> str:
    statements = reads.session_statements(store, session["id"])  # with their outcome
    if as_json:
        return json.dumps({"session": session, "statements": statements})
    ssh = session.get("protocol") == "ssh"
    where = session.get("target") if ssh else session["database"]
    head = (
        f"session {session['id']}  {session['identity']} → {session['connection']}"
        f" ({where})  from {session['client_addr']}\n"
        f"started {_short_time(session['started_at'])}  ended {_short_time(session['ended_at'])}"
        f"  status {session['status']}"
        + (f" ({session['end_reason']})" if session["end_reason"] else "")
    )
    if not statements:
        return head + "\n\nno statements"
    table = []
    below: list[str] = []  # under each row: a statement of several lines, line by line
    for s in statements:
        text = shown.one_line(s["text"])  # each line break marked, never re-flowed
        outcome = s["status"]
        if outcome == "running" and s.get("verdict") == "review":
            outcome = "held"  # waiting for an approval: it has not reached the target
        withdrawn = s.get("outcome") == "withdrawn"  # nobody denied it: the client gave up
        if withdrawn:
            outcome = "withdrawn"
        if s["sqlstate"]:
            outcome += f" {s['sqlstate']}: {s['error']}"
        elif ssh and s["error"]:
            outcome += f": {s['error']}"
        cell = text[:80] + ("…" if len(text) > 80 else "")
        if s["params"]:
            cell += f"  ← {s['params'][:60]}"
        # how a held one ended, for both protocols (an SSH command's record keeps "review")
        decided = s.get("outcome") in ("approved", "denied", "withdrawn")
        verdict = s["outcome"] if decided else s.get("verdict") or "allow"
        if s.get("rule"):
            verdict += f" ({s['rule']})"
        if s.get("approval_id"):
            verdict += f" {s['approval_id']}"
        table.append([
            str(s["seq"]), s["started_at"][11:23], _ms(s["duration_ms"]),
            _count(s, ssh), verdict, outcome[:60], cell,
        ])
        below.append(_lines_below(s["text"]))
    return head + "\n\n" + _table(
        table, ["#", "TIME", "DURATION", "EXIT" if ssh else "ROWS", "VERDICT", "RESULT",
                "COMMAND" if ssh else "STATEMENT"], below)


def _count(statement: dict[str, Any], ssh: bool) -> str:
    value = statement.get("exit_status") if ssh else statement["rows"]
    return "-" if value is None else str(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def verify_store(store: SqliteStore, session_id: str | None) -> tuple[bool, str]:
    from recordings.export.progress import Progress

    total = sum(seq for seq, _ in store.audit_heads().values())
    with Progress("verifying the audit chain", total, unit="records") as progress:
        result = verify(store, session_id, progress.advance)
    if result.ok:
        scope = f"session {session_id}" if session_id else f"{result.sessions} sessions"
        if len(result.chains) < 2:
            said = f"ok: audit chain of {result.records} records intact; {scope} match it"
        else:  # one chain per node that wrote the store
            each = ", ".join(f"node {node}: {n}" for node, n in sorted(result.chains.items()))
            said = (f"ok: {len(result.chains)} audit chains of {result.records} records intact"
                    f" ({each}); {scope} match them")
        return True, "\n".join([said, *(f"note: {note}" for note in result.notes)])
    return False, "verification FAILED: " + result.problems[0] + (
        f" (and {len(result.problems) - 1} more problems)" if len(result.problems) > 1 else ""
    )
