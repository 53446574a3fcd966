"""The extraction against PostgreSQL's own name resolution (issue 16; bench/referee.py).

The TPC-H schema goes into a throwaway database; for each query of the referee workload, the columns
PostgreSQL's plan reads of each table are compared with what the extraction credits: with the catalog
a DDL import gives, exactly the same (but for one documented referee limit); without a catalog, none
of them missed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from bench.common import with_dbname
from bench.referee import ddl_catalog, extracted, referee
from bench.referee_workload import DDL, QUERIES

# The planner drops a derived table's unused output (w24 selects s_suppkey and never uses it): the
# text names the column, the plan does not read it. See bench/README.md, "what the referee cannot see".
REFEREE_BLIND = {("w24", "supplier", "s_suppkey")}


@pytest.fixture(scope="module")
def truth(server_url: str) -> Iterator[dict[str, dict[str, set[str]]]]:
    name = f"atlas_referee_test_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    schema = dict(ddl_catalog().tables)
    try:
        with psycopg.connect(with_dbname(server_url, name), autocommit=True) as conn:
            conn.execute(DDL)
            yield {qid: referee(conn, sql, schema) for qid, _, sql in QUERIES}
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pairs(qid: str, by_table: dict[str, set[str]]) -> set[tuple[str, str, str]]:
    return {(qid, table, column) for table, columns in by_table.items() for column in columns}


def test_the_referee_sees_every_table_of_the_workload(truth):
    assert len(truth) == len(QUERIES) >= 30
    seen = {table for by_table in truth.values() for table in by_table}
    assert seen == {"region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem"}
    # Spot checks of what PostgreSQL resolved: the outer key of a correlated EXISTS is the outer table's.
    assert truth["w04"] == {"orders": {"o_orderdate", "o_orderkey", "o_orderpriority"},
                            "lineitem": {"l_commitdate", "l_orderkey", "l_receiptdate"}}


@pytest.mark.parametrize("qid", [q[0] for q in QUERIES])
def test_with_the_catalog_the_extraction_is_what_postgresql_resolves(truth, qid):
    sql = next(q[2] for q in QUERIES if q[0] == qid)
    catalog = ddl_catalog()
    found, stars = extracted(sql, catalog, dict(catalog.tables))
    expected = _pairs(qid, truth[qid])
    got = _pairs(qid, found)
    assert stars == 0
    assert expected - got == set(), "columns PostgreSQL reads that the extraction missed"
    assert got - expected - REFEREE_BLIND == set(), "columns credited to a table PostgreSQL does not read them from"


@pytest.mark.parametrize("qid", [q[0] for q in QUERIES])
def test_without_a_catalog_nothing_postgresql_reads_is_missed(truth, qid):
    sql = next(q[2] for q in QUERIES if q[0] == qid)
    found, _ = extracted(sql, None, dict(ddl_catalog().tables))
    assert _pairs(qid, truth[qid]) - _pairs(qid, found) == set()
