"""Lineage of what a statement writes through the code it runs besides itself: DO blocks,
function and procedure bodies, triggers, rules, defaults, views written through, writable CTEs,
prepared statements; code that cannot be read is opaque."""

from __future__ import annotations

from typing import Any

from engine.masking.lineage import (
    UNKNOWN,
    Analyzer,
    Function,
    Lineage,
    Missing,
    Relation,
    Source,
    parse,
)

NID = Source("public", "customers", "national_id")
RELATIONS = {
    "customers": [Relation("public", "customers", "r", ("id", "full_name", "national_id"))],
    "notes": [Relation("public", "notes", "r", ("id", "body"))],
    "src": [Relation("public", "src", "r", ("card",), triggers=("public.copy_row",))],
    "audit": [Relation("public", "audit", "r", ("v", "w"))],
    "src2": [Relation("public", "src2", "r", ("card",), rules=(
        "CREATE RULE r AS ON INSERT TO public.src2 DO INSERT INTO audit2 (v) VALUES (new.card);",
    ))],
    "audit2": [Relation("public", "audit2", "r", ("v",))],
    "base": [Relation("public", "base", "r", ("id", "v"))],
    "bv": [Relation("public", "bv", "v", ("id", "w"), "SELECT base.id, base.v AS w FROM base")],
    "gen": [Relation("public", "gen", "r", ("a", "b"), generated=("b",))],
    "logged": [Relation("public", "logged", "r", ("id", "v"), defaults=("stamp_it()",))],
}
FUNCTIONS = {
    "cp": [Function("public", "cp", "plpgsql",
                    "declare v text; begin select national_id into v from customers;"
                    " insert into notes (body) values (v); end")],
    "keep": [Function("public", "keep", "sql", "insert into notes (body) values ($1)")],
    "plain": [Function("public", "plain", "plpgsql",
                       "declare v text; begin select full_name into v from customers;"
                       " insert into notes (body) values (v); end")],
    "copy_row": [Function("public", "copy_row", "plpgsql",
                          "begin insert into audit values (NEW.card, 'x'); return NEW; end")],
    "dyn": [Function("public", "dyn", "plpgsql", "begin execute 'insert into notes select '"
                     " || 'national_id from customers'; end")],
    "perl": [Function("public", "perl", "plperl", "return 1")],
    "crypt": [Function("public", "crypt", "c", "pg_crypt")],
    "stamp_it": [Function("public", "stamp_it", "plpgsql",
                          "begin insert into notes (body) select national_id from customers;"
                          " return 1; end")],
    "atomic": [Function("public", "atomic", "sql", "", "CREATE FUNCTION public.atomic()"
                        " RETURNS void LANGUAGE sql BEGIN ATOMIC INSERT INTO notes (body)"
                        " SELECT national_id FROM customers; END")],
}


class Catalog:
    def relations(self, name: str) -> list[Relation] | None:
        return RELATIONS.get(name, [])

    def functions(self, name: str) -> list[Function] | None:
        return FUNCTIONS.get(name, [])


def analyzer() -> Analyzer:
    return Analyzer(Catalog(), lambda s: s.column == "national_id",
                    names=lambda w: w == "national_id")


def tree(sql: str) -> dict[str, Any]:
    stmts = parse(sql)
    assert stmts, sql
    return stmts[0]


def written(lineage: Lineage) -> dict[str, set[Source]]:
    out: dict[str, set[Source]] = {}
    for target, lin in lineage.writes:
        out.setdefault(f"{target.table}.{target.column}", set()).update(lin)
    return out


def carries_nid(sources: set[Source]) -> bool:
    return any(s.column == "national_id" and s.table == "customers" for s in sources)


def test_a_do_block_and_a_called_function_write_what_they_read() -> None:
    a = analyzer()
    do = a.statement(tree("DO $$begin insert into notes (body) select national_id"
                          " from customers; end$$"))
    assert carries_nid(written(do)["notes.body"]) and do.opaque is None
    call = a.statement(tree("select cp()"))
    assert carries_nid(written(call)["notes.body"])  # through the variable v
    assert a.statement(tree("select atomic()")).writes
    plain = written(a.statement(tree("select plain()")))
    assert plain["notes.body"] and not carries_nid(plain["notes.body"])
    assert UNKNOWN not in plain["notes.body"]  # a variable is not an unknown column


def test_a_function_writes_what_its_arguments_carry() -> None:
    lineage = analyzer().statement(tree("select keep(national_id) from customers"))
    assert carries_nid(written(lineage)["notes.body"])
    assert not carries_nid(written(analyzer().statement(tree("select keep('x')")))
                           .get("notes.body", set()))


