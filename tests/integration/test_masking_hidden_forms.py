"""Issue 14, re-attack through the real gateway and PostgreSQL: values written in forms that hid
them from the detectors — a card as a negative or decorated number (bigint, numeric, float8,
a JSON number), a value behind JSON string escapes (json and text columns), and statement
literals the server decodes (U&'' with UESCAPE, strings continued across comments, bit strings
and hex literals read as integers) — reach neither the client (text and binary results, JSON
parsed by psycopg) nor the store (the statements' recorded texts). Checked against the values
seeded on the target, with decoders of the test's own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
import pytest

from tests.conftest import Gateway, Target, start_gateway, stop_gateway

pytestmark = pytest.mark.integration

CARD = "4111111111111111"


@pytest.fixture(scope="module")
def masked(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(pg_target, tmp_path_factory.mktemp("hidden14"))
    try:
        yield gw
    finally:
        stop_gateway(gw)


def seeded(gateway: Gateway) -> tuple[list[str], list[str]]:
    with psycopg.connect(gateway.target.direct()) as direct:
        rows = direct.execute("select card_number, email from customers order by id").fetchall()
    return sorted({r[0] for r in rows}), sorted({r[1] for r in rows})


_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_NUMBER = re.compile(r"[0-9][0-9_.]*(?:[eE][+-]?[0-9]+)?")


def decoded(text: str) -> str:
    """``text`` with JSON string escapes undone (an independent reading of them)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1)[1:], 16)) if len(m.group(1)) == 5
                       else {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


def leaked(cards: list[str], emails: list[str], shown: Any) -> list[str]:
    """Seeded values in what a client got: as text, JSON-decoded, or as a number's value."""
    text = shown if isinstance(shown, str) else repr(shown)
    readings = [text, decoded(text), decoded(decoded(text)),
                json.dumps(shown, default=str, ensure_ascii=False)]
    found = [v for v in cards + emails if any(v in r for r in readings)]
    for reading in readings:
        for m in _NUMBER.finditer(reading):
            try:
                number = Decimal(m.group().replace("_", ""))
                value = str(int(number)) if number.is_finite() and number.adjusted() < 25 else ""
            except (InvalidOperation, ValueError):
                continue
            found += [c for c in cards if value in (c, c.lstrip("0"))]
    return found


def _digits_escaped(column: str, digits: str = "0-9") -> str:
    """SQL writing the ``digits`` of ``column`` as JSON \\u escapes, the others as they are."""
    return f"regexp_replace({column}, '([{digits}])', '\\u003\\1', 'g')"


RESULTS = [
    # numeric forms of a card: signed, zero-padded, decimal, scientific notation, JSON numbers
    "select -card_number::bigint from customers order by id limit 6",
    "select (-card_number::numeric)::text from customers order by id limit 6",
    "select -card_number::numeric(30, 2) from customers order by id limit 6",
    "select -card_number::float8 from customers order by id limit 6",
    "select (-card_number::float8)::text from customers order by id limit 6",
    "select lpad(card_number, 25, '0') from customers order by id limit 6",
    "select '+' || card_number || '.000' from customers order by id limit 6",
    "select (card_number::numeric / 1e15)::text || 'E+15' from customers order by id limit 6",
    "select json_build_object('n', -card_number::bigint) from customers order by id limit 6",
    "select ('{\"n\": [1, -' || card_number || '.0]}')::jsonb from customers order by id limit 6",
    "select ('{\"n\": -' || card_number || '}') from customers order by id limit 6",
    # values behind JSON string escapes: json (kept as written) and text columns
    f"select ('{{\"c\": \"' || {_digits_escaped('card_number')} || '\"}}')::json"
    " from customers order by id limit 6",
    f"select '{{\"c\": \"' || {_digits_escaped('card_number', '0-4')} || '\"}}'"
    " from customers order by id limit 6",
    "select ('\"' || replace(email, '@', '\\u0040') || '\"')::json from customers"
    " order by id limit 6",
    "select ('{\"e\": \"' || replace(replace(email, '@', '\\u0040'), '.', '\\u002E') || '\"}')"
    " from customers order by id limit 6",
    "select ('{\"c\": \"paid\\n' || card_number || '\"}')::json from customers"
    " order by id limit 6",
]


@pytest.mark.parametrize("sql", RESULTS, ids=[s[7:50] for s in RESULTS])
def test_hidden_forms_do_not_reach_the_client(masked: Gateway, sql: str) -> None:
    cards, emails = seeded(masked)
    with psycopg.connect(masked.target.direct()) as direct:
        rows = direct.execute(sql).fetchall()
    assert leaked(cards, emails, rows), "the query shows seeded values"
    for binary in (False, True):
        with psycopg.connect(masked.dsn("shop_masked"), autocommit=True) as conn:
            rows = conn.cursor(binary=binary).execute(sql).fetchall()  # json parsed: must not raise
        assert len(rows) == 6 and not leaked(cards, emails, rows), (binary, rows)


def _unicode(value: str, escape: str) -> str:
    return "".join(f"{escape}{ord(c):04x}" for c in value)


C = int(CARD)
STATEMENTS = [
    f"select U&'{_unicode(CARD, '!')}' UESCAPE '!' as a",
    f"select U&'{_unicode(CARD[:8], '#')}{CARD[8:]}' uescape '#' as b",
    f"select 1 as U&\"{_unicode(CARD, '!')}\" UESCAPE '!'",
    f"select '{CARD[:4]}' -- the rest follows\n '{CARD[4:]}' as c",
    f"select E'{CARD[:2]}\\x31' -- c\n\t-- d\n '{CARD[3:]}' as d",
    f"select x'{C:016X}'::bigint as e",
    f"select x'{(-C) % (1 << 64):016x}'::bigint as f",
    f"select b'{C:064b}'::bigint as g",
    f"select convert_from('\\x{CARD.encode().hex()}'::bytea, 'UTF8') as h",
    f"select $t${CARD}$t$ as i, $${CARD}$$ as j",
    f"select -{CARD} as k, {CARD[:1]}.{CARD[1:]}e15 as l",
]


def test_hidden_literals_are_recorded_masked(masked: Gateway) -> None:
    cards, emails = seeded(masked)
    marker = "hidden-literals-probe"
    with psycopg.connect(masked.dsn("shop_masked"), autocommit=True,
                         application_name=marker) as conn:
        for sql in STATEMENTS:
            row = conn.execute(sql).fetchone()  # each one runs: it is the server's reading
            assert row is not None and not leaked(cards, emails, row), (sql, row)
    [session] = masked.wait_for(lambda s: [r for r in s.sessions()
                                           if r["application_name"] == marker
                                           and r.get("ended_at")])

    def texts(store: Any) -> list[str]:
        found = [st["text"] for st in store.statements(session["id"]) if st.get("text")]
        return found if len(found) >= len(STATEMENTS) else []

    recorded = masked.wait_for(texts)
    for text in recorded:
        assert not leaked([CARD], [], text), text
        for hidden in (_unicode(CARD, "!"), _unicode(CARD[:8], "#"), f"{C:016X}",
                       f"{(-C) % (1 << 64):016x}", f"{C:064b}", CARD.encode().hex(),
                       CARD[4:], CARD[3:]):
            assert hidden not in text, text
