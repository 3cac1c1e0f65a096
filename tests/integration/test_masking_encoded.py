"""Issue 14 through the real gateway: detected values inside base64, hex and URL encodings are
masked in results, and a statement's recorded error text is masked as the client's was.
Checked against the values seeded on the target."""

from __future__ import annotations

import base64
import urllib.parse

import psycopg
import pytest

from store import SqliteStore
from tests.conftest import Gateway

pytestmark = pytest.mark.integration

ENCODED = [
    "select encode(email::bytea, 'base64') from customers order by id limit 5",
    "select encode(email::bytea, 'hex') from customers order by id limit 5",
    "select upper(encode(email::bytea, 'hex')) from customers order by id limit 5",
    "select encode(card_number::bytea, 'base64') from customers order by id limit 5",
    "select encode(card_number::bytea, 'hex') from customers order by id limit 5",
    "select encode(convert_to(email || ' pays ' || card_number, 'UTF8'), 'base64')"
    " from customers order by id limit 5",
    "select encode(encode(email::bytea, 'base64')::bytea, 'base64') from customers"
    " order by id limit 5",
    "select 'note: ' || encode(email::bytea, 'base64') || ' end' from customers order by id"
    " limit 5",
    "select replace(replace(email, '@', '%40'), '.', '%2E') from customers order by id limit 5",
    "select json_build_object('e', encode(email::bytea, 'base64'))::text from customers"
    " order by id limit 5",
    "select string_agg(encode(email::bytea, 'base64'), E'\\n') from customers",
    "select encode(email::bytea, 'base64')::bytea from customers order by id limit 5",
]


def seeded(gateway: Gateway) -> list[str]:
    with psycopg.connect(gateway.target.direct()) as direct:
        rows = direct.execute("select email, card_number from customers order by id").fetchall()
    return [v for row in rows for v in row if v]


def leaked(values: list[str], text: str) -> list[str]:
    """Seeded values that appear in ``text`` in clear, base64, hex or URL-encoded."""
    found = []
    for v in values:
        raw = v.encode()
        forms = {v, base64.b64encode(raw).decode()[:16], raw.hex()[:16], raw.hex().upper()[:16],
                 urllib.parse.quote(v), base64.b64encode(base64.b64encode(raw)).decode()[:16]}
        if any(f in text for f in forms):
            found.append(v)
    return found


@pytest.mark.parametrize("sql", ENCODED, ids=[s[7:45] for s in ENCODED])
def test_encoded_values_are_masked(gateway: Gateway, sql: str) -> None:
    values = seeded(gateway)
    with psycopg.connect(gateway.target.direct()) as direct:
        rows = direct.execute(sql).fetchall()
    assert leaked(values, str(rows)) or "%40" in str(rows), "the query shows seeded values"
    for binary in (False, True):
        with psycopg.connect(gateway.dsn("shop_masked")) as conn:
            rows = conn.cursor(binary=binary).execute(sql).fetchall()
        assert rows and not leaked(values, str(rows)), (binary, rows)
        assert "%40" not in str(rows)


def test_values_that_encode_nothing_pass(gateway: Gateway) -> None:
    sql = ("select encode('just some ordinary words'::bytea, 'base64'),"
           " encode('no secrets here at all'::bytea, 'hex'), md5('x'), 'a%20b%2Fc'")
    with psycopg.connect(gateway.dsn("shop_masked")) as conn, \
            psycopg.connect(gateway.target.direct()) as direct:
        assert conn.execute(sql).fetchall() == direct.execute(sql).fetchall()


def test_the_recorded_error_text_is_masked_as_the_client_saw_it(gateway: Gateway) -> None:
    values = seeded(gateway)
    with psycopg.connect(gateway.target.direct()) as direct:
        national = [r[0] for r in direct.execute(
            "select national_id from customers order by id").fetchall()]
    card = "4111111111111111"
    statements = [
        "select national_id::int from customers order by id limit 1",  # hidden: masked column
        "select email::int from customers order by id limit 1",  # quotes a detected value
        f"select '{card}'::int",
        "select encode(email::bytea, 'base64')::int from customers order by id limit 1",
    ]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        for sql in statements:
            with pytest.raises(psycopg.Error):
                conn.execute(sql)
        conn.execute("select 1")
    sessions = gateway.wait_for(lambda store: [s for s in store.sessions()
                                               if s.get("connection") == "shop_masked"])

    def errors(store: SqliteStore) -> list[str]:
        found: list[str] = []
        for s in sessions:
            found += [st["error"] for st in store.statements(s["id"]) if st.get("error")]
        return found if len(found) >= len(statements) else []

    recorded = gateway.wait_for(errors)
    text = "\n".join(recorded)
    assert "invalid input syntax" in text
    assert not leaked(values, text) and card not in text, recorded
    assert not any(n in text for n in national), recorded
