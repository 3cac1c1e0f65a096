"""Which relations carry code a statement runs without naming it (``engine.pg.storedcode``), and
how a session's guard counts the statements that reach them (``SessionGuard.stored_code``)."""

from __future__ import annotations

import pytest

from engine.guardrail.guard import SessionGuard
from engine.guardrail.rules import GuardrailSettings, Match, Rule
from engine.masking.lineage import Relation
from engine.pg.storedcode import StoredCode, calls_code


class Known:
    """What a catalog cache holds: relations by bare name (absent: not looked up)."""

    def __init__(self, *relations: Relation) -> None:
        self.by_name: dict[str, list[Relation]] = {}
        for r in relations:
            self.by_name.setdefault(r.name, []).append(r)

    def relations(self, name: str) -> list[Relation] | None:
        return self.by_name.get(name)

    def last_known(self, name: str) -> list[Relation] | None:
        return None


def table(name: str, **more: object) -> Relation:
    return Relation("public", name, "r", ("id",), **more)  # type: ignore[arg-type]


def view(name: str, query: str) -> Relation:
    return Relation("public", name, "v", ("x",), definition=query)


CATALOG = Known(
    table("plain", defaults=("nextval('plain_id_seq'::regclass)", "now()")),
    table("audited", triggers=("public.audit",)),
    table("builtin_trigger", triggers=("pg_catalog.suppress_redundant_updates_trigger",)),
    table("ruled", rules=("CREATE RULE r AS ON INSERT TO ruled DO ALSO DELETE FROM x",)),
    table("defaulted", defaults=("purge()",)),
    table("checked", checks=("(id > 0) AND ok(id)",)),
    table("generated", generated=("total",)),
    table("parent", family=("child",)),
    table("child", triggers=("app.on_child",)),
    table("orphan", family=("nowhere",)),
    table("indexed", indexes=("lower(name)", "f_key(id)")),
    table("partial", indexes=("(id > 0)",)),
    table("secured", policies=("(owner = CURRENT_USER)", "allowed(id)")),
    table("secured_builtin", policies=("(owner = CURRENT_USER)",)),
    view("calls", "SELECT purge() AS x"),
    view("operates", "SELECT 1 @~@ 2 AS x"),
    view("harmless", "SELECT id, lower(name) FROM plain"),
    view("over_calls", "SELECT * FROM calls"),
    view("over_audited", "SELECT * FROM audited"),
    view("over_unknown", "SELECT * FROM nobody_knows"),
    Relation("app", "plain", "r", ("id",), triggers=("app.audit",)),  # same name, other schema
)


@pytest.mark.parametrize(("name", "writes", "expected"), [
    ("plain", True, True),  # app.plain has a trigger: either may be meant
    ("builtin_trigger", True, False),
    ("audited", True, True),
    ("audited", False, False),  # reading runs no trigger
    ("ruled", True, True),
    ("defaulted", True, True),
    ("checked", True, True),
    ("generated", True, True),
    ("parent", True, True),  # a write lands in a partition with a trigger
    ("parent", False, False),
    ("orphan", True, None),  # its family is not known yet
    ("indexed", True, True),
    ("indexed", False, False),  # a read evaluates no index expression
    ("partial", True, False),
    ("secured", False, True),  # a policy runs on reads too
    ("secured_builtin", False, False),
    ("calls", False, True),
    ("operates", False, True),
    ("harmless", False, False),  # reads "plain": no trigger runs
    ("harmless", True, True),  # a write through it lands in plain (app.plain has a trigger)
    ("over_calls", False, True),
    ("over_audited", False, False),
    ("over_audited", True, True),  # a write through the view lands in audited
    ("over_unknown", False, None),
    ("never_looked_up", False, None),
    ("Audited", True, None),  # a relname is matched as stored: case kept
])
def test_what_carries_code(name: str, writes: bool, expected: bool | None) -> None:
    assert StoredCode(CATALOG)(name, writes) is expected


