"""``PgRelay`` as conversations: frontend bytes in, backend bytes back, records out."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.pg.codec import ProtocolViolation, message
from engine.pg.relay import PgRelay, StatementFinished, StatementStarted
from tests.engine.pg import build as b
from tests.engine.pg.answering import Answering

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
    started: list[StatementStarted]
    finished: list[StatementFinished]
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


# --- guarded sessions: how SQL is read (issue 12, class 6) -----------------------------------

from engine.guardrail import Guard, GuardrailSettings, Rule  # noqa: E402
from engine.guardrail.rules import Match  # noqa: E402
from engine.pg.relay import (  # noqa: E402
    FAILING_PARSE,
    FAILING_QUERY,
    GATEWAY_ERROR,
    ClientOutcome,
    Decision,
)

RULES = (
    Rule("no-drop", "block", Match(statements=frozenset({"DROP"}))),
    Rule("review-unbounded-writes", "review",
         Match(statements=frozenset({"UPDATE WITHOUT WHERE", "DELETE WITHOUT WHERE"}))),
)
BLIND = "SELECT blind()"  # a function that may turn standard_conforming_strings off
# One harmless SELECT of a string when standard_conforming_strings is on (as the guard reads);
# a SELECT and a DROP when it is off.
TWO_READINGS = "SELECT 'x\\'' ; DROP TABLE t; --'"
UNSETTLED = "may have changed how the server reads SQL"
# The target's answer to the gateway's failing message, sent in place of a refused statement.
SYNTAX_ERROR = b.error("42601", 'syntax error at or near "gatewatch"')


def guarded(**reported: str) -> PgRelay:
    relay = Answering(1 << 20, Guard(RULES, GuardrailSettings()).for_session("c", "u", frozenset()))
    for name, value in reported.items():
        relay.parameter_status(name, value)
    return relay


def refused(outcome: ClientOutcome) -> list[tuple[str, str | None, str | None]]:
    """(status, rule, message) of each statement the gateway answered itself."""
    rules = {s.seq: s.rule for s in outcome.started}
    return [(f.status, rules.get(f.seq), f.error) for f in outcome.finished]


def test_reading_same_text_under_any_setting_goes_on_at_once() -> None:
    """ASCII without a backslash reads the same whatever a function did: no wait, no Sync."""
    relay = guarded()
    data = b.parse(BLIND) + b.bind() + b.execute() + b.parse("SELECT 2") + b.bind() + b.execute()
    out = relay.client_data(data + b.SYNC)
    assert out.out == data + b.SYNC and len(out.started) == 2
    # And it is judged: a DROP behind it is blocked at once.
    out = relay.client_data(b.parse(BLIND) + b.bind() + b.execute() + b.query("DROP TABLE t"))
    assert [r[:2] for r in refused(out)] == [("blocked", "no-drop")]


@pytest.mark.parametrize("second", [
    b.query(TWO_READINGS),
    b.parse(TWO_READINGS) + b.bind() + b.execute() + b.SYNC,
    b.query("SELECT 'é'"),
    b.parse("SELECT 'é'", "s1") + b.SYNC,
    b.query("SELECT E'\\x41'"),
], ids=["query-backslash", "parse-backslash", "query-non-ascii", "parse-non-ascii",
        "escape-string"])
@pytest.mark.parametrize("first", [
    b.parse(BLIND) + b.bind() + b.execute(),
    b.parse(BLIND) + b.bind() + b.execute() + b.FLUSH,
    b.parse(BLIND, "f") + b.SYNC + b.bind(statement="f") + b.execute(),
    b.bind() + b.FLUSH,  # Bind alone plans the statement: IMMUTABLE functions already run
], ids=["unsynced", "flush-only", "sync-before-bind", "bind-only"])
def test_text_behind_an_unsynced_statement_is_refused(first: bytes, second: bytes) -> None:
    """No ReadyForQuery can come between them, so the server's settings cannot be known when
    it reads the text: refused, and nothing of it reaches the target."""
    relay = guarded()
    if first.startswith(b"B"):
        relay.client_data(b.parse(BLIND) + b.SYNC)
        relay.server_data(b.PARSE_COMPLETE + b.ready())
    out = relay.client_data(first + second)
    # The target gets the gateway's failing message in its place (ending in a Flush when it is
    # a Parse: the target answers now), and the client the gateway's error in its answer's.
    failing = FAILING_QUERY if second.startswith(b"Q") else FAILING_PARSE
    assert out.out == first + failing + (b.SYNC if second.endswith(b.SYNC) else b"")
    [(status, rule, error)] = refused(out)
    assert (status, rule) == ("blocked", "gateway-sql-reading") and UNSETTLED in (error or "")


def test_text_behind_a_synced_statement_waits_for_its_ready_for_query() -> None:
    relay = guarded()
    first = b.parse(BLIND) + b.bind() + b.execute() + b.SYNC
    out = relay.client_data(first + b.query(TWO_READINGS))
    assert out.out == first and [s.text for s in out.started] == [BLIND]
    assert relay.client_data(b"").out == b""  # still waiting
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + select_result("off"))
    assert not relay.wants_input  # answered, but the settings come with ReadyForQuery
    relay.server_data(b.parameter_status("standard_conforming_strings", "off") + b.ready())
    assert relay.wants_input
    out = relay.client_data(b"")
    assert out.out == b"" and refused(out)[0][:2] == ("blocked", "gateway-sql-reading")
    assert b"cannot read SQL" in out.reply
    # From then on the session cannot be read at all.
    assert refused(relay.client_data(b.query("SELECT 1")))[0][0] == "blocked"


def test_text_behind_a_query_waits_and_goes_on_when_nothing_changed() -> None:
    relay = guarded()
    out = relay.client_data(b.query(BLIND) + b.query(TWO_READINGS))
    assert out.out == b.query(BLIND)
    relay.server_data(select_result("on") + b.ready())
    out = relay.client_data(b"")
    assert out.out == b.query(TWO_READINGS) and out.started[0].text == TWO_READINGS
    assert out.started[0].verdict == "allow"  # one SELECT of a string, as the server reads it


def test_a_client_encoding_reported_meanwhile_decodes_the_text_behind() -> None:
    relay = guarded()
    latin1 = b"SELECT '\xe9t\xe9'"
    relay.client_data(b.query(BLIND) + b.query(latin1))
    relay.server_data(select_result("x") + b.parameter_status("client_encoding", "LATIN1")
                      + b.ready())
    out = relay.client_data(b"")
    assert out.out == b.query(latin1) and out.started[0].text == "SELECT 'été'"


def test_a_multi_statement_query_is_read_whole_before_any_of_it_runs() -> None:
    """PostgreSQL parses the whole string under the settings it had when the Query came, so a
    function at its start cannot change how the rest is read: judged as the guard reads it."""
    relay = guarded()
    text = f"{BLIND}; {TWO_READINGS}"
    out = relay.client_data(b.query(text))
    assert out.out == b.query(text) and [s.text for s in out.started] == [text]


def test_a_query_skipped_behind_a_failed_pipeline_does_not_wait_forever() -> None:
    relay = guarded()
    first = b.parse(BLIND) + b.bind() + b.execute() + b.query("SELECT 1")
    out = relay.client_data(first + b.query(TWO_READINGS))
    assert out.out == first
    # The function fails: PostgreSQL skips everything up to a Sync, both Queries too.
    _, finished = relay.server_data(b.PARSE_COMPLETE + b.error("22012", "division by zero"))
    assert [f.status for f in finished] == ["error", "skipped"]
    assert relay.wants_input
    out = relay.client_data(b"")
    assert out.out == b.query(TWO_READINGS)  # skipped by the target: its reading is moot
    assert [f.status for f in out.finished] == ["skipped"]  # and no answer comes for it
    assert relay.client_data(b.SYNC).out == b.SYNC
    assert relay.server_data(b.ready())[1] == [] and relay.open_statements() == []


def test_after_an_error_and_a_sync_the_text_waits_for_the_ready_for_query() -> None:
    relay = guarded()
    first = b.parse(BLIND) + b.bind() + b.execute() + b.SYNC
    relay.client_data(first + b.query(TWO_READINGS))
    relay.server_data(b.PARSE_COMPLETE + b.error("22012", "division by zero"))
    assert not relay.wants_input
    relay.server_data(b.ready())
    assert relay.wants_input and relay.client_data(b"").out == b.query(TWO_READINGS)


def test_a_portal_continued_is_a_statement_that_may_change_settings() -> None:
    relay = guarded()
    relay.client_data(b.query("BEGIN") + b.parse(BLIND) + b.bind(portal="c")
                      + b.execute("c", 1) + b.SYNC)
    relay.server_data(b.command_complete("BEGIN") + b.ready(b"T") + b.PARSE_COMPLETE
                      + b.BIND_COMPLETE + b.data_row(b"1") + b.PORTAL_SUSPENDED + b.ready(b"T"))
    out = relay.client_data(b.execute("c", 1) + b.query(TWO_READINGS))
    # In the client's block the target fails in its place: the block is aborted, as an error
    # there would leave it, and the client hears so from the target's ReadyForQuery.
    assert out.out == b.execute("c", 1) + FAILING_QUERY
    assert refused(out)[0][1] == "gateway-sql-reading"
    to_client, _ = relay.server_data(b.data_row(b"2") + b.PORTAL_SUSPENDED + SYNTAX_ERROR
                                     + b.ready(b"E"))
    assert to_client.endswith(b"Send a Sync (or wait for the results) before this statement."
                              b"\x00\x00" + b.ready(b"E"))
    assert b"syntax error" not in to_client


def test_text_sent_when_nothing_is_in_flight_is_judged_at_once() -> None:
    relay = guarded()
    relay.client_data(b.query(BLIND))
    relay.server_data(select_result("x") + b.ready())
    out = relay.client_data(b.query(TWO_READINGS) + b.query("SELECT 'é'"))
    # The second waits for the first (a statement in flight), the first goes at once.
    assert out.out == b.query(TWO_READINGS)


def test_text_is_decoded_with_the_session_client_encoding() -> None:
    relay = guarded(client_encoding="LATIN1")
    out = relay.client_data(b.query(b"SELECT '\xe9'"))
    assert out.started[0].text == "SELECT 'é'"
    relay.server_data(select_result("é") + b.ready())
    out = relay.client_data(b.pbes(b"SELECT '\xfe'", [b"\xe9"]))
    assert (out.started[0].text, out.started[0].params) == ("SELECT 'þ'", "'é'")


def test_text_not_valid_in_the_encoding_is_refused_when_guarded() -> None:
    relay = guarded()
    out = relay.client_data(b.query(b"SELECT '\xff'"))
    assert out.out == b"" and refused(out)[0][0] == "blocked"
    assert out.started[0].text == "SELECT '\ufffd'" and b"22021" in out.reply
    # Without a guard the target refuses it; the record shows what can be shown.
    relay = PgRelay(1 << 20)
    out = relay.client_data(b.query(b"SELECT '\xff'"))
    assert out.out == b.query(b"SELECT '\xff'") and out.started[0].text == "SELECT '\ufffd'"


@pytest.mark.parametrize("encoding", ["MULE_INTERNAL", "EUC_TW", "SJIS"])
def test_a_client_encoding_the_gateway_cannot_read_refuses_everything(encoding: str) -> None:
    relay = guarded(client_encoding=encoding)
    assert relay.unreadable is not None and encoding in relay.unreadable
    assert refused(relay.client_data(b.query("SELECT 1")))[0][0] == "blocked"


# --- guarded sessions: one approval, one execution (issue 12, class 7) -----------------------

UPDATE_ALL = "UPDATE t SET a = 0"


def approve(relay: PgRelay, approval: str = "a1") -> ClientOutcome:
    relay.decide(Decision(True, approval))
    return relay.client_data(b"")


def deny(relay: PgRelay) -> ClientOutcome:
    relay.decide(Decision(False, "a9", "statement denied by oncall"))
    return relay.client_data(b"")


def test_a_statement_to_review_is_held_at_its_bind_with_its_parameters() -> None:
    relay = guarded()
    out = relay.client_data(b.parse("DELETE FROM t WHERE $1::int > 0 OR true")
                            + b.bind([b"7"]) + b.execute() + b.SYNC)
    assert out.out == b.parse("DELETE FROM t WHERE $1::int > 0 OR true")  # Parse runs nothing
    assert out.hold is not None and out.hold.params == "'7'" and out.started == []
    out = approve(relay)
    assert out.out == b.bind([b"7"]) + b.execute() + b.SYNC
    [s] = out.started
    assert (s.verdict, s.approval, s.params) == ("approved", "a1", "'7'")


def test_an_approval_covers_one_portal_not_two() -> None:
    """Issue 12: an approved UPDATE bound to two portals ran twice. The approved portal runs
    right after its Bind: the second Bind in between is refused, and with it the segment."""
    relay = guarded()
    data = (b.parse(UPDATE_ALL, "u") + b.bind(statement="u", portal="p1")
            + b.bind(statement="u", portal="p2") + b.execute("p1") + b.execute("p2") + b.SYNC)
    assert relay.client_data(data).hold is not None
    out = approve(relay)
    # The target fails in its place (p1's Bind then rolls back with the segment).
    assert out.out == b.bind(statement="u", portal="p1") + FAILING_PARSE + b.SYNC
    assert out.hold is None and [f.status for f in out.finished] == ["blocked"]
    to_client, done = relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + SYNTAX_ERROR
                                        + b.ready())
    assert b"syntax error" not in to_client
    assert b"runs right after its Bind" in to_client  # where the client expects the answer
    assert [(f.command, f.status) for f in done] == [("BIND", "ok")]  # p1: planned, never run


def test_each_bind_of_an_approved_statement_asks_again() -> None:
    relay = guarded()
    relay.client_data(b.parse(UPDATE_ALL) + b.bind() + b.execute() + b.SYNC)
    approve(relay, "a1")
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.command_complete("UPDATE 3")
                      + b.ready())
    out = relay.client_data(b.bind() + b.execute() + b.SYNC)
    assert out.out == b"" and out.hold is not None and out.hold.text == UPDATE_ALL
    out = approve(relay, "a2")
    assert out.out == b.bind() + b.execute() + b.SYNC and out.started[0].approval == "a2"


def test_an_approved_portal_runs_whole_right_after_its_bind() -> None:
    """With a row limit it would stop and go on later, after other statements (a SET) changed
    what its approver was shown (round 16): refused; so is another message between."""
    relay = guarded()
    relay.client_data(b.query("BEGIN"))
    relay.server_data(b.command_complete("BEGIN") + b.ready(b"T"))
    relay.client_data(b.parse(UPDATE_ALL + " RETURNING a") + b.bind(portal="c")
                      + b.execute("c", 1) + b.SYNC)
    out = approve(relay)
    assert [f.status for f in out.finished] == ["blocked"]
    assert "runs whole" in (out.finished[0].error or "")
    relay = guarded()
    relay.client_data(b.parse(UPDATE_ALL) + b.bind(portal="c") + b.query("SELECT 1"))
    out = approve(relay)
    assert [f.status for f in out.finished] == ["blocked"]
    assert "right after its Bind" in (out.finished[0].error or "")


def test_a_portal_is_gone_when_its_transaction_ends() -> None:
    relay = guarded()
    relay.client_data(b.parse("SELECT 1") + b.bind(portal="c") + b.execute("c", 1) + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"1")
                      + b.PORTAL_SUSPENDED + b.ready(b"I"))
    out = relay.client_data(b.execute("c") + b.SYNC)
    assert out.started[0].text == "-- unknown portal 'c'"


def test_an_approval_applies_only_to_what_was_shown() -> None:
    relay = guarded()
    relay.client_data(b.parse(UPDATE_ALL) + b.bind() + b.execute() + b.SYNC)
    relay._held = ("something else", None, ())  # what the approver saw is not this statement
    out = approve(relay)
    assert out.hold is not None and out.out == b""  # asked again
    relay._held = ("something else", None, ())
    out = deny(relay)  # a refusal is final whatever it was about
    assert out.hold is None and out.finished[0].status == "denied"


def test_close_then_parse_under_the_same_name_in_one_segment() -> None:
    relay = guarded()
    relay.client_data(b.parse(UPDATE_ALL, "s") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    data = b.close("S", "s") + b.parse("SELECT 1", "s") + b.bind(statement="s") + b.execute()
    out = relay.client_data(data + b.SYNC)
    assert out.out == data + b.SYNC and out.started[0].text == "SELECT 1"


def test_close_then_parse_under_the_same_name_in_a_later_segment() -> None:
    """The Close may be skipped (an error before it): then the target refuses the Parse, and
    the name still means what it meant."""
    relay = guarded()
    relay.client_data(b.parse(UPDATE_ALL, "s") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    closing = b.parse("SELECT 1/0") + b.bind() + b.execute() + b.close("S", "s") + b.SYNC
    again = b.parse("SELECT 1", "s") + b.SYNC
    out = relay.client_data(closing + again + b.bind(statement="s") + b.execute() + b.SYNC)
    assert out.out == closing + again  # the Bind waits: "s" is one or the other
    relay.server_data(b.PARSE_COMPLETE + b.error("22012", "division by zero") + b.ready())
    assert not relay.wants_input
    relay.server_data(b.error("42P05", 'prepared statement "s" already exists') + b.ready())
    out = relay.client_data(b"")
    assert out.hold is not None and out.hold.text == UPDATE_ALL
    # And when the Close did close it, the name means the new statement.
    relay = guarded()
    relay.client_data(b.parse(UPDATE_ALL, "s") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    relay.client_data(b.close("S", "s") + b.SYNC + again + b.bind(statement="s") + b.SYNC)
    relay.server_data(b.CLOSE_COMPLETE + b.ready() + b.PARSE_COMPLETE + b.ready())
    out = relay.client_data(b"")
    assert out.hold is None and out.started[0].text == "SELECT 1"


def test_a_parse_skipped_in_an_earlier_segment_does_not_rename_the_unnamed_statement() -> None:
    relay = guarded()
    relay.client_data(b.parse(UPDATE_ALL) + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    second = b.parse("SELECT * FROM nowhere", "x") + b.parse("SELECT 1") + b.SYNC
    out = relay.client_data(second + b.bind() + b.execute() + b.SYNC)
    assert out.out == second  # the Bind waits: which statement it binds is not known yet
    relay.server_data(b.error("42P01", 'relation "nowhere" does not exist') + b.ready())
    out = relay.client_data(b"")
    assert out.hold is not None and out.hold.text == UPDATE_ALL  # what the target still has


def test_a_failed_parse_of_the_unnamed_statement_leaves_none() -> None:
    relay = guarded()
    relay.client_data(b.parse("SELECT 'old'") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    relay.client_data(b.parse("SELECT * FROM nowhere") + b.SYNC)
    relay.server_data(b.error("42P01", 'relation "nowhere" does not exist') + b.ready())
    out = relay.client_data(b.bind() + b.execute() + b.SYNC)
    assert out.finished[0].sqlstate == "26000"


def test_statement_names_are_bytes_never_decoded() -> None:
    """Issue 12: with client_encoding LATIN1, b'\\xfe' and b'\\xff' both decoded to U+FFFD."""
    relay = guarded(client_encoding="LATIN1")
    relay.client_data(b.parse(UPDATE_ALL, b"\xfe") + b.parse("SELECT 1", b"\xff") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.PARSE_COMPLETE + b.ready())
    out = relay.client_data(b.bind(statement=b"\xff") + b.execute() + b.SYNC)
    assert out.started[0].text == "SELECT 1" and out.hold is None
    relay.server_data(b.BIND_COMPLETE + select_result("1") + b.ready())
    out = relay.client_data(b.bind(statement=b"\xfe") + b.execute() + b.SYNC)
    assert out.hold is not None and out.hold.text == UPDATE_ALL


def test_a_name_is_the_same_after_the_client_encoding_changes() -> None:
    relay = guarded(client_encoding="LATIN1")
    relay.client_data(b.parse(UPDATE_ALL, b"\xfe") + b.parse("SELECT 1", "Ã¾".encode("latin-1"))
                      + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.PARSE_COMPLETE + b.ready())
    relay.client_data(b.query("SET client_encoding = 'UTF8'"))
    relay.server_data(b.command_complete("SET") + b.parameter_status("client_encoding", "UTF8")
                      + b.ready())
    # "þ" in UTF-8 is the name b'\xfe' had in LATIN1; the target finds the UPDATE.
    out = relay.client_data(b.bind(statement="þ") + b.execute() + b.SYNC)
    assert out.hold is not None and out.hold.text == UPDATE_ALL


def test_names_longer_than_63_bytes_are_one_name_as_in_postgresql() -> None:
    relay = guarded()
    relay.client_data(b.parse(UPDATE_ALL, "a" * 63 + "X") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    out = relay.client_data(b.parse("SELECT 1", "a" * 63 + "Y") + b.SYNC)
    assert b"already exists" in out.reply
    out = relay.client_data(b.bind(statement="a" * 63 + "Z") + b.execute() + b.SYNC)
    assert out.hold is not None and out.hold.text == UPDATE_ALL


# --- SQL PREPARE / EXECUTE / DEALLOCATE -------------------------------------------------------


def run_query(relay: PgRelay, text: str, answer: bytes, approval: str | None = None,
              ) -> ClientOutcome:
    out = relay.client_data(b.query(text))
    if out.hold is not None and approval is not None:
        out = approve(relay, approval)
    relay.server_data(answer + b.ready())
    return out


def test_execute_is_judged_as_the_statement_it_names_every_time() -> None:
    """Issue 12: an approved PREPARE x AS UPDATE … ran at every EXECUTE x."""
    relay = guarded()
    out = run_query(relay, f"PREPARE x AS {UPDATE_ALL}", b.command_complete("PREPARE"), "a1")
    assert out.started[0].verdict == "approved"
    for approval in ("a2", "a3"):
        out = relay.client_data(b.query("EXECUTE x"))
        assert out.hold is not None
        assert out.hold.judgement.rule == "review-unbounded-writes"
        assert out.hold.judgement.verdict.reason == "EXECUTE x runs UPDATE WITHOUT WHERE t"
        assert out.hold.notes == (f"EXECUTE x runs: {UPDATE_ALL}",)  # masked with the text
        out = approve(relay, approval)
        assert out.out == b.query("EXECUTE x") and out.started[0].approval == approval
        relay.server_data(b.command_complete("UPDATE 3") + b.ready())


@pytest.mark.parametrize("text", [
    "EXPLAIN ANALYZE EXECUTE x", "CREATE TABLE z AS EXECUTE x", "SELECT 1; EXECUTE X",
    'EXECUTE "x"(1)', "/* */ execute x",
])
def test_every_way_to_execute_a_name_is_judged(text: str) -> None:
    relay = guarded()
    run_query(relay, f"PREPARE x AS {UPDATE_ALL}", b.command_complete("PREPARE"), "a1")
    out = relay.client_data(b.query(text))
    # held; or, with other statements in its query string, refused (held ones come alone)
    assert out.hold is not None or refused(out)[0][1] == "review-unbounded-writes"


def test_execute_of_a_name_the_gateway_does_not_know_follows_the_fallback() -> None:
    relay = guarded()
    out = relay.client_data(b.query("EXECUTE ghost"))
    assert out.out == b"" and refused(out)[0][:2] == ("blocked", "fallback")


def test_execute_of_a_statement_prepared_by_parse_is_judged_as_it() -> None:
    relay = guarded()
    relay.client_data(b.parse("DELETE FROM t", "w") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    assert relay.client_data(b.query("EXECUTE w")).hold is not None


def test_a_bind_runs_a_statement_prepared_in_sql() -> None:
    relay = guarded()
    run_query(relay, "PREPARE Sel AS SELECT 42", b.command_complete("PREPARE"))
    out = relay.client_data(b.bind(statement="sel") + b.execute() + b.SYNC)  # folded, as PG
    assert out.started[0].text == "SELECT 42" and out.hold is None


def test_an_execute_sent_before_its_prepare_is_answered() -> None:
    """Either the PREPARE worked and x is the UPDATE, or x does not exist and the EXECUTE
    fails: it is judged as the UPDATE at once."""
    relay = guarded()
    relay.client_data(b.query(f"PREPARE x AS {UPDATE_ALL}") + b.query("EXECUTE x"))
    out = approve(relay)
    assert out.out == b.query(f"PREPARE x AS {UPDATE_ALL}")
    # held once the settings in force are read, behind the PREPARE's answer
    assert out.hold is None and relay.reading is None
    relay.server_data(b.command_complete("PREPARE") + b.ready())
    out = relay.client_data(b"")
    assert out.hold is not None and out.hold.text == "EXECUTE x"
    # A name that meant something else before is another matter: that waits.
    relay = guarded()
    run_query(relay, "PREPARE x AS SELECT 1", b.command_complete("PREPARE"))
    change = b.query("SELECT 1") + b.query(f"PREPARE x AS {UPDATE_ALL}")
    out = relay.client_data(change + b.query("DEALLOCATE x") + b.query("EXECUTE x"))
    assert out.out == b.query("SELECT 1")  # the PREPARE's settings are read behind it
    relay.server_data(select_result("1") + b.ready())
    assert relay.client_data(b"").hold is not None
    out = approve(relay)
    assert out.out == b.query(f"PREPARE x AS {UPDATE_ALL}") + b.query("DEALLOCATE x")
    assert out.hold is None  # EXECUTE x waits: x is the UPDATE, or nothing
    relay.server_data(b.error("0A000", "not now") + b.ready())  # the PREPARE failed
    relay.server_data(b.command_complete("DEALLOCATE") + b.ready())
    out = relay.client_data(b"")
    assert refused(out)[0][1] == "fallback"  # x names nothing now


def test_a_failed_prepare_names_nothing() -> None:
    relay = guarded()
    run_query(relay, "PREPARE x AS SELECT * FROM nowhere",
              b.error("42P01", 'relation "nowhere" does not exist'))
    assert refused(relay.client_data(b.query("EXECUTE x")))[0][1] == "fallback"


def test_a_prepare_survives_a_later_error_in_the_same_query() -> None:
    relay = guarded()
    run_query(relay, "PREPARE x AS SELECT 2; SELECT 1/0",
              b.command_complete("PREPARE") + b.error("22012", "division by zero"))
    assert relay.client_data(b.query("EXECUTE x")).started[0].verdict == "allow"  # known


def test_prepare_and_execute_in_one_query() -> None:
    relay = guarded()
    out = relay.client_data(b.query(f"PREPARE x AS {UPDATE_ALL}; EXECUTE x"))
    assert out.hold is not None
    assert any("EXECUTE x runs" in v.reason for v in out.hold.judgement.statements)
    relay = guarded()
    out = relay.client_data(b.query("PREPARE y AS SELECT 1; EXECUTE y; DEALLOCATE y; EXECUTE y"))
    assert refused(out)[0][1] == "fallback"  # the last EXECUTE names nothing any more


@pytest.mark.parametrize(("text", "tag"), [
    ("DEALLOCATE x", "DEALLOCATE"), ("DEALLOCATE PREPARE x", "DEALLOCATE"),
    ("DEALLOCATE ALL", "DEALLOCATE ALL"), ("DISCARD ALL", "DISCARD ALL"),
])
def test_deallocate_and_discard_all_forget(text: str, tag: str) -> None:
    relay = guarded()
    run_query(relay, "PREPARE x AS SELECT 1", b.command_complete("PREPARE"))
    relay.client_data(b.parse("SELECT 2", "s") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    run_query(relay, text, b.command_complete(tag))
    assert refused(relay.client_data(b.query("EXECUTE x")))[0][1] == "fallback"
    out = relay.client_data(b.bind(statement="s") + b.execute() + b.SYNC)
    forgotten = tag != "DEALLOCATE"  # ALL forgets what Parse named too
    assert (b"does not exist" in out.reply) == forgotten


def test_a_deallocate_that_fails_forgets_nothing() -> None:
    relay = guarded()
    run_query(relay, "PREPARE x AS SELECT 1", b.command_complete("PREPARE"))
    run_query(relay, "SELECT 1/0; DEALLOCATE x", b.error("22012", "division by zero"))
    out = relay.client_data(b.query("EXECUTE x"))
    assert out.out == b.query("EXECUTE x")


def test_a_parse_of_execute_is_judged_at_each_bind_as_what_the_name_then_means() -> None:
    relay = guarded()
    run_query(relay, "PREPARE x AS SELECT 1", b.command_complete("PREPARE"))
    relay.client_data(b.parse("EXECUTE x", "runs_x") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    out = relay.client_data(b.bind(statement="runs_x") + b.execute() + b.SYNC)
    assert out.hold is None and out.started[0].text == "EXECUTE x"
    relay.server_data(b.BIND_COMPLETE + select_result("1") + b.ready())
    run_query(relay, "DEALLOCATE x", b.command_complete("DEALLOCATE"))
    run_query(relay, f"PREPARE x AS {UPDATE_ALL}", b.command_complete("PREPARE"), "a1")
    assert relay.client_data(b.bind(statement="runs_x") + b.execute() + b.SYNC).hold is not None


def test_an_execute_whose_name_is_replaced_after_its_bind_is_refused() -> None:
    relay = guarded()
    run_query(relay, "PREPARE x AS SELECT 1", b.command_complete("PREPARE"))
    relay.client_data(b.parse("EXECUTE x", "runs_x") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    swap = b.close("S", "x") + b.parse("DELETE FROM t WHERE id = 1", "x")
    out = relay.client_data(b.bind(statement="runs_x") + swap + b.execute() + b.SYNC)
    assert out.out == b.bind(statement="runs_x") + swap + FAILING_PARSE + b.SYNC
    to_client, _ = relay.server_data(b.BIND_COMPLETE + b.CLOSE_COMPLETE + b.PARSE_COMPLETE
                                     + SYNTAX_ERROR)
    assert b"replaced after it was bound" in to_client


def test_a_declared_cursor_takes_the_name_of_a_portal() -> None:
    relay = guarded()
    run_query(relay, "BEGIN", b.command_complete("BEGIN"))
    relay.client_data(b.parse("SELECT 1") + b.bind(portal="p") + b.execute("p", 1) + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"1")
                      + b.PORTAL_SUSPENDED + b.ready(b"T"))
    run_query(relay, "CLOSE p; DECLARE p CURSOR FOR SELECT 2",
              b.command_complete("CLOSE CURSOR") + b.command_complete("DECLARE CURSOR"))
    out = relay.client_data(b.execute("p") + b.SYNC)
    assert out.started[0].text == "-- unknown portal 'p'"


# --- the names model against a model of PostgreSQL -------------------------------------------


class FakePostgres:
    """Just enough of PostgreSQL's extended protocol: named and unnamed statements, a Parse
    that fails on a missing table, 42P05 for a name in use, 26000 for an unknown one, and
    everything skipped after an error until Sync. ``ran``: the texts Executes ran, in order."""

    def __init__(self) -> None:
        from engine.pg.codec import MessageReader

        self.reader = MessageReader(1 << 20)
        self.statements: dict[bytes, str] = {}
        self.portal: str | None = None
        self.ignoring = False
        self.ran: list[str] = []

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for tag, body in self.reader.feed(data):
            kind = chr(tag)
            if kind == "S":
                self.ignoring = False
                out.append(b.ready())
                continue
            if self.ignoring or kind == "H":
                continue
            error = None
            if kind == "P":
                name, text, _ = body.split(b"\x00", 2)
                if not name:
                    self.statements.pop(b"", None)  # before it parses, as PostgreSQL does
                if name and name in self.statements:
                    error = b.error("42P05", "prepared statement already exists")
                elif b"missing" in text:
                    error = b.error("42P01", "relation does not exist")
                else:
                    self.statements[name] = text.decode()
                    out.append(b.PARSE_COMPLETE)
            elif kind == "B":
                _, name, _ = body.split(b"\x00", 2)
                if name not in self.statements:
                    error = b.error("26000", "prepared statement does not exist")
                else:
                    self.portal = self.statements[name]
                    out.append(b.BIND_COMPLETE)
            elif kind == "E":
                assert self.portal is not None
                self.ran.append(self.portal)
                out.append(b.command_complete("SELECT 1"))
            elif kind == "C":
                if body[:1] == b"S":
                    self.statements.pop(body[1:-1], None)
                out.append(b.CLOSE_COMPLETE)
            if error is not None:
                out.append(error)
                self.ignoring = True
        return b"".join(out)


# Pipelines as segments (each ends with a Sync) of a few messages, with names that collide.
SEGMENTS = st.lists(st.lists(st.sampled_from([
    ("parse", "", "SELECT 1"), ("parse", "", "SELECT 2"), ("parse", "a", "SELECT 3"),
    ("parse", "b", "SELECT * FROM missing"), ("run", "", ""), ("run", "a", ""),
    ("close", "a", ""),
]), min_size=1, max_size=3), min_size=2, max_size=5)
OPS = SEGMENTS.map(lambda segments: [op for seg in segments for op in [*seg, ("sync", "", "")]])


_SYNC = ("sync", "", "")
_FAILS = ("parse", "b", "SELECT * FROM missing")


@settings(database=None, deadline=None, max_examples=1000)
@given(OPS, st.sampled_from([True, True, True, False]))
# The shapes that matter, whatever the search finds: a change skipped in an earlier segment.
@example([("parse", "", "SELECT 1"), _SYNC, _FAILS, ("parse", "", "SELECT 2"), _SYNC,
          ("run", "", ""), _SYNC], True)
@example([("parse", "a", "SELECT 3"), _SYNC, _FAILS, ("close", "a", ""), _SYNC,
          ("parse", "a", "SELECT 4"), _SYNC, ("run", "a", ""), _SYNC], True)
@example([("parse", "a", "SELECT 3"), _SYNC, ("close", "a", ""), _SYNC,
          ("parse", "a", "SELECT 4"), _SYNC, ("run", "a", ""), _SYNC], True)
@example([("parse", "", "SELECT 1"), _SYNC, ("parse", "", "SELECT * FROM missing"), _SYNC,
          ("run", "", ""), _SYNC], True)
def test_fuzz_what_ran_is_what_was_recorded(ops: list[tuple[str, str, str]],
                                            pipelined: bool) -> None:
    """Whatever the pipeline, and whichever of its messages fail or are skipped, every
    statement the target ran has a record with its text: the gateway's idea of what a name
    means never differs from the target's (invariant 11)."""
    sent = []
    for op, name, text in ops:
        if op == "parse":
            sent.append(b.parse(text, name))
        elif op == "run":
            sent.append(b.bind(statement=name) + b.execute())
        elif op == "close":
            sent.append(b.close("S", name))
        else:
            sent.append(b.SYNC)
    sent.append(b.SYNC)
    relay, target = PgRelay(1 << 20), FakePostgres()
    texts: dict[int, str] = {}
    statuses: dict[int, str] = {}
    chunks = sent if not pipelined else [b"".join(sent)]
    for chunk in chunks:
        outcome = relay.client_data(chunk)
        while True:
            texts.update((s.seq, s.text) for s in outcome.started)
            statuses.update((f.seq, f.status) for f in outcome.finished)
            answer = target.feed(outcome.out)
            _, finished = relay.server_data(answer)
            statuses.update((f.seq, f.status) for f in finished)
            if not relay.wants_input:
                break
            outcome = relay.client_data(b"")
    assert relay.client_data(b"").out == b""  # nothing left waiting
    recorded = [texts[seq] for seq in sorted(texts) if statuses.get(seq) == "ok"]
    assert recorded == target.ran


