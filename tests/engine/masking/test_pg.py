"""``ResultMasker`` as conversations: backend messages in, masked messages and counts out."""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking.pg import (
    UNDESCRIBED_ROW,
    ColumnAction,
    ColumnRule,
    ResultMasker,
)
from engine.pg import codec
from engine.pg.codec import MessageReader, ProtocolViolation, cstr, message
from engine.pg.messages import error_fields
from tests.engine.pg import build as b

FUZZ = settings(database=None, deadline=None, max_examples=300)

TEXT, INT4, INT8, BYTEA, JSONB, VARCHAR = 25, 23, 20, 17, 3802, 1043


class FakeMasker:
    """Masks e-mail-like words and runs of exactly 16 digits; screens for '@' or 16 digits."""

    EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*", re.ASCII)
    CARD = re.compile(r"(?<!\d)\d{16}(?!\d)", re.ASCII)
    SCREEN = re.compile(rb"@|\d{16}")

    def __init__(self) -> None:
        self.screened = 0

    def mask(self, text: str) -> tuple[str, list[str]]:
        fired: list[str] = []

        def email(_: re.Match[str]) -> str:
            fired.append("email")
            return "<email>"

        def card(m: re.Match[str]) -> str:
            fired.append("card")
            return "*" * 12 + m.group()[-4:]

        return self.CARD.sub(card, self.EMAIL.sub(email, text)), fired

    def screen(self, data: bytes) -> bool:
        self.screened += 1
        return self.SCREEN.search(data) is not None


def column(name: str, type_oid: int = TEXT, fmt: int = 0, table: int = 0,
           attnum: int = 0) -> tuple[str, int, int, int, int]:
    return name, type_oid, fmt, table, attnum


def row_description(*columns: tuple[str, int, int, int, int]) -> bytes:
    body = struct.pack("!h", len(columns))
    for name, type_oid, fmt, table, attnum in columns:
        body += cstr(name) + struct.pack("!IhIhih", table, attnum, type_oid, -1, -1, fmt)
    return message(b"T", body)


def copy_out_response(fmt: int, columns: int = 2) -> bytes:
    return message(b"H", bytes([fmt]) + struct.pack("!h", columns)
                   + struct.pack("!h", fmt) * columns)


def parse_row(msg: bytes) -> list[bytes | None]:
    """The values of one DataRow, checking every declared length on the way."""
    [(tag, body)] = MessageReader(1 << 20).feed(msg)
    assert tag == ord("D")
    (count,) = struct.unpack_from("!h", body)
    pos = 2
    values: list[bytes | None] = []
    for _ in range(count):
        (size,) = struct.unpack_from("!i", body, pos)
        pos += 4
        if size == -1:
            values.append(None)
            continue
        assert size >= 0 and pos + size <= len(body)
        values.append(body[pos : pos + size])
        pos += size
    assert pos == len(body)
    return values


def split(data: bytes) -> list[tuple[int, bytes]]:
    reader = MessageReader(1 << 20)
    out = reader.feed(data)
    assert reader.pending == 0
    return out


def null_strategy(_: str) -> str | None:
    return None


def redact(_: str) -> str | None:
    return "***"


def rules(**by_name: ColumnAction) -> ColumnRule:
    def column_rule(name: str, table_oid: int, attnum: int) -> ColumnAction | None:
        return by_name.get(name)

    return column_rule


def masker(**by_name: ColumnAction) -> ResultMasker:
    rule = rules(**by_name) if by_name else None
    return ResultMasker(FakeMasker(), rule)


EMAIL = b"alice@example.com"
CARD = b"4111111111111111"


# --- DataRow, text format --------------------------------------------------------------------


def test_clean_rows_come_back_as_the_same_object() -> None:
    m = masker()
    data = row_description(column("id"), column("name")) + b.data_row(b"1", b"bob") + b.ready()
    out, counts = m.rewrite(data)
    assert out is data
    assert counts == Counter()


def test_detectors_mask_text_values_and_leave_the_rest_byte_identical() -> None:
    m = masker()
    m.rewrite(row_description(column("id"), column("mail"), column("note")))
    out, counts = m.rewrite(b.data_row(b"1", b"mail: " + EMAIL, None))
    assert parse_row(out) == [b"1", b"mail: <email>", None]
    assert counts == Counter({("email", "mail"): 1})


