"""Writes judged by the rows they change (``rows_over``) in the extended protocol, as relay
conversations: the counted Execute waits for what is owed before it, goes behind the gateway's
SAVEPOINT (and BEGIN outside a transaction block, committed in front of the Sync), between two
readings of the transaction's statistics (what triggers, rules and cascades wrote beside it),
the answers to the gateway's own messages never reach the client, and over the limit the Bind
and Execute are asked again once approved."""

from __future__ import annotations

import pytest

from engine.guardrail import Guard, GuardrailSettings, Rule
from engine.guardrail.rules import Match
from engine.pg import rowcount
from engine.pg.relay import FAILING_PARSE, GATEWAY_ROW_DESCRIPTION, Decision, PgRelay
from tests.engine.pg import build as b
from tests.engine.pg.answering import Answering, reading_answers, settings_value
from tests.engine.pg.test_relay import SYNTAX_ERROR
from tests.engine.pg.test_rowcount import FILES, WRITE, relay, sent

# A statement that ran before the write in its pipeline (so the gateway needs a savepoint
# inside its own block: it will not roll that back), then psycopg's messages for the write.
RAN = b.parse("SELECT 1", "s1") + b.bind(statement="s1", portal="p1") + b.execute("p1")
RAN_OWED = (b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"1")
            + b.command_complete("SELECT 1"))
ALONE = b.parse(WRITE) + b.bind() + b.describe()
BEFORE = RAN + ALONE
OWED = RAN_OWED + b.PARSE_COMPLETE + b.BIND_COMPLETE + b.NO_DATA


def ours(tag: str) -> bytes:
    """The target's answers to one statement of the gateway's (``rowcount.statement``)."""
    return (b.PARSE_COMPLETE + b.BIND_COMPLETE + b.command_complete(tag) + b.CLOSE_COMPLETE
            + b.CLOSE_COMPLETE)


def ours_stat(n: int | bytes | None) -> bytes:
    """The target's answers to one reading of the statistics (``rowcount.STAT_``): ``n`` rows
    updated and deleted so far in the transaction (bytes: as the DataRow carries them)."""
    value = str(n).encode() if isinstance(n, int) else n
    return (b.PARSE_COMPLETE + b.BIND_COMPLETE
            + b.data_row(value, b"0", FILES, b'"$user", public', settings_value())
            + b.command_complete("SELECT 1") + b.CLOSE_COMPLETE + b.CLOSE_COMPLETE)


def counted(*statements: bytes, describe: bytes = b"") -> bytes:
    """What the target gets for the counted Execute: the gateway's ``statements`` (BEGIN,
    SAVEPOINT) in front, the statistics read before it and, once deferred constraints fire,
    after it, then a Flush."""
    return (b"".join(statements) + rowcount.STAT_ + describe + b.execute()
            + rowcount.IMMEDIATE_ + rowcount.STAT_ + b.FLUSH)


def then_stat(n: int | bytes | None) -> bytes:
    """The target's answers behind the Execute: SET CONSTRAINTS ALL IMMEDIATE, then the
    statistics read again."""
    return ours("SET CONSTRAINTS") + ours_stat(n)


def counting(r: PgRelay, before: bytes = BEFORE, after: bytes = b.SYNC,
             owed: bytes = OWED) -> bytes:
    """Send ``before``, the counted Execute and ``after``; the target answers what came
    before the Execute (the client gets that at once); what the target got after it (the
    gateway's statements and the Execute, in the same write)."""
    out, wire = sent(r, before + b.execute() + after)
    assert out.out == before  # what the masker reads; the counted Execute only once it stands
    assert wire.startswith(before)
    assert r.server_data(owed)[0] == owed
    return wire[len(before):]


