"""test_rollup.py: REPORT_MODE=rollup answers /report exactly like the live aggregate, on the
same database, after the seed, concurrent POST /orders, concurrent direct SQL inserts, updates,
deletes and TRUNCATE; catalog-db migrate installs product_sales idempotently and back-fills it."""

import json
import os
import random
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_rollup"
PRODUCTS = 60  # few products: concurrent orders collide on the same product_sales rows
THREADS = 8
ORDERS_PER_THREAD = 40

suite = harness.Suite(NAME)
rng = random.Random(8)


def report(port):
    """GET /report without generated_at (the one field that may differ between two calls)."""
    status, _, data = harness.http(port, "GET", "/report")
    if status != 200:
        return ("status", status, data[:200])
    value = json.loads(data)
    value.pop("generated_at", None)
    return value


def product_sales_drift():
    """Rows where product_sales differs from the orders' own per-product totals."""
    return harness.psql(
        "SELECT coalesce(s.product_id, o.product_id), s.orders, s.revenue_cents, o.n, o.revenue"
        " FROM product_sales s FULL JOIN (SELECT product_id, count(*) AS n,"
        " sum(total_cents) AS revenue FROM orders GROUP BY product_id) o"
        " ON o.product_id = s.product_id"
        " WHERE coalesce(s.orders, 0) <> coalesce(o.n, 0)"
        " OR coalesce(s.revenue_cents, 0) <> coalesce(o.revenue, 0)", db=NAME)


def same_reports(label):
    """Checks the live and the rollup server give the same /report, and that product_sales
    equals a GROUP BY over orders.  Returns the live report."""
    live_report = report(live.port)
    rollup_report = report(rollup.port)
    suite.equal(f"{label}: rollup /report equals live /report", rollup_report, live_report)
    suite.equal(f"{label}: product_sales equals the orders' per-product totals",
                product_sales_drift(), "")
    return live_report


def post_orders(thread_index, results):
    """One client thread: POST /orders alternately to both servers, mostly to the same few
    products.  Appends (status, total_cents or body) per order to results."""
    local = random.Random(thread_index)
    for i in range(ORDERS_PER_THREAD):
        port = live.port if i % 2 else rollup.port
        product_id = local.choice([1, 2, 3]) if local.random() < 0.6 else local.randint(1, PRODUCTS)
        try:
            status, _, data = harness.http(port, "POST", "/orders",
                                           {"product_id": product_id,
                                            "quantity": local.randint(1, 5)})
            results.append((status, data))
        except OSError as error:
            results.append(("error", str(error)))


def sql_writer(thread_index, errors):
    """One psql session: many small transactions inserting several orders each, products in a
    random order (so two sessions lock product_sales rows in different orders: the trigger must
    sort them or deadlock), plus updates and deletes of random orders."""
    local = random.Random(100 + thread_index)
    statements = []
    for _ in range(30):
        rows = ", ".join(f"({local.randint(1, PRODUCTS)}, {local.randint(1, 5)}, "
                         f"{local.randint(99, 100098)})" for _ in range(local.randint(1, 6)))
        statements.append(f"INSERT INTO orders (product_id, quantity, total_cents) VALUES {rows};")
        low = local.randint(1, 3000)
        statements.append(f"UPDATE orders SET total_cents = total_cents + {local.randint(1, 50)}"
                          f" WHERE id BETWEEN {low} AND {low + 3};")
        statements.append(f"UPDATE orders SET product_id = {local.randint(1, PRODUCTS)}"
                          f" WHERE id = {local.randint(1, 3000)};")
        statements.append(f"DELETE FROM orders WHERE id = {local.randint(1, 3000)};")
    env = dict(os.environ)
    env.update({"PGHOST": env.get("PGHOST", env.get("DB_HOST", "127.0.0.1")),
                "PGPORT": env.get("PGPORT", env.get("DB_PORT", "5432"))})
    proc = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", NAME],
                          input="\n".join(statements), env=env, capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        errors.append(proc.stderr.strip()[:300])


