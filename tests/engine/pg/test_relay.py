"""``PgRelay`` as conversations: frontend bytes in, backend bytes back, records out."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.pg.codec import ProtocolViolation, message
from engine.pg.relay import PgRelay, StatementFinished, StatementStarted
from tests.engine.pg import build as b

FUZZ = settings(database=None, deadline=None, max_examples=300)
T = TypeVar("T")


class Conversation:
    """Drives a relay and checks that every complete message crosses it unchanged."""

    def __init__(self, max_size: int = 1 << 20) -> None:
        self.relay = PgRelay(max_size)

    def client(self, data: bytes) -> list[StatementStarted]:
        out, started, *_ = self.relay.client_data(data)
        assert out == data
        return started

    def server(self, data: bytes) -> list[StatementFinished]:
        out, finished = self.relay.server_data(data)
        assert out == data
        return finished


@pytest.fixture
def conv() -> Conversation:
    return Conversation()


def select_result(*rows: str, tag: str | None = None) -> bytes:
    return (
        b.row_description("x")
        + b"".join(b.data_row(r.encode()) for r in rows)
        + b.command_complete(tag or f"SELECT {len(rows)}")
    )


# --- simple protocol -------------------------------------------------------------------------


def test_simple_query(conv: Conversation) -> None:
    started = conv.client(b.query("SELECT x FROM t"))
    assert len(started) == 1
    s = started[0]
    assert (s.seq, s.text, s.protocol, s.params) == (1, "SELECT x FROM t", "simple", None)
    assert conv.relay.open_statements() == [1]

    assert conv.server(select_result("a", "b")) == []  # not finished before ReadyForQuery
    finished = conv.server(b.ready(b"I"))
    assert len(finished) == 1
    f = finished[0]
    assert (f.seq, f.status, f.command, f.rows, f.sqlstate, f.error) == (
        1, "ok", "SELECT 2", 2, None, None,
    )
    assert f.finished >= s.started
    assert conv.relay.open_statements() == []


def test_simple_query_sequence_numbers_increase(conv: Conversation) -> None:
    for n in (1, 2, 3):
        [s] = conv.client(b.query(f"SELECT {n}"))
        assert s.seq == n
        [f] = conv.server(select_result("1") + b.ready())
        assert f.seq == n
    assert conv.relay.statements == 3


def test_multi_statement_query_with_error_in_the_middle(conv: Conversation) -> None:
    [s] = conv.client(b.query("INSERT INTO t VALUES (1); SELECT 1/0; INSERT INTO t VALUES (2)"))
    finished = conv.server(
        b.command_complete("INSERT 0 1")
        + b.row_description("?column?")
        + b.data_row(b"1")
        + b.error("22012", "division by zero")
        + b.ready(b"I")
    )
    assert len(finished) == 1
    f = finished[0]
    assert f.seq == s.seq
    assert f.status == "error"
    assert f.sqlstate == "22012"
    assert f.error == "division by zero"
    assert f.rows == 1
    assert f.command == "INSERT 0 1"


def test_multi_statement_query_sums_rows_and_keeps_the_last_tag(conv: Conversation) -> None:
    conv.client(b.query("SELECT 1; UPDATE t SET a = 1; BEGIN"))
    [f] = conv.server(
        select_result("1")
        + b.command_complete("UPDATE 4")
        + b.command_complete("BEGIN")
        + b.ready(b"T")
    )
    assert (f.status, f.rows, f.command) == ("ok", 5, "BEGIN")
    assert conv.relay.transaction_status == b"T"


def test_empty_query_response(conv: Conversation) -> None:
    conv.client(b.query(""))
    assert conv.server(b.EMPTY_QUERY) == []
    [f] = conv.server(b.ready())
    assert (f.status, f.command, f.rows) == ("ok", None, None)


def test_notices_and_parameter_status_do_not_disturb_tracking(conv: Conversation) -> None:
    conv.client(b.query("SET TimeZone = 'UTC'"))
    [f] = conv.server(
        b.notice("hello")
        + message(b"S", b"TimeZone\x00UTC\x00")
        + message(b"A", struct.pack("!i", 1) + b"chan\x00payload\x00")
        + b.command_complete("SET")
        + b.ready()
    )
    assert (f.status, f.command) == ("ok", "SET")


def test_copy_in(conv: Conversation) -> None:
    [s] = conv.client(b.query("COPY t FROM STDIN"))
    assert conv.server(b.copy_in_response()) == []
    # CopyData and CopyDone pass through without starting anything.
    assert conv.client(b.copy_data(b"1\n") + b.copy_data(b"2\n") + b.COPY_DONE) == []
    [f] = conv.server(b.command_complete("COPY 2") + b.ready())
    assert (f.seq, f.status, f.rows, f.command) == (s.seq, "ok", 2, "COPY 2")


def test_copy_out(conv: Conversation) -> None:
    conv.client(b.query("COPY t TO STDOUT"))
    [f] = conv.server(
        message(b"H", b"\x00\x00\x01\x00\x00")
        + message(b"d", b"1\n")
        + message(b"c")
        + b.command_complete("COPY 1")
        + b.ready()
    )
    assert (f.status, f.rows) == ("ok", 1)


# --- extended protocol -----------------------------------------------------------------------


def test_parse_bind_execute_sync(conv: Conversation) -> None:
    data = (
        b.parse("SELECT * FROM t WHERE id = $1")
        + b.bind([b"42"])
        + b.describe("P")
        + b.execute()
        + b.SYNC
    )
    [s] = conv.client(data)
    assert (s.text, s.protocol, s.params) == ("SELECT * FROM t WHERE id = $1", "extended", "'42'")
    assert conv.server(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.row_description("id")) == []
    [f] = conv.server(b.data_row(b"42") + b.command_complete("SELECT 1"))
    assert (f.seq, f.status, f.command, f.rows) == (s.seq, "ok", "SELECT 1", 1)
    assert conv.server(b.ready()) == []
    assert conv.relay.open_statements() == []


def test_the_record_starts_at_bind(conv: Conversation) -> None:
    """Bind plans the statement, and planning can run code: its record comes first; the
    Execute that follows is the same statement (no second record)."""
    [s] = conv.client(b.parse("SELECT 1") + b.bind() + b.describe("P"))
    assert s.text == "SELECT 1"
    assert conv.client(b.FLUSH) == []
    assert conv.client(b.execute() + b.SYNC) == []
    [f] = conv.server(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.row_description()
                      + b.data_row(b"1") + b.command_complete("SELECT 1") + b.ready())
    assert (f.seq, f.status, f.rows) == (s.seq, "ok", 1)


def test_a_bind_never_executed_is_closed_at_ready_for_query(conv: Conversation) -> None:
    [s] = conv.client(b.parse("SELECT tick()") + b.bind() + b.SYNC)
    [f] = conv.server(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.ready())
    assert (f.seq, f.status, f.command) == (s.seq, "ok", "BIND")
    assert conv.relay.open_statements() == []


def test_named_statement_reused_by_later_binds(conv: Conversation) -> None:
    conv.client(b.parse("SELECT $1::int", name="s1") + b.SYNC)
    conv.server(b.PARSE_COMPLETE + b.ready())
    for n in (1, 2):
        [s] = conv.client(
            b.bind([str(n).encode()], statement="s1", portal="p") + b.execute("p") + b.SYNC
        )
        assert (s.text, s.params) == ("SELECT $1::int", repr(str(n)))
        [f] = conv.server(b.BIND_COMPLETE + select_result("1"))
        assert f.seq == s.seq
        conv.server(b.ready())


def test_pipelined_statements_in_one_chunk(conv: Conversation) -> None:
    data = b"".join(b.pbes(f"SELECT {n}") for n in (1, 2, 3))
    started = conv.client(data)
    assert [(s.seq, s.text) for s in started] == [(1, "SELECT 1"), (2, "SELECT 2"), (3, "SELECT 3")]
    reply = b"".join(
        b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"1") + b.command_complete("SELECT 1")
        + b.ready()
        for _ in range(3)
    )
    finished = conv.server(reply)
    assert [(f.seq, f.status, f.rows) for f in finished] == [
        (1, "ok", 1), (2, "ok", 1), (3, "ok", 1),
    ]


def test_error_at_second_execute_skips_the_rest_until_sync(conv: Conversation) -> None:
    pipeline = b"".join(
        b.parse(sql) + b.bind() + b.execute() for sql in ("SELECT 1", "SELECT 1/0", "SELECT 3")
    )
    started = conv.client(pipeline + b.SYNC + b.pbes("SELECT 4"))
    assert [s.seq for s in started] == [1, 2, 3, 4]
    finished = conv.server(
        b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"1") + b.command_complete("SELECT 1")
        + b.PARSE_COMPLETE + b.BIND_COMPLETE + b.error("22012", "division by zero")
        + b.ready()
    )
    assert [(f.seq, f.status, f.sqlstate) for f in finished] == [
        (1, "ok", None),
        (2, "error", "22012"),
        (3, "skipped", None),
    ]
    assert finished[1].error == "division by zero"
    # After the Sync, the next statement is tracked normally.
    [f4] = conv.server(
        b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"4") + b.command_complete("SELECT 1")
    )
    assert (f4.seq, f4.status, f4.rows) == (4, "ok", 1)
    assert conv.server(b.ready()) == []
    assert conv.relay.open_statements() == []


def test_error_in_separately_synced_pipeline_affects_only_its_statement(
    conv: Conversation,
) -> None:
    conv.client(b"".join(b.pbes(sql) for sql in ("SELECT 1", "SELECT 1/0", "SELECT 3")))
    ok = b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"1") + b.command_complete("SELECT 1")
    finished = conv.server(
        ok + b.ready()
        + b.PARSE_COMPLETE + b.BIND_COMPLETE + b.error("22012", "division by zero") + b.ready()
        + ok + b.ready()
    )
    assert [(f.seq, f.status) for f in finished] == [(1, "ok"), (2, "error"), (3, "ok")]


def test_parse_error_is_attributed_to_its_execute(conv: Conversation) -> None:
    [s] = conv.client(
        b.parse("SELEC 1") + b.bind() + b.describe("P") + b.execute() + b.SYNC
    )
    [f] = conv.server(b.error("42601", 'syntax error at or near "SELEC"'))
    assert (f.seq, f.status, f.sqlstate) == (s.seq, "error", "42601")
    assert conv.server(b.ready()) == []
    assert conv.relay.open_statements() == []


def test_bind_error_is_attributed_to_its_execute_and_later_ones_skipped(
    conv: Conversation,
) -> None:
    conv.client(
        b.parse("SELECT $1::int") + b.bind([b"x"]) + b.execute()
        + b.parse("SELECT 2") + b.bind() + b.execute() + b.SYNC
    )
    finished = conv.server(
        b.PARSE_COMPLETE + b.error("22P02", "invalid input syntax for type integer") + b.ready()
    )
    assert [(f.seq, f.status, f.sqlstate) for f in finished] == [
        (1, "error", "22P02"),
        (2, "skipped", None),
    ]


def test_unsynced_executes_are_skipped_at_ready_for_query(conv: Conversation) -> None:
    # A ReadyForQuery that arrives while Executes are still owed (the target gave up on them).
    conv.client(b.parse("SELECT 1") + b.bind() + b.execute() + b.SYNC)
    [f] = conv.server(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.ready())
    assert f.status == "skipped"


def test_portal_suspended(conv: Conversation) -> None:
    [s] = conv.client(
        b.parse("SELECT generate_series(1, 10)") + b.bind(portal="c") + b.execute("c", 2)
        + b.SYNC
    )
    [f] = conv.server(
        b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"1") + b.data_row(b"2")
        + b.PORTAL_SUSPENDED
    )
    assert (f.seq, f.status, f.command) == (s.seq, "ok", None)
    conv.server(b.ready(b"T"))
    # Fetching more from the same portal is a new statement with the same text.
    [s2] = conv.client(b.execute("c", 0) + b.SYNC)
    assert s2.text == s.text
    [f2] = conv.server(b.data_row(b"3") + b.command_complete("SELECT 8"))
    assert (f2.seq, f2.rows) == (s2.seq, 8)


def test_extended_empty_query(conv: Conversation) -> None:
    conv.client(b.pbes(""))
    [f] = conv.server(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.EMPTY_QUERY)
    assert (f.status, f.command) == ("ok", None)


def test_describe_statement_is_answered_by_parameter_and_row_description(
    conv: Conversation,
) -> None:
    conv.client(b.parse("SELECT $1::int AS x", name="s") + b.describe("S", "s") + b.SYNC)
    conv.server(b.PARSE_COMPLETE + b.parameter_description(23) + b.row_description("x"))
    conv.server(b.ready())
    assert conv.relay.open_statements() == []
    # The queue is in step: the next Execute's CommandComplete closes it.
    [s] = conv.client(b.bind(statement="s") + b.execute() + b.SYNC)
    [f] = conv.server(b.BIND_COMPLETE + b.command_complete("SELECT 1"))
    assert f.seq == s.seq


def test_describe_with_no_data(conv: Conversation) -> None:
    [s] = conv.client(
        b.parse("UPDATE t SET a = 1") + b.bind() + b.describe("P") + b.execute() + b.SYNC
    )
    [f] = conv.server(
        b.PARSE_COMPLETE + b.BIND_COMPLETE + b.NO_DATA + b.command_complete("UPDATE 7")
    )
    assert (f.seq, f.command, f.rows) == (s.seq, "UPDATE 7", 7)


def test_close_statement_forgets_its_text(conv: Conversation) -> None:
    """After CloseComplete the name is gone: a Bind of it is refused (fail closed), not run
    as something the gateway never judged."""
    conv.client(b.parse("SELECT 1", name="s1") + b.close("S", "s1") + b.SYNC)
    conv.server(b.PARSE_COMPLETE + b.CLOSE_COMPLETE + b.ready())
    out, _, finished, reply, _ = conv.relay.client_data(
        b.bind(statement="s1") + b.execute() + b.SYNC)
    assert out == b.SYNC  # only the Sync reaches the target
    assert finished[0].sqlstate == "26000" and b'"s1" does not exist' in reply


def test_a_parse_the_target_refuses_does_not_rename_the_statement(conv: Conversation) -> None:
    conv.client(b.parse("SELECT email FROM customers", name="s1") + b.SYNC)
    conv.server(b.PARSE_COMPLETE + b.ready())
    out, *_, reply, _ = conv.relay.client_data(b.parse("SELECT 1", name="s1") + b.SYNC)
    assert out == b.SYNC and b"already exists" in reply  # answered like PostgreSQL (42P05)
    [s] = conv.client(b.bind(statement="s1") + b.execute() + b.SYNC)
    assert s.text == "SELECT email FROM customers"  # recorded as what really runs


def test_close_portal_forgets_it(conv: Conversation) -> None:
    conv.client(b.parse("SELECT 1") + b.bind(portal="p1") + b.close("P", "p1") + b.SYNC)
    conv.server(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.CLOSE_COMPLETE + b.ready())
    [s] = conv.client(b.execute("p1") + b.SYNC)
    assert s.text == "-- unknown portal 'p1'"
    assert conv.relay.open_statements() == [s.seq]


def test_close_complete_keeps_the_queue_in_step(conv: Conversation) -> None:
    [s] = conv.client(
        b.close("S", "old") + b.parse("SELECT 1") + b.bind() + b.execute() + b.SYNC
    )
    [f] = conv.server(
        b.CLOSE_COMPLETE + b.PARSE_COMPLETE + b.BIND_COMPLETE + b.command_complete("SELECT 1")
    )
    assert f.seq == s.seq


def test_bind_to_statement_never_parsed(conv: Conversation) -> None:
    """Fail closed: a statement the gateway never judged is not run (PostgreSQL's 26000)."""
    out, started, finished, reply, _ = conv.relay.client_data(
        b.bind([b"1"], statement="ghost") + b.execute() + b.SYNC)
    assert out == b.SYNC and [s.text for s in started] == ["-- Bind of 'ghost'"]
    assert finished[0].status == "blocked" and b'"ghost" does not exist' in reply


# --- bytes and buffering ---------------------------------------------------------------------


def test_partial_client_message_is_held_back() -> None:
    relay = PgRelay(1 << 20)
    whole = b.query("SELECT 1") + b.query("SELECT 2")
    first, rest = whole[:20], whole[20:]  # the second Query is cut after 6 of its bytes
    out, started, *_ = relay.client_data(first)
    assert out == b.query("SELECT 1")
    assert [s.text for s in started] == ["SELECT 1"]
    out, started, *_ = relay.client_data(rest)
    assert out == b.query("SELECT 2")
    assert [s.text for s in started] == ["SELECT 2"]


def test_partial_header_is_held_back() -> None:
    relay = PgRelay(1 << 20)
    data = b.query("SELECT 1")
    for n in range(len(data) - 1):
        out, started, *_ = relay.client_data(data[n : n + 1])
        assert (out, started) == (b"", [])
    out, started, *_ = relay.client_data(data[-1:])
    assert out == data
    assert len(started) == 1


def test_partial_server_message_is_held_back() -> None:
    relay = PgRelay(1 << 20)
    relay.client_data(b.query("SELECT 1"))
    reply = select_result("1") + b.ready()
    out, finished = relay.server_data(reply[:-3])
    assert out == select_result("1")
    assert finished == []
    out, finished = relay.server_data(reply[-3:])
    assert out == b.ready()
    assert len(finished) == 1


def feed_in_pieces(
    feed: Callable[[bytes], tuple[Any, ...]], stream: bytes, cuts: list[int]
) -> tuple[bytes, list[T]]:
    passed, records, last = b"", [], 0
    for cut in [*sorted(cuts), len(stream)]:
        out, new, *_ = feed(stream[last:cut])
        passed += out
        records += new
        last = cut
    return passed, records


@FUZZ
@given(st.data())
def test_fuzz_cutting_a_conversation_anywhere_changes_nothing(data: st.DataObject) -> None:
    frontend = b.query("SELECT 1") + b.pbes("SELECT $1", [b"v"]) + b.pbes("SELECT 1/0")
    backend = (
        select_result("1") + b.ready()
        + b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"v") + b.command_complete("SELECT 1")
        + b.ready()
        + b.PARSE_COMPLETE + b.BIND_COMPLETE + b.error("22012", "division by zero") + b.ready()
    )
    relay = PgRelay(1 << 20)
    cuts = st.lists(st.integers(0, len(frontend) + len(backend)), max_size=10)
    sent, started = feed_in_pieces(relay.client_data, frontend, data.draw(cuts))
    received, finished = feed_in_pieces(relay.server_data, backend, data.draw(cuts))
    assert sent == frontend
    assert received == backend
    assert [s.text for s in started] == ["SELECT 1", "SELECT $1", "SELECT 1/0"]
    assert [(f.seq, f.status, f.rows) for f in finished] == [
        (1, "ok", 1), (2, "ok", 1), (3, "error", None),
    ]