# --- more variants of classes 6 and 7 ---------------------------------------------------------


@pytest.mark.parametrize("first", [
    "SELECT 1",  # any statement: views, triggers, rules and operators run functions unseen
    "CALL p()", "SET search_path = public", "RESET ALL", "DISCARD ALL",
    "SELECT set_config('application_name', 'x', false)", "INSERT INTO t VALUES (1)",
    "SELECT * FROM some_view", "COMMIT",
])
def test_text_behind_any_statement_waits_for_its_ready_for_query(first: str) -> None:
    relay = guarded()
    out = relay.client_data(b.query(first) + b.query("SELECT 'é'"))
    assert out.out == b.query(first)
    relay.server_data(b.command_complete("X") + b.ready())
    assert relay.client_data(b"").out == b.query("SELECT 'é'")


def test_text_behind_a_held_statement_waits_for_it_to_run() -> None:
    relay = guarded()
    out = relay.client_data(b.query(UPDATE_ALL) + b.query(TWO_READINGS))
    assert out.hold is not None
    out = approve(relay)
    assert out.out == b.query(UPDATE_ALL)  # the other waits for its ReadyForQuery
    relay.server_data(b.command_complete("UPDATE 3") + b.ready())
    assert relay.client_data(b"").out == b.query(TWO_READINGS)