def test_outside_a_block_it_runs_in_the_gateway_s_block_committed_before_the_sync() -> None:
    r = relay()
    wire = counting(r)
    assert wire == counted(rowcount.BEGIN, rowcount.SAVEPOINT_)
    to_client, done = r.server_data(ours("BEGIN") + ours("SAVEPOINT") + ours_stat(0)
                                    + b.command_complete("UPDATE 3"))
    # Nothing is decided before the statistics are read again.
    assert (to_client, done) == (b"", []) and r.upstream_data() == b""
    to_client, done = r.server_data(then_stat(3))
    # Under the limit it stands at once; the RELEASE goes out without waiting for it, in
    # front of the Sync that follows, which commits the gateway's block.
    assert to_client == b.command_complete("UPDATE 3")
    assert [(f.status, f.rows) for f in done] == [("ok", 3)]
    assert r.upstream_data() == b"" and r.seen_late() == b.execute()
    out, wire = sent(r, b"")
    assert out.out == b.SYNC and wire == rowcount.RELEASE + rowcount.COMMIT + b.SYNC
    assert r.server_data(ours("RELEASE")) == (b"", [])  # the client sees the Sync's answer
    assert r.client_data(b.query("SELECT 1")).out == b""  # waits for the Sync's answer
    to_client, _ = r.server_data(ours("COMMIT") + b.ready(b"I"))
    assert to_client == b.ready(b"I") and r.wants_input
    assert sent(r, b"")[1] == b.query("SELECT 1")


def test_inside_the_client_s_block_only_a_savepoint() -> None:
    r = relay(b"T")
    assert counting(r) == counted(rowcount.SAVEPOINT_)
    r.server_data(ours("SAVEPOINT") + ours_stat(0) + b.command_complete("UPDATE 1")
                  + then_stat(1))
    # No COMMIT: the transaction is the client's.
    assert sent(r, b"")[1] == rowcount.RELEASE + b.SYNC


def test_a_begin_earlier_in_the_pipeline_is_a_block() -> None:
    """psycopg's pipeline opens the client's transaction with a BEGIN of its own segment."""
    r = relay()
    begin = b.parse("BEGIN") + b.bind() + b.execute()
    wire = counting(r, begin + ALONE, owed=b.PARSE_COMPLETE + b.BIND_COMPLETE
                    + b.command_complete("BEGIN") + OWED[len(RAN_OWED):])
    assert wire == counted(rowcount.SAVEPOINT_)


def test_over_the_limit_is_rolled_back_and_its_bind_asked_again_when_approved() -> None:
    r = relay()
    counting(r)
    r.server_data(ours("BEGIN") + ours("SAVEPOINT") + ours_stat(0)
                  + b.command_complete("UPDATE 150") + then_stat(150))
    assert r.upstream_data() == (rowcount.ROLLBACK_TO + rowcount.RELEASE + b.close("P")
                                 + b.FLUSH)
    to_client, [f] = r.server_data(ours("ROLLBACK") + ours("RELEASE") + b.CLOSE_COMPLETE)
    assert to_client == b"" and r.seen_late() == b""
    assert (f.status, f.rows) == ("rolled back", 150)
    held = r.client_data(b"")
    assert held.hold is not None and held.hold.protocol == "extended"
    assert "150 rows" in held.hold.notes[0]
    r.decide(Decision(True, "a1"))
    out, wire = sent(r, b"")
    # Bound again and run once, counted again with the 150 rows its approver saw as its limit;
    # the Sync then commits the block.
    assert out.out == b.bind()
    assert [(s.verdict, s.approval) for s in out.started] == [("approved", "a1")]
    assert wire == b.bind() + counted(rowcount.SAVEPOINT_)
    # The client sent one Bind and had its BindComplete: the gateway's is not passed on. The
    # statistics still hold the rows rolled back (they count what ran): only the difference
    # is the write's.
    to_client, _ = r.server_data(b.BIND_COMPLETE + ours("SAVEPOINT") + ours_stat(150)
                                 + b.command_complete("UPDATE 150") + then_stat(300))
    assert to_client == b.command_complete("UPDATE 150")
    assert sent(r, b"")[1] == rowcount.RELEASE + rowcount.COMMIT + b.SYNC
    to_client, _ = r.server_data(ours("RELEASE") + ours("COMMIT") + b.ready(b"I"))
    assert to_client == b.ready(b"I")