# --- ending and violations -------------------------------------------------------------------


def test_terminate(conv: Conversation) -> None:
    assert not conv.relay.terminated
    assert conv.client(b.TERMINATE) == []
    assert conv.relay.terminated


@pytest.mark.parametrize("tag", [b"p", b"Z", b"T", b"\x00", b"\xff", b"q"])
def test_unknown_frontend_message_is_a_violation(tag: bytes) -> None:
    relay = PgRelay(1 << 20)
    with pytest.raises(ProtocolViolation, match="invalid frontend message type") as info:
        relay.client_data(message(tag, b"x\x00"))
    assert info.value.sqlstate == "08P01"


def test_function_call_is_refused() -> None:
    relay = PgRelay(1 << 20)
    with pytest.raises(ProtocolViolation, match="fast-path") as info:
        relay.client_data(message(b"F", struct.pack("!ih", 1234, 0) + b"\x00\x00\x00\x00"))
    assert info.value.sqlstate == "0A000"


@pytest.mark.parametrize("tag", [b"Q", b"X", b"\x00", b"\x7f", b"b"])
def test_unknown_backend_message_is_a_violation(tag: bytes) -> None:
    relay = PgRelay(1 << 20)
    with pytest.raises(ProtocolViolation, match="invalid message type"):
        relay.server_data(message(tag, b"\x00"))


