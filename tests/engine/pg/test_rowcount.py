"""Writes judged by the rows they change (``rows_over``) as relay conversations: the write
goes behind the gateway's BEGIN or SAVEPOINT and its first reading of the transaction's
statistics, a second reading follows it in a Query of its own; it is counted (its tag, and the
rows triggers, rules and cascades wrote beside it), then committed, released, or rolled back
and held; what the client sends meanwhile waits; the client sees what the statement alone
would have answered."""

from __future__ import annotations

import pglast
import pytest
from pglast import ast
from pglast.visitors import Visitor

from engine.guardrail import Guard, GuardrailSettings, Rule
from engine.guardrail.rules import Match
from engine.pg import rowcount
from engine.pg.codec import message
from engine.pg.relay import FAILING_QUERY, ClientOutcome, Decision, PgRelay
from tests.engine.pg import build as b
from tests.engine.pg.answering import Answering, settings_value
from tests.engine.pg.test_relay import SYNTAX_ERROR

RULES = (
    Rule("review-unbounded-writes", "review",
         Match(statements=frozenset({"UPDATE WITHOUT WHERE", "DELETE WITHOUT WHERE"}))),
    Rule("big-writes", "review", Match(rows_over=100)),
    Rule("huge-deletes", "block", Match(statements=frozenset({"DELETE"}), rows_over=1000)),
)
WRITE = "UPDATE t SET a = 0 WHERE k = 'x'"


def relay(status: bytes = b"I") -> PgRelay:
    r = Answering(1 << 20, Guard(RULES, GuardrailSettings()).for_session("c", "u", frozenset()))
    r.transaction_status = status
    return r


def q(sql: str) -> bytes:
    return message(b"Q", sql.encode() + b"\x00")


STAT = rowcount.STAT.decode()
FILES = b"16384:16384,16390:16402"  # the tables' files (oid:file), unchanged unless a test says
# The second reading of the statistics in a transaction the client's statement left aborted.
ABORTED = b.error("25P02", "current transaction is aborted") + b.ready(b"E")


def wrapped(sql: str, in_transaction: bool = False) -> bytes:
    """What the target gets for a counted Query: the gateway's BEGIN or SAVEPOINT and first
    reading of the statistics in front of it, the second reading in a Query behind it."""
    first = "SAVEPOINT gatewatch_rows;" if in_transaction else "BEGIN;"
    return q(first + STAT + ";" + sql) + q("SET CONSTRAINTS ALL IMMEDIATE;" + STAT)


def stat(n: int | bytes | None, inserted: int = 0, files: bytes = FILES) -> bytes:
    """The target's answer to one reading of the statistics (``rowcount.STAT``): ``n`` rows
    updated and deleted so far in the transaction (bytes: as the DataRow carries them),
    ``inserted`` rows inserted, and the digest of which file holds each table."""
    value = str(n).encode() if isinstance(n, int) else n
    return (b.row_description("gatewatch_rows", "gatewatch_inserted", "gatewatch_files",
                              "gatewatch_path", "gatewatch_settings")
            + b.data_row(value, str(inserted).encode(), files, b'"$user", public',
                         settings_value())
            + b.command_complete("SELECT 1"))


def begun(before: int | bytes | None = 0, first: str = "BEGIN") -> bytes:
    """The target's answers to the gateway's statements in front of the client's."""
    return b.command_complete(first) + stat(before)