def test_approved_it_writes_no_more_rows_than_its_approver_saw() -> None:
    """Issue 12 (TOCTOU): its WHERE came to match 1000 rows while it waited; approved, it is
    counted again, rolled back and refused, and the segment fails on the target (the write
    before it in the gateway's block rolls back with it): the client hears it idle."""
    r = relay()
    counting(r)
    r.server_data(ours("BEGIN") + ours("SAVEPOINT") + ours_stat(0)
                  + b.command_complete("UPDATE 150") + then_stat(150))
    r.upstream_data()
    r.server_data(ours("ROLLBACK") + ours("RELEASE") + b.CLOSE_COMPLETE)
    assert r.client_data(b"").hold is not None
    r.decide(Decision(True, "a1"))
    sent(r, b"")
    r.server_data(b.BIND_COMPLETE + ours("SAVEPOINT") + ours_stat(150)
                  + b.command_complete("UPDATE 1000") + then_stat(1150))
    assert r.upstream_data() == (rowcount.ROLLBACK_TO + rowcount.RELEASE + b.close("P")
                                 + b.FLUSH)
    to_client, [f] = r.server_data(ours("ROLLBACK") + ours("RELEASE") + b.CLOSE_COMPLETE)
    assert to_client == b"" and f.status == "blocked" and "more than 150" in (f.error or "")
    assert r.upstream_data() == FAILING_PARSE
    to_client, _ = r.server_data(SYNTAX_ERROR)
    assert b"it writes 1000 rows, more than 150" in to_client and b"syntax" not in to_client
    _, wire = sent(r, b"")
    assert wire == b.SYNC  # no COMMIT: the target skips to the Sync
    to_client, _ = r.server_data(b.ready(b"E"))
    assert to_client == b.ready(b"I") and r.upstream_data() == rowcount.ROLLBACK + b.SYNC


def test_denied_it_runs_nothing_more_and_skips_to_the_sync() -> None:
    r = relay(b"T")
    counting(r)
    r.server_data(ours("SAVEPOINT") + ours_stat(0) + b.command_complete("DELETE 500")
                  + then_stat(500))
    r.server_data(ours("ROLLBACK") + ours("RELEASE") + b.CLOSE_COMPLETE)
    assert r.client_data(b"").hold is not None
    r.decide(Decision(False, "a1", "statement denied by oncall"))
    _, wire = sent(r, b"")
    # The target fails in its place: the client's block is aborted, as an error there leaves it.
    assert wire == FAILING_PARSE + b.SYNC  # the Execute asked again is skipped, as after an error
    to_client, _ = r.server_data(SYNTAX_ERROR + b.ready(b"E"))
    assert b"statement denied by oncall" in to_client and b"syntax" not in to_client
    assert b"it was run once to count its rows, and rolled back" in to_client
    assert to_client.endswith(b.ready(b"E"))


def test_a_failed_segment_rolls_the_gateway_s_block_back_and_the_client_hears_idle() -> None:
    r = relay()
    counting(r, after=b.parse("SELECT 1/0", "z") + b.bind(statement="z") + b.execute()
             + b.SYNC)
    r.server_data(ours("BEGIN") + ours("SAVEPOINT") + ours_stat(0)
                  + b.command_complete("UPDATE 3") + then_stat(3))
    _, wire = sent(r, b"")
    assert wire.startswith(rowcount.RELEASE) and wire.endswith(rowcount.COMMIT + b.SYNC)
    error = b.error("22012", "division by zero")
    to_client, _ = r.server_data(ours("RELEASE") + b.PARSE_COMPLETE + b.BIND_COMPLETE + error
                                 + b.ready(b"E"))
    assert to_client == b.PARSE_COMPLETE + b.BIND_COMPLETE + error + b.ready(b"I")
    assert r.upstream_data() == rowcount.ROLLBACK + b.SYNC
    assert r.client_data(b.query("SELECT 1")).out == b""  # waits for the rollback
    to_client, _ = r.server_data(ours("ROLLBACK") + b.ready(b"I"))
    assert to_client == b"" and r.wants_input and r.transaction_status == b"I"
    assert sent(r, b"")[1] == b.query("SELECT 1")


def test_masked_sessions_describe_the_counted_portal_for_the_masker() -> None:
    r = relay(b"T")
    r.describe_portals = True
    wire = counting(r, ALONE, owed=OWED[len(RAN_OWED):])
    describe = b.describe()
    assert wire == counted(rowcount.SAVEPOINT_, describe=describe)
    rows = b.row_description("a") + b.data_row(b"1")
    to_client, _ = r.server_data(ours("SAVEPOINT") + ours_stat(0) + rows
                                 + b.command_complete("UPDATE 1") + then_stat(1))
    # The gateway's Describe is answered by the RowDescription, re-tagged for the masker,
    # which is handed the Describe and the Execute now that the write stands.
    assert to_client == (GATEWAY_ROW_DESCRIPTION + rows[1:] + b.command_complete("UPDATE 1"))
    assert r.seen_late() == describe + b.execute()