def test_a_client_encoding_set_in_sql_decodes_what_follows() -> None:
    relay = guarded(client_encoding="LATIN1")
    relay.client_data(b.query("SET client_encoding = 'UTF8'"))
    relay.server_data(b.command_complete("SET") + b.parameter_status("client_encoding", "UTF8")
                      + b.ready())
    out = relay.client_data(b.query("SELECT 'é'"))
    assert out.started[0].text == "SELECT 'é'"


def test_a_latin1_session_decodes_parse_text_and_names_the_same_way() -> None:
    relay = guarded(client_encoding="LATIN1")
    out = relay.client_data(b.parse(b"SELECT '\xe9'", b"\xe9") + b.bind(statement=b"\xe9")
                            + b.execute() + b.SYNC)
    assert out.started[0].text == "SELECT 'é'"


def test_an_invalid_statement_name_is_refused() -> None:
    relay = guarded(client_encoding="WIN1252")  # 0x81 has no character: no conversion
    out = relay.client_data(b.parse("SELECT 1", b"\x81") + b.SYNC)
    assert out.out == b.SYNC and b"22021" in out.reply


def test_a_statement_prepared_in_sql_is_held_at_each_bind() -> None:
    relay = guarded()
    run_query(relay, f"PREPARE x AS {UPDATE_ALL}", b.command_complete("PREPARE"), "a1")
    for approval in ("a2", "a3"):
        out = relay.client_data(b.bind(statement="x") + b.execute() + b.SYNC)
        assert out.hold is not None and out.hold.text == UPDATE_ALL
        assert approve(relay, approval).started[0].approval == approval
        relay.server_data(b.BIND_COMPLETE + b.command_complete("UPDATE 3") + b.ready())