def test_a_view_over_plain_tables_carries_none() -> None:
    catalog = Known(table("t"), view("v", "SELECT id, upper(name), now() FROM t"))
    assert StoredCode(catalog)("v", False) is False
    assert StoredCode(catalog)("v", True) is False


def test_views_nested_deeper_than_followed_are_not_known() -> None:
    chain = [view(f"v{i}", f"SELECT * FROM v{i + 1}") for i in range(12)] + [table("v12")]
    assert StoredCode(Known(*chain))("v0", False) is None


class Expired(Known):
    """A cache whose entries expired (or DDL emptied it): only the last reading is left."""

    def __init__(self, *relations: Relation) -> None:
        super().__init__(*relations)
        self.asked: list[str] = []

    def relations(self, name: str) -> list[Relation] | None:
        return None

    def last_known(self, name: str) -> list[Relation] | None:
        return self.by_name.get(name)


def test_an_expired_entry_answers_as_last_read_and_is_read_again() -> None:
    catalog = Expired(table("audited", triggers=("public.audit",)), table("plain"))
    code = StoredCode(catalog, catalog.asked.append)
    assert code("audited", True) is True
    assert code("plain", True) is False
    assert code("never", True) is None
    assert catalog.asked == ["audited", "plain"]  # read again; "never" waits for the relay
    assert code.missing("never", True) == {"never"}


@pytest.mark.parametrize(("expression", "code"), [
    ("now()", False), ("nextval('s'::regclass)", False), ("(id > 0)", False),
    ("purge()", True), ("app.f(id)", True), ("id @~@ 1", True), ("((", True),
])
def test_expressions_that_call_code(expression: str, code: bool) -> None:
    assert calls_code(expression) is code


RULES = (Rule("review-big-writes", "review", Match(rows_over=100)),)


class Answers:
    """Stored code as a dictionary says (``v`` a view, anything else a table)."""

    def __init__(self, known: dict[str, bool | None]) -> None:
        self.known = known

    def __call__(self, name: str, writes: bool, rows: bool = False) -> bool | None:
        return self.known.get(name) if writes or rows or name == "v" else False

    def missing(self, name: str, writes: bool, rows: bool = False) -> set[str]:
        return {name} if self(name, writes, rows) is None else set()


def guard(known: dict[str, bool | None]) -> SessionGuard:
    g = SessionGuard(RULES, GuardrailSettings())
    g.stored_code = Answers(known)
    return g


def test_names_never_read_are_asked_for_once() -> None:
    g = guard({"t": None, "u": False})
    assert g.unread("INSERT INTO t SELECT * FROM u") == {"t"}
    g.looked(frozenset({"t"}))
    assert g.unread("INSERT INTO t SELECT * FROM u") == frozenset()
    assert g.judge("INSERT INTO t SELECT * FROM u").verdict.rows_over == 100  # still unknown
    assert g.unread("DROP TABLE t") == frozenset()  # nothing stored matters to it


@pytest.mark.parametrize(("sql", "known", "counted"), [
    ("INSERT INTO t VALUES (1)", {"t": True}, True),
    ("INSERT INTO t VALUES (1)", {"t": None}, True),  # not known yet: counted
    ("INSERT INTO t VALUES (1)", {"t": False}, False),
    ("SELECT * FROM v", {"v": True}, True),
    ("SELECT * FROM t", {"t": True}, False),  # a read runs no trigger
    ("SELECT * FROM v", {"v": None}, True),  # never read: counted
    ("COPY t FROM STDIN", {"t": None}, False),  # not known: not held
    ("DECLARE c CURSOR FOR SELECT * FROM v", {"v": None}, False),
])
def test_a_statement_reaching_stored_code_is_counted(sql: str, known: dict[str, bool | None],
                                                     counted: bool) -> None:
    verdict = guard(known).judge(sql).verdict
    if counted:
        assert verdict.rows_over == 100
        assert not verdict.tag_counts and verdict.calls_code
    else:
        assert verdict.action == "allow"