@pytest.mark.parametrize(("bind", "execute", "why"), [
    (b.bind(), b.execute(max_rows=5), b"row limit"),
    (b.bind(portal="_gatewatch_rows_"), b.execute("_gatewatch_rows_"), b"is a name it uses"),
])
def test_shapes_it_cannot_count_are_refused(bind: bytes, execute: bytes, why: bytes) -> None:
    r = relay(b"T")
    out = r.client_data(b.parse(WRITE) + bind + execute + b.SYNC)
    assert out.out == b.parse(WRITE) + bind + FAILING_PARSE + b.SYNC  # not the Execute
    assert [f.status for f in out.finished] == ["blocked"]
    to_client, _ = r.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + SYNTAX_ERROR)
    assert why in to_client


def test_transaction_control_behind_a_counted_write_before_the_sync_is_refused() -> None:
    r = relay()
    counting(r, after=b.parse("COMMIT", "c") + b.bind(statement="c") + b.execute() + b.SYNC)
    r.server_data(ours("BEGIN") + ours("SAVEPOINT") + ours_stat(0)
                  + b.command_complete("UPDATE 3") + then_stat(3))
    out, wire = sent(r, b"")
    [refused] = out.finished
    assert refused.status == "blocked" and "would change" in (refused.error or "")
    # What came before it goes on, then the gateway's failing message (and a Flush: answered
    # at once), the COMMIT before the Sync (skipped by the target: the segment failed).
    assert wire == (rowcount.RELEASE + b.parse("COMMIT", "c") + b.bind(statement="c")
                    + FAILING_PARSE + rowcount.COMMIT + b.SYNC)


@pytest.mark.parametrize(("sql", "effect"), [
    ("BEGIN", rowcount.TRANSACTION_OPENS), ("start transaction read only",
                                            rowcount.TRANSACTION_OPENS),
    ("COMMIT", rowcount.TRANSACTION_CLOSES), ("end", rowcount.TRANSACTION_CLOSES),
    ("abort", rowcount.TRANSACTION_CLOSES), ("PREPARE TRANSACTION 'x'",
                                             rowcount.TRANSACTION_CLOSES),
    ("COMMIT AND CHAIN", rowcount.TRANSACTION_SAME), ("ROLLBACK TO SAVEPOINT a",
                                                      rowcount.TRANSACTION_SAME),
    ("SAVEPOINT a", rowcount.TRANSACTION_SAME), ("RELEASE a", rowcount.TRANSACTION_SAME),
    ("SELECT 1", None), ("CALL p()", None), ("not sql", None),
])
def test_transaction_effect(sql: str, effect: str | None) -> None:
    assert rowcount.transaction_effect(sql) == effect


def test_a_write_not_counted_leaves_nothing_for_the_next_portal() -> None:
    """In an aborted transaction a write is sent as it is (it runs nothing); the judgement it
    would have been counted by is not carried over to the next Bind, a SELECT's."""
    r = relay(b"E")
    out, wire = sent(r, b.query(WRITE))
    assert wire == out.out == b.query(WRITE)
    r.server_data(b.error("25P02", "current transaction is aborted") + b.ready(b"E"))
    sent(r, b.query("ROLLBACK"))
    r.server_data(b.command_complete("ROLLBACK") + b.ready(b"I"))
    select = b.parse("SELECT 1") + b.bind() + b.execute() + b.SYNC
    out, wire = sent(r, select)
    assert out.out == wire == select
    assert [s.verdict for s in out.started] == ["allow"]


def test_an_error_in_front_of_the_counted_execute_gives_the_count_up() -> None:
    """The target skips the gateway's statements and the Execute up to the Sync: nothing is
    counted, the client hears the error, the Sync's answer is the segment's (idle)."""
    r = relay()
    wire = counting(r, ALONE, owed=b"")
    assert wire.startswith(rowcount.BEGIN)
    error = b.error("42P01", "relation does not exist")
    to_client, done = r.server_data(error)
    assert to_client == error and r.wants_input
    assert [f.status for f in done] == ["error"]
    _, wire = sent(r, b"")
    assert wire == b.SYNC  # no COMMIT: the target would skip it
    to_client, _ = r.server_data(b.ready(b"I"))
    assert to_client == b.ready(b"I") and r.upstream_data() == b""


