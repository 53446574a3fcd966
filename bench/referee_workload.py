"""The referee bench's workload: the TPC-H schema (8 tables) and queries in the TPC-H style.

The DDL is the schema of the TPC-H specification (table and column names, types simplified), written
out here; the queries are this project's own, in the style of the benchmark's (the same tables, joins,
correlated subqueries, aggregates), not its official texts. Besides TPC-H's shapes they exercise the
name-resolution cases of issue 16: unqualified outer columns in correlated subqueries, GROUP BY on an
alias that is also an input column, ORDER BY / DISTINCT ON on output names, JOIN ... USING and
NATURAL JOIN (TPC-H's column names are prefixed per table, so those joins go through derived tables
that rename a key, or through a base table whose key a derived table takes the name of).
"""

from __future__ import annotations

DDL = """
CREATE TABLE region (
    r_regionkey integer PRIMARY KEY,
    r_name      char(25) NOT NULL,
    r_comment   varchar(152)
);
CREATE TABLE nation (
    n_nationkey integer PRIMARY KEY,
    n_name      char(25) NOT NULL,
    n_regionkey integer NOT NULL REFERENCES region,
    n_comment   varchar(152)
);
CREATE TABLE part (
    p_partkey     integer PRIMARY KEY,
    p_name        varchar(55) NOT NULL,
    p_mfgr        char(25) NOT NULL,
    p_brand       char(10) NOT NULL,
    p_type        varchar(25) NOT NULL,
    p_size        integer NOT NULL,
    p_container   char(10) NOT NULL,
    p_retailprice numeric(15, 2) NOT NULL,
    p_comment     varchar(23)
);
CREATE TABLE supplier (
    s_suppkey   integer PRIMARY KEY,
    s_name      char(25) NOT NULL,
    s_address   varchar(40) NOT NULL,
    s_nationkey integer NOT NULL REFERENCES nation,
    s_phone     char(15) NOT NULL,
    s_acctbal   numeric(15, 2) NOT NULL,
    s_comment   varchar(101)
);
CREATE TABLE partsupp (
    ps_partkey    integer NOT NULL REFERENCES part,
    ps_suppkey    integer NOT NULL REFERENCES supplier,
    ps_availqty   integer NOT NULL,
    ps_supplycost numeric(15, 2) NOT NULL,
    ps_comment    varchar(199),
    PRIMARY KEY (ps_partkey, ps_suppkey)
);
CREATE TABLE customer (
    c_custkey    integer PRIMARY KEY,
    c_name       varchar(25) NOT NULL,
    c_address    varchar(40) NOT NULL,
    c_nationkey  integer NOT NULL REFERENCES nation,
    c_phone      char(15) NOT NULL,
    c_acctbal    numeric(15, 2) NOT NULL,
    c_mktsegment char(10) NOT NULL,
    c_comment    varchar(117)
);
CREATE TABLE orders (
    o_orderkey      integer PRIMARY KEY,
    o_custkey       integer NOT NULL REFERENCES customer,
    o_orderstatus   char(1) NOT NULL,
    o_totalprice    numeric(15, 2) NOT NULL,
    o_orderdate     date NOT NULL,
    o_orderpriority char(15) NOT NULL,
    o_clerk         char(15) NOT NULL,
    o_shippriority  integer NOT NULL,
    o_comment       varchar(79)
);
CREATE TABLE lineitem (
    l_orderkey      integer NOT NULL REFERENCES orders,
    l_partkey       integer NOT NULL,
    l_suppkey       integer NOT NULL,
    l_linenumber    integer NOT NULL,
    l_quantity      numeric(15, 2) NOT NULL,
    l_extendedprice numeric(15, 2) NOT NULL,
    l_discount      numeric(15, 2) NOT NULL,
    l_tax           numeric(15, 2) NOT NULL,
    l_returnflag    char(1) NOT NULL,
    l_linestatus    char(1) NOT NULL,
    l_shipdate      date NOT NULL,
    l_commitdate    date NOT NULL,
    l_receiptdate   date NOT NULL,
    l_shipinstruct  char(25) NOT NULL,
    l_shipmode      char(10) NOT NULL,
    l_comment       varchar(44),
    PRIMARY KEY (l_orderkey, l_linenumber),
    FOREIGN KEY (l_partkey, l_suppkey) REFERENCES partsupp
);
"""