def test_several_detectors_in_one_value_are_all_counted() -> None:
    m = masker()
    m.rewrite(row_description(column("note")))
    out, counts = m.rewrite(b.data_row(EMAIL + b" paid with " + CARD))
    assert parse_row(out) == [b"<email> paid with ************1111"]
    assert counts == Counter({("email", "note"): 1, ("card", "note"): 1})


def test_undecodable_bytes_round_trip_around_a_masked_value() -> None:
    m = masker()
    m.rewrite(row_description(column("note")))
    out, _ = m.rewrite(b.data_row(b"\xff\xfe " + EMAIL + b" \xc3"))
    assert parse_row(out) == [b"\xff\xfe <email> \xc3"]


def test_column_rule_applies_by_name_and_counts_under_its_rule() -> None:
    m = masker(ssn=ColumnAction("hide-ssn", redact))
    m.rewrite(row_description(column("id", INT4), column("ssn")))
    out, counts = m.rewrite(b.data_row(b"7", b"123-45-6789") + b.data_row(b"8", None))
    rows = [parse_row(message(bytes([t]), body)) for t, body in split(out)]
    assert rows == [[b"7", b"***"], [b"8", None]]  # NULL stays NULL, the strategy is not asked
    assert counts == Counter({("hide-ssn", "ssn"): 1})


def test_column_rule_receives_table_and_attnum() -> None:
    seen: list[tuple[str, int, int]] = []

    def rule(name: str, table_oid: int, attnum: int) -> ColumnAction | None:
        seen.append((name, table_oid, attnum))
        return ColumnAction("t-3", null_strategy) if (table_oid, attnum) == (16400, 3) else None

    m = ResultMasker(FakeMasker(), rule)
    m.rewrite(row_description(column("a", table=16400, attnum=2),
                              column("b", table=16400, attnum=3)))
    assert seen == [("a", 16400, 2), ("b", 16400, 3)]
    out, counts = m.rewrite(b.data_row(b"x", b"secret"))
    assert parse_row(out) == [b"x", None]
    assert counts == Counter({("t-3", "b"): 1})


def test_a_rule_column_is_not_also_run_through_the_detectors() -> None:
    keep_domain = ColumnAction("domain-only", lambda v: "…@" + v.partition("@")[2])
    m = masker(mail=keep_domain)
    m.rewrite(row_description(column("mail")))
    out, counts = m.rewrite(b.data_row(EMAIL))
    assert parse_row(out) == ["…@example.com".encode()]
    assert counts == Counter({("domain-only", "mail"): 1})


# --- DataRow, binary format ------------------------------------------------------------------


def test_binary_text_values_are_masked_as_text() -> None:
    m = masker()
    m.rewrite(row_description(column("id", INT4, 1), column("mail", VARCHAR, 1)))
    out, counts = m.rewrite(b.data_row(struct.pack("!i", 64), EMAIL))
    assert parse_row(out) == [struct.pack("!i", 64), b"<email>"]
    assert counts == Counter({("email", "mail"): 1})


@pytest.mark.parametrize("strategy", [null_strategy, redact])
def test_rule_on_a_binary_int_column_sends_null(strategy: Callable[[str], str | None]) -> None:
    m = masker(salary=ColumnAction("hide-salary", strategy))
    m.rewrite(row_description(column("id", INT4, 1), column("salary", INT4, 1)))
    one = struct.pack("!i", 1)
    out, counts = m.rewrite(b.data_row(one, struct.pack("!i", 250_000)))
    assert parse_row(out) == [one, None]
    assert counts == Counter({("hide-salary", "salary"): 1})


def test_jsonb_binary_keeps_its_version_byte() -> None:
    m = masker()
    m.rewrite(row_description(column("doc", JSONB, 1)))
    out, counts = m.rewrite(b.data_row(b'\x01{"email": "' + EMAIL + b'"}'))
    assert parse_row(out) == [b'\x01{"email": "<email>"}']
    assert counts == Counter({("email", "doc"): 1})


@pytest.mark.parametrize(("result", "sent"), [("***", b'"***"'), ('{"hidden": true}', None)])
def test_a_rule_on_json_keeps_the_value_json(result: str, sent: bytes | None) -> None:
    sent = sent or result.encode()
    m = masker(doc=ColumnAction("hide-doc", lambda _: result))
    m.rewrite(row_description(column("doc", JSONB, 1), column("doc", JSONB, 0)))
    out, _ = m.rewrite(b.data_row(b'\x01{"a": 1}', b'{"a": 1}'))
    assert parse_row(out) == [b"\x01" + sent, sent]