env = harness.make_db(NAME, products=PRODUCTS, orders=3000)
live = harness.Server(dict(env, REPORT_MODE="live", DB_POOL_MAX="4")).start()
rollup = harness.Server(dict(env, REPORT_MODE="rollup", DB_POOL_MAX="4")).start()
try:
    # 1. The seed (bulk load with the trigger paused, then back-filled) is exact.
    seeded = same_reports("after the seed")
    suite.equal("after the seed: total_orders is the seeded count", seeded.get("total_orders"),
                3000)

    # 2. The test can fail: the rollup server really reads product_sales.
    harness.psql("UPDATE product_sales SET orders = orders + 1000 WHERE product_id = 1", db=NAME)
    suite.check("a tampered product_sales shows in the rollup report only",
                report(rollup.port) != report(live.port))
    harness.psql("SELECT product_sales_rebuild()", db=NAME)
    same_reports("after product_sales_rebuild()")

    # 3. Concurrent POST /orders from several threads to both servers, at the same time as
    #    concurrent direct SQL inserts, updates and deletes.
    post_results, sql_errors = [], []
    threads = [threading.Thread(target=post_orders, args=(i, post_results))
               for i in range(THREADS)]
    threads += [threading.Thread(target=sql_writer, args=(i, sql_errors)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = sum(1 for status, _ in post_results if status == 201)
    suite.equal("concurrent POST /orders: every order answered 201", created,
                THREADS * ORDERS_PER_THREAD)
    suite.equal("concurrent SQL writers: no error (no deadlock)", sql_errors, [])
    after = same_reports("after concurrent POST /orders and SQL writes")
    suite.equal("after concurrent writes: total_orders is the count of orders",
                after.get("total_orders"), int(harness.psql("SELECT count(*) FROM orders", db=NAME)))

    # 4. One multi-row statement per kind, random content.
    values = ", ".join(f"({rng.randint(1, PRODUCTS)}, 1, {rng.randint(99, 100098)})"
                       for _ in range(500))
    harness.psql(f"INSERT INTO orders (product_id, quantity, total_cents) VALUES {values}", db=NAME)
    same_reports("after one 500-row INSERT")
    harness.psql("UPDATE orders SET product_id = 1 + (product_id % 7), total_cents = total_cents * 2"
                 " WHERE id % 5 = 0", db=NAME)
    same_reports("after an UPDATE moving orders between products")
    harness.psql("UPDATE orders SET status = 'shipped' WHERE id % 3 = 0", db=NAME)
    same_reports("after an UPDATE of status only")
    harness.psql("DELETE FROM orders WHERE id % 4 = 1", db=NAME)
    same_reports("after a DELETE of a quarter of the orders")
    harness.psql("DELETE FROM orders WHERE product_id = 2", db=NAME)
    same_reports("after deleting every order of one product")

    # 5. A category without orders, and an average on a half cent (1 and 2 cents: $0.02).
    harness.psql("INSERT INTO products (name, category, price_cents) VALUES"
                 " ('Empty', 'garden', 100), ('Half', 'halfcent', 1)", db=NAME)
    harness.psql("INSERT INTO orders (product_id, quantity, total_cents)"
                 " SELECT id, 1, 1 FROM products WHERE category = 'halfcent'", db=NAME)
    harness.psql("INSERT INTO orders (product_id, quantity, total_cents)"
                 " SELECT id, 2, 2 FROM products WHERE category = 'halfcent'", db=NAME)
    edge = same_reports("with an empty category and a half-cent average")
    by_category = {c["category"]: c for c in edge.get("by_category", [])}
    suite.equal("the category without orders", by_category.get("garden"),
                {"category": "garden", "orders": 0, "revenue": "$0.00", "avg_order": "$0.00"})
    suite.equal("the half-cent average rounds half up",
                by_category.get("halfcent", {}).get("avg_order"), "$0.02")

    # 6. In a transaction: the report never sees uncommitted rollup changes (same snapshot).
    harness.psql("BEGIN; INSERT INTO orders (product_id, quantity, total_cents) VALUES (1, 1, 5);"
                 " ROLLBACK", db=NAME)
    same_reports("after a rolled-back insert")

    # 7. catalog-db migrate: idempotent, and back-fills when its triggers were missing.
    before = report(rollup.port)
    for attempt in (1, 2):
        proc = harness.catalog_db("migrate", env)
        suite.equal(f"catalog-db migrate #{attempt} exits 0", proc.returncode, 0)
    suite.equal("migrate twice changes nothing", report(rollup.port), before)
    harness.psql("DROP TRIGGER orders_product_sales_insert ON orders;"
                 " INSERT INTO orders (product_id, quantity, total_cents) VALUES (3, 1, 777);"
                 " UPDATE product_sales SET revenue_cents = 0", db=NAME)
    suite.check("without its trigger product_sales drifts", product_sales_drift() != "")
    proc = harness.catalog_db("migrate", env)
    suite.equal("catalog-db migrate re-installs the trigger: exit 0", proc.returncode, 0)
    same_reports("after migrate back-filled product_sales")
    harness.psql("INSERT INTO orders (product_id, quantity, total_cents) VALUES (3, 1, 778)",
                 db=NAME)
    same_reports("the re-installed trigger keeps it exact")

    # 8. TRUNCATE empties the rollup too.
    harness.psql("TRUNCATE orders", db=NAME)
    emptied = same_reports("after TRUNCATE orders")
    suite.equal("after TRUNCATE: no orders", emptied.get("total_orders"), 0)
finally:
    live.stop()
    rollup.stop()
    harness.drop_db(NAME)

suite.finish()
