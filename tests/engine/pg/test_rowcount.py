"""Writes judged by the rows they change (``rows_over``) as relay conversations: the write
goes behind the gateway's BEGIN or SAVEPOINT, is counted, then committed, released, or rolled
back and held; what the client sends meanwhile waits; the client sees what the statement alone
would have answered."""

from __future__ import annotations

import pytest

from engine.guardrail import Guard, GuardrailSettings, Rule
from engine.guardrail.rules import Match
from engine.pg.codec import message
from engine.pg.relay import FAILING_QUERY, ClientOutcome, Decision, PgRelay
from tests.engine.pg import build as b
from tests.engine.pg.test_relay import SYNTAX_ERROR

RULES = (
    Rule("review-unbounded-writes", "review",
         Match(statements=frozenset({"UPDATE WITHOUT WHERE", "DELETE WITHOUT WHERE"}))),
    Rule("big-writes", "review", Match(rows_over=100)),
    Rule("huge-deletes", "block", Match(statements=frozenset({"DELETE"}), rows_over=1000)),
)
WRITE = "UPDATE t SET a = 0 WHERE k = 'x'"


def relay(status: bytes = b"I") -> PgRelay:
    r = PgRelay(1 << 20, Guard(RULES, GuardrailSettings()).for_session("c", "u", frozenset()))
    r.transaction_status = status
    return r


def q(sql: str) -> bytes:
    return message(b"Q", sql.encode() + b"\x00")


def sent(r: PgRelay, data: bytes) -> tuple[ClientOutcome, bytes]:
    """The outcome, and what the target gets for it."""
    out = r.client_data(data)
    return out, r.wire(out.out)


def test_under_the_limit_in_autocommit_commits_and_answers_as_the_statement_alone() -> None:
    r = relay()
    out, wire = sent(r, b.query(WRITE) + b.query("SELECT 1"))
    # The SELECT waits: it would run inside our BEGIN. The masker is handed the write only
    # once it stands (``seen_late``).
    assert out.out == b""
    assert wire == q("BEGIN;" + WRITE)
    [s] = out.started
    assert (s.verdict, s.rule) == ("count", "big-writes")
    to_client, done = r.server_data(b.command_complete("BEGIN") + b.command_complete("UPDATE 3")
                                    + b.ready(b"T"))
    assert (to_client, done) == (b"", [])
    assert r.upstream_data() == q("COMMIT")
    assert r.client_data(b"").out == b""  # still counting
    to_client, done = r.server_data(b.command_complete("COMMIT") + b.ready(b"I"))
    assert to_client == b.command_complete("UPDATE 3") + b.ready(b"I")
    assert r.seen_late() == b.query(WRITE)
    assert [(f.status, f.command, f.rows) for f in done] == [("ok", "UPDATE 3", 3)]
    assert r.wants_input and r.transaction_status == b"I"
    out, wire = sent(r, b"")
    assert out.out == wire == b.query("SELECT 1")


def test_over_the_limit_is_rolled_back_held_and_run_once_when_approved() -> None:
    r = relay()
    out, wire = sent(r, b.query(WRITE))
    assert wire == q("BEGIN;" + WRITE)
    r.server_data(b.command_complete("BEGIN") + b.command_complete("UPDATE 150")
                  + b.ready(b"T"))
    assert r.upstream_data() == q("ROLLBACK")
    to_client, done = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert to_client == b"" and r.seen_late() == b""  # its results never reach the masker
    [f] = done
    assert (f.status, f.rows) == ("rolled back", 150) and "more than 100" in (f.error or "")
    held = r.client_data(b"")
    assert held.hold is not None and held.out == b""
    assert held.hold.text == WRITE and "150 rows" in held.hold.notes[0]
    assert r.client_data(b.query("SELECT 2")).out == b""  # waits behind the hold
    r.decide(Decision(True, "a1"))
    out, wire = sent(r, b"")
    # Run once, counted again with the count its approver saw (150) as its limit; what the
    # client sent behind it waits for that count.
    assert out.out == b"" and wire == q("BEGIN;" + WRITE)
    assert [(s.verdict, s.approval, s.seq) for s in out.started] == [("approved", "a1", 2)]
    r.server_data(b.command_complete("BEGIN") + b.command_complete("UPDATE 150")
                  + b.ready(b"T"))
    assert r.upstream_data() == q("COMMIT")
    to_client, [f] = r.server_data(b.command_complete("COMMIT") + b.ready(b"I"))
    assert to_client == b.command_complete("UPDATE 150") + b.ready(b"I") and f.status == "ok"
    out, wire = sent(r, b"")
    assert out.out == wire == b.query("SELECT 2")


