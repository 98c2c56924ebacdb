"""test_db.py: catalog-db against a real PostgreSQL: schema, seed contents, idempotence,
concurrent seeders, refusal of partial data, no partial seed left by a killed seeder, status
words and exit codes, and UTC timestamps."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

suite = harness.Suite("test_db")
PRODUCTS, ORDERS = 300, 5000
SMALL = {"SEED_PRODUCTS": str(PRODUCTS), "SEED_ORDERS": str(ORDERS),
         "DB_WAIT_TRIES": "3", "DB_WAIT_INTERVAL_MS": "200"}
CATEGORIES = {"electronics", "clothing", "books", "home", "sports"}
STATUSES = {"pending", "processing", "shipped", "delivered"}


def env_for(name, **extra):
    """DB_* for database `name` with the small seed sizes, then extra on top."""
    env = dict(harness.db_env(name), **SMALL)
    env.update(extra)
    return env


def counts(db):
    products, orders = harness.psql(
        "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM orders)", db).split("|")
    return int(products), int(orders)


def output(proc):
    return (proc.stdout + proc.stderr).strip()


def test_command_line():
    proc = harness.catalog_db("--help")
    suite.check("--help exits 0 and names every command",
                proc.returncode == 0 and all(c in proc.stdout for c in
                                             ("wait", "migrate", "seed", "status")),
                output(proc))
    proc = harness.catalog_db("frobnicate")
    suite.check("an unknown command exits non-zero naming it",
                proc.returncode != 0 and "frobnicate" in proc.stderr, output(proc))
    proc = harness.catalog_db("seed", env_for("test_db_badenv", SEED_ORDERS="12abc"))
    suite.check("a bad SEED_ORDERS stops it with a message naming the variable",
                proc.returncode != 0 and "SEED_ORDERS" in proc.stderr, output(proc))


def test_wait():
    proc = harness.catalog_db("wait", env_for("postgres"))
    suite.check("wait exits 0 when PostgreSQL is up", proc.returncode == 0, output(proc))
    closed = env_for("postgres", DB_PORT=str(harness.free_port()), DB_WAIT_TRIES="2",
                     DB_WAIT_INTERVAL_MS="100")
    start = time.monotonic()
    proc = harness.catalog_db("wait", closed)
    suite.check("wait exits 1 after DB_WAIT_TRIES attempts on a closed port",
                proc.returncode == 1 and "2 attempts" in proc.stderr, output(proc))
    suite.check("wait gives up quickly with small settings", time.monotonic() - start < 10)


def test_migrate():
    db = "test_db_migrate"
    harness.drop_db(db)
    first = harness.catalog_db("migrate", env_for(db))
    second = harness.catalog_db("migrate", env_for(db))
    suite.check("migrate creates the missing database and the schema", first.returncode == 0,
                output(first))
    suite.check("migrate a second time is fine", second.returncode == 0, output(second))
    columns = harness.psql(
        "SELECT table_name, column_name, data_type, coalesce(character_maximum_length, 0), "
        "is_nullable, coalesce(column_default, '') FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name IN ('products', 'orders') "
        "ORDER BY table_name, ordinal_position", db).splitlines()
    want = [
        "orders|id|integer|0|NO|nextval('orders_id_seq'::regclass)",
        "orders|product_id|integer|0|NO|",
        "orders|quantity|integer|0|NO|",
        "orders|total_cents|integer|0|NO|",
        "orders|status|character varying|50|NO|'pending'::character varying",
        "orders|created_at|timestamp without time zone|0|NO|now()",
        "products|id|integer|0|NO|nextval('products_id_seq'::regclass)",
        "products|name|character varying|255|NO|",
        "products|category|character varying|100|NO|",
        "products|price_cents|integer|0|NO|",
        "products|stock|integer|0|NO|0",
        "products|description|text|0|YES|",
        "products|created_at|timestamp without time zone|0|NO|now()",
    ]
    suite.equal("the tables have the contract's columns", columns, want)
    check_keys_and_indexes(db, "after migrate")


def check_keys_and_indexes(db, when):
    indexes = harness.psql(
        "SELECT tablename || ':' || regexp_replace(indexdef, '.*USING btree ', '') "
        "FROM pg_indexes WHERE schemaname = 'public'", db).splitlines()
    for want in ("products:(id)", "products:(category)", "orders:(id)", "orders:(product_id)",
                 "orders:(created_at)"):
        suite.check(f"index {want} exists {when}", want in indexes, f"indexes: {indexes}")
    foreign = harness.psql(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'orders'::regclass AND contype = 'f'", db)
    suite.equal(f"orders.product_id references products {when}", foreign,
                "FOREIGN KEY (product_id) REFERENCES products(id)")


def test_seed_contents():
    db = "test_db_seed"
    harness.drop_db(db)
    # A database whose default time zone is not UTC: catalog-db must still write UTC.
    harness.psql(f'CREATE DATABASE "{db}"')
    harness.psql(f"ALTER DATABASE \"{db}\" SET timezone = 'America/New_York'")
    proc = harness.catalog_db("seed", env_for(db))
    suite.check("seed of a small catalog exits 0", proc.returncode == 0, output(proc))
    suite.check("seed prints its time",
                f"seeded {PRODUCTS} products and {ORDERS} orders in " in proc.stdout
                and proc.stdout.rstrip().endswith(" s"), proc.stdout)
    suite.equal("exact product and order counts", counts(db), (PRODUCTS, ORDERS))

    rows = [line.split("|", 5) for line in harness.psql(
        "SELECT id, name, category, price_cents, stock, description FROM products ORDER BY id",
        db).splitlines()]
    suite.equal("product ids are 1..SEED_PRODUCTS", [int(r[0]) for r in rows],
                list(range(1, PRODUCTS + 1)))
    bad_names = [r for r in rows if r[1] != f"Product {r[0]}"]
    suite.check("product i is named 'Product i'", not bad_names, f"e.g. {bad_names[:1]}")
    lorem = "Lorem ipsum dolor sit amet. " * 5
    bad_descriptions = [r for r in rows if r[5] != f"Description for product {r[0]}. {lorem}"]
    suite.check("every description is the reference's text", not bad_descriptions,
                f"e.g. {bad_descriptions[:1]}")
    suite.equal("categories are exactly the five", {r[2] for r in rows}, CATEGORIES)
    prices = [int(r[3]) for r in rows]
    stocks = [int(r[4]) for r in rows]
    suite.check("prices lie in 99..50098 and spread over the range",
                min(prices) >= 99 and max(prices) <= 50098 and min(prices) < 5000
                and max(prices) > 45000, f"min {min(prices)} max {max(prices)}")
    suite.check("stock lies in 0..499 and spreads over the range",
                min(stocks) >= 0 and max(stocks) <= 499 and min(stocks) < 50
                and max(stocks) > 450, f"min {min(stocks)} max {max(stocks)}")

    summary = harness.psql(
        "SELECT min(product_id), max(product_id), count(DISTINCT product_id), "
        "string_agg(DISTINCT quantity::text, ',' ORDER BY quantity::text), "
        "min(total_cents), max(total_cents), "
        "string_agg(DISTINCT status, ',' ORDER BY status), count(DISTINCT created_at) "
        "FROM orders", db).split("|")
    suite.check("order product_id lies in 1..SEED_PRODUCTS",
                int(summary[0]) >= 1 and int(summary[1]) <= PRODUCTS
                and int(summary[2]) > PRODUCTS * 0.9, f"{summary[:3]}")
    suite.equal("order quantities are 1..5", summary[3], "1,2,3,4,5")
    suite.check("order totals lie in 99..100098 and spread over the range",
                int(summary[4]) >= 99 and int(summary[5]) <= 100098 and int(summary[4]) < 1000
                and int(summary[5]) > 99000, f"min {summary[4]} max {summary[5]}")
    suite.equal("order statuses are exactly the four", set(summary[6].split(",")), STATUSES)

    # created_at holds UTC wall-clock time, whatever the database's own time zone says.
    skew = harness.psql(
        "SELECT max(abs(extract(epoch FROM created_at - (now() AT TIME ZONE 'UTC')))) "
        "FROM (SELECT created_at FROM orders UNION ALL SELECT created_at FROM products) t", db)
    suite.check("orders and products carry UTC timestamps (within 10 minutes of UTC now)",
                float(skew) < 600, f"largest distance from UTC now: {skew} s")

    new_id = harness.psql("BEGIN; INSERT INTO orders (product_id, quantity, total_cents) "
                          "VALUES (1, 1, 99) RETURNING id; ROLLBACK", db)
    suite.equal("the orders id sequence continues after the seed", new_id, str(ORDERS + 1))
    new_id = harness.psql("BEGIN; INSERT INTO products (name, category, price_cents) "
                          "VALUES ('x', 'books', 1) RETURNING id; ROLLBACK", db)
    suite.equal("the products id sequence continues after the seed", new_id, str(PRODUCTS + 1))
    check_keys_and_indexes(db, "after seed")

    proc = harness.catalog_db("seed", env_for(db))
    suite.check("seeding again exits 0 and says it skipped",
                proc.returncode == 0 and "already seeded" in proc.stdout, output(proc))
    suite.equal("seeding again changes nothing", counts(db), (PRODUCTS, ORDERS))

    status = harness.catalog_db("status", env_for(db))
    suite.equal("status on a complete seed", (status.stdout, status.returncode),
                (f"Orders in DB: {ORDERS} ✅ Ready\n", 0))
    status = harness.catalog_db("status", env_for(db, SEED_ORDERS=str(ORDERS + 1)))
    suite.equal("status below SEED_ORDERS", (status.stdout, status.returncode),
                (f"Orders in DB: {ORDERS} ⏳ Still seeding...\n", 1))


def test_concurrent_seeders():
    db = "test_db_race"
    harness.drop_db(db)
    env = dict(os.environ, **env_for(db))
    seeders = [subprocess.Popen([harness.binary("catalog-db"), "seed"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in seeders]
    suite.check("two seeders at once both exit 0", all(r[0] == 0 for r in results),
                f"{results}")
    seeded = sum(1 for r in results if f"seeded {PRODUCTS} products" in r[1])
    suite.equal("exactly one of them seeded", seeded, 1)
    suite.equal("two seeders at once give one seed", counts(db), (PRODUCTS, ORDERS))


def test_partial_data_refused():
    db = "test_db_partial"
    harness.drop_db(db)
    proc = harness.catalog_db("migrate", env_for(db))
    suite.check("migrate for the partial-data test", proc.returncode == 0, output(proc))
    harness.psql("INSERT INTO products (name, category, price_cents, stock) "
                 "SELECT 'Product ' || i, 'books', 100, 1 FROM generate_series(1, 10) i", db)
    proc = harness.catalog_db("seed", env_for(db))
    suite.check("seed refuses products without orders, with a clear message",
                proc.returncode != 0 and "refusing to seed" in proc.stderr, output(proc))
    suite.equal("the refused seed added nothing", counts(db), (10, 0))
    status = harness.catalog_db("status", env_for(db))
    suite.equal("status with products but no orders", (status.stdout, status.returncode),
                ("Orders in DB: 0 ⏳ Still seeding...\n", 1))


def wait_for_no_sessions(db, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if harness.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'") == "0":
            return True
        time.sleep(0.1)
    return False


def test_killed_seeder_leaves_nothing():
    db = "test_db_killed"
    harness.drop_db(db)
    env = dict(os.environ, **env_for(db, SEED_ORDERS="3000000"))
    seeder = subprocess.Popen([harness.binary("catalog-db"), "seed"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = seeder.stdout.readline()
    while line and "seeding" not in line:
        line = seeder.stdout.readline()
    time.sleep(0.3)
    seeder.send_signal(signal.SIGKILL)
    seeder.wait()
    seeder.stdout.close()
    suite.check("the seeder was killed while seeding", "seeding" in line, line)
    # The server rolls the transaction back once it notices the client is gone.
    suite.check("the killed seeder's session ends", wait_for_no_sessions(db))
    suite.equal("a killed seeder leaves no partial seed", counts(db), (0, 0))
    proc = harness.catalog_db("seed", env_for(db))
    suite.check("a seed after the killed one succeeds", proc.returncode == 0, output(proc))
    suite.equal("and gives the exact counts", counts(db), (PRODUCTS, ORDERS))


def test_status_not_ready():
    closed = env_for("postgres", DB_PORT=str(harness.free_port()))
    start = time.monotonic()
    status = harness.catalog_db("status", closed, timeout=30)
    suite.equal("status when PostgreSQL is unreachable", (status.stdout, status.returncode),
                ("❌ Database not ready yet.\n", 2))
    suite.check("status does not retry", time.monotonic() - start < 5)
    harness.drop_db("test_db_missing")
    status = harness.catalog_db("status", env_for("test_db_missing"))
    suite.equal("status when the database does not exist", (status.stdout, status.returncode),
                ("❌ Database not ready yet.\n", 2))
    db = "test_db_notables"
    harness.drop_db(db)
    harness.psql(f'CREATE DATABASE "{db}"')
    status = harness.catalog_db("status", env_for(db))
    suite.equal("status when the tables do not exist", (status.stdout, status.returncode),
                ("❌ Database not ready yet.\n", 2))
    harness.catalog_db("migrate", env_for(db))
    status = harness.catalog_db("status", env_for(db))
    suite.equal("status on empty tables", (status.stdout, status.returncode),
                ("Orders in DB: 0 ⏳ Still seeding...\n", 1))


def test_cluster_restart():
    harness.cluster_stop()
    status = harness.catalog_db("status", env_for("test_db_harness"))
    suite.equal("status while the cluster is stopped", (status.stdout, status.returncode),
                ("❌ Database not ready yet.\n", 2))
    env = env_for("test_db_harness", DB_WAIT_TRIES="50", DB_WAIT_INTERVAL_MS="100")
    waiter = subprocess.Popen([harness.binary("catalog-db"), "wait"],
                              env=dict(os.environ, **env), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    harness.cluster_start()
    suite.equal("wait started during the outage succeeds once the cluster is back",
                waiter.wait(timeout=30), 0)
    waiter.communicate()
    suite.equal("the data survives the restart", counts("test_db_harness"), (50, 400))


def test_make_db():
    env = harness.make_db("test_db_harness", products=50, orders=400)
    suite.equal("harness.make_db seeds the sizes asked for", counts("test_db_harness"),
                (50, 400))
    suite.equal("harness.make_db returns the server's DB_NAME", env["DB_NAME"],
                "test_db_harness")


for test in (test_command_line, test_wait, test_migrate, test_seed_contents,
             test_concurrent_seeders, test_partial_data_refused,
             test_killed_seeder_leaves_nothing, test_status_not_ready, test_make_db,
             test_cluster_restart):
    try:
        test()
    except Exception as error:  # one broken step must not hide the others' results
        suite.check(f"{test.__name__} ran to the end", False, repr(error))
for name in ("test_db_badenv", "test_db_migrate", "test_db_seed", "test_db_race",
             "test_db_partial", "test_db_killed", "test_db_missing", "test_db_notables",
             "test_db_harness"):
    harness.drop_db(name)
suite.finish()