def test_a_commit_skipped_after_an_error_does_not_take_the_sync_s_answer() -> None:
    """The error arrives after the COMMIT in front of the Sync was sent: the target skips the
    COMMIT, and the Sync's ReadyForQuery is the client's (the block rolled back after it)."""
    r = relay()
    counting(r, after=b.parse("SELECT 1/0", "z") + b.bind(statement="z") + b.execute()
             + b.SYNC)
    r.server_data(ours("BEGIN") + ours("SAVEPOINT") + ours_stat(0)
                  + b.command_complete("UPDATE 3") + then_stat(3))
    _, wire = sent(r, b"")
    assert wire.startswith(rowcount.RELEASE) and wire.endswith(rowcount.COMMIT + b.SYNC)
    error = b.error("22012", "division by zero")
    r.server_data(ours("RELEASE") + b.PARSE_COMPLETE + b.BIND_COMPLETE)
    to_client, _ = r.server_data(error)
    assert to_client == error
    to_client, _ = r.server_data(b.ready(b"E"))
    assert to_client == b.ready(b"I") and r.upstream_data() == rowcount.ROLLBACK + b.SYNC


def test_a_count_never_lets_through_what_another_rule_holds() -> None:
    """A block over 1000 rows, and a review of every write to table r: under the limit the
    review would still apply, so no count can let it run. It meets the stricter rule at
    once, in both protocols (a count under the limit would have committed it unreviewed)."""
    rules = (Rule("huge-writes", "block", Match(rows_over=1000)),
             Rule("review-r", "review", Match(tables=("r",))))
    for data in (b.query("UPDATE r SET a = 0 WHERE k = 1"),
                 b.parse("UPDATE r SET a = 0 WHERE k = 1") + b.bind() + b.execute() + b.SYNC):
        r = Answering(1 << 20, Guard(rules, GuardrailSettings()).for_session("c", "u",
                                                                           frozenset()))
        out, wire = sent(r, data)
        assert b"huge-writes" in out.reply + r.server_data(b.PARSE_COMPLETE + SYNTAX_ERROR)[0]
        assert b.execute() not in wire and not wire.startswith(b"Q")  # a Parse runs nothing
        assert [f.status for f in out.finished] == ["blocked"]


def test_an_approval_is_of_the_statement_bound_then_not_of_its_name() -> None:
    """The pipeline gave the statement's name to another one after the Bind: approved, the
    write is not bound again from that name (another statement would run), it is refused."""
    r = relay(b"T")
    assert isinstance(r, Answering)
    r.auto = False  # named statements a count may hold: their settings read after each Parse
    other = "UPDATE t SET a = 1 WHERE k = 'y'"
    r.client_data(b.parse(WRITE, "s"))
    assert r.reading == "synced"
    r.server_data(b.PARSE_COMPLETE + reading_answers("synced", status=b"T"))
    r.client_data(b.bind(statement="s") + b.close("S", "s") + b.parse(other, "s"))
    assert r.reading == "flushed"
    r.server_data(b.BIND_COMPLETE + b.CLOSE_COMPLETE + b.PARSE_COMPLETE
                  + reading_answers("flushed"))
    r.auto = True
    counting(r, b"", owed=b"")
    r.server_data(ours("SAVEPOINT") + ours_stat(0) + b.command_complete("UPDATE 500")
                  + then_stat(500))
    r.server_data(ours("ROLLBACK") + ours("RELEASE") + b.CLOSE_COMPLETE)
    assert r.client_data(b"").hold is not None
    r.decide(Decision(True, "a1"))
    out, wire = sent(r, b"")
    assert wire == FAILING_PARSE + b.SYNC
    assert b"was replaced" in r.server_data(SYNTAX_ERROR)[0]
    assert [f.status for f in out.finished] == ["blocked"]