@pytest.mark.parametrize("status", [b"I", b"T"])
def test_approved_it_writes_no_more_rows_than_its_approver_saw(status: bytes) -> None:
    """Issue 12 (TOCTOU): held at 150 rows; meanwhile its WHERE came to match 1000; approved,
    it is counted again, rolled back and refused; in the client's block that block is then
    aborted, as the statement failing there would leave it."""
    r = relay(status)
    first = "BEGIN;" if status == b"I" else "SAVEPOINT gatewatch_rows;"
    finish = (q("ROLLBACK") if status == b"I" else
              q("ROLLBACK TO SAVEPOINT gatewatch_rows; RELEASE SAVEPOINT gatewatch_rows"))
    done = (b.command_complete("ROLLBACK") if status == b"I" else
            b.command_complete("ROLLBACK") + b.command_complete("RELEASE"))
    sent(r, b.query(WRITE))
    r.server_data(b.command_complete(first[:-1]) + b.command_complete("UPDATE 150")
                  + b.ready(b"T"))
    r.upstream_data()
    r.server_data(done + b.ready(status))
    assert r.client_data(b"").hold is not None
    r.decide(Decision(True, "a1"))
    _, wire = sent(r, b"")
    assert wire == q(first + WRITE)
    r.server_data(b.command_complete(first[:-1]) + b.command_complete("UPDATE 1000")
                  + b.ready(b"T"))
    assert r.upstream_data() == finish
    to_client, [f] = r.server_data(done + b.ready(status))
    assert f.status == "blocked" and "more than 150" in (f.error or "")
    if status == b"T":  # the target fails in its place: the block is aborted
        assert to_client == b"" and r.upstream_data() == FAILING_QUERY
        to_client, _ = r.server_data(SYNTAX_ERROR + b.ready(b"E"))
    assert b"it writes 1000 rows, more than 150" in to_client
    assert to_client.endswith(b.ready(b"E" if status == b"T" else b"I"))


def test_denied_after_the_count_runs_nothing_more() -> None:
    r = relay()
    sent(r, b.query(WRITE))
    r.server_data(b.command_complete("BEGIN") + b.command_complete("UPDATE 150")
                  + b.ready(b"T"))
    r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert r.client_data(b"").hold is not None
    r.decide(Decision(False, "a1", "statement denied by oncall"))
    out, wire = sent(r, b"")
    assert wire == b"" and b"statement denied by oncall" in out.reply
    assert [f.status for f in out.finished] == ["denied"]


def test_inside_a_transaction_a_savepoint_is_released_or_rolled_back_to() -> None:
    r = relay(b"T")
    _, wire = sent(r, b.query(WRITE + " RETURNING a"))
    assert wire == q("SAVEPOINT gatewatch_rows;" + WRITE + " RETURNING a")
    rows = b.row_description("a") + b.data_row(b"0")
    r.server_data(b.command_complete("SAVEPOINT") + rows + b.command_complete("UPDATE 1")
                  + b.ready(b"T"))
    assert r.upstream_data() == q("RELEASE SAVEPOINT gatewatch_rows")
    to_client, _ = r.server_data(b.command_complete("RELEASE") + b.ready(b"T"))
    assert to_client == rows + b.command_complete("UPDATE 1") + b.ready(b"T")

    sent(r, b.query(WRITE))
    r.server_data(b.command_complete("SAVEPOINT") + b.command_complete("UPDATE 500")
                  + b.ready(b"T"))
    assert r.upstream_data() == q("ROLLBACK TO SAVEPOINT gatewatch_rows; "
                                  "RELEASE SAVEPOINT gatewatch_rows")
    r.server_data(b.command_complete("ROLLBACK") + b.command_complete("RELEASE")
                  + b.ready(b"T"))
    assert r.client_data(b"").hold is not None and r.transaction_status == b"T"


