"""server_sql.py: the server's SQL statements, read from server/routes.c, as pgbench scripts.

pgbench then runs exactly the text the server prepares (adjacent C string literals joined,
$1 replaced by a pgbench variable), so the two can never drift apart.

    python3 scripts/bench/server_sql.py OUT_DIR   writes mix.sql, category.sql, product.sql,
                                                   report.sql, report_rollup.sql, mix_rollup.sql,
                                                   category_reference.sql, report_reference.sql,
                                                   mix_reference.sql
"""

import os
import re
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROUTES_C = os.path.join(REPO_ROOT, "server", "routes.c")


def _c_literals(text):
    """Joins the C string literals of text (adjacent literals concatenate), expanding macros
    named in MACROS below."""
    return "".join(bytes(m, "utf-8").decode("unicode_escape")
                   for m in re.findall(r'"((?:[^"\\]|\\.)*)"', text))


def statements(path=ROUTES_C):
    """{name: sql} for every {"name", "sql..."} entry of STATEMENTS_LIVE, plus report_rollup.
    Raises ValueError when routes.c no longer has the expected shape."""
    source = open(path, encoding="utf-8").read()
    macros = dict(re.findall(r'#define\s+(\w+)\s+("(?:[^"\\]|\\.)*")', source))

    def expand(text):
        for name, literal in macros.items():
            text = re.sub(rf"\b{name}\b", literal, text)
        return text

    table = re.search(r"STATEMENTS_LIVE\[ST_COUNT\]\s*=\s*\{(.*?)\n\};", source, re.S)
    rollup = re.search(r"REPORT_ROLLUP_SQL\[\]\s*=\s*(.*?);", source, re.S)
    if not table or not rollup:
        raise ValueError(f"{path}: STATEMENTS_LIVE or REPORT_ROLLUP_SQL not found")
    found = {}
    body = re.sub(r"/\*.*?\*/", "", table.group(1), flags=re.S)
    for entry in re.findall(r"\{\s*(\"\w+\")\s*,(.*?)\}", body, re.S):
        found[_c_literals(entry[0])] = _c_literals(expand(entry[1]))
    found["report_rollup"] = _c_literals(expand(rollup.group(1)))
    for name in ("list_category", "product", "report", "report_rollup"):
        if name not in found:
            raise ValueError(f"{path}: statement {name} not found")
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