def test_binary_values_of_other_types_are_decoded_and_masked() -> None:
    """Issue 14: a bytea keeps its masked bytes, a bigint holding a card number is NULL."""
    m = masker()
    m.rewrite(row_description(column("blob", BYTEA, 1), column("n", INT8, 1)))
    row = b.data_row(b"\x00" + EMAIL, struct.pack("!q", 4111111111111111))
    out, counts = m.rewrite(row)
    values = parse_row(out)
    assert values[0] is not None and values[0].startswith(b"\x00") and EMAIL not in values[0]
    assert values[1] is None
    assert sum(counts.values()) == 2
    assert m.uninspected == Counter()


def test_formats_of_a_prepared_statements_description_are_not_trusted() -> None:
    """Describe of a statement ('t' then 'T') reports text formats; Bind may ask for binary."""
    m = masker(salary=ColumnAction("hide-salary", redact), mail=ColumnAction("m", redact))
    param = message(b"t", struct.pack("!h", 0))
    m.rewrite(param + row_description(column("salary", INT4, 0), column("mail", TEXT, 0)))
    out, _ = m.rewrite(b.data_row(struct.pack("!i", 9), EMAIL))
    assert parse_row(out) == [None, b"***"]  # NULL is right in either format


def test_rows_without_a_description_get_the_detectors_and_are_reported() -> None:
    m = masker(ssn=ColumnAction("hide-ssn", redact))
    m.rewrite(row_description(column("ssn")) + b.command_complete("SELECT 0") + b.ready())
    out, counts = m.rewrite(b.data_row(b"123-45-6789", EMAIL) + b.data_row(b"x", b"y"))
    first, second = (message(bytes([t]), body) for t, body in split(out))
    assert parse_row(first) == [b"123-45-6789", b"<email>"]
    assert parse_row(second) == [b"x", b"y"]
    assert counts == Counter({("email", ""): 1})
    assert m.uninspected == Counter({UNDESCRIBED_ROW: 2})


def test_a_row_that_does_not_fit_the_description_is_treated_as_undescribed() -> None:
    m = masker(ssn=ColumnAction("hide-ssn", redact))
    m.rewrite(row_description(column("ssn")))
    out, _ = m.rewrite(b.data_row(b"a", EMAIL))
    assert parse_row(out) == [b"a", b"<email>"]
    assert m.uninspected == Counter({UNDESCRIBED_ROW: 1})


def test_description_lasts_across_portal_suspended_but_not_past_command_complete() -> None:
    m = masker(ssn=ColumnAction("hide-ssn", redact))
    suspended = message(b"s")
    out, _ = m.rewrite(row_description(column("ssn")) + b.data_row(b"1") + suspended
                       + b.data_row(b"2") + b.command_complete("SELECT 2") + b.data_row(b"3"))
    rows = [parse_row(message(bytes([t]), body)) for t, body in split(out) if t == ord("D")]
    assert rows == [[b"***"], [b"***"], [b"3"]]


# --- buffers of several messages -------------------------------------------------------------


def test_a_whole_result_in_one_buffer() -> None:
    m = masker(ssn=ColumnAction("hide-ssn", null_strategy))
    data = (
        row_description(column("id", INT4), column("mail"), column("ssn"))
        + b.data_row(b"1", EMAIL, b"123")
        + b.data_row(b"2", b"bob", None)
        + b.data_row(b"3", None, b"456")
        + b.command_complete("SELECT 3")
        + b.ready()
    )
    out, counts = m.rewrite(data)
    msgs = split(out)
    assert [chr(t) for t, _ in msgs] == list("TDDDCZ")
    assert [parse_row(message(b"D", body)) for t, body in msgs if t == ord("D")] == [
        [b"1", b"<email>", None], [b"2", b"bob", None], [b"3", None, None]]
    assert (msgs[0], msgs[-2:]) == (split(data)[0], split(data)[-2:])
    assert counts == Counter({("email", "mail"): 1, ("hide-ssn", "ssn"): 2})


def test_other_messages_pass_unchanged() -> None:
    m = masker()
    data = (codec.parameter_status("application_name", "a@b.c") + b.PARSE_COMPLETE
            + b.BIND_COMPLETE + b.ready())
    assert m.rewrite(data) == (data, Counter())


def test_incomplete_input_is_refused() -> None:
    m = masker()
    with pytest.raises(ProtocolViolation):
        m.rewrite(b.data_row(b"abc")[:-1])


