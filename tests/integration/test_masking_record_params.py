"""Parameters in binary format are recorded as what they hold, masked (outside attack on issue
14, the record): psycopg's binary parameters came into ``statements.params`` as hex."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CARD = 4012888888881881


def test_binary_parameters_are_masked_in_the_record(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked", application_name="binparams"),
                         autocommit=True) as conn:
        conn.execute("SELECT %b::text, %b::int8", [str(CARD), CARD])
    params = gateway.wait_for(lambda s: [r[0] for r in s.conn.execute(
        "SELECT params FROM statements WHERE params IS NOT NULL").fetchall()
        if "binary" in str(r[0]) or "'" in str(r[0])])
    assert params and not [p for p in params if str(CARD) in str(p)], params
    assert not [p for p in params if CARD.to_bytes(8, "big").hex() in str(p)]