def test_prepare_and_deallocate_sent_through_the_extended_protocol() -> None:
    relay = guarded()
    relay.client_data(b.pbes(f"PREPARE x AS {UPDATE_ALL}"))
    approve(relay)
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.command_complete("PREPARE")
                      + b.ready())
    assert relay.client_data(b.query("EXECUTE x")).hold is not None
    deny(relay)
    relay.server_data(b.ready())
    relay.client_data(b.pbes("DEALLOCATE x"))
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.command_complete("DEALLOCATE")
                      + b.ready())
    assert refused(relay.client_data(b.query("EXECUTE x")))[0][1] == "fallback"


def test_long_sql_names_meet_the_protocol_names_they_are_cut_to() -> None:
    relay = guarded()
    run_query(relay, f"PREPARE {'b' * 70} AS {UPDATE_ALL}", b.command_complete("PREPARE"), "a1")
    out = relay.client_data(b.bind(statement="b" * 63 + "zzz") + b.execute() + b.SYNC)
    assert out.hold is not None and out.hold.text == UPDATE_ALL
    deny(relay)
    relay.server_data(b.ready())
    assert relay.client_data(b.query("EXECUTE " + "b" * 80)).hold is not None


@pytest.mark.parametrize("text", ["EXPLAIN EXECUTE ghost", "CREATE TABLE z AS EXECUTE ghost",
                                  "SELECT 1; EXECUTE ghost", "EXPLAIN ANALYZE EXECUTE ghost"])