def test_first_in_its_pipeline_the_gateway_s_block_is_the_savepoint() -> None:
    """Nothing ran before the write in its segment: BEGIN alone; under the limit nothing to
    release; over it the block is rolled back whole, and the write runs in PostgreSQL's own
    implicit transaction once approved (no COMMIT of the gateway's before the Sync)."""
    r = relay()
    wire = counting(r, ALONE, owed=OWED[len(RAN_OWED):])
    assert wire == counted(rowcount.BEGIN)
    to_client, _ = r.server_data(ours("BEGIN") + ours_stat(0) + b.command_complete("UPDATE 3")
                                 + then_stat(3))
    assert to_client == b.command_complete("UPDATE 3") and r.upstream_data() == b""
    assert sent(r, b"")[1] == rowcount.COMMIT + b.SYNC
    r.server_data(ours("COMMIT") + b.ready(b"I"))

    wire = counting(r, ALONE, owed=OWED[len(RAN_OWED):])
    r.server_data(ours("BEGIN") + ours_stat(0) + b.command_complete("UPDATE 300")
                  + then_stat(300))
    assert r.upstream_data() == rowcount.ROLLBACK + b.close("P") + b.FLUSH
    _, [f] = r.server_data(ours("ROLLBACK") + b.CLOSE_COMPLETE)
    assert (f.status, f.rows) == ("rolled back", 300)
    assert r.client_data(b"").hold is not None
    r.decide(Decision(True, "a1"))
    # Counted again, in a block of the gateway's again.
    assert sent(r, b"")[1] == b.bind() + counted(rowcount.BEGIN, rowcount.SAVEPOINT_)


# --- rows written beside the Execute: triggers, rules, foreign keys' cascades -------------


def test_rows_written_through_triggers_count_too() -> None:
    """Its tag says 3 rows; the transaction's statistics grew by 253 around the Execute: 250
    more were written because of it. Over the limit: rolled back and held with that count;
    approved, it is its limit (the statistics still hold the rows rolled back), and it
    stands with the tag the client would have had."""
    r = relay()
    counting(r)
    to_client, done = r.server_data(ours("BEGIN") + ours("SAVEPOINT") + ours_stat(0)
                                    + b.command_complete("UPDATE 3") + then_stat(253))
    assert (to_client, done) == (b"", [])
    assert r.upstream_data() == (rowcount.ROLLBACK_TO + rowcount.RELEASE + b.close("P")
                                 + b.FLUSH)
    to_client, [f] = r.server_data(ours("ROLLBACK") + ours("RELEASE") + b.CLOSE_COMPLETE)
    assert to_client == b"" and r.seen_late() == b""
    assert (f.status, f.rows) == ("rolled back", 253)
    assert "253 rows (250 of them through triggers, rules or foreign keys)" in (f.error or "")
    held = r.client_data(b"")
    assert held.hold is not None and held.hold.protocol == "extended"
    assert "through triggers, rules or foreign keys" in held.hold.notes[0]
    r.decide(Decision(True, "a1"))
    _, wire = sent(r, b"")
    assert wire == b.bind() + counted(rowcount.SAVEPOINT_)
    to_client, [f] = r.server_data(b.BIND_COMPLETE + ours("SAVEPOINT") + ours_stat(253)
                                   + b.command_complete("UPDATE 3") + then_stat(506))
    assert to_client == b.command_complete("UPDATE 3") and f.status == "ok"
    assert sent(r, b"")[1] == rowcount.RELEASE + rowcount.COMMIT + b.SYNC


@pytest.mark.parametrize(("before", "rows", "after", "stands"), [
    (10, 3, 15, True),  # 2 rows beside its 3: 5, far under the limit
    (10, 98, 110, True),  # 98 + 2 = 100: not more than 100
    (10, 98, 111, False),  # 98 + 3 = 101
])
def test_rows_beside_it_under_the_limit_stand(before: int, rows: int, after: int,
                                              stands: bool) -> None:
    """Inside the client's block the first reading holds what the block wrote before: only
    the difference is the write's; under the limit with it, it stands at once."""
    r = relay(b"T")
    counting(r)
    to_client, done = r.server_data(ours("SAVEPOINT") + ours_stat(before)
                                    + b.command_complete(f"UPDATE {rows}") + then_stat(after))
    if stands:
        assert to_client == b.command_complete(f"UPDATE {rows}")
        assert [(f.status, f.rows) for f in done] == [("ok", rows)]
        assert r.upstream_data() == b"" and sent(r, b"")[1] == rowcount.RELEASE + b.SYNC
        return
    assert (to_client, done) == (b"", [])
    assert r.upstream_data() == (rowcount.ROLLBACK_TO + rowcount.RELEASE + b.close("P")
                                 + b.FLUSH)
    _, [f] = r.server_data(ours("ROLLBACK") + ours("RELEASE") + b.CLOSE_COMPLETE)
    assert (f.status, f.rows) == ("rolled back", 101)
    assert r.client_data(b"").hold is not None