def test_triggers_rules_and_defaults_of_a_written_table() -> None:
    a = analyzer()
    trig = written(a.statement(tree("insert into src select national_id from customers")))
    assert carries_nid(trig["audit.v"]) and carries_nid(trig["audit.w"])
    rule = written(a.statement(tree("insert into src2 select national_id from customers")))
    assert carries_nid(rule["audit2.v"])
    default = written(a.statement(tree("insert into logged (id) values (1)")))
    assert carries_nid(default["notes.body"])  # stamp_it() runs for the default


def test_a_write_through_a_view_lands_in_its_base_table() -> None:
    lineage = analyzer().statement(tree("insert into bv (id, w) select id, national_id"
                                        " from customers"))
    out = written(lineage)
    assert carries_nid(out["base.v"])
    assert "customers.national_id" not in out  # the sources themselves are not tainted


def test_writable_ctes_on_conflict_and_prepared_statements() -> None:
    a = analyzer()
    cte = a.statement(tree("with w as (insert into notes (body) select national_id"
                           " from customers returning id) select count(*) from w"))
    assert carries_nid(written(cte)["notes.body"])
    upsert = a.statement(tree("insert into notes (id, body) values (1, 'x') on conflict (id)"
                              " do update set body = (select national_id from customers"
                              " limit 1)"))
    assert carries_nid(written(upsert)["notes.body"])
    prepared = a.statement(tree("prepare p as insert into notes (body) select national_id"
                                " from customers"))
    assert not prepared.writes  # nothing written yet
    a.learn(prepared, "PrepareStmt")
    assert carries_nid(written(a.statement(tree("execute p")))["notes.body"])
    assert a.statement(tree("execute never_prepared")).opaque


def test_code_that_cannot_be_read_is_opaque() -> None:
    a = analyzer()
    assert "dynamic SQL" in (a.statement(tree("select dyn()")).opaque or "")
    assert "plperl" in (a.statement(tree("select perl()")).opaque or "")
    assert a.statement(tree("DO $$begin execute format('x %s', 1); end$$")).opaque
    assert a.statement(tree("select upper('x')")).opaque is None
    assert a.statement(tree("select crypt('x', 'y')")).opaque is None  # an extension's C


def test_copy_from_a_file_or_a_program_writes_anything() -> None:
    a = analyzer()
    for sql in ("copy notes from '/tmp/x'", "copy notes from program 'cat /tmp/x'"):
        assert UNKNOWN in written(a.statement(tree(sql)))["notes.\0any"]
    assert not a.statement(tree("copy notes from stdin")).writes


def test_generated_columns_carry_the_rows_other_columns() -> None:
    class Derived(Catalog):
        def derived(self, table: str, column: str) -> frozenset[Source]:
            return frozenset({NID}) if (table, column) == ("gen", "a") else frozenset()

    lineage = Analyzer(Derived(), lambda s: s == NID).statement(tree("select b from gen"))
    assert lineage.columns is not None and NID in lineage.columns[0]


def test_distrusted_names_count_as_not_looked_up() -> None:
    a = analyzer()
    sql = tree("select w from bv")
    assert "bv" in a.statement(sql).consulted.relations
    a.distrust = Missing(frozenset({"bv"}), frozenset())
    lineage = a.statement(sql)
    assert lineage.missing.relations == {"bv"}


def test_a_value_kept_in_a_setting_is_read_back_with_its_sources() -> None:
    kept = analyzer().statement(tree("select set_config('x.y', national_id, false)"
                                     " from customers"))
    assert carries_nid(written(kept)["pg_settings.setting"])
    assert carries_nid(written(kept)["pg_stat_activity.application_name"])
    assert not analyzer().statement(tree("select set_config('x.y', 'literal', false)")).writes

    class Kept(Catalog):
        def derived(self, table: str, column: str) -> frozenset[Source]:
            return frozenset({NID}) if table == "pg_settings" else frozenset()

    a = Analyzer(Kept(), lambda s: s == NID)
    read = a.statement(tree("select current_setting('x.y')"))
    assert read.columns is not None and NID in read.columns[0]
    assert NID in a.statement(tree("show x.y")).reads


def test_a_column_rewritten_from_another_by_alter_table() -> None:
    lineage = analyzer().statement(tree("alter table customers alter column full_name"
                                        " type text using national_id || ''"))
    assert carries_nid(written(lineage)["customers.full_name"])
    assert not analyzer().statement(tree("alter table customers alter column id"
                                         " type bigint")).writes