def test_any_execute_of_an_unknown_name_follows_the_fallback(text: str) -> None:
    relay = guarded()
    out = relay.client_data(b.query(text))
    assert out.out == b"" and refused(out)[0][1] == "fallback"


def test_without_a_guard_names_are_still_followed_for_the_records() -> None:
    relay = PgRelay(1 << 20)
    relay.client_data(b.query("PREPARE Sel AS SELECT 42"))
    relay.server_data(b.command_complete("PREPARE") + b.ready())
    out = relay.client_data(b.bind(statement="sel") + b.execute() + b.SYNC)
    assert out.started[0].text == "SELECT 42"


def test_an_approved_bind_with_column_masking_describes_its_portal() -> None:
    from engine.pg.relay import GATEWAY_ROW_DESCRIPTION

    relay = guarded()
    relay.describe_portals = True
    relay.client_data(b.parse(UPDATE_ALL + " RETURNING a") + b.bind() + b.execute() + b.SYNC)
    out = approve(relay)
    assert out.out == b.bind() + b.describe("P") + b.execute() + b.SYNC
    to_client, done = relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE
                                        + b.row_description("a") + b.data_row(b"0")
                                        + b.command_complete("UPDATE 1") + b.ready())
    assert GATEWAY_ROW_DESCRIPTION + b.row_description("a")[1:] in to_client
    assert [(f.status, f.rows) for f in done] == [("ok", 1)]