def test_an_error_inside_a_transaction_leaves_it_aborted() -> None:
    """No ROLLBACK TO that would hide the error: the client's transaction is aborted, as
    without the gateway; the error's position is in the client's own text."""
    r = relay(b"T")
    sent(r, b.query(WRITE))
    err = message(b"E", b"SERROR\x00C23505\x00Mduplicate key\x00P40\x00\x00")
    to_client, done = r.server_data(b.command_complete("SAVEPOINT") + err + b.ready(b"E"))
    assert r.upstream_data() == b""
    assert to_client == message(b"E", b"SERROR\x00C23505\x00Mduplicate key\x00P15\x00\x00") + (
        b.ready(b"E"))
    assert [(f.status, f.sqlstate) for f in done] == [("error", "23505")]


def test_an_error_at_commit_is_the_statement_s_error() -> None:
    """A deferred constraint fails at the gateway's COMMIT: the client sees what PostgreSQL
    sends for the statement alone, the rows, then the error in place of CommandComplete."""
    r = relay()
    sent(r, b.query(WRITE + " RETURNING a"))
    rows = b.row_description("a") + b.data_row(b"0")
    r.server_data(b.command_complete("BEGIN") + rows + b.command_complete("UPDATE 1")
                  + b.ready(b"T"))
    assert r.upstream_data() == q("COMMIT")
    err = b.error("23503", "violates foreign key constraint")
    to_client, done = r.server_data(err + b.ready(b"I"))
    assert to_client == rows + err + b.ready(b"I")
    assert [(f.status, f.sqlstate) for f in done] == [("error", "23503")]


def test_an_error_in_autocommit_ends_the_gateway_s_transaction() -> None:
    r = relay()
    sent(r, b.query(WRITE))
    err = b.error("22012", "division by zero")
    assert r.server_data(b.command_complete("BEGIN") + err + b.ready(b"E")) == (b"", [])
    assert r.upstream_data() == q("ROLLBACK")
    to_client, done = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert to_client == err + b.ready(b"I")
    assert [f.status for f in done] == ["error"]


def test_a_count_that_cannot_be_read_is_held() -> None:
    """A rule DO INSTEAD may answer with another tag: no count, so it is held."""
    r = relay()
    sent(r, b.query(WRITE))
    r.server_data(b.command_complete("BEGIN") + b.command_complete("SELECT 0")
                  + b.ready(b"T"))
    assert r.upstream_data() == q("ROLLBACK")
    _, [f] = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert f.status == "rolled back" and "cannot be read" in (f.error or "")
    assert r.client_data(b"").hold is not None


def test_over_a_blocking_limit_is_refused() -> None:
    r = relay()
    sent(r, b.query("DELETE FROM t WHERE k = 'x'"))
    r.server_data(b.command_complete("BEGIN") + b.command_complete("DELETE 5000")
                  + b.ready(b"T"))
    assert r.upstream_data() == q("ROLLBACK")
    to_client, [f] = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert b'blocked by rule "huge-deletes"' in to_client and to_client.endswith(b.ready(b"I"))
    assert f.status == "blocked"


def test_other_reviews_are_not_hidden_by_a_count() -> None:
    r = relay()
    out = r.client_data(b.query("UPDATE t SET a = 0"))  # no WHERE: reviewed whatever the count
    assert out.hold is not None and out.hold.judgement.rule == "review-unbounded-writes"
    assert out.out == b""


def test_what_cannot_be_counted_is_held_or_refused() -> None:
    # A data-modifying WITH: the tag counts only the outer statement's rows → held.
    out = relay().client_data(b.query(
        "WITH d AS (UPDATE u SET b = 1 WHERE k = 'y' RETURNING k) UPDATE t SET a = 0 "
        "WHERE k = 'x'"))
    assert out.hold is not None and "cannot count" in out.hold.judgement.verdict.reason
    # Two statements in one Query: counted (below, with what is refused).
    out = relay().client_data(b.query(WRITE + "; SELECT 1"))
    assert [s.verdict for s in out.started] == ["count"]