@pytest.mark.parametrize("sql", ["COPY t FROM STDIN", "DECLARE c CURSOR FOR SELECT * FROM v",
                                 "PREPARE p AS INSERT INTO t VALUES (1)"])
def test_what_cannot_be_counted_is_held_over_known_code(sql: str) -> None:
    verdict = guard({"t": True, "v": True}).judge(sql).verdict
    assert verdict.action == "review" and verdict.rows_over is None


def test_the_answer_follows_the_catalog_from_one_statement_to_the_next() -> None:
    known: dict[str, bool | None] = {"t": False}
    g = guard(known)
    assert g.judge("INSERT INTO t VALUES (1)").action == "allow"
    known["t"] = True  # a trigger appeared on the target
    assert g.judge("INSERT INTO t VALUES (2)").verdict.rows_over == 100
    known["t"] = False
    assert g.judge("INSERT INTO t VALUES (1)").action == "allow"


def test_an_update_is_counted_for_its_own_rows_as_before() -> None:
    verdict = guard({"t": True}).judge("UPDATE t SET a = 1 WHERE id = 2").verdict
    assert verdict.rows_over == 100 and verdict.tag_counts


class Counting(Known):
    def __init__(self, *relations: Relation) -> None:
        super().__init__(*relations)
        self.asked = 0

    def relations(self, name: str) -> list[Relation] | None:
        self.asked += 1
        return super().relations(name)


def test_a_partition_family_is_walked_once() -> None:
    """Outside attack: a parent leads to every partition and each partition back to its
    parent; walked again at every step, an INSERT into 40 partitions took 78 s."""
    parts = [f"p{i}" for i in range(40)]
    catalog = Counting(table("parent", family=tuple(parts)),
                       *(table(p, family=("parent",)) for p in parts))
    assert StoredCode(catalog)("parent", True) is False
    assert catalog.asked <= 2 * (len(parts) + 1)


def test_names_are_looked_up_as_stored() -> None:
    catalog = Known(table("T_Up", triggers=("public.audit",)),
                    table("s.t_dot", triggers=("public.audit",)))
    assert StoredCode(catalog)("T_Up", True) is True
    assert StoredCode(catalog)("s.t_dot", True) is True
    assert guard({"T_Up": True}).judge('INSERT INTO "T_Up" VALUES (1)').verdict.rows_over == 100
    assert guard({"s.t_dot": True}).judge('INSERT INTO "s.t_dot" VALUES (1)'
                                          ).verdict.rows_over == 100


def test_an_expired_entry_is_asked_for_at_every_question() -> None:
    """While the catalog is unchanged an answer could be kept, but then an expired entry
    would never be read again on a connection without masking (nothing else reads it)."""
    catalog = Expired(table("audited", triggers=("public.audit",)))
    catalog.changes = 0  # type: ignore[attr-defined]  # (a TableCatalog's counter)
    code = StoredCode(catalog, catalog.asked.append)
    assert code("audited", True) is True and code("audited", True) is True
    assert catalog.asked == ["audited", "audited"]


ROWS = Known(
    table("audited", triggers=("public.audit",), defaults=("purge()",)),
    table("checked", checks=("(id > 0) AND ok(id)",)),
    table("indexed", indexes=("f_key(id)",)),
    table("generated", generated=("total",)),
    table("statistics", evaluated=("public.f()",)),
    table("statistics_builtin", evaluated=("pg_catalog.lower()", "NULL::pg_catalog.text")),
    table("statistics_typed", evaluated=("NULL::public.mydomain",)),
    table("parent", family=("checked",)),
    table("plain", checks=("(id > 0)",), indexes=("lower(name)",)),
)