def test_malformed_data_row_is_a_protocol_violation() -> None:
    m = masker()
    m.rewrite(row_description(column("a")))
    with pytest.raises(ProtocolViolation):
        m.rewrite(message(b"D", struct.pack("!hi", 1, 50) + EMAIL))


# --- COPY TO STDOUT --------------------------------------------------------------------------


def test_copy_out_text_rows_are_masked_and_keep_their_newline() -> None:
    m = masker()
    data = (copy_out_response(0) + b.copy_data(b"1\t" + EMAIL + b"\n")
            + b.copy_data(b"2\tbob\n") + b.COPY_DONE + b.command_complete("COPY 2") + b.ready())
    out, counts = m.rewrite(data)
    copied = [body for t, body in split(out) if t == ord("d")]
    assert copied == [b"1\t<email>\n", b"2\tbob\n"]
    assert counts == Counter({("email", ""): 1})


def test_copy_data_after_copy_done_is_not_copy_out() -> None:
    m = masker()
    m.rewrite(copy_out_response(0) + b.COPY_DONE)
    row = b.copy_data(EMAIL + b"\n")
    assert m.rewrite(row) == (row, Counter())


def test_binary_copy_out_is_refused_with_an_error_instead_of_its_data() -> None:
    m = masker()
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
    # a card number cast to bigint: eight bytes that no detector reads
    tuple_ = struct.pack("!h", 1) + struct.pack("!i", 8) + struct.pack("!q", 5555555555554444)
    trailer = struct.pack("!h", -1)
    data = (copy_out_response(1) + b.copy_data(header + tuple_[:7]) + b.copy_data(tuple_[7:])
            + b.copy_data(trailer) + b.COPY_DONE + b.command_complete("COPY 1") + b.ready())
    out, counts = m.rewrite(data)
    messages = split(out)
    assert [tag for tag, _ in messages] == [ord("E"), ord("Z")]
    fields = error_fields(messages[0][1])
    assert fields["C"] == "0A000" and "FORMAT text or csv" in fields["M"]
    assert counts == Counter({("binary-copy-refused", ""): 1})
    assert m.ended and list(m.ended) == [Counter({("binary-copy-refused", ""): 1})]
    # the next result is masked as usual
    text = m.rewrite(copy_out_response(0) + b.copy_data(EMAIL + b"\n") + b.COPY_DONE)[0]
    assert EMAIL not in text and ord("d") in [tag for tag, _ in split(text)]


# --- NoticeResponse and ErrorResponse --------------------------------------------------------


def test_error_fields_are_masked() -> None:
    m = masker()
    error = codec.error_response(
        'invalid input syntax for type integer: "alice@example.com"', "22P02",
        detail=f"Key (card)=({CARD.decode()}) already exists.", hint="ask bob@example.org")
    out, counts = m.rewrite(error + b.ready())
    [(tag, body), _] = split(out)
    assert tag == ord("E")
    fields = error_fields(body)
    assert fields["M"] == 'invalid input syntax for type integer: "<email>"'
    assert fields["D"] == "Key (card)=(************1111) already exists."
    assert fields["H"] == "ask <email>"
    assert (fields["S"], fields["C"]) == ("ERROR", "22P02")
    assert counts == Counter({("email", ""): 2, ("card", ""): 1})


def test_notice_fields_are_masked_and_other_fields_kept() -> None:
    m = masker()
    body = b"SNOTICE\x00C00000\x00Mfor alice@example.com\x00Wline 3 at x@y.z\x00Fa@b.c\x00\x00"
    out, _ = m.rewrite(message(b"N", body))
    fields = error_fields(split(out)[0][1])
    assert (fields["M"], fields["W"], fields["F"]) == ("for <email>", "line 3 at <email>",
                                                      "a@b.c")


def test_clean_error_passes_as_is() -> None:
    m = masker()
    error = codec.error_response('relation "t" does not exist', "42P01")
    out, _ = m.rewrite(error)
    assert out is error


# --- property: rebuilt rows stay valid -------------------------------------------------------

VALUES = st.one_of(
    st.none(),
    st.binary(max_size=24),
    st.sampled_from([EMAIL, CARD, b"x " + EMAIL + b" y", b"\x01" + EMAIL, b"12345678901234567"]),
    st.text(max_size=12).map(str.encode),
)
# A column: its value, type, format, and whether a column rule (redact to "***") covers it.
COLUMNS = st.tuples(VALUES, st.sampled_from([TEXT, INT4, BYTEA, JSONB]), st.sampled_from([0, 1]),
                    st.booleans())