def read_again(after: int | bytes | None, status: bytes = b"T", inserted: int = 0,
               files: bytes = FILES) -> bytes:
    """The target's answers to the Query behind the client's (deferred constraints made
    immediate, the statistics read again)."""
    return (b.command_complete("SET CONSTRAINTS") + stat(after, inserted, files)
            + b.ready(status))


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
    assert wire == wrapped(WRITE)
    [s] = out.started
    assert (s.verdict, s.rule) == ("count", "big-writes")
    to_client, done = r.server_data(begun() + b.command_complete("UPDATE 3") + b.ready(b"T"))
    # Nothing is decided before the statistics are read again.
    assert (to_client, done) == (b"", []) and r.upstream_data() == b""
    to_client, done = r.server_data(read_again(3))
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
    assert wire == wrapped(WRITE)
    r.server_data(begun() + b.command_complete("UPDATE 150") + b.ready(b"T") + read_again(150))
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
    assert out.out == b"" and wire == wrapped(WRITE)
    assert [(s.verdict, s.approval, s.seq) for s in out.started] == [("approved", "a1", 2)]
    r.server_data(begun() + b.command_complete("UPDATE 150") + b.ready(b"T") + read_again(150))
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
    first = "BEGIN" if status == b"I" else "SAVEPOINT"
    before = 0 if status == b"I" else 7  # in the client's block: what it wrote before
    finish = (q("ROLLBACK") if status == b"I" else
              q("ROLLBACK TO SAVEPOINT gatewatch_rows; RELEASE SAVEPOINT gatewatch_rows"))
    done = (b.command_complete("ROLLBACK") if status == b"I" else
            b.command_complete("ROLLBACK") + b.command_complete("RELEASE"))
    sent(r, b.query(WRITE))
    r.server_data(begun(before, first) + b.command_complete("UPDATE 150") + b.ready(b"T")
                  + read_again(before + 150))
    r.upstream_data()
    r.server_data(done + b.ready(status))
    assert r.client_data(b"").hold is not None
    r.decide(Decision(True, "a1"))
    _, wire = sent(r, b"")
    assert wire == wrapped(WRITE, status == b"T")
    r.server_data(begun(before, first) + b.command_complete("UPDATE 1000") + b.ready(b"T")
                  + read_again(before + 1000))
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
    r.server_data(begun() + b.command_complete("UPDATE 150") + b.ready(b"T") + read_again(150))
    r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert r.client_data(b"").hold is not None
    r.decide(Decision(False, "a1", "statement denied by oncall"))
    out, wire = sent(r, b"")
    assert wire == b"" and b"statement denied by oncall" in out.reply
    assert [f.status for f in out.finished] == ["denied"]
    # Told truthfully: it ran once, to be counted (outside attack, round 18: "The statement
    # was not run"), in the answer and in the record.
    assert b"it was run once to count its rows, and rolled back" in out.reply
    assert b"The statement was not run" not in out.reply
    assert "run once to count its rows" in (out.finished[0].error or "")


def test_denied_without_a_count_was_not_run() -> None:
    r = relay()
    out = r.client_data(b.query("UPDATE t SET a = 0"))  # held at once
    assert out.hold is not None
    r.decide(Decision(False, "a1", "statement denied by oncall"))
    out, wire = sent(r, b"")
    assert wire == b"" and b"The statement was not run." in out.reply
    assert b"count its rows" not in out.reply


@pytest.mark.parametrize("sql", [
    "UPDATE t SET a = 0 WHERE k = 'x' AND nextval('s') > 0",
    "UPDATE t SET a = 0 WHERE k = 'x' AND pg_advisory_lock(777) IS NOT NULL",
])
def test_a_write_whose_count_a_rollback_would_not_undo_is_held_unrun(sql: str) -> None:
    """A call may take a lock or move a sequence: counting it by running it and rolling it
    back would leave that behind before anybody approved it, and again once approved
    (outside attack, round 18). Held at once, nothing sent; approved, it runs once, as it is."""
    r = relay()
    out, wire = sent(r, b.query(sql))
    assert out.hold is not None and wire == b"" and out.out == b""
    assert "does not count them by running it" in out.hold.judgement.verdict.reason
    r.decide(Decision(True, "a1"))
    _, wire = sent(r, b"")
    assert wire == q(sql)


def test_inside_a_transaction_a_savepoint_is_released_or_rolled_back_to() -> None:
    r = relay(b"T")
    _, wire = sent(r, b.query(WRITE + " RETURNING a"))
    assert wire == wrapped(WRITE + " RETURNING a", in_transaction=True)
    rows = b.row_description("a") + b.data_row(b"0")
    r.server_data(begun(0, "SAVEPOINT") + rows + b.command_complete("UPDATE 1") + b.ready(b"T")
                  + read_again(1))
    assert r.upstream_data() == q("RELEASE SAVEPOINT gatewatch_rows")
    to_client, _ = r.server_data(b.command_complete("RELEASE") + b.ready(b"T"))
    assert to_client == rows + b.command_complete("UPDATE 1") + b.ready(b"T")

    sent(r, b.query(WRITE))
    r.server_data(begun(1, "SAVEPOINT") + b.command_complete("UPDATE 500") + b.ready(b"T")
                  + read_again(501))
    assert r.upstream_data() == q("ROLLBACK TO SAVEPOINT gatewatch_rows; "
                                  "RELEASE SAVEPOINT gatewatch_rows")
    r.server_data(b.command_complete("ROLLBACK") + b.command_complete("RELEASE")
                  + b.ready(b"T"))
    assert r.client_data(b"").hold is not None and r.transaction_status == b"T"