@pytest.mark.parametrize(("name", "expected"), [
    ("audited", False),  # ANALYZE or a rewrite fires no trigger, evaluates no default
    ("checked", True),
    ("indexed", True),
    ("generated", True),
    ("statistics", True),
    ("statistics_builtin", False),
    ("statistics_typed", True),
    ("parent", True),  # its partitions are analyzed, rewritten too
    ("plain", False),
    ("never_looked_up", None),
])
def test_what_runs_over_a_table_s_rows(name: str, expected: bool | None) -> None:
    assert StoredCode(ROWS)(name, False, rows=True) is expected


@pytest.mark.parametrize("sql", [
    "ANALYZE checked", "VACUUM (ANALYZE) checked", "VACUUM ANALYZE public.checked",
    "VACUUM FULL checked", "CLUSTER checked USING checked_pkey", "REINDEX TABLE checked",
    "ALTER TABLE checked VALIDATE CONSTRAINT ok", "ALTER TABLE checked SET LOGGED",
    "ALTER TABLE checked SET UNLOGGED", "ALTER TABLE checked ADD COLUMN d int DEFAULT random()",
    "ALTER TABLE plain ATTACH PARTITION checked FOR VALUES IN (1)",
    "REFRESH MATERIALIZED VIEW checked",  # its indexes are built again
])
def test_a_statement_evaluating_stored_code_over_rows_is_counted_or_held(sql: str) -> None:
    g = guard({"checked": True, "plain": False})
    assert g.unread(sql) == frozenset()
    verdict = g.judge(sql).verdict
    assert verdict.action == "review" and verdict.rule == "review-big-writes"
    assert guard({"checked": False, "plain": False}).judge(sql).action == "allow"
    # Never read: asked for first.
    assert guard({"checked": None, "plain": False}).unread(sql) == {"checked"}


@pytest.mark.parametrize(("sql", "counted"), [
    ("ANALYZE checked", True),  # runs in the gateway's savepoint
    ("ALTER TABLE checked VALIDATE CONSTRAINT ok", True),
    ("VACUUM (ANALYZE) checked", False),  # cannot run in a transaction block: held
    ("VACUUM FULL checked", False),
])
def test_what_cannot_run_in_a_transaction_block_is_held_not_counted(
        sql: str, counted: bool) -> None:
    verdict = guard({"checked": True}).judge(sql).verdict
    assert (verdict.rows_over == 100) is counted


@pytest.mark.parametrize("sql", ["ANALYZE", "VACUUM ANALYZE", "REINDEX INDEX checked_pkey",
                                 "REINDEX DATABASE shop", "CLUSTER"])
def test_maintenance_of_what_the_gateway_cannot_name_reaches(sql: str) -> None:
    assert guard({}).judge(sql).verdict.rule == "review-big-writes"


@pytest.mark.parametrize("sql", ["VACUUM checked", "VACUUM (ANALYZE false) checked",
                                 "ALTER TABLE checked ADD CONSTRAINT c CHECK (id > 0)",
                                 "ALTER TABLE checked SET TABLESPACE pg_default"])
def test_what_evaluates_no_stored_expression_is_not_counted(sql: str) -> None:
    assert guard({"checked": True}).judge(sql).action == "allow"


def test_a_cast_into_an_enum_the_catalog_vouches_for_is_not_code() -> None:
    """pg_dump's enum DEFAULT (``'new'::public.status``) runs enum_in only; a cast into any
    other user's type (a domain's CHECKs, a user's cast) is code."""
    enum = (("public", "status"),)
    catalog = Known(
        table("orders", defaults=("'new'::public.status",), plain_types=enum),
        table("unvouched", defaults=("'new'::public.status",)),
        table("domained", defaults=("(1)::public.positive",), plain_types=enum),
        table("checked_enum", checks=("(s <> 'done'::public.status)",), plain_types=enum),
    )
    assert StoredCode(catalog)("orders", True) is False
    assert StoredCode(catalog)("unvouched", True) is True
    assert StoredCode(catalog)("domained", True) is True
    assert StoredCode(catalog)("checked_enum", False, rows=True) is False