def _fake(value: bytes) -> bytes:
    return FakeMasker().mask(value.decode("utf-8", "surrogateescape"))[0].encode(
        "utf-8", "surrogateescape")


def expected(value: bytes | None, type_oid: int, fmt: int, ruled: bool) -> bytes | None:
    if value is None:
        return value
    if ruled and type_oid == INT4:  # a rule on a type that takes no text: NULL
        return None
    if type_oid == BYTEA:  # any bytes: the masked text, hex-encoded in text format
        if ruled:
            return b"\\x" + b"***".hex().encode() if fmt == 0 else b"***"
        if fmt == 1:
            return _fake(value)
        if value.startswith(b"\\x"):
            try:
                data = bytes.fromhex(value[2:].decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                data = None
            if data is not None:
                masked = _fake(data)
                return value if masked == data else b"\\x" + masked.hex().encode()
        return value if _fake(value) == value else None
    if type_oid == INT4:  # a number (or bytes that are not one) with a finding: NULL
        shown: bytes = (str(struct.unpack("!i", value)[0]).encode()
                        if fmt == 1 and len(value) == 4 else value)
        return value if _fake(shown) == shown else None
    prefix = b""
    if type_oid == JSONB and value[:1] == b"\x01":
        prefix, value = value[:1], value[1:]
    if ruled:
        return prefix + (b'"***"' if type_oid == JSONB else b"***")
    masked = _fake(value)
    if type_oid == JSONB and masked != value and _json(value) and not _json(masked):
        masked = json.dumps(masked.decode("utf-8", "surrogateescape")).encode(
            "utf-8", "surrogateescape")  # a masked number is no JSON: a JSON string
    return prefix + masked


def _json(value: bytes) -> bool:
    try:
        json.loads(value.decode("utf-8", "surrogateescape"))
    except ValueError:
        return False
    return True


@FUZZ
@given(st.lists(COLUMNS, max_size=8))
def test_rewritten_rows_reparse_and_untouched_values_are_identical(
    cols: Sequence[tuple[bytes | None, int, int, bool]],
) -> None:
    ruled = {f"c{i}": ColumnAction("r", redact) for i, c in enumerate(cols) if c[3]}
    m = masker(**ruled)
    m.rewrite(row_description(*(column(f"c{i}", c[1], c[2]) for i, c in enumerate(cols))))
    row = b.data_row(*(c[0] for c in cols))
    out, counts = m.rewrite(row + b.command_complete("SELECT 1"))
    msgs = split(out)
    assert [t for t, _ in msgs] == [ord("D"), ord("C")]
    values = parse_row(message(b"D", msgs[0][1]))
    assert len(values) == len(cols)
    for got, col in zip(values, cols, strict=True):
        assert got == expected(*col)
    if not counts:
        assert out == row + b.command_complete("SELECT 1")


# --- tables the caller must look up first, and counts per result -----------------------------


def test_a_description_of_an_unknown_table_stops_the_rewrite_before_it() -> None:
    known = {16400}
    m = ResultMasker(FakeMasker(), rules(), known.__contains__)
    first = (row_description(column("id", INT4, table=16400, attnum=1))
             + b.data_row(b"1") + b.command_complete("SELECT 1"))
    second = row_description(column("mail", table=16500, attnum=2)) + b.data_row(EMAIL)
    data = first + second + b.command_complete("SELECT 1") + b.ready()
    out, _ = m.rewrite(data)
    assert out == first  # delivered; the rest waits for the lookup
    assert m.missing == frozenset({16500}) and m.stopped_at == len(first)
    known.add(16500)
    out, counts = m.rewrite(data[m.stopped_at:])
    assert m.missing == frozenset() and m.stopped_at is None
    rows = [parse_row(message(b"D", body)) for tag, body in split(out) if tag == ord("D")]
    assert rows == [[b"<email>"]]
    assert counts == Counter({("email", "mail"): 1})


def test_computed_columns_and_known_tables_never_stop_the_rewrite() -> None:
    m = ResultMasker(FakeMasker(), rules(), lambda oid: False)
    data = row_description(column("x")) + b.data_row(b"1") + b.ready()
    out, _ = m.rewrite(data)
    assert out is data and m.stopped_at is None


def test_each_ended_result_carries_its_own_counts_across_buffers() -> None:
    m = masker()
    m.rewrite(row_description(column("mail")) + b.data_row(EMAIL))  # the result goes on...
    assert list(m.ended) == []
    m.rewrite(b.data_row(EMAIL) + b.command_complete("SELECT 2")
              + row_description(column("note")) + b.data_row(b"clean")
              + b.command_complete("SELECT 1")
              + b.error("22P02", "bad value " + CARD.decode()) + b.ready())
    assert list(m.ended) == [Counter({("email", "mail"): 2}), Counter(),
                             Counter({("card", ""): 1})]


# --- one search per row gives what a screen per value gives ------------------------------------

_PIECES = st.sampled_from([
    "alice@example.com", "4111111111111111", "4111 1111 1111 1111", "DE89370400440532013000",
    "900-12-3456", "+1 555 123 4567", "(555) 123-4567", "AKIAIOSFODNN7EXAMPLE",
    "password=hunter2", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "2026-01-01 00:00:00+00",
    "12345", "0", "-", "+", "=", ":", " ", "ab", "DE", "89", "\n", "é",
])
_VALUES = st.one_of(st.none(), st.lists(_PIECES, max_size=4).map("".join).map(str.encode),
                    st.binary(max_size=40))


@FUZZ
@given(st.lists(_VALUES, min_size=1, max_size=9))
def test_the_row_search_masks_exactly_what_value_screens_mask(
        values: list[bytes | None]) -> None:
    # Lengths whose bytes are digits, '+', '=' or ':' sit right before values: a search over
    # the whole row must not miss (nor invent) what a value alone holds.
    from engine.masking.masker import ValueMasker

    fast = ValueMasker(key=b"k" * 32)
    assert fast.screen_pattern is not None
    slow = ValueMasker(key=b"k" * 32)
    slow.screen_pattern = None
    description = row_description(*(column(f"c{i}") for i in range(len(values))))
    data = description + b.data_row(*values) + b.command_complete("SELECT 1")
    assert ResultMasker(fast).rewrite(data) == ResultMasker(slow).rewrite(data)


def test_a_notification_payload_is_masked_and_its_channel_kept() -> None:
    body = struct.pack("!i", 4242) + cstr("orders") + cstr("paid by " + EMAIL.decode())
    out, counts = masker().rewrite(message(b"A", body) + b.ready())
    [(tag, got), _] = split(out)
    assert tag == ord("A") and got == struct.pack("!i", 4242) + cstr("orders") + cstr(
        "paid by <email>")
    assert counts == Counter({("email", ""): 1})
    with pytest.raises(ProtocolViolation):
        masker().rewrite(message(b"A", struct.pack("!i", 1) + b"chan\x00" + EMAIL))


def test_the_gateways_own_describe_is_used_for_rows_and_never_reaches_the_client() -> None:
    from engine.pg.relay import GATEWAY_NO_DATA, GATEWAY_ROW_DESCRIPTION

    m = masker(secret=ColumnAction("hide", redact))
    m.describes_portals = True
    ours = GATEWAY_ROW_DESCRIPTION + row_description(column("secret"))[1:]
    client_asked = row_description(column("secret"))
    data = (b.PARSE_COMPLETE + b.BIND_COMPLETE + ours + b.data_row(b"x")
            + b.command_complete("SELECT 1")
            + b.BIND_COMPLETE + GATEWAY_NO_DATA + b.NO_DATA[1:] + b.command_complete("INSERT 0 1")
            + b.BIND_COMPLETE + client_asked + ours + b.data_row(b"y")
            + b.command_complete("SELECT 1") + b.ready())
    out, counts = m.rewrite(data)
    assert [chr(t) for t, _ in split(out)] == list("12DC2C2TDCZ")
    assert counts == Counter({("hide", "secret"): 2})


def test_with_portal_describes_a_row_without_a_description_fails_closed() -> None:
    # A suspended portal executed again after Sync; had the gateway's Describe been lost, its
    # rows would come with no description: no column rule could apply, so nothing is shown.
    m = masker(secret=ColumnAction("hide", redact))
    m.describes_portals = True
    out, counts = m.rewrite(b.data_row(b"907-01-1013", None, b"x") + b.ready())
    [(tag, body), _] = split(out)
    assert tag == ord("D") and parse_row(message(b"D", body)) == [None] * 3
    assert counts == Counter({("undescribed-row", ""): 3})