def test_reads_are_not_counted() -> None:
    out, wire = sent(relay(), b.query("SELECT * FROM t"))
    assert out.out == wire == b.query("SELECT * FROM t")
    assert [s.verdict for s in out.started] == ["allow"]


def test_a_write_behind_unanswered_queries_waits_for_them() -> None:
    """Its transaction status must be known (autocommit or not) before it is wrapped."""
    r = relay()
    out = r.client_data(b.query("SELECT 1") + b.query(WRITE))
    assert out.out == b.query("SELECT 1")
    r.server_data(b.command_complete("SELECT 1") + b.ready(b"T"))
    assert r.wants_input
    out, wire = sent(r, b"")
    assert wire == q("SAVEPOINT gatewatch_rows;" + WRITE)


# --- a Query of several statements --------------------------------------------------------

TWO = WRITE + "; UPDATE u SET b = 1 WHERE k = 'y'"


def test_several_statements_are_counted_each_and_committed_together() -> None:
    r = relay()
    _, wire = sent(r, b.query(TWO + "; SELECT 1"))
    assert wire == q("BEGIN;" + TWO + "; SELECT 1")
    answers = (b.command_complete("UPDATE 3") + b.command_complete("UPDATE 100")
               + b.row_description("?column?") + b.data_row(b"1") + b.command_complete("SELECT 1"))
    r.server_data(b.command_complete("BEGIN") + answers + b.ready(b"T"))
    assert r.upstream_data() == q("COMMIT")
    to_client, [f] = r.server_data(b.command_complete("COMMIT") + b.ready(b"I"))
    assert to_client == answers + b.ready(b"I") and f.status == "ok"


def test_one_statement_over_its_limit_holds_the_whole_query() -> None:
    r = relay(b"T")
    sent(r, b.query(TWO))
    r.server_data(b.command_complete("SAVEPOINT") + b.command_complete("UPDATE 3")
                  + b.command_complete("UPDATE 101") + b.ready(b"T"))
    assert r.upstream_data() == q("ROLLBACK TO SAVEPOINT gatewatch_rows; "
                                  "RELEASE SAVEPOINT gatewatch_rows")
    _, [f] = r.server_data(b.command_complete("ROLLBACK") + b.command_complete("RELEASE")
                           + b.ready(b"T"))
    assert f.status == "rolled back" and "its statement 2: it writes 101 rows" in (f.error or "")
    held = r.client_data(b"")
    assert held.hold is not None and held.hold.text == TWO
    r.decide(Decision(True, "a1"))
    out, wire = sent(r, b"")
    # Once, counted again: statement 2 with the 101 rows its approver saw as its limit.
    assert out.out == b"" and wire == q("SAVEPOINT gatewatch_rows;" + TWO)
    r.server_data(b.command_complete("SAVEPOINT") + b.command_complete("UPDATE 3")
                  + b.command_complete("UPDATE 101") + b.ready(b"T"))
    assert r.upstream_data() == q("RELEASE SAVEPOINT gatewatch_rows")


def test_a_failed_commit_takes_the_last_statement_s_place() -> None:
    r = relay()
    sent(r, b.query(TWO))
    r.server_data(b.command_complete("BEGIN") + b.command_complete("UPDATE 3")
                  + b.command_complete("UPDATE 1") + b.ready(b"T"))
    r.upstream_data()
    err = b.error("23503", "violates foreign key constraint")
    to_client, _ = r.server_data(err + b.ready(b"I"))
    assert to_client == b.command_complete("UPDATE 3") + err + b.ready(b"I")


def test_several_statements_with_transaction_control_or_copy_are_refused() -> None:
    for sql in ("BEGIN; " + WRITE + "; COMMIT", WRITE + "; COPY t FROM STDIN",
                WRITE + "; SAVEPOINT a"):
        out = relay().client_data(b.query(sql))
        assert b"alone in its Query" in out.reply and out.out == b""
