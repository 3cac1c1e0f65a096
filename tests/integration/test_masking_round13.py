"""Outside attack round 13 through the PostgreSQL gateway: values of 1 Mi characters or more.
A card in a long text came back in clear at the 16 KiB piece boundaries (finding 2), and a
value not masked within the budget came back cut short with ``****`` (finding 3): now masked as
it is whole, and a value over its budget refuses its result with an error (SQLSTATE 54000)
while the session goes on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from engine.config import load_config
from tests.conftest import Gateway, Target, run_engine, stop_gateway, write_policy

pytestmark = pytest.mark.integration

BODY = "customer paid with 4012 8888 8888 1881, contact jane.roe@corp.example.org; "
CARD = re.compile(r"\d{4} \d{4} \d{4} \d{4}")


def test_a_long_value_keeps_no_card_in_clear(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        row = conn.execute("SELECT repeat(%s, 20000)", (BODY,)).fetchone()
        one = conn.execute("SELECT %s::text", (BODY,)).fetchone()
    assert row is not None and one is not None
    value: str = row[0]
    assert CARD.search(value) is None and "jane.roe" not in value
    assert "1881" in one[0] and value == one[0] * 20000  # as each copy is masked alone


@pytest.fixture
def tight(pg_target: Target, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway whose budget for masking one value is one millisecond."""
    path = write_policy(pg_target, tmp_path)
    text = path.read_text()
    path.write_text(text.replace("  max_message_size:", "  masking_value_budget: 1ms\n"
                                 "  max_message_size:", 1))
    engine, loop, thread = run_engine(load_config(path))
    gw = Gateway(engine, loop, thread, tmp_path, pg_target)
    try:
        yield gw
    finally:
        stop_gateway(gw)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_a_value_over_its_budget_is_refused_with_an_error(tight: Gateway, binary: bool) -> None:
    with psycopg.connect(tight.dsn("shop_masked"), autocommit=True) as conn:
        cur = conn.cursor(binary=binary)
        with pytest.raises(psycopg.errors.ProgramLimitExceeded) as raised:
            cur.execute("SELECT repeat('4111 1111 1111 1111 x ', 100000)")
        assert "could not be masked" in str(raised.value)
        # bytea (any attachment): refused too, never cut short or corrupted
        with pytest.raises(psycopg.errors.ProgramLimitExceeded):
            cur.execute("SELECT convert_to(repeat('4111 1111 1111 1111 x ', 100000), 'UTF8')")
        # the session goes on; a long value with nothing to mask comes back whole
        assert cur.execute("SELECT 1").fetchone() == (1,)
        row = cur.execute("SELECT repeat('x', 3000000)").fetchone()
        assert row is not None and row[0] == "x" * 3000000