def test_an_error_inside_a_transaction_leaves_it_aborted() -> None:
    """No ROLLBACK TO that would hide the error: the client's transaction is aborted, as
    without the gateway; the error's position is in the client's own text; the second
    reading of the statistics fails too, and the client never hears of it."""
    r = relay(b"T")
    sent(r, b.query(WRITE))
    shift = len("SAVEPOINT gatewatch_rows;" + STAT + ";")
    err = message(b"E", b"SERROR\x00C23505\x00Mduplicate key\x00P%d\x00\x00" % (15 + shift))
    to_client, done = r.server_data(begun(0, "SAVEPOINT") + err + b.ready(b"E") + ABORTED)
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
    r.server_data(begun() + rows + b.command_complete("UPDATE 1") + b.ready(b"T")
                  + read_again(1))
    assert r.upstream_data() == q("COMMIT")
    err = b.error("23503", "violates foreign key constraint")
    to_client, done = r.server_data(err + b.ready(b"I"))
    assert to_client == rows + err + b.ready(b"I")
    assert [(f.status, f.sqlstate) for f in done] == [("error", "23503")]


def test_an_error_in_autocommit_ends_the_gateway_s_transaction() -> None:
    r = relay()
    sent(r, b.query(WRITE))
    err = b.error("22012", "division by zero")
    assert r.server_data(begun() + err + b.ready(b"E") + ABORTED) == (b"", [])
    assert r.upstream_data() == q("ROLLBACK")
    to_client, done = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert to_client == err + b.ready(b"I")
    assert [f.status for f in done] == ["error"]


def test_a_count_that_cannot_be_read_is_held() -> None:
    """A rule DO INSTEAD may answer with another tag: no count, so it is held."""
    r = relay()
    sent(r, b.query(WRITE))
    r.server_data(begun() + b.command_complete("SELECT 0") + b.ready(b"T") + read_again(0))
    assert r.upstream_data() == q("ROLLBACK")
    _, [f] = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert f.status == "rolled back" and "cannot be read" in (f.error or "")
    assert r.client_data(b"").hold is not None


def test_over_a_blocking_limit_is_refused() -> None:
    r = relay()
    sent(r, b.query("DELETE FROM t WHERE k = 'x'"))
    r.server_data(begun() + b.command_complete("DELETE 5000") + b.ready(b"T")
                  + read_again(5000))
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
    assert wire == wrapped(WRITE, in_transaction=True)


# --- rows written beside the statement: triggers, rules, foreign keys' cascades -----------


def test_rows_written_through_triggers_count_too() -> None:
    """Its tag says 3 rows; the transaction's statistics grew by 253: 250 more were written
    because of it (a trigger, a rule, a cascade). Over the limit: held, with the count its
    approver sees; approved, that count is its limit, and it stands."""
    r = relay()
    sent(r, b.query(WRITE))
    r.server_data(begun(0) + b.command_complete("UPDATE 3") + b.ready(b"T") + read_again(253))
    assert r.upstream_data() == q("ROLLBACK")
    to_client, [f] = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert to_client == b"" and r.seen_late() == b""
    assert (f.status, f.rows) == ("rolled back", 253)
    assert "253 rows (250 of them through triggers, rules or foreign keys)" in (f.error or "")
    held = r.client_data(b"")
    assert held.hold is not None and "through triggers, rules or foreign keys" in (
        held.hold.notes[0])
    r.decide(Decision(True, "a1"))
    _, wire = sent(r, b"")
    assert wire == wrapped(WRITE)
    r.server_data(begun(0) + b.command_complete("UPDATE 3") + b.ready(b"T") + read_again(253))
    assert r.upstream_data() == q("COMMIT")
    to_client, [f] = r.server_data(b.command_complete("COMMIT") + b.ready(b"I"))
    # The client hears what the statement alone answers: its own tag.
    assert to_client == b.command_complete("UPDATE 3") + b.ready(b"I") and f.status == "ok"