def test_an_unnamed_portal_bound_again_is_the_new_one() -> None:
    relay = guarded()
    relay.client_data(b.query("BEGIN"))
    relay.server_data(b.command_complete("BEGIN") + b.ready(b"T"))
    relay.client_data(b.parse("SELECT 1") + b.bind() + b.execute("", 1) + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.data_row(b"1")
                      + b.PORTAL_SUSPENDED + b.ready(b"T"))
    out = relay.client_data(b.parse(UPDATE_ALL) + b.bind() + b.execute() + b.SYNC)
    assert out.hold is not None  # the unnamed portal is now this UPDATE, to review


# --- names behind a statement that may change client_encoding (issue 12, an outside attack) --

FLIP = "SELECT flip_enc()"  # a SQL function whose body runs SET client_encoding = 'LATIN1'
E_ACUTE = "é".encode()  # b'\xc3\xa9': "é" in UTF-8, "Ã©" (another name) in LATIN1


def two_names(relay: PgRelay) -> None:
    """An UPDATE named 'Ã©' in UTF-8 bytes and a SELECT named b'\\xc3\\xa9', known to both."""
    relay.client_data(b.parse(UPDATE_ALL, "Ã©") + b.parse("SELECT 1", E_ACUTE) + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.PARSE_COMPLETE + b.ready())


