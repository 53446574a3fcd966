"""Extraction stays linear in the size of a statement (issue 13.4): the shapes that grew quadratically
(a chain of UNIONs, thousands of tables, chains of JOIN ... USING) give the same tables and columns as
small ones, and a 10,000-UNION statement (350 KiB) is analysed, not refused."""

from __future__ import annotations

from atlas_compliance.audit.extraction import Catalog, extract_access


def test_a_ten_thousand_union_statement_is_analysed():
    sql = " UNION ".join(f"SELECT id, name FROM tbl_{i % 50} WHERE id = {i}" for i in range(10_000))
    assert len(sql.encode()) > 350 * 1024
    info = extract_access(sql, "postgres")
    assert info.parse_error is None
    assert info.tables == tuple(sorted(f"tbl_{i}" for i in range(50)))
    assert all(info.columns_by_table[t] == ("id", "name") for t in info.tables)


def test_a_union_chain_over_ctes_credits_the_tables_behind_them():
    branches = " UNION ALL ".join(f"SELECT email FROM {'c' if i % 2 else 'patients'} WHERE id = {i}"
                                  for i in range(3_000))
    info = extract_access(f"WITH c AS (SELECT email, id FROM contacts) {branches}")
    assert info.parse_error is None
    assert info.tables == ("contacts", "patients")  # `c` is the CTE in every branch, never a table
    assert info.columns_by_table == {"contacts": ("email", "id"), "patients": ("email", "id")}


def test_cte_visibility_rules_hold_in_the_one_pass_lookup():
    # A CTE body sees only the CTEs before it; a later CTE of the same name is the real table there.
    info = extract_access("WITH a AS (SELECT x FROM b), b AS (SELECT y FROM real_b) SELECT x FROM a")
    assert info.tables == ("b", "real_b")
    info = extract_access("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT n FROM r")
    assert info.tables == () and info.parse_error is None
    # An inner WITH shadows an outer one of the same name, in its own query only.
    info = extract_access("WITH t AS (SELECT a FROM outer_src) "
                          "SELECT a FROM t UNION SELECT a FROM (WITH t AS (SELECT a FROM inner_src) SELECT a FROM t) s")
    assert info.tables == ("inner_src", "outer_src")


def test_thousands_of_tables_in_one_statement_keep_every_column():
    n = 4_000
    sql = ("SELECT " + ", ".join(f"s.t{i}.c{i}" for i in range(n)) + " FROM " + ", ".join(f"s.t{i}" for i in range(n)))
    info = extract_access(sql)
    assert info.parse_error is None and len(info.tables) == n
    assert all(info.columns_by_table[f"s.t{i}"] == (f"c{i}",) for i in range(n))


def test_a_chain_of_using_joins_credits_the_key_to_every_table():
    n = 2_000
    sql = "SELECT t0.v FROM t0 " + " ".join(f"JOIN t{i} USING (id)" for i in range(1, n))
    info = extract_access(sql)
    assert len(info.tables) == n
    assert info.columns_by_table["t0"] == ("id", "v")
    assert all(info.columns_by_table[f"t{i}"] == ("id",) for i in range(1, n))


def test_a_using_chain_with_a_catalog_credits_the_tables_that_have_the_key():
    # t1 has no `k`; t0 and t2 have it; t3 is unknown. Joins on k credit t0/t2 (and the joined ones).
    catalog = Catalog({"t0": ["k", "a"], "t1": ["id"], "t2": ["k"]})
    info = extract_access("SELECT a FROM t0 JOIN t1 ON t1.id = t0.a JOIN t2 USING (k) JOIN t3 USING (k)", catalog=catalog)
    assert info.columns_by_table == {"t0": ("a", "k"), "t1": ("id",), "t2": ("k",), "t3": ("k",)}
    # Nothing on the left known to have `k`: the unknown tables are credited, not the known ones.
    info = extract_access("SELECT 1 FROM t1 JOIN t9 ON true JOIN t2 USING (k)", catalog=catalog)
    assert info.columns_by_table["t9"] == ("k",) and info.columns_by_table["t1"] == ()
    # A derived table on the left projecting `k` credits it through its own SELECT list.
    info = extract_access("SELECT 1 FROM (SELECT k FROM t0) d JOIN t5 USING (k) JOIN t6 USING (k)")
    assert info.columns_by_table == {"t0": ("k",), "t5": ("k",), "t6": ("k",)}


def test_a_chain_of_natural_joins_with_a_catalog_credits_the_shared_key():
    n = 2_000
    catalog = Catalog({f"t{i}": ["id", f"v{i}"] for i in range(n)})
    sql = "SELECT v0 FROM t0 " + " ".join(f"NATURAL JOIN t{i}" for i in range(1, n))
    info = extract_access(sql, catalog=catalog)
    assert len(info.tables) == n
    assert info.columns_by_table["t0"] == ("id", "v0")
    assert all(info.columns_by_table[f"t{i}"] == ("id",) for i in range(1, n))