@pytest.mark.parametrize(("before", "rows", "after", "stands"), [
    (10, 3, 15, True),  # 2 rows beside its 3: 5, far under the limit
    (10, 98, 110, True),  # 98 + 2 = 100: not more than 100
    (10, 98, 111, False),  # 98 + 3 = 101
    (10, 98, 50, True),  # fewer than its tag (a foreign table has none): never less than it
])
def test_rows_beside_it_under_the_limit_stand(before: int, rows: int, after: int,
                                              stands: bool) -> None:
    """Inside the client's block the first reading holds what the block wrote before: only
    the difference is the statement's; under the limit with it, the write stands."""
    r = relay(b"T")
    sent(r, b.query(WRITE))
    r.server_data(begun(before, "SAVEPOINT") + b.command_complete(f"UPDATE {rows}")
                  + b.ready(b"T") + read_again(after))
    if not stands:
        assert r.upstream_data() == q("ROLLBACK TO SAVEPOINT gatewatch_rows; "
                                      "RELEASE SAVEPOINT gatewatch_rows")
        _, [f] = r.server_data(b.command_complete("ROLLBACK") + b.command_complete("RELEASE")
                               + b.ready(b"T"))
        assert (f.status, f.rows) == ("rolled back", 101)
        assert r.client_data(b"").hold is not None
        return
    assert r.upstream_data() == q("RELEASE SAVEPOINT gatewatch_rows")
    to_client, [f] = r.server_data(b.command_complete("RELEASE") + b.ready(b"T"))
    assert to_client == b.command_complete(f"UPDATE {rows}") + b.ready(b"T")
    assert f.status == "ok"


@pytest.mark.parametrize(("before", "again"), [
    (0, read_again(None)),  # NULL
    (0, read_again(b"3x")),  # not a number
    (0, read_again(b"-1")),
    (None, read_again(3)),  # the first reading is the one that cannot be read
    (0, b.row_description("a") + b.data_row(b"3") + b.command_complete("SELECT 1")
     + b.ready(b"T")),  # one column
    (0, b.row_description("a", "b") + b.data_row(b"3", None) + b.command_complete("SELECT 1")
     + b.ready(b"T")),  # no inserts: track_counts off
    (0, b.command_complete("SELECT 0") + b.ready(b"T")),  # no row at all
], ids=["null", "not-a-number", "negative", "first-null", "one-column", "inserts-null",
        "no-row"])
def test_statistics_that_cannot_be_read_hold_the_write(before: int | None,
                                                       again: bytes) -> None:
    """Fail closed: what the statement wrote beside its tag is unknown, so it is rolled back
    and held, however small its tag's count."""
    r = relay()
    sent(r, b.query(WRITE))
    r.server_data(begun(before) + b.command_complete("UPDATE 3") + b.ready(b"T") + again)
    assert r.upstream_data() == q("ROLLBACK")
    to_client, [f] = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert to_client == b"" and f.status == "rolled back"
    assert "triggers, rules and foreign keys cannot be read" in (f.error or "")
    held = r.client_data(b"")
    assert held.hold is not None and held.out == b""


def test_rows_an_insert_beside_it_inserted_hide_no_trigger_rows() -> None:
    """An INSERT the rules allow (1000 rows, none of them updated or deleted) in the same
    Query as a counted UPDATE of 3 rows whose trigger updated 500 more: the statistics grew
    by 503, all of it the UPDATE's doing: 503 rows, over the limit."""
    r = relay()
    sql = "INSERT INTO log SELECT generate_series(1, 1000); " + WRITE
    sent(r, b.query(sql))
    r.server_data(begun() + b.command_complete("INSERT 0 1000") + b.command_complete("UPDATE 3")
                  + b.ready(b"T") + read_again(503, inserted=1000))
    assert r.upstream_data() == q("ROLLBACK")