@pytest.mark.parametrize(("before", "after"), [
    (0, None),  # NULL
    (0, b"3x"),  # not a number
    (None, 3),  # the first reading is the one that cannot be read
])
def test_statistics_that_cannot_be_read_hold_the_write(before: int | bytes | None,
                                                       after: int | bytes | None) -> None:
    """Fail closed: what the write wrote beside its tag is unknown, so it is rolled back and
    held, however small its tag's count."""
    r = relay(b"T")
    counting(r)
    to_client, _ = r.server_data(ours("SAVEPOINT") + ours_stat(before)
                                 + b.command_complete("UPDATE 3") + then_stat(after))
    assert to_client == b""
    assert r.upstream_data() == (rowcount.ROLLBACK_TO + rowcount.RELEASE + b.close("P")
                                 + b.FLUSH)
    _, [f] = r.server_data(ours("ROLLBACK") + ours("RELEASE") + b.CLOSE_COMPLETE)
    assert f.status == "rolled back"
    assert "triggers, rules and foreign keys cannot be read" in (f.error or "")
    assert r.client_data(b"").hold is not None


def test_a_second_reading_that_fails_leaves_nothing_standing() -> None:
    """The statistics read after the Execute fail (a statement timeout, say): the target now
    skips to the Sync, the client hears the error in place of the write's CommandComplete,
    and the gateway's block, the write in it, is rolled back after the Sync."""
    r = relay()
    counting(r)
    error = b.error("57014", "canceling statement due to statement timeout")
    to_client, [f] = r.server_data(ours("BEGIN") + ours("SAVEPOINT") + ours_stat(0)
                                   + b.command_complete("UPDATE 3") + b.PARSE_COMPLETE
                                   + b.BIND_COMPLETE + error)
    assert to_client == error and f.status == "error"
    assert r.seen_late() == b.execute()  # what the client hears of it passes the masker
    _, wire = sent(r, b"")
    assert wire == b.SYNC  # no COMMIT: the target would skip it
    to_client, _ = r.server_data(b.ready(b"E"))
    assert to_client == b.ready(b"I") and r.upstream_data() == rowcount.ROLLBACK + b.SYNC


@pytest.mark.parametrize("between", [
    b.SYNC,  # the portal would outlive the segment in the client's transaction
    b.query("FETCH ALL FROM p1"),
    b.parse("SELECT cursor_to_xml('p1', 10, false, false, '')", "x") + b.bind(statement="x"),
    b.execute("other"),
], ids=["sync", "query", "other-portal", "other-execute"])
def test_nothing_but_its_execute_may_run_a_counted_portal(between: bytes) -> None:
    """A counted portal bound and left unexecuted could be run by name by what follows
    (FETCH, cursor_to_xml), uncounted: refused, failing on the target in its place."""
    r = relay(b"T")
    bound = b.parse(WRITE, "s1") + b.bind(statement="s1", portal="p1")
    out, wire = sent(r, bound + between + b.SYNC)
    assert wire.startswith(bound) and FAILING_PARSE in wire
    # What came after the Bind and could run something never reaches the target.
    assert b"FETCH" not in wire and b"\x00x\x00" not in wire and b"other" not in wire
    assert [(f.status, f.sqlstate) for f in out.finished] == [("blocked", "0A000")]


def test_a_describe_parse_and_flush_may_come_between() -> None:
    r = relay(b"T")
    bound = (b.parse(WRITE, "s1") + b.bind(statement="s1", portal="p1") + b.describe("P", "p1")
             + b.parse("SELECT 1", "s2") + b.describe("S", "s2") + b.FLUSH)
    out, wire = sent(r, bound + b.execute("p1") + b.SYNC)
    assert not out.finished and FAILING_PARSE not in wire
    assert wire.startswith(bound)