@pytest.mark.parametrize("second", [
    b.bind(statement=E_ACUTE) + b.execute(),
    b.bind(statement="s", portal=E_ACUTE) + b.execute(E_ACUTE),
    b.parse("SELECT 2", "ü"),
    b.close("S", E_ACUTE),
], ids=["bind-statement", "bind-portal", "parse", "close"])
def test_a_non_ascii_name_behind_an_unsynced_statement_is_refused(second: bytes) -> None:
    """The attack: flip_enc() sets LATIN1 in the same pipeline, and the server reads the name
    b'\\xc3\\xa9' as 'Ã©' (the UPDATE) while the gateway looked up 'é' (the SELECT)."""
    relay = guarded()
    two_names(relay)
    relay.client_data(b.parse("SELECT 1", "s") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    first = b.parse(FLIP) + b.bind() + b.execute()
    out = relay.client_data(first + second + b.SYNC)
    assert out.out == first + FAILING_PARSE + b.SYNC and out.hold is None
    [(status, rule, error)] = refused(out)
    assert (status, rule) == ("blocked", "gateway-sql-reading")
    assert "which name the server will read" in (error or "")
    assert out.started[0].text == FLIP and len(out.started) == 2  # nothing else recorded


def test_a_non_ascii_name_behind_a_synced_statement_is_read_with_the_new_encoding() -> None:
    relay = guarded()
    two_names(relay)
    first = b.parse(FLIP) + b.bind() + b.execute() + b.SYNC
    out = relay.client_data(first + b.bind(statement=E_ACUTE) + b.execute() + b.SYNC)
    assert out.out == first  # the Bind waits for the settings
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + select_result(""))
    assert not relay.wants_input
    relay.server_data(b.parameter_status("client_encoding", "LATIN1") + b.ready())
    assert relay.wants_input
    out = relay.client_data(b"")
    # In LATIN1 those bytes are 'Ã©': the UPDATE, held for review, never recorded as SELECT 1.
    assert out.out == b"" and out.hold is not None and out.hold.text == UPDATE_ALL


def test_a_non_ascii_name_goes_on_when_the_encoding_did_not_change() -> None:
    relay = guarded()
    two_names(relay)
    relay.client_data(b.query("SELECT 1") + b.bind(statement=E_ACUTE) + b.execute() + b.SYNC)
    relay.server_data(select_result("1") + b.ready())
    out = relay.client_data(b"")
    assert out.out == b.bind(statement=E_ACUTE) + b.execute() + b.SYNC
    assert out.started[0].text == "SELECT 1"


def test_ascii_names_behind_an_unsynced_statement_go_on_at_once() -> None:
    relay = guarded()
    relay.client_data(b.parse("SELECT 2", "s") + b.SYNC)
    relay.server_data(b.PARSE_COMPLETE + b.ready())
    data = (b.parse(FLIP) + b.bind() + b.execute() + b.bind(statement="s", portal="p")
            + b.execute("p") + b.close("P", "p") + b.SYNC)
    out = relay.client_data(data)
    assert out.out == data and [s.text for s in out.started] == [FLIP, "SELECT 2"]


def test_names_wait_for_the_settings_without_a_guard_too() -> None:
    relay = PgRelay(1 << 20)
    two_names(relay)
    first = b.parse(FLIP) + b.bind() + b.execute() + b.SYNC
    out = relay.client_data(first + b.bind(statement=E_ACUTE) + b.execute() + b.SYNC)
    assert out.out == first
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + select_result("")
                      + b.parameter_status("client_encoding", "LATIN1") + b.ready())
    assert relay.client_data(b"").started[0].text == UPDATE_ALL