def test_rows_an_upsert_inserted_hide_no_trigger_rows() -> None:
    """INSERT … ON CONFLICT DO UPDATE: 90 rows inserted, 5 updated (``INSERT 0 95``), and a
    trigger on the update deleted 95 more: the statistics grew by 100, 95 of it beside the
    statement: 190 rows, over the limit (counted as 100, it commits)."""
    r = relay()
    sent(r, b.query("INSERT INTO t VALUES (1) ON CONFLICT (k) DO UPDATE SET a = 0"))
    r.server_data(begun() + b.command_complete("INSERT 0 95") + b.ready(b"T")
                  + read_again(100, inserted=90))
    assert r.upstream_data() == q("ROLLBACK")


@pytest.mark.parametrize(("inserted", "updated"), [(0, 60), (60, 0), (30, 30)])
def test_an_upsert_s_own_rows_are_counted_once(inserted: int, updated: int) -> None:
    """Its ``INSERT 0 60`` is its inserts and updates, whatever the split: 60 rows, under the
    limit, with nothing written beside it."""
    r = relay()
    sent(r, b.query("INSERT INTO t VALUES (1) ON CONFLICT (k) DO UPDATE SET a = 0"))
    r.server_data(begun() + b.command_complete("INSERT 0 60") + b.ready(b"T")
                  + read_again(updated, inserted=inserted))
    assert r.upstream_data() == q("COMMIT")


def _unqualified(sql: bytes) -> list[str]:
    """The functions, operators and types ``sql`` names without ``pg_catalog.``: the client's
    search_path chooses what they are."""
    found: list[str] = []

    class Names(Visitor):  # type: ignore[misc]
        def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
            found.extend(_name(node.funcname))

        def visit_A_Expr(self, ancestors: object, node: ast.A_Expr) -> None:
            found.extend(_name(node.name))

        def visit_TypeName(self, ancestors: object, node: ast.TypeName) -> None:
            found.extend(_name(node.names))

    Names()(pglast.parse_sql(sql.decode()))
    return found


def _name(parts: tuple[ast.String, ...] | None) -> list[str]:
    names = [str(part.sval) for part in parts or ()]
    return [] if names[:1] == ["pg_catalog"] else [".".join(names)]


def test_the_statistics_are_read_with_the_catalog_s_own_functions() -> None:
    """A client that puts a schema of its own before pg_catalog in its search_path (with,
    say, ``CREATE AGGREGATE public.sum(int8) (sfunc = int8mul, stype = int8, initcond =
    '0')``, no code of its own) must not choose what the gateway's reading computes."""
    assert _unqualified(rowcount.STAT) == []


# --- a Query of several statements --------------------------------------------------------

TWO = WRITE + "; UPDATE u SET b = 1 WHERE k = 'y'"


def test_several_statements_are_counted_each_and_committed_together() -> None:
    r = relay()
    _, wire = sent(r, b.query(TWO + "; SELECT 1"))
    assert wire == wrapped(TWO + "; SELECT 1")
    answers = (b.command_complete("UPDATE 3") + b.command_complete("UPDATE 90")
               + b.row_description("?column?") + b.data_row(b"1") + b.command_complete("SELECT 1"))
    r.server_data(begun() + answers + b.ready(b"T") + read_again(93))
    assert r.upstream_data() == q("COMMIT")
    to_client, [f] = r.server_data(b.command_complete("COMMIT") + b.ready(b"I"))
    assert to_client == answers + b.ready(b"I") and f.status == "ok"


def test_one_statement_over_its_limit_refuses_the_whole_query() -> None:
    """Held, it would be shown with the settings read before its first statement; what the
    others change comes after (round 15): a statement to hold must come alone."""
    r = relay(b"T")
    sent(r, b.query(TWO))
    r.server_data(begun(0, "SAVEPOINT") + b.command_complete("UPDATE 3")
                  + b.command_complete("UPDATE 101") + b.ready(b"T") + read_again(104))
    assert r.upstream_data() == q("ROLLBACK TO SAVEPOINT gatewatch_rows; "
                                  "RELEASE SAVEPOINT gatewatch_rows")
    _, [f] = r.server_data(b.command_complete("ROLLBACK") + b.command_complete("RELEASE")
                           + b.ready(b"T"))
    # Together they write 104 rows: which of them wrote what the tags cannot say (a tag may
    # count rows nothing wrote), so the first counted statement is charged with them all.
    assert f.status == "blocked" and "its statement 1: it writes 104 rows" in (f.error or "")
    assert "in front of it" in (f.error or "")
    assert r.client_data(b"").hold is None