# (name, what it exercises, SQL). Literal values are arbitrary; every query runs on the DDL above.
QUERIES: list[tuple[str, str, str]] = [
    ("w01", "one table, aggregates with aliases, GROUP BY / ORDER BY input columns", """
SELECT l_returnflag, l_linestatus, sum(l_quantity) AS qty, avg(l_extendedprice) AS avg_price,
       sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS charged, count(*) AS n
FROM lineitem WHERE l_shipdate <= date '1998-09-01'
GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"""),
    ("w02", "five tables, a correlated subquery with unqualified outer key", """
SELECT s_acctbal, s_name, n_name, p_partkey, p_mfgr
FROM part, supplier, partsupp, nation, region
WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND p_size = 20 AND p_type LIKE '%STEEL'
  AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey AND r_name = 'ASIA'
  AND ps_supplycost = (SELECT min(ps_supplycost) FROM partsupp, supplier, nation, region
                       WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND s_nationkey = n_nationkey
                         AND n_regionkey = r_regionkey AND r_name = 'ASIA')
ORDER BY s_acctbal DESC, n_name, s_name LIMIT 50"""),
    ("w03", "three-table join, ORDER BY an aggregate alias", """
SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority
FROM customer, orders, lineitem
WHERE c_mktsegment = 'MACHINERY' AND c_custkey = o_custkey AND l_orderkey = o_orderkey
  AND o_orderdate < date '1995-03-10' AND l_shipdate > date '1995-03-10'
GROUP BY l_orderkey, o_orderdate, o_shippriority ORDER BY revenue DESC, o_orderdate LIMIT 20"""),
    ("w04", "EXISTS with unqualified outer key (issue 16)", """
SELECT o_orderpriority, count(*) AS order_count FROM orders
WHERE o_orderdate >= date '1996-04-01' AND o_orderdate < date '1996-07-01'
  AND EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey AND l_commitdate < l_receiptdate)
GROUP BY o_orderpriority ORDER BY o_orderpriority"""),
    ("w05", "six-table join with aliases", """
SELECT n.n_name, sum(l.l_extendedprice * (1 - l.l_discount)) AS revenue
FROM customer c JOIN orders o ON c.c_custkey = o.o_custkey
JOIN lineitem l ON l.l_orderkey = o.o_orderkey
JOIN supplier s ON l.l_suppkey = s.s_suppkey AND c.c_nationkey = s.s_nationkey
JOIN nation n ON s.s_nationkey = n.n_nationkey JOIN region r ON n.n_regionkey = r.r_regionkey
WHERE r.r_name = 'EUROPE' AND o.o_orderdate >= date '1994-01-01'
GROUP BY n.n_name ORDER BY revenue DESC"""),
    ("w06", "one table, range predicates", """
SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem
WHERE l_shipdate >= date '1995-01-01' AND l_shipdate < date '1996-01-01'
  AND l_discount BETWEEN 0.04 AND 0.06 AND l_quantity < 25"""),
    ("w07", "derived table, the same table twice, GROUP BY derived outputs", """
SELECT supp_nation, cust_nation, l_year, sum(volume) AS revenue
FROM (SELECT n1.n_name AS supp_nation, n2.n_name AS cust_nation, extract(year FROM l_shipdate) AS l_year,
             l_extendedprice * (1 - l_discount) AS volume
      FROM supplier, lineitem, orders, customer, nation n1, nation n2
      WHERE s_suppkey = l_suppkey AND o_orderkey = l_orderkey AND c_custkey = o_custkey
        AND s_nationkey = n1.n_nationkey AND c_nationkey = n2.n_nationkey
        AND ((n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY') OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE'))
        AND l_shipdate BETWEEN date '1995-01-01' AND date '1996-12-31') AS shipping
GROUP BY supp_nation, cust_nation, l_year ORDER BY supp_nation, cust_nation, l_year"""),
    ("w08", "CASE over a derived table, eight-way join", """
SELECT o_year, sum(CASE WHEN nation = 'BRAZIL' THEN volume ELSE 0 END) / sum(volume) AS share
FROM (SELECT extract(year FROM o_orderdate) AS o_year, l_extendedprice * (1 - l_discount) AS volume,
             n2.n_name AS nation
      FROM part, supplier, lineitem, orders, customer, nation n1, nation n2, region
      WHERE p_partkey = l_partkey AND s_suppkey = l_suppkey AND l_orderkey = o_orderkey
        AND o_custkey = c_custkey AND c_nationkey = n1.n_nationkey AND n1.n_regionkey = r_regionkey
        AND r_name = 'AMERICA' AND s_nationkey = n2.n_nationkey AND p_type = 'ECONOMY ANODIZED STEEL') AS all_nations
GROUP BY o_year ORDER BY o_year"""),
    ("w09", "LIKE on a part name, profit expression", """
SELECT nation, o_year, sum(amount) AS sum_profit
FROM (SELECT n_name AS nation, extract(year FROM o_orderdate) AS o_year,
             l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity AS amount
      FROM part, supplier, lineitem, partsupp, orders, nation
      WHERE s_suppkey = l_suppkey AND ps_suppkey = l_suppkey AND ps_partkey = l_partkey
        AND p_partkey = l_partkey AND o_orderkey = l_orderkey AND s_nationkey = n_nationkey
        AND p_name LIKE '%green%') AS profit
GROUP BY nation, o_year ORDER BY nation, o_year DESC"""),
    ("w10", "four tables, GROUP BY many columns, ORDER BY alias", """
SELECT c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) AS revenue, c_acctbal, n_name, c_phone
FROM customer, orders, lineitem, nation
WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND o_orderdate >= date '1993-10-01'
  AND l_returnflag = 'R' AND c_nationkey = n_nationkey
GROUP BY c_custkey, c_name, c_acctbal, c_phone, n_name ORDER BY revenue DESC LIMIT 20"""),
    ("w11", "HAVING with an uncorrelated scalar subquery", """
SELECT ps_partkey, sum(ps_supplycost * ps_availqty) AS value
FROM partsupp, supplier, nation
WHERE ps_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = 'GERMANY'
GROUP BY ps_partkey
HAVING sum(ps_supplycost * ps_availqty) > (SELECT sum(ps_supplycost * ps_availqty) * 0.0001
                                           FROM partsupp, supplier, nation
                                           WHERE ps_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = 'GERMANY')
ORDER BY value DESC"""),
    ("w12", "CASE on an IN list, two tables", """
SELECT l_shipmode,
       sum(CASE WHEN o_orderpriority IN ('1-URGENT', '2-HIGH') THEN 1 ELSE 0 END) AS high_line_count,
       sum(CASE WHEN o_orderpriority NOT IN ('1-URGENT', '2-HIGH') THEN 1 ELSE 0 END) AS low_line_count
FROM orders, lineitem
WHERE o_orderkey = l_orderkey AND l_shipmode IN ('MAIL', 'SHIP') AND l_commitdate < l_receiptdate
  AND l_shipdate < l_commitdate AND l_receiptdate >= date '1994-01-01'
GROUP BY l_shipmode ORDER BY l_shipmode"""),
    ("w13", "LEFT JOIN inside a derived table with a column list", """
SELECT c_count, count(*) AS custdist
FROM (SELECT c_custkey, count(o_orderkey) FROM customer LEFT OUTER JOIN orders
      ON c_custkey = o_custkey AND o_comment NOT LIKE '%special%requests%' GROUP BY c_custkey) AS c_orders (c_custkey, c_count)
GROUP BY c_count ORDER BY custdist DESC, c_count DESC"""),
    ("w14", "CASE with LIKE, two tables", """
SELECT 100.00 * sum(CASE WHEN p_type LIKE 'PROMO%' THEN l_extendedprice * (1 - l_discount) ELSE 0 END)
       / sum(l_extendedprice * (1 - l_discount)) AS promo_revenue
FROM lineitem, part
WHERE l_partkey = p_partkey AND l_shipdate >= date '1995-09-01' AND l_shipdate < date '1995-10-01'"""),
    ("w15", "a CTE read twice, a scalar subquery over it", """
WITH revenue (supplier_no, total_revenue) AS (
    SELECT l_suppkey, sum(l_extendedprice * (1 - l_discount)) FROM lineitem
    WHERE l_shipdate >= date '1996-01-01' AND l_shipdate < date '1996-04-01' GROUP BY l_suppkey)
SELECT s_suppkey, s_name, s_address, s_phone, total_revenue
FROM supplier, revenue
WHERE s_suppkey = supplier_no AND total_revenue = (SELECT max(total_revenue) FROM revenue)
ORDER BY s_suppkey"""),
    ("w16", "NOT IN subquery, count(DISTINCT)", """
SELECT p_brand, p_type, p_size, count(DISTINCT ps_suppkey) AS supplier_cnt
FROM partsupp, part
WHERE p_partkey = ps_partkey AND p_brand <> 'Brand#45' AND p_type NOT LIKE 'MEDIUM POLISHED%'
  AND p_size IN (49, 14, 23, 45, 19, 3, 36, 9)
  AND ps_suppkey NOT IN (SELECT s_suppkey FROM supplier WHERE s_comment LIKE '%Customer%Complaints%')
GROUP BY p_brand, p_type, p_size ORDER BY supplier_cnt DESC, p_brand, p_type, p_size"""),
    ("w17", "correlated scalar subquery with unqualified outer key (issue 16)", """
SELECT sum(l_extendedprice) / 7.0 AS avg_yearly FROM lineitem, part
WHERE p_partkey = l_partkey AND p_brand = 'Brand#23' AND p_container = 'MED BOX'
  AND l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)"""),
    ("w18", "IN over a grouped subquery with HAVING", """
SELECT c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity) AS qty
FROM customer, orders, lineitem
WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey HAVING sum(l_quantity) > 300)
  AND c_custkey = o_custkey AND o_orderkey = l_orderkey
GROUP BY c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice ORDER BY o_totalprice DESC, o_orderdate LIMIT 100"""),
    ("w19", "OR of conjunctions over two tables", """
SELECT sum(l_extendedprice * (1 - l_discount)) AS revenue FROM lineitem, part
WHERE (p_partkey = l_partkey AND p_brand = 'Brand#12' AND p_container IN ('SM CASE', 'SM BOX')
       AND l_quantity BETWEEN 1 AND 11 AND p_size BETWEEN 1 AND 5 AND l_shipmode IN ('AIR', 'AIR REG'))
   OR (p_partkey = l_partkey AND p_brand = 'Brand#23' AND p_container IN ('MED BAG', 'MED BOX')
       AND l_quantity BETWEEN 10 AND 20 AND p_size BETWEEN 1 AND 10 AND l_shipinstruct = 'DELIVER IN PERSON')"""),
    ("w20", "nested IN subqueries, a correlated one with unqualified outer keys", """
SELECT s_name, s_address FROM supplier, nation
WHERE s_suppkey IN (SELECT ps_suppkey FROM partsupp
                    WHERE ps_partkey IN (SELECT p_partkey FROM part WHERE p_name LIKE 'forest%')
                      AND ps_availqty > (SELECT 0.5 * sum(l_quantity) FROM lineitem
                                         WHERE l_partkey = ps_partkey AND l_suppkey = ps_suppkey
                                           AND l_shipdate >= date '1994-01-01'))
  AND s_nationkey = n_nationkey AND n_name = 'CANADA'
ORDER BY s_name"""),
    ("w21", "EXISTS and NOT EXISTS on aliases of one table", """
SELECT s_name, count(*) AS numwait FROM supplier, lineitem l1, orders, nation
WHERE s_suppkey = l1.l_suppkey AND o_orderkey = l1.l_orderkey AND o_orderstatus = 'F'
  AND l1.l_receiptdate > l1.l_commitdate
  AND EXISTS (SELECT * FROM lineitem l2 WHERE l2.l_orderkey = l1.l_orderkey AND l2.l_suppkey <> l1.l_suppkey)
  AND NOT EXISTS (SELECT * FROM lineitem l3 WHERE l3.l_orderkey = l1.l_orderkey
                  AND l3.l_suppkey <> l1.l_suppkey AND l3.l_receiptdate > l3.l_commitdate)
  AND s_nationkey = n_nationkey AND n_name = 'SAUDI ARABIA'
GROUP BY s_name ORDER BY numwait DESC, s_name LIMIT 100"""),
    ("w22", "GROUP BY an expression alias, NOT EXISTS with unqualified outer key (issue 16)", """
SELECT cntrycode, count(*) AS numcust, sum(c_acctbal) AS totacctbal
FROM (SELECT substring(c_phone FROM 1 FOR 2) AS cntrycode, c_acctbal FROM customer
      WHERE substring(c_phone FROM 1 FOR 2) IN ('13', '31', '23', '29', '30', '18', '17')
        AND c_acctbal > (SELECT avg(c_acctbal) FROM customer WHERE c_acctbal > 0.00
                         AND substring(c_phone FROM 1 FOR 2) IN ('13', '31', '23', '29', '30', '18', '17'))
        AND NOT EXISTS (SELECT * FROM orders WHERE o_custkey = c_custkey)) AS custsale
GROUP BY cntrycode ORDER BY cntrycode"""),
    ("w23", "JOIN ... USING between a derived table and a base table", """
SELECT c.c_name, o_totalprice FROM (SELECT c_custkey AS o_custkey, c_name FROM customer WHERE c_acctbal > 0) c
JOIN orders USING (o_custkey) WHERE o_orderstatus = 'O' ORDER BY o_totalprice DESC LIMIT 10"""),
    ("w24", "JOIN ... USING between two derived tables", """
SELECT n_name, count(*) AS suppliers FROM (SELECT n_nationkey AS nationkey, n_name FROM nation) n
JOIN (SELECT s_nationkey AS nationkey, s_suppkey FROM supplier) s USING (nationkey)
GROUP BY n_name ORDER BY suppliers DESC"""),
    ("w25", "NATURAL JOIN of a base table and a derived table renaming its key", """
SELECT c_name, o_orderdate FROM orders NATURAL JOIN (SELECT c_custkey AS o_custkey, c_name FROM customer) c
WHERE o_orderdate > date '1998-01-01'"""),
    ("w26", "DISTINCT ON and ORDER BY an output alias (issue 16)", """
SELECT DISTINCT ON (cust) o.o_custkey AS cust, o.o_orderdate, l.l_extendedprice
FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey
ORDER BY cust, o.o_orderdate DESC"""),
    ("w27", "GROUP BY a name that is both an input column and an alias (issue 16)", """
SELECT upper(n_name) AS n_name, count(*) AS suppliers FROM nation JOIN supplier ON s_nationkey = n_nationkey
GROUP BY n_name ORDER BY suppliers DESC"""),
    ("w28", "ORDER BY an output column over several tables (issue 16)", """
SELECT o.o_orderdate, sum(l.l_quantity) AS qty FROM orders o, lineitem l, customer c
WHERE l.l_orderkey = o.o_orderkey AND c.c_custkey = o.o_custkey AND c.c_mktsegment = 'BUILDING'
GROUP BY o.o_orderdate ORDER BY o_orderdate"""),
    ("w29", "LATERAL subquery correlated with unqualified outer key", """
SELECT c_name, last.o_orderdate FROM customer
CROSS JOIN LATERAL (SELECT o_orderdate FROM orders WHERE o_custkey = c_custkey ORDER BY o_orderdate DESC LIMIT 1) AS last
WHERE c_mktsegment = 'AUTOMOBILE'"""),
    ("w30", "UNION with ORDER BY an output name", """
SELECT s_name AS name, s_acctbal AS bal FROM supplier WHERE s_acctbal > 9000
UNION ALL
SELECT c_name, c_acctbal FROM customer WHERE c_acctbal > 9000
ORDER BY bal DESC, name"""),
    ("w31", "window functions partitioned by an input column, filtered in an outer query", """
SELECT o_custkey, o_orderkey, rnk FROM (
  SELECT o_custkey, o_orderkey, rank() OVER (PARTITION BY o_custkey ORDER BY o_totalprice DESC) AS rnk
  FROM orders WHERE o_orderstatus = 'F') ranked
WHERE rnk <= 3 ORDER BY o_custkey, rnk"""),
    ("w32", "GROUP BY ROLLUP and positional ORDER BY", """
SELECT r_name, n_name, sum(c_acctbal) AS bal FROM region JOIN nation ON n_regionkey = r_regionkey
JOIN customer ON c_nationkey = n_nationkey GROUP BY ROLLUP (r_name, n_name) ORDER BY 1, 2"""),
    ("w33", "correlated scalar subquery in the SELECT list", """
SELECT p_partkey, p_name, (SELECT count(*) FROM partsupp WHERE ps_partkey = p_partkey AND ps_availqty > 100) AS suppliers
FROM part WHERE p_size > 40"""),
    ("w34", "a CTE with a column list joined twice", """
WITH spend (cust, total) AS (SELECT o_custkey, sum(o_totalprice) FROM orders GROUP BY o_custkey)
SELECT a.cust, a.total, c_name FROM spend a JOIN customer ON c_custkey = a.cust
WHERE a.total > (SELECT avg(total) FROM spend)"""),
    ("w35", "row-value IN and a HAVING on an aggregate", """
SELECT l_orderkey, count(*) AS n FROM lineitem WHERE (l_partkey, l_suppkey) IN (SELECT ps_partkey, ps_suppkey FROM partsupp WHERE ps_availqty < 10)
GROUP BY l_orderkey HAVING count(*) > 2"""),
    ("w36", "GROUP BY an alias of an expression over two tables", """
SELECT extract(year FROM o_orderdate) AS yr, n_name, count(*) AS n FROM orders, customer, nation
WHERE o_custkey = c_custkey AND c_nationkey = n_nationkey GROUP BY yr, n_name ORDER BY yr"""),
]