# --- a refusal fails on the target too (issue 12, outside attacker) -------------------------


def test_a_block_inside_the_client_s_block_aborts_it_on_the_target() -> None:
    """Simple protocol, in the client's transaction: the target gets the gateway's failing
    Query in the DROP's place, its error is replaced by the gateway's, and its ReadyForQuery
    (the block aborted) is what the client hears."""
    relay = guarded()
    relay.client_data(b.query("BEGIN"))
    relay.server_data(b.command_complete("BEGIN") + b.ready(b"T"))
    out = relay.client_data(b.query("DROP TABLE t"))
    assert out.out == FAILING_QUERY and out.reply == b""
    assert [r[:2] for r in refused(out)] == [("blocked", "no-drop")]
    to_client, _ = relay.server_data(SYNTAX_ERROR + b.ready(b"E"))
    assert b'blocked by rule "no-drop"' in to_client and b"syntax" not in to_client
    assert to_client.endswith(b.ready(b"E")) and relay.transaction_status == b"E"


def test_a_block_at_an_idle_target_is_answered_by_the_gateway_alone() -> None:
    relay = guarded()
    out = relay.client_data(b.query("DROP TABLE t"))
    assert out.out == b"" and out.reply.endswith(b.ready(b"I"))
    out = relay.client_data(b.parse("DROP TABLE t") + b.bind() + b.execute() + b.SYNC)
    assert out.out == b.SYNC and b"no-drop" in out.reply


def test_a_block_in_a_pipeline_fails_the_segment_and_its_error_is_the_gateway_s_own() -> None:
    """With results masked, the gateway's own error goes tagged GATEWAY_ERROR: the masker
    passes it untouched (it carries nothing of the target's)."""
    relay = guarded()
    relay.marks_own = True
    insert = b.parse("INSERT INTO t VALUES (1)") + b.bind() + b.execute()
    out = relay.client_data(insert + b.parse("DROP TABLE t") + b.bind() + b.execute() + b.SYNC)
    assert out.out == insert + FAILING_PARSE + b.SYNC
    to_client, done = relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE
                                        + b.command_complete("INSERT 0 1") + SYNTAX_ERROR
                                        + b.ready())
    assert relay.own_errors == 1
    start = to_client.index(GATEWAY_ERROR + b"\x00")
    assert b'blocked by rule "no-drop"' in to_client[start:] and b"syntax" not in to_client
    assert to_client.endswith(b.ready()) and [f.status for f in done] == ["ok"]


def test_a_function_created_in_a_segment_the_gateway_failed_is_not_remembered() -> None:
    """CREATE FUNCTION completes, then a blocked statement fails the segment on the target:
    its implicit transaction rolls back, and the function was never created. The session's
    memory (``SessionGuard.memory``) must not keep it for a trigger to bind later."""
    # A rule that blocks a statement which would keep the memory itself (an index on
    # columns): only the failed segment can tell that the function is gone.
    rules = (Rule("no-indexes", "block", Match(statements=frozenset({"CREATE INDEX"}))),)
    relay = Answering(1 << 20, Guard(rules, GuardrailSettings()).for_session("c", "u",
                                                                           frozenset()))
    create = ("CREATE FUNCTION public.tf() RETURNS trigger LANGUAGE plpgsql AS "
              "$$BEGIN RETURN NEW; END$$")
    first = b.parse(create) + b.bind() + b.execute()
    blocked = b.parse("CREATE INDEX i ON t (a)") + b.bind() + b.execute()
    out = relay.client_data(first + blocked + b.SYNC)
    assert out.out == first + FAILING_PARSE + b.SYNC
    relay.server_data(b.PARSE_COMPLETE + b.BIND_COMPLETE + b.command_complete("CREATE FUNCTION")
                      + SYNTAX_ERROR + b.ready())
    assert relay.guard is not None and not relay.guard.memory.known.functions


# --- what may run code between a held statement's Parse and its Bind (round 18) -----------

from tests.engine.pg.answering import reading_answers  # noqa: E402

DATED = "UPDATE t SET d = '03/04/2024'"  # its literal is read at its Parse (DateStyle)
DMY = {"datestyle": "SQL, DMY"}


def _parsed_then(between: bytes, answers: bytes) -> ClientOutcome:
    """``DATED`` parsed as s2 under ISO, MDY (the reading behind its Parse), then
    ``between`` (answered with ``answers``), then its Bind: the settings read there are
    SQL, DMY."""
    relay = guarded()
    relay.auto = False  # type: ignore[attr-defined]
    relay.client_data(b.parse(DATED, "s2"))
    assert relay.reading == "synced"
    relay.server_data(b.PARSE_COMPLETE + reading_answers("synced"))
    out = relay.client_data(between + b.bind(statement="s2") + b.execute() + b.SYNC)
    assert out.out == between and relay.reading is not None
    how = relay.reading
    relay.wire(b"")
    relay.server_data(answers + reading_answers(how, DMY))
    return relay.client_data(b"")


@pytest.mark.parametrize(("between", "answers"), [
    # Planning folds an IMMUTABLE function of constants (which may call set_config).
    (b.parse("SELECT public.f()", "s1") + b.bind(statement="s1", portal="p1")
     + b.close("P", "p1"), b.PARSE_COMPLETE + b.BIND_COMPLETE + b.CLOSE_COMPLETE),
    # Analysis runs types' input functions (a domain's CHECK in an array literal).
    (b.parse("SELECT '{1}'::public.d[]", "s1"), b.PARSE_COMPLETE),
    # A statement invalidated since its Parse is analysed again.
    (b.describe("S", "s2"), b"\x74\x00\x00\x00\x06\x00\x00" + b.NO_DATA),
    # A COMMIT fires deferred triggers.
    (b.SYNC, b.ready()),
], ids=["bind-close", "parse", "describe-statement", "sync"])
def test_what_may_run_code_between_a_parse_and_its_held_bind_counts(
        between: bytes, answers: bytes) -> None:
    """Round 18: a Bind of a statement calling an IMMUTABLE function that ran set_config
    came between a held statement's Parse and its Bind; its approver was shown the new
    DateStyle, its literal had been read under the old one. Refused: it cannot be shown."""
    out = _parsed_then(between, answers)
    assert out.hold is None
    [f] = out.finished
    assert f.status == "blocked" and "prepared before" in (f.error or "")


def test_what_runs_nothing_between_a_parse_and_its_held_bind_does_not_count() -> None:
    """A Flush, a Describe of a portal and a Close of a statement run nothing: held, with the
    settings read (which nothing could have changed since its Parse)."""
    out = _parsed_then(b.FLUSH + b.describe("P", "nope") + b.close("S", "s9"),
                       b.error("34000", "portal does not exist"))
    assert out.hold is not None and out.hold.text == DATED