def test_rows_beside_several_statements_count_for_each() -> None:
    """Which statement's trigger wrote them is not known, nor whether a tag counts rows
    something wrote (a view's INSTEAD OF trigger may write nothing): each counted statement is
    charged with all the Query updated or deleted (errs strict)."""
    r = relay()
    sent(r, b.query(TWO))
    r.server_data(begun() + b.command_complete("UPDATE 3") + b.command_complete("UPDATE 50")
                  + b.ready(b"T") + read_again(113))
    assert r.upstream_data() == q("ROLLBACK")
    _, [f] = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert f.status == "blocked"  # (over: several statements in one Query are not held)
    assert "its statement 1: it writes 113 rows (110 of them through" in (f.error or "")


def test_a_failed_commit_takes_the_last_statement_s_place() -> None:
    r = relay()
    sent(r, b.query(TWO))
    r.server_data(begun() + b.command_complete("UPDATE 3") + b.command_complete("UPDATE 1")
                  + b.ready(b"T") + read_again(4))
    r.upstream_data()
    err = b.error("23503", "violates foreign key constraint")
    to_client, _ = r.server_data(err + b.ready(b"I"))
    assert to_client == b.command_complete("UPDATE 3") + err + b.ready(b"I")


def test_several_statements_with_transaction_control_or_copy_are_refused() -> None:
    for sql in ("BEGIN; " + WRITE + "; COMMIT", WRITE + "; COPY t FROM STDIN",
                WRITE + "; SAVEPOINT a"):
        out = relay().client_data(b.query(sql))
        assert b"alone in its Query" in out.reply and out.out == b""


def test_a_tag_that_counts_rows_nothing_wrote_hides_no_trigger_rows() -> None:
    """Ten UPDATEs of a view whose INSTEAD OF trigger writes nothing answer UPDATE 100 each;
    the statement beside them wrote 20 rows and its trigger 1000 more: 1020, over."""
    r = relay()
    text = "; ".join(["UPDATE v SET id = id WHERE id <= 100"] * 10 + [WRITE])
    sent(r, b.query(text))
    r.server_data(begun() + b.command_complete("UPDATE 100") * 10
                  + b.command_complete("UPDATE 20") + b.ready(b"T") + read_again(1020))
    assert r.upstream_data() == q("ROLLBACK")


@pytest.mark.parametrize("status", [b"I", b"T"])
def test_a_deferred_constraint_failing_early_is_the_statement_s_error(status: bytes) -> None:
    """Deferred constraints fire before the second reading (their triggers' writes are
    counted): one that fails is the statement's error, in its CommandComplete's place, as
    PostgreSQL reports it at COMMIT; nothing of the write stands."""
    r = relay(status)
    sent(r, b.query(WRITE))
    first = "BEGIN" if status == b"I" else "SAVEPOINT"
    err = b.error("23503", "insert or update violates foreign key constraint")
    to_client, _ = r.server_data(begun(0, first) + b.command_complete("UPDATE 3") + b.ready(b"T")
                                 + err + b.ready(b"E"))
    if status == b"I":  # the gateway's transaction: rolled back
        assert r.upstream_data() == q("ROLLBACK")
        to_client, [done] = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
        assert to_client == err + b.ready(b"I") and done.status == "error"
    else:  # the client's: aborted, as after any error
        assert to_client == err + b.ready(b"E")
        assert r.upstream_data() == b""


CALLS_CODE = "SELECT purge_old()"  # a function of the target's: what it writes is counted