def test_sync_with_a_body_is_a_violation() -> None:
    with pytest.raises(ProtocolViolation, match="Sync"):
        PgRelay(1 << 20).client_data(message(b"S", b"x"))


@pytest.mark.parametrize("side", ["client_data", "server_data"])
def test_oversize_message_is_refused_from_its_header(side: str) -> None:
    relay = PgRelay(1000)
    feed = getattr(relay, side)
    out = feed(message(b"d", b"x" * 1000))[0]  # exactly the limit: fine
    assert len(out) == 1005
    with pytest.raises(ProtocolViolation, match="exceeds the limit") as info:
        feed(b"d" + struct.pack("!i", 1005))
    assert info.value.sqlstate == "54000"


@pytest.mark.parametrize("side", ["client_data", "server_data"])
@pytest.mark.parametrize("length", [3, 0, -1])
def test_bad_length_is_refused(side: str, length: int) -> None:
    with pytest.raises(ProtocolViolation, match="invalid message length"):
        getattr(PgRelay(1000), side)(b"d" + struct.pack("!i", length) + b"xxxx")


def test_malformed_frontend_body_is_a_violation() -> None:
    with pytest.raises(ProtocolViolation, match="Bind"):
        PgRelay(1000).client_data(message(b"B", b"\x00\x00\xff"))


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_fuzz_client_data_raises_only_protocol_violation(chunks: list[bytes]) -> None:
    relay = PgRelay(1 << 12)
    try:
        for chunk in chunks:
            relay.client_data(chunk)
    except ProtocolViolation:
        pass


