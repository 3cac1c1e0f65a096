"""Effects other sessions observe (``Lineage.effects``) and the refusal of a statement that
computes them from a masked value (``engine.masking.effects``; attack round 11)."""

from __future__ import annotations

import pytest

from engine.masking.effects import EffectCheck
from engine.masking.flow import StatementFlow
from engine.masking.lineage import UNKNOWN, Analyzer, Function, Relation, Source, parse

NID = Source("public", "customers", "national_id")
RELATIONS = {
    "customers": [Relation("public", "customers", "r", ("id", "full_name", "national_id"))],
    "slots": [Relation("public", "slots", "r", ("p", "g"))],
    "locked": [Relation("public", "locked", "r", ("v",), triggers=("public.lock_it",))],
    "nids": [Relation("public", "nids", "v", ("id", "n"),
                      "SELECT customers.id, customers.national_id AS n FROM customers")],
}
FUNCTIONS = {
    "burn": [Function("public", "burn", "plpgsql",
                      "begin for i in 1..n loop begin insert into slots values (1, 1);"
                      " exception when others then null; end; end loop; return 0; end",
                      "create function burn(n int) returns int language plpgsql as $$"
                      "begin for i in 1..n loop begin insert into slots values (1, 1);"
                      " exception when others then null; end; end loop; return 0; end$$")],
    "tz": [Function("public", "tz", "sql", "select set_config('TimeZone', $1, false)")],
    "twice": [Function("public", "twice", "sql", "select $1 || $1")],
    "flag": [Function("public", "flag", "plpgsql",
                      "begin if substr(t, 1, 1) = 'N' then create table flagged (); end if;"
                      " return 0; end",
                      "create function flag(t text) returns int language plpgsql as $$"
                      "begin if substr(t, 1, 1) = 'N' then create table flagged (); end if;"
                      " return 0; end$$")],
    "role_ds": [Function("public", "role_ds", "plpgsql",
                         "begin if t > 'M' then alter role current_user set datestyle = 'SQL';"
                         " end if; return 0; end",
                         "create function role_ds(t text) returns int language plpgsql as $$"
                         "begin if t > 'M' then alter role current_user set datestyle = 'SQL';"
                         " end if; return 0; end$$")],
    "lock_it": [Function("public", "lock_it", "plpgsql",
                         "begin perform pg_advisory_lock(ascii(new.v)); return new; end")],
}


class Catalog:
    def relations(self, name: str) -> list[Relation] | None:
        return RELATIONS.get(name, [])

    def functions(self, name: str) -> list[Function] | None:
        return FUNCTIONS.get(name, [])


def masked(source: Source) -> bool:
    return source is UNKNOWN or source.column == "national_id"


def check(sql: str) -> str | None:
    flow = StatementFlow(Analyzer(Catalog(), masked))
    return EffectCheck(flow, masked)(sql, final=True).refused


def effects(sql: str) -> frozenset[str]:
    trees = parse(sql)
    assert trees
    return Analyzer(Catalog(), masked).statement(trees[0]).effects


@pytest.mark.parametrize("sql", [
    "select set_config('TimeZone', '<x>+' || ascii(national_id), false) from customers",
    "select set_config('DateStyle', case when national_id like 'N%' then 'SQL' else 'ISO'"
    " end, false) from customers",
    "select 1 from slots t join customers c on t.g = ascii(c.national_id) for update of t",
    "select 1 from slots t where t.g in (select ascii(national_id) from customers)"
    " for key share",
    "select pg_try_advisory_lock(ascii(national_id)) from customers",
    "select pg_advisory_lock(1) from customers where national_id like 'N%'",
    "select pg_notify('c', 'x') from customers where national_id < 'M'",
    "select burn(ascii(national_id)) from customers",
    "select tz(national_id) from customers",
    "insert into locked select national_id from customers",
    "select pg_advisory_lock(ascii(n)) from nids",
    "declare c cursor for select id from customers where national_id > 'M' for update",
    "prepare p as select pg_advisory_lock(ascii(national_id)) from customers",
    "select flag(national_id) from customers",
    "select role_ds(national_id) from customers",
])
def test_effects_computed_from_a_masked_value_are_refused(sql: str) -> None:
    why = check(sql)
    assert why is not None and "national_id" in why, sql


@pytest.mark.parametrize("sql", [
    "select set_config('TimeZone', 'UTC', false)",
    "select set_config('gw.kept', national_id, false) from customers",  # followed: masked
    "select 1 from slots for update",
    "select pg_advisory_lock(42)",
    "select pg_notify('c', 'x')",
    "select burn(3)",
    "select national_id, twice(national_id) from customers",
    "update slots set g = 1 where p = (select ascii(national_id) from customers limit 1)",
    "insert into locked values ('clean')",
    # Rows picked by a clean column, whatever the columns shown: an ORM's row lock.
    "select * from customers where id = 1 for update",
    "select national_id from customers where id = 1 for no key update",
])
def test_plain_reads_writes_and_clean_effects_run(sql: str) -> None:
    assert check(sql) is None, sql


def test_effects_are_named() -> None:
    assert effects("select 1 from slots for share") == frozenset()  # see Lineage.locks
    assert effects("select burn(1)") and "subtransactions" in next(iter(effects(
        "select burn(1)")))
    assert effects("select pg_notify('c', 'x')") == {"pg_notify()"}
    assert effects("select set_config('gw.x', 'y', false)") == frozenset()