@pytest.mark.parametrize(("after", "stands"), [(100, True), (101, False)])
def test_a_call_is_charged_with_what_its_code_writes_and_not_with_its_own_tag(
        after: int, stands: bool) -> None:
    """``SELECT 1`` counts a row returned, not one written: only the statistics count."""
    r = relay()
    _, wire = sent(r, b.query(CALLS_CODE))
    assert wire == wrapped(CALLS_CODE)
    r.server_data(begun(0) + b.row_description("purge_old") + b.data_row(b"1")
                  + b.command_complete("SELECT 1") + b.ready(b"T") + read_again(after))
    assert r.upstream_data() == q("COMMIT" if stands else "ROLLBACK")
    to_client, [f] = r.server_data(b.command_complete("COMMIT" if stands else "ROLLBACK")
                                   + b.ready(b"I"))
    if stands:
        assert to_client == (b.row_description("purge_old") + b.data_row(b"1")
                             + b.command_complete("SELECT 1") + b.ready(b"I"))
    else:
        assert to_client == b"" and f.status == "rolled back" and f.rows == after
        assert f"the code it calls writes {after} rows" in (f.error or "")


def test_an_insert_calling_code_is_not_charged_with_its_own_rows() -> None:
    r = relay()
    sql = "INSERT INTO t SELECT g FROM generate_series(1, 5000) g WHERE purge_old() > 0"
    sent(r, b.query(sql))
    r.server_data(begun(0) + b.command_complete("INSERT 0 5000") + b.ready(b"T")
                  + read_again(7, inserted=5000))
    assert r.upstream_data() == q("COMMIT")


def test_a_procedure_that_ends_transactions_itself_is_held_not_failed() -> None:
    """Inside the gateway's BEGIN, a procedure's COMMIT fails (2D000): nothing of it stood,
    and it is held; approved, it runs as it is (no count can be made of it)."""
    r = relay()
    sent(r, b.query("CALL nightly()"))
    r.server_data(begun(0) + b.error("2D000", "invalid transaction termination")
                  + b.ready(b"E") + ABORTED)
    assert r.upstream_data() == q("ROLLBACK")
    to_client, [f] = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert to_client == b"" and f.status == "rolled back"
    assert "it ends transactions itself" in (f.error or "")
    held = r.client_data(b"")
    assert held.hold is not None
    r.decide(Decision(True, "a1"))
    _, wire = sent(r, b"")
    assert wire == q("CALL nightly()")


def test_in_the_client_s_transaction_a_committing_procedure_fails_as_it_would() -> None:
    r = relay(b"T")
    sent(r, b.query("CALL nightly()"))
    to_client, done = r.server_data(
        begun(0, "SAVEPOINT") + b.error("2D000", "invalid transaction termination")
        + b.ready(b"E") + ABORTED)
    assert b"invalid transaction termination" in to_client
    assert [(f.status, f.sqlstate) for f in done] == [("error", "2D000")]


def test_a_table_emptied_or_rewritten_by_what_ran_is_held() -> None:
    """A TRUNCATE (or a rewrite) inside the code resets that table's counts: the counts say
    nothing was written, but the table's file changed. Held, and approved runs as it is."""
    r = relay()
    sent(r, b.query(CALLS_CODE))
    r.server_data(begun(0) + b.row_description("purge_old") + b.data_row(b"0")
                  + b.command_complete("SELECT 1") + b.ready(b"T")
                  + read_again(0, files=b"16384:16384,16390:16411"))
    assert r.upstream_data() == q("ROLLBACK")
    to_client, [f] = r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    assert to_client == b"" and f.status == "rolled back"
    assert "emptied or rewritten" in (f.error or "")
    assert r.client_data(b"").hold is not None
    r.decide(Decision(True, "a1"))
    _, wire = sent(r, b"")
    assert wire == q(CALLS_CODE)


@pytest.mark.parametrize(("files", "held"), [
    (b"16384:16384,16390:16402,16420:16420", False),  # a new table: no rows changed unseen
    (b"16384:16384", True),  # a table dropped
    (b"16384:16500,16390:16402", True),  # a table truncated
])
def test_only_tables_that_were_there_are_compared(files: bytes, held: bool) -> None:
    before = rowcount.stat_value(b.data_row(b"0", b"0", FILES))
    after = rowcount.stat_value(b.data_row(b"0", b"0", files))
    assert rowcount.rewritten(before, after) is held