@FUZZ
@given(
    st.lists(st.binary(max_size=64), max_size=6),
    st.lists(st.binary(max_size=64), max_size=6),
)
def test_fuzz_server_data_raises_only_protocol_violation(
    client_chunks: list[bytes], chunks: list[bytes]
) -> None:
    relay = PgRelay(1 << 12)
    # Some owed responses, so that the backend's messages meet a non-empty queue.
    relay.client_data(b.query("SELECT 1") + b.pbes("SELECT 2") + b.describe("S") + b.SYNC)
    try:
        for chunk in client_chunks:
            relay.client_data(chunk)
    except ProtocolViolation:
        pass
    try:
        for chunk in chunks:
            relay.server_data(chunk)
    except ProtocolViolation:
        pass


TAGGED = st.tuples(
    st.sampled_from(list(b"123CDEIKNSTZnstGHcd")), st.binary(max_size=40)
).map(lambda tb: message(bytes([tb[0]]), tb[1]))


@FUZZ
@given(st.lists(TAGGED, max_size=20))
def test_fuzz_well_framed_backend_messages_with_random_bodies(msgs: list[bytes]) -> None:
    relay = PgRelay(1 << 12)
    relay.client_data(b.query("SELECT 1") + b.pbes("SELECT 2") + b.pbes("SELECT 3"))
    data = b"".join(msgs)
    out, finished = relay.server_data(data)
    assert out == data
    assert len({f.seq for f in finished}) == len(finished)  # never finished twice


