"""server_sql.py: the server's SQL statements, read from sql/statements.sql, as pgbench scripts.

pgbench then runs exactly the text the server prepares (the file is embedded into the server,
which joins each statement's lines the same way), so the two can never drift apart.

    python3 scripts/bench/server_sql.py OUT_DIR   writes mix.sql, category.sql, product.sql,
                                                   report.sql, report_rollup.sql, mix_rollup.sql,
                                                   category_reference.sql, report_reference.sql,
                                                   mix_reference.sql
"""

import os
import re
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATEMENTS_SQL = os.path.join(REPO_ROOT, "sql", "statements.sql")


def statements(path=STATEMENTS_SQL):
    """{name: sql} for every statement of sql/statements.sql, read as server/statements.c reads
    it: the lines after `-- name: NAME`, comment lines left out, each stripped, joined with one
    space, the closing ';' dropped.  Raises ValueError when a statement the benchmarks run is
    missing."""
    found, name, lines = {}, None, []

    def close():
        if name is not None:
            found[name] = " ".join(lines).rstrip(";").rstrip()

    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            named = re.match(r"--\s*name:\s*(\w+)$", line)
            if named:
                close()
                name, lines = named.group(1), []
            elif line and not line.startswith("--") and name is not None:
                lines.append(line)
    close()
    for wanted in ("list_category", "product", "report", "report_rollup"):
        if wanted not in found:
            raise ValueError(f"{path}: statement {wanted} not found")
    return found


# The reference's report (the Node original's, and this server's first): every order row joined
# to its product, then grouped by category.  The goals of `make bench` compare against it.
REFERENCE_REPORT = (
    "SELECT p.category, count(o.id), coalesce(sum(o.total_cents), 0),"
    " coalesce(round(avg(o.total_cents)), 0)::bigint"
    " FROM products p LEFT JOIN orders o ON o.product_id = p.id"
    " GROUP BY p.category ORDER BY 3 DESC, 1")


# The reference's category listing: every column of the matching rows, cheapest first (the
# server's own statement leaves out the category, which it knows from the request).
REFERENCE_CATEGORY = (
    "SELECT id, name, category, price_cents, stock, description, created_at"
    " FROM products WHERE category = $1 ORDER BY price_cents, id")


def pgbench_scripts():
    """{file name: pgbench script text}.  The category is the pgbench variable :category
    (pgbench -D category=electronics); the product id is drawn uniformly from 1..:products
    (pgbench -D products=5000)."""
    sql = statements()
    category = sql["list_category"].replace("$1", ":category") + ";\n"
    product = "\\set id random(1, :products)\n" + sql["product"].replace("$1", ":id") + ";\n"
    report = sql["report"] + ";\n"
    report_rollup = sql["report_rollup"] + ";\n"
    reference_report = REFERENCE_REPORT + ";\n"
    reference_category = REFERENCE_CATEGORY.replace("$1", ":category") + ";\n"
    return {
        "category.sql": category,
        "product.sql": product,
        "report.sql": report,
        "report_rollup.sql": report_rollup,
        # The scenario's mix: one of each, in the load test's order.
        "mix.sql": category + product + report,
        "mix_rollup.sql": category + product + report_rollup,
        # The reference's statements: its listing (every column), its report, the lookup.
        "category_reference.sql": reference_category,
        "report_reference.sql": reference_report,
        "mix_reference.sql": reference_category + product + reference_report,
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: server_sql.py OUT_DIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, text in pgbench_scripts().items():
        with open(os.path.join(sys.argv[1], name), "w", encoding="utf-8") as out:
            out.write(text)


if __name__ == "__main__":
    main()
