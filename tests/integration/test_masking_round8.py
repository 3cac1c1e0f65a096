"""Issue 14, the eighth outside attack: COPY TO STDOUT lines were read with the default CSV
quote and without a field count, whatever the statement's QUOTE, ESCAPE, DELIMITER or NULL, so
a masked column's value landed in another field and was sent; and a value kept in a sequence
came back through COPY FROM or ALTER TABLE … ADD COLUMN … DEFAULT nextval()."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import start_guarded

pytestmark = pytest.mark.integration

SELECT = "(select full_name, email, card_number, national_id from customers order by id)"


@pytest.fixture(scope="module")
def gateway(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("masked14r8"))
    try:
        yield gw
    finally:
        stop_gateway(gw)


def secrets(gateway: Gateway) -> list[str]:
    """Every email, card number and national id of the customers, as the table holds them."""
    with psycopg.connect(gateway.target.superuser(), dbname="shop") as admin:
        rows = admin.execute("SELECT email, card_number, national_id FROM customers").fetchall()
    return [str(v) for row in rows for v in row if v]


@pytest.mark.parametrize("options", [
    "WITH (FORMAT csv, DELIMITER 'r', QUOTE '|')",
    "WITH (FORMAT csv, DELIMITER '1', QUOTE '|')",
    "WITH (FORMAT csv, DELIMITER '4', QUOTE '1', ESCAPE '|')",
    "WITH (FORMAT csv, QUOTE '@', ESCAPE '\\', FORCE_QUOTE *)",
    "WITH (FORMAT csv, HEADER, DELIMITER ';', NULL 'nil')",
    "CSV DELIMITER 'r' QUOTE '|'",
    "WITH (FORMAT text, DELIMITER '|', NULL 'x')",
    "WITH (FORMAT text, DELIMITER ',')",
    "WITH (FORMAT text, DELIMITER '@')",
])
def test_copy_lines_are_read_with_the_statements_own_options(
        gateway: Gateway, options: str) -> None:
    values = secrets(gateway)
    with psycopg.connect(gateway.target.superuser(), dbname="shop") as admin:
        count = admin.execute("SELECT count(*) FROM customers").fetchone()[0]  # type: ignore[index]
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        with conn.cursor().copy(f"COPY {SELECT} TO STDOUT {options}") as copy:
            data = b"".join(bytes(chunk) for chunk in copy).decode()
    assert data.count("\n") == count + ("HEADER" in options)
    assert not [v for v in values if v in data], data[:400]


def test_a_copy_whose_lines_cannot_be_split_is_refused(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            with conn.cursor().copy(f"COPY {SELECT} TO STDOUT WITH (FORMAT csv, ENCODING 'SJIS')"
                                    ) as copy:
                b"".join(bytes(chunk) for chunk in copy)
        # the session goes on, and a plain COPY still reads what it may
        with conn.cursor().copy("COPY (select full_name from customers order by id limit 2) "
                                "TO STDOUT WITH (FORMAT csv, DELIMITER 'r', QUOTE '|')") as copy:
            data = b"".join(bytes(chunk) for chunk in copy).decode()
    with psycopg.connect(gateway.target.superuser(), dbname="shop") as admin:
        names = [r[0] for r in admin.execute(
            "SELECT full_name FROM customers ORDER BY id LIMIT 2")]
    assert [line.strip("|") for line in data.splitlines()] == names


CAST_OBJECTS = (
    "CREATE TYPE gw14r8_ty AS ENUM ('x')",
    "CREATE TABLE gw14r8_kept (v text)",
    "CREATE FUNCTION gw14r8_cf(text) RETURNS gw14r8_ty LANGUAGE sql AS"
    " $$ INSERT INTO gw14r8_kept VALUES ($1); SELECT 'x'::gw14r8_ty $$",
    "CREATE CAST (text AS gw14r8_ty) WITH FUNCTION gw14r8_cf(text) AS ASSIGNMENT",
    "CREATE TABLE gw14r8_tyt (t gw14r8_ty)",
    "CREATE TABLE gw14r8_arr (t gw14r8_ty[])",
    "CREATE TABLE gw14r8_held (t gw14r8_ty, raw text)",
    "CREATE TABLE gw14r8_kept2 (v text)",
    "CREATE FUNCTION gw14r8_out(gw14r8_ty) RETURNS text LANGUAGE sql AS"
    " $$ INSERT INTO gw14r8_kept2 SELECT raw FROM gw14r8_held; SELECT 'y' $$",
    "CREATE CAST (gw14r8_ty AS text) WITH FUNCTION gw14r8_out(gw14r8_ty) AS ASSIGNMENT",
    "CREATE TABLE gw14r8_plain (v text)",
    "GRANT ALL ON gw14r8_kept, gw14r8_kept2, gw14r8_tyt, gw14r8_arr, gw14r8_held, gw14r8_plain"
    " TO PUBLIC",
)
CAST_DROP = ("DROP TABLE IF EXISTS gw14r8_kept, gw14r8_tyt, gw14r8_arr, gw14r8_held,"
             " gw14r8_plain, gw14r8_kept2;"
             " DROP TYPE IF EXISTS gw14r8_ty CASCADE;"
             " DROP FUNCTION IF EXISTS gw14r8_cf(text), gw14r8_out(gw14r8_ty) CASCADE")


@pytest.fixture
def user_cast(gateway: Gateway) -> Iterator[None]:
    with psycopg.connect(gateway.target.superuser(), dbname="shop", autocommit=True) as admin:
        admin.execute(CAST_DROP)
        for sql in CAST_OBJECTS:
            admin.execute(sql)
    try:
        yield
    finally:
        with psycopg.connect(gateway.target.superuser(), dbname="shop",
                             autocommit=True) as admin:
            admin.execute(CAST_DROP)


@pytest.mark.parametrize("write", [
    "INSERT INTO gw14r8_tyt SELECT national_id FROM customers ORDER BY id LIMIT 3",
    "INSERT INTO gw14r8_tyt (t) SELECT national_id FROM customers WHERE id = 2",
    "WITH c AS (SELECT national_id FROM customers LIMIT 2) INSERT INTO gw14r8_tyt SELECT * FROM c",
    "INSERT INTO gw14r8_arr SELECT ARRAY[national_id] FROM customers LIMIT 2",
])
def test_a_users_assignment_cast_is_followed_into_what_it_writes(
        gateway: Gateway, user_cast: None, write: str) -> None:
    values = secrets(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(write)
        rows = conn.execute("SELECT v FROM gw14r8_kept").fetchall()
    with psycopg.connect(gateway.target.superuser(), dbname="shop") as admin:
        direct = str(admin.execute("SELECT v FROM gw14r8_kept").fetchall())
    assert [v for v in values if v in direct], "the cast kept no national id"
    assert rows and not [v for v in values if v in str(rows)], rows


def test_a_users_assignment_cast_out_of_a_type_is_followed(
        gateway: Gateway, user_cast: None) -> None:
    """A row holding a masked value beside a value of a user's type: an assignment cast out of
    the type, run on the read, copies the row's masked value elsewhere."""
    values = secrets(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute("INSERT INTO gw14r8_held (raw) SELECT national_id FROM customers"
                     " WHERE id = 2")
    with psycopg.connect(gateway.target.superuser(), dbname="shop", autocommit=True) as admin:
        admin.execute("UPDATE gw14r8_held SET t = 'x'")  # (not through the gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute("INSERT INTO gw14r8_plain SELECT t FROM gw14r8_held")
        rows = conn.execute("SELECT v FROM gw14r8_kept2").fetchall()
    with psycopg.connect(gateway.target.superuser(), dbname="shop") as admin:
        direct = str(admin.execute("SELECT v FROM gw14r8_kept2").fetchall())
    assert [v for v in values if v in direct], "the cast kept no national id"
    assert rows and not [v for v in values if v in str(rows)], rows