def test_new_sql_waits_for_the_statements_before_it_when_guarded() -> None:
    """A statement in flight may change how the server reads SQL (a function calling
    set_config('standard_conforming_strings', 'off')): text after it is judged only once it
    is answered, and a Flush makes the target answer without waiting for the client's Sync."""
    from engine.guardrail import Guard, GuardrailSettings

    relay = PgRelay(1 << 20, Guard((), GuardrailSettings()).for_session("c", "u", frozenset()))
    first, second = b.query("SELECT blind()"), b.query("SELECT 'x\\'' ; DROP TABLE t; --'")
    out, started, *_ = relay.client_data(first + second)
    assert out == first + b"H\x00\x00\x00\x04"
    assert [s.text for s in started] == ["SELECT blind()"]
    assert relay.client_data(b"")[0] == b""  # still waiting
    relay.server_data(message(b"S", b"standard_conforming_strings\x00off\x00")
                      + b.command_complete("SELECT 1") + b.ready())
    assert relay.wants_input
    out, started, finished, reply, _ = relay.client_data(b"")
    assert out == b"" and started[0].verdict == "block"
    assert finished[0].status == "blocked" and b"cannot read SQL" in reply


def test_for_column_masking_each_execute_is_preceded_by_the_gateways_describe() -> None:
    from engine.pg.relay import GATEWAY_ROW_DESCRIPTION

    relay = PgRelay(1 << 20)
    relay.describe_portals = True
    sent = (b.parse("SELECT a FROM t", "s1") + b.bind([], portal="p1", statement="s1")
            + b.bind([], portal="p2", statement="s1") + b.execute("p1") + b.execute("p2")
            + b.SYNC)
    out, started, *_ = relay.client_data(sent)
    assert out == (b.parse("SELECT a FROM t", "s1") + b.bind([], portal="p1", statement="s1")
                   + b.bind([], portal="p2", statement="s1")
                   + b.describe("P", "p1") + b.execute("p1")
                   + b.describe("P", "p2") + b.execute("p2") + b.SYNC)
    # Its answers come re-tagged for the masker; the statements still close.
    out, _ = relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.BIND_COMPLETE
                               + b.row_description("a"))
    assert out.endswith(GATEWAY_ROW_DESCRIPTION + b.row_description("a")[1:])
    _, done = relay.server_data(b.data_row(b"1") + b.command_complete("SELECT 1")
                                + b.row_description("a") + b.data_row(b"2")
                                + b.command_complete("SELECT 1") + b.ready())
    assert [(f.seq, f.status, f.rows) for f in done] == [(s.seq, "ok", 1) for s in started]


def test_an_error_skips_the_gateways_describes_with_the_rest() -> None:
    relay = PgRelay(1 << 20)
    relay.describe_portals = True
    relay.client_data(b.parse("SELECT 1/0") + b.bind([]) + b.execute() + b.SYNC)
    out, [f] = relay.server_data(b.PARSE_COMPLETE + b.error("22012", "division by zero")
                                 + b.ready())
    assert (f.status, f.sqlstate) == ("error", "22012") and b"\x00" not in out[:1]
