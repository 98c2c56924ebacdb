"""test_server_routes.py: every route, status and error of docs/api.md "HTTP API" against a small
seed, compared with what psql says; /metrics (promtool, counters, labels); --help and bad config."""

import collections
import decimal
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_routes"
SERVER_ID = "test-7"
PRODUCT_KEYS = ["id", "name", "category", "price_cents", "stock", "description", "created_at"]
ORDER_KEYS = ["id", "product_id", "quantity", "total_cents", "status", "created_at"]
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PSQL_PRODUCT = ("id, name, category, price_cents, stock, description,"
                " to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")

suite = harness.Suite(NAME)
seen = []  # (what, headers) of every response, for the every-response header checks


def request(method, path, body=None, headers=None):
    status, response_headers, data = harness.http(port, method, path, body, headers)
    seen.append((f"{method} {path} -> {status}", response_headers))
    return status, response_headers, data


def request_json(method, path, body=None, headers=None):
    """Returns (status, headers, value parsed keeping key order, raw bytes)."""
    status, response_headers, data = request(method, path, body, headers)
    try:
        value = json.loads(data, object_pairs_hook=collections.OrderedDict)
    except ValueError:
        value = ("NOT JSON", data[:200])
    return status, response_headers, value, data


def psql_rows(sql):
    out = harness.psql(sql, db=NAME)
    return [line.split("|") for line in out.split("\n")] if out else []


def product_from_row(row):
    return collections.OrderedDict(
        [("id", int(row[0])), ("name", row[1]), ("category", row[2]),
         ("price_cents", int(row[3])), ("stock", int(row[4])),
         ("description", row[5] if row[5] != "" else None), ("created_at", row[6])])


def money(cents):
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100}.{cents % 100:02d}"


def order_count():
    return int(harness.psql("SELECT count(*) FROM orders", db=NAME))


def check_error(label, method, path, want_status, want_message=None, body=None, headers=None,
                message_has=None):
    status, response_headers, value, raw = request_json(method, path, body, headers)
    suite.equal(f"{label}: status", status, want_status)
    ok_shape = isinstance(value, dict) and list(value.keys()) == ["error"] and \
        isinstance(value.get("error"), str) and value["error"] != ""
    suite.check(f"{label}: body is {{\"error\": message}}", ok_shape, f"got {raw[:200]!r}")
    if want_message is not None:
        suite.equal(f"{label}: message", value.get("error") if ok_shape else raw, want_message)
    if message_has is not None and ok_shape:
        suite.check(f"{label}: message mentions {message_has!r}",
                    message_has in value["error"].lower(), f"got {value['error']!r}")
    return status, response_headers, value


# ---- --help and configuration (no database needed) -------------------------------------------

def run_server_briefly(env_overrides, args=()):
    env = dict(os.environ)
    env.update({"HOST": "127.0.0.1", "PORT": str(harness.free_port())})
    env.update(env_overrides)
    try:
        return subprocess.run([harness.binary("catalog-server")] + list(args), env=env,
                              capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired as error:
        return subprocess.CompletedProcess(error.cmd, None, "", "(still running after 5 s)")


proc = run_server_briefly({}, ["--help"])
suite.equal("--help exits 0", proc.returncode, 0)
help_text = proc.stdout + proc.stderr
for variable in ["PORT", "HOST", "SERVER_ID", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER",
                 "DB_PASSWORD", "DB_POOL_MAX", "DB_POOL_ACQUIRE_TIMEOUT_MS",
                 "DB_POOL_IDLE_TIMEOUT_MS", "WORKERS", "HTTP_HEADER_TIMEOUT_MS",
                 "HTTP_MAX_BODY_BYTES", "SHUTDOWN_TIMEOUT_MS", "REPORT_MODE"]:
    suite.check(f"--help lists {variable}", variable in help_text, help_text[:300])

for variable, value in [("PORT", "abc"), ("PORT", "70000"), ("DB_POOL_MAX", "0"),
                        ("DB_POOL_MAX", "-3"), ("REPORT_MODE", "x"), ("WORKERS", "two"),
                        ("HTTP_HEADER_TIMEOUT_MS", "1s")]:
    proc = run_server_briefly({variable: value})
    suite.check(f"{variable}={value}: start-up fails", proc.returncode not in (0, None),
                f"exit {proc.returncode}, stderr {proc.stderr[:200]!r}")
    suite.check(f"{variable}={value}: the message names {variable}", variable in proc.stderr,
                f"stderr {proc.stderr[:300]!r}")

# ---- the routes --------------------------------------------------------------------------------

env = harness.make_db(NAME, products=300, orders=3000)
# A category with no orders at all must still appear in /report with $0.00 (left join).
harness.psql("INSERT INTO products (name, category, price_cents, stock, description)"
             " VALUES ('Lonely', 'garden', 1234, 3, NULL)", db=NAME)
product_total = 301

with harness.Server(dict(env, SERVER_ID=SERVER_ID, WORKERS="2")) as server:
    port = server.port

    # /health
    status, headers, value, raw = request_json("GET", "/health")
    suite.equal("GET /health: status", status, 200)
    suite.equal("GET /health: body", raw,
                json.dumps({"status": "ok", "server": SERVER_ID, "products": product_total},
                           separators=(",", ":")).encode())

    # /products: the 100 cheapest, by price then id, every field as in the database
    status, headers, value, raw = request_json("GET", "/products")
    suite.equal("GET /products: status", status, 200)
    want = [product_from_row(r) for r in psql_rows(
        f"SELECT {PSQL_PRODUCT} FROM products ORDER BY price_cents, id LIMIT 100")]
    suite.equal("GET /products: 100 products", len(value) if isinstance(value, list) else value,
                100)
    if isinstance(value, list):
        suite.equal("GET /products: ids in price-then-id order",
                    [p.get("id") for p in value], [p["id"] for p in want])
        suite.equal("GET /products: key order of every object",
                    {tuple(p.keys()) for p in value}, {tuple(PRODUCT_KEYS)})
        suite.equal("GET /products: objects equal the database rows",
                    [dict(p) for p in value], [dict(p) for p in want])
        suite.check("GET /products: created_at is ISO 8601 UTC with ms",
                    all(ISO_MS.match(p.get("created_at", "")) for p in value),
                    f"first {value[0].get('created_at') if value else None!r}")
        suite.check("GET /products: numbers are JSON numbers",
                    all(isinstance(p.get(k), int) for p in value
                        for k in ("id", "price_cents", "stock")), repr(value[:1]))

    # /products?category=electronics: all of that category, sorted
    status, headers, value, raw = request_json("GET", "/products?category=electronics")
    suite.equal("GET /products?category=electronics: status", status, 200)
    want = [product_from_row(r) for r in psql_rows(
        f"SELECT {PSQL_PRODUCT} FROM products WHERE category = 'electronics'"
        " ORDER BY price_cents, id")]
    suite.check("seed has electronics products", len(want) > 20, f"{len(want)} rows")
    suite.equal("GET /products?category=electronics: equals psql, in order",
                [dict(p) for p in value] if isinstance(value, list) else value,
                [dict(p) for p in want])
    status, headers, value, raw = request_json("GET", "/products?category=garden")
    suite.equal("GET /products?category=garden: the NULL description is JSON null",
                value[0].get("description", "missing") if isinstance(value, list) and value
                else value, None)
    # percent-encoded and + in the query are decoded
    status, headers, value, raw = request_json("GET", "/products?category=%65lectronics")
    suite.equal("GET /products?category=%65lectronics: decoded to electronics",
                len(value) if isinstance(value, list) else value, len(want))
    status, headers, value, raw = request_json("GET", "/products?category=toys")
    suite.equal("GET /products?category=toys (unknown): status", status, 200)
    suite.equal("GET /products?category=toys (unknown): body", raw, b"[]")

    # /products/:id
    status, headers, value, raw = request_json("GET", "/products/1")
    suite.equal("GET /products/1: status", status, 200)
    suite.equal("GET /products/1: key order",
                list(value.keys()) if isinstance(value, dict) else value, PRODUCT_KEYS)
    want = product_from_row(psql_rows(f"SELECT {PSQL_PRODUCT} FROM products WHERE id = 1")[0])
    suite.equal("GET /products/1: equals the database row", dict(value), dict(want))
    status, headers, value, raw = request_json("GET", "/products/300")
    suite.equal("GET /products/300: id", value.get("id") if isinstance(value, dict) else value,
                300)
    for bad in ["12abc", "-", "%20", "+", "1.5", "0x10", "2147483648", "99999999999999999999",
                "-2147483649", "1%00"]:
        check_error(f"GET /products/{bad}", "GET", f"/products/{bad}", 400, "Invalid product ID")
    check_error("GET /products/999999 (missing)", "GET", "/products/999999", 404,
                "Product not found")
    check_error("GET /products/2147483647 (largest id, missing)", "GET", "/products/2147483647",
                404, "Product not found")

    # Product rows come from PostgreSQL in binary (integers, timestamp) and are written as the
    # text results used to be written, byte for byte: every field's edge cases, compared
    # with the bytes the text-format server wrote for the same rows.
    harness.psql(
        "INSERT INTO products (id, name, category, price_cents, stock, description, created_at)"
        " VALUES"
        " (900001, 'Quote \" back \\ slash', 'edge', 0, -5,"
        "  E'tab\\there\\nnew\\u0001 ctl \\u007f del', '1999-12-31 23:59:59.9995'),"
        " (900002, 'Ünïcødé ☃ 😀', 'edge', 2147483647, -2147483648, NULL,"
        "  '2000-01-01 00:00:00'),"
        " (900003, 'epoch', 'edge', 1, 0, '', '1970-01-01 00:00:00.000001'),"
        " (900004, 'old', 'edge', 2, 10, 'x', '1900-02-28 12:34:56.789'),"
        " (900005, 'inf', 'edge', 3, 10, 'x', 'infinity'),"
        " (900006, 'ninf', 'edge', 4, 10, 'x', '-infinity'),"
        " (900007, 'y1', 'edge', 5, 10, 'x', '0001-01-01 00:00:00'),"
        " (900008, 'y9999', 'edge', 6, 10, 'x', '9999-12-31 23:59:59.999999'),"
        " (900009, 'fraction', 'edge', 7, 10, 'x', '2026-03-04 05:06:07.1')", db=NAME)
    edge_rows = [
        '{"id":900001,"name":"Quote \\" back \\\\ slash","category":"edge","price_cents":0,'
        '"stock":-5,"description":"tab\\there\\nnew\\u0001 ctl \\u007f del",'
        '"created_at":"1999-12-31T23:59:59.999Z"}',
        '{"id":900003,"name":"epoch","category":"edge","price_cents":1,"stock":0,'
        '"description":"","created_at":"1970-01-01T00:00:00.000Z"}',
        '{"id":900004,"name":"old","category":"edge","price_cents":2,"stock":10,'
        '"description":"x","created_at":"1900-02-28T12:34:56.789Z"}',
        '{"id":900005,"name":"inf","category":"edge","price_cents":3,"stock":10,'
        '"description":"x","created_at":"infinity"}',
        '{"id":900006,"name":"ninf","category":"edge","price_cents":4,"stock":10,'
        '"description":"x","created_at":"-infinity"}',
        '{"id":900007,"name":"y1","category":"edge","price_cents":5,"stock":10,'
        '"description":"x","created_at":"0001-01-01T00:00:00.000Z"}',
        '{"id":900008,"name":"y9999","category":"edge","price_cents":6,"stock":10,'
        '"description":"x","created_at":"9999-12-31T23:59:59.999Z"}',
        '{"id":900009,"name":"fraction","category":"edge","price_cents":7,"stock":10,'
        '"description":"x","created_at":"2026-03-04T05:06:07.100Z"}',
        '{"id":900002,"name":"Ünïcødé ☃ 😀","category":"edge","price_cents":2147483647,'
        '"stock":-2147483648,"description":null,"created_at":"2000-01-01T00:00:00.000Z"}',
    ]
    status, headers, data = request("GET", "/products?category=edge")
    suite.equal("GET /products?category=edge: the bytes of the text-format rendering",
                data.decode("utf-8", "replace"), "[" + ",".join(edge_rows) + "]")
    status, headers, data = request("GET", "/products/900002")
    suite.equal("GET /products/900002: the bytes of the text-format rendering",
                data.decode("utf-8", "replace"), edge_rows[-1])
    harness.psql("DELETE FROM products WHERE category = 'edge'", db=NAME)

    # A category listing writes the category asked for in each row (PostgreSQL does not send
    # it): a category that needs escaping, in UTF-8, comes out as the stored bytes escaped,
    # the same bytes /products/:id writes for the row.
    harness.psql(
        "INSERT INTO products (id, name, category, price_cents, stock, description, created_at)"
        " VALUES (900011, 'a', 'Küche \"x\" \\ ☃', 1, 1, 'd', '2026-01-02 03:04:05'),"
        " (900012, 'b', 'Küche \"x\" \\ ☃', 2, 1, NULL, '2026-01-02 03:04:05')", db=NAME)
    category_json = '"Küche \\"x\\" \\\\ ☃"'
    status, headers, data = request(
        "GET", "/products?category=K%C3%BCche%20%22x%22%20%5C%20%E2%98%83")
    suite.equal("GET /products?category=<quote, backslash, UTF-8>: the rows, category escaped",
                data.decode("utf-8", "replace"),
                '[{"id":900011,"name":"a","category":' + category_json + ',"price_cents":1,'
                '"stock":1,"description":"d","created_at":"2026-01-02T03:04:05.000Z"},'
                '{"id":900012,"name":"b","category":' + category_json + ',"price_cents":2,'
                '"stock":1,"description":null,"created_at":"2026-01-02T03:04:05.000Z"}]')
    status, headers, data = request("GET", "/products/900011")
    suite.equal("GET /products/900011: the same category bytes as the listing",
                data.decode("utf-8", "replace").split('"category":')[1].split(',"price_cents"')[0],
                category_json)
    harness.psql("DELETE FROM products WHERE id IN (900011, 900012)", db=NAME)

    # /report: every number equal to a psql aggregate
    status, headers, value, raw = request_json("GET", "/report")
    suite.equal("GET /report: status", status, 200)
    suite.equal("GET /report: key order",
                list(value.keys()) if isinstance(value, dict) else value,
                ["generated_at", "total_orders", "by_category"])
    rows = psql_rows("SELECT p.category, count(o.id), coalesce(sum(o.total_cents), 0)"
                     " FROM products p LEFT JOIN orders o ON o.product_id = p.id"
                     " GROUP BY p.category")
    want_by_category = []
    for category, count, total in rows:
        count, total = int(count), int(total)
        average = 0 if count == 0 else int((decimal.Decimal(total) / count).quantize(
            decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))
        want_by_category.append({"category": category, "orders": count,
                                 "revenue": money(total), "avg_order": money(average),
                                 "_revenue": total})
    want_by_category.sort(key=lambda c: (-c["_revenue"], c["category"]))
    for c in want_by_category:
        del c["_revenue"]
    if isinstance(value, dict):
        got = value.get("by_category", [])
        suite.equal("GET /report: by_category equals psql, highest revenue first",
                    [dict(c) for c in got], want_by_category)
        suite.equal("GET /report: by_category key order", {tuple(c.keys()) for c in got},
                    {("category", "orders", "revenue", "avg_order")})
        suite.equal("GET /report: total_orders is the number of orders",
                    value.get("total_orders"), order_count())
        suite.equal("GET /report: total_orders is the sum of orders",
                    value.get("total_orders"), sum(c.get("orders", 0) for c in got))
        suite.equal("GET /report: the category without orders shows $0.00",
                    [dict(c) for c in got if c.get("category") == "garden"],
                    [{"category": "garden", "orders": 0, "revenue": "$0.00",
                      "avg_order": "$0.00"}])
        suite.check("GET /report: generated_at is ISO 8601 UTC with ms",
                    ISO_MS.match(str(value.get("generated_at"))), repr(value.get("generated_at")))

    # POST /orders: 201 with the new row, which is in the database
    before = order_count()
    price = int(harness.psql("SELECT price_cents FROM products WHERE id = 7", db=NAME))
    status, headers, value, raw = request_json("POST", "/orders",
                                               {"product_id": 7, "quantity": 3})
    suite.equal("POST /orders: status", status, 201)
    suite.equal("POST /orders: key order",
                list(value.keys()) if isinstance(value, dict) else value, ORDER_KEYS)
    if isinstance(value, dict):
        suite.equal("POST /orders: fields",
                    {k: value.get(k) for k in ("product_id", "quantity", "total_cents",
                                               "status")},
                    {"product_id": 7, "quantity": 3, "total_cents": price * 3,
                     "status": "pending"})
        suite.check("POST /orders: created_at is ISO 8601 UTC with ms",
                    ISO_MS.match(str(value.get("created_at"))), repr(value.get("created_at")))
        row = psql_rows("SELECT product_id, quantity, total_cents, status,"
                        " to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                        f" FROM orders WHERE id = {int(value.get('id', 0))}")
        suite.equal("POST /orders: the row in the database", row,
                    [["7", "3", str(price * 3), "pending", value.get("created_at")]])
    suite.equal("POST /orders: exactly one row added", order_count(), before + 1)
    status, headers, value, raw = request_json(
        "POST", "/orders", b'{"product_id":7,"quantity":1}',
        {"Content-Type": "application/json; charset=utf-8"})
    suite.equal("POST /orders with charset in Content-Type: status", status, 201)

    # POST /orders: every refusal is a 4xx and inserts nothing
    before = order_count()
    required = "product_id and quantity are required"
    check_error("POST /orders {}", "POST", "/orders", 400, required, body={})
    check_error("POST /orders without quantity", "POST", "/orders", 400, required,
                body={"product_id": 1})
    check_error("POST /orders without product_id", "POST", "/orders", 400, required,
                body={"quantity": 1})
    check_error("POST /orders quantity null", "POST", "/orders", 400, required,
                body={"product_id": 1, "quantity": None})
    check_error("POST /orders empty body", "POST", "/orders", 400, required, body=b"",
                headers={"Content-Type": "application/json"})
    for label, quantity in [("negative", -2), ("zero", 0), ("fractional", 1.5),
                            ("string", "2"), ("true", True), ("array", [2]), ("2^31", 2 ** 31)]:
        check_error(f"POST /orders quantity {label}", "POST", "/orders", 400,
                    body={"product_id": 1, "quantity": quantity}, message_has="quantity")
    for label, quantity in [("10^30", 10 ** 30), ("2^63", 2 ** 63)]:
        # beyond any integer type: the message says the number is too big
        status, _, value = check_error(f"POST /orders quantity {label}", "POST", "/orders", 400,
                                       body={"product_id": 1, "quantity": quantity})
        message = str(value.get("error", "")).lower() if isinstance(value, dict) else ""
        suite.check(f"POST /orders quantity {label}: message says too big",
                    "quantity" in message or "too big" in message or "too large" in message,
                    f"got {message!r}")
    for label, product_id in [("negative", -1), ("fractional", 1.5), ("string", "1"),
                              ("2^31", 2 ** 31)]:
        check_error(f"POST /orders product_id {label}", "POST", "/orders", 400,
                    body={"product_id": product_id, "quantity": 1}, message_has="product_id")
    expensive = int(harness.psql("SELECT id FROM products WHERE price_cents > 5000"
                                 " ORDER BY id LIMIT 1", db=NAME))
    expensive_price = int(harness.psql(f"SELECT price_cents FROM products WHERE id = {expensive}",
                                       db=NAME))
    quantity = 2 ** 31 // expensive_price + 1  # price * quantity > 2^31 - 1
    check_error(f"POST /orders price*quantity overflows ({expensive_price}*{quantity})", "POST",
                "/orders", 400, body={"product_id": expensive, "quantity": quantity})
    check_error("POST /orders quantity 1000000 on an expensive product", "POST", "/orders", 400,
                body={"product_id": expensive, "quantity": 1000000})
    check_error("POST /orders not JSON", "POST", "/orders", 400, body=b"product_id=1&quantity=2",
                headers={"Content-Type": "application/json"})
    check_error("POST /orders JSON array", "POST", "/orders", 400, body=[1, 2])
    check_error("POST /orders missing product", "POST", "/orders", 404, "Product not found",
                body={"product_id": 999999, "quantity": 1})
    check_error("POST /orders text/plain", "POST", "/orders", 415,
                body=b'{"product_id":1,"quantity":1}', headers={"Content-Type": "text/plain"})
    check_error("POST /orders no Content-Type", "POST", "/orders", 415,
                body=b'{"product_id":1,"quantity":1}')
    check_error("POST /orders application/jsonx", "POST", "/orders", 415,
                body=b'{"product_id":1,"quantity":1}',
                headers={"Content-Type": "application/jsonx"})
    suite.equal("refused orders inserted nothing", order_count(), before)

    # wrong methods, unknown paths
    for method, path, allow in [("DELETE", "/products", "GET, HEAD"),
                                ("POST", "/products/1", "GET, HEAD"),
                                ("PUT", "/report", "GET, HEAD"), ("POST", "/health", "GET, HEAD"),
                                ("GET", "/orders", "POST"), ("DELETE", "/orders", "POST")]:
        status, headers, value = check_error(f"{method} {path}", method, path, 405)
        suite.equal(f"{method} {path}: Allow", headers.get("allow"), allow)
    for path in ["/nope", "/products/1/x", "/", "/reports", "/PRODUCTS"]:
        check_error(f"GET {path} (unknown path)", "GET", path, 404)

    # HEAD: the GET headers, no body
    status, get_headers, get_body = request("GET", "/products/1")
    answer = harness.raw(port, b"HEAD /products/1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    head, _, rest = answer.partition(b"\r\n\r\n")
    suite.check("HEAD /products/1: 200", head.startswith(b"HTTP/1.1 200"), repr(head[:80]))
    suite.equal("HEAD /products/1: no body bytes", rest, b"")
    head_length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    suite.equal("HEAD /products/1: Content-Length of the GET body",
                int(head_length.group(1)) if head_length else None, len(get_body))
    suite.check("HEAD /products/1: X-Server-Id", re.search(rb"(?im)^x-server-id: test-7\r?$", head),
                repr(head))

    # every response above: X-Server-Id and the JSON content type
    missing_id = [what for what, h in seen if h.get("x-server-id") != SERVER_ID]
    suite.equal(f"X-Server-Id: {SERVER_ID} on every one of {len(seen)} responses", missing_id, [])
    wrong_type = [(what, h.get("content-type")) for what, h in seen
                  if h.get("content-type") != "application/json; charset=utf-8"]
    suite.equal("Content-Type application/json; charset=utf-8 on every JSON response",
                wrong_type, [])

    # ---- /metrics -------------------------------------------------------------------------------
    def scrape():
        status, headers, data = request("GET", "/metrics")
        return status, headers, data.decode("utf-8", "replace")

    def samples(text):
        out = {}
        for line in text.split("\n"):
            if line and not line.startswith("#"):
                name, _, number = line.rpartition(" ")
                out[name] = float(number)
        return out

    status, headers, text = scrape()
    suite.equal("GET /metrics: status", status, 200)
    suite.check("GET /metrics: text/plain 0.0.4",
                headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
                repr(headers.get("content-type")))
    suite.equal("GET /metrics: X-Server-Id", headers.get("x-server-id"), SERVER_ID)
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
    complaints = [line for line in (check.stdout + check.stderr).split("\n") if line.strip()
                  and not ("http_request_duration_ms" in line and "unit" in line)]
    suite.equal("promtool check metrics: no complaint but the _ms unit", complaints, [])
    for name in ["process_cpu_seconds_total", "process_cpu_user_seconds_total",
                 "process_cpu_system_seconds_total", "process_start_time_seconds",
                 "process_resident_memory_bytes", "process_virtual_memory_bytes",
                 "process_open_fds", "process_max_fds", "db_pool_max_connections",
                 "db_pool_waiting_requests"]:
        suite.check(f"/metrics has {name}", name in samples(text), "")
    suite.check("/metrics has the pool wait histogram (db_pool_acquire_wait_{ms,seconds}_count)",
                "db_pool_acquire_wait_ms_count" in samples(text) or
                "db_pool_acquire_wait_seconds_count" in samples(text), "")
    before = samples(text)
    suite.check("/metrics: pool busy and idle gauges",
                'db_pool_connections{state="busy"}' in before and
                'db_pool_connections{state="idle"}' in before, "")
    suite.equal("/metrics: db_pool_max_connections is DB_POOL_MAX (10)",
                before.get("db_pool_max_connections"), 10.0)
    suite.check("/metrics: process_resident_memory_bytes > 1 MB",
                before.get("process_resident_memory_bytes", 0) > 1e6,
                before.get("process_resident_memory_bytes"))

    for _ in range(3):
        request("GET", "/products/1")
    for _ in range(2):
        request("GET", "/products/abc")
    request("GET", "/no/such/path/12345")
    request("GET", "/another-unknown-path")
    request("HEAD", "/health")
    request("POST", "/orders", {"product_id": 2, "quantity": 1})
    status, headers, text = scrape()
    after = samples(text)

    def delta(series):
        return after.get(series, 0) - before.get(series, 0)

    def counter(method, route, code):
        return f'http_requests_total{{method="{method}",route="{route}",status_code="{code}"}}'

    suite.equal("metrics: GET /products/:id 200 +3", delta(counter("GET", "/products/:id", 200)),
                3)
    suite.equal("metrics: GET /products/:id 400 +2", delta(counter("GET", "/products/:id", 400)),
                2)
    suite.equal("metrics: HEAD /health 200 +1", delta(counter("HEAD", "/health", 200)), 1)
    suite.equal("metrics: POST /orders 201 +1", delta(counter("POST", "/orders", 201)), 1)
    suite.equal("metrics: GET /metrics 200 +1 (the previous scrape)",
                delta(counter("GET", "/metrics", 200)), 1)
    unmatched_total = sum(v for k, v in after.items()
                          if k.startswith("http_requests_total") and 'status_code="404"' in k
                          and "/products" not in k) - \
        sum(v for k, v in before.items()
            if k.startswith("http_requests_total") and 'status_code="404"' in k
            and "/products" not in k)
    suite.equal("metrics: the 2 unknown paths counted as 404", unmatched_total, 2)
    suite.check("metrics: no per-path label for unknown paths",
                "12345" not in text and "another-unknown" not in text and "/products/1\"" not in
                text and "/products/abc" not in text,
                [line for line in text.split("\n") if "unknown" in line or "12345" in line])
    suite.equal("metrics: duration histogram count for GET /products/:id +5",
                delta('http_request_duration_ms_count{method="GET",route="/products/:id"}'), 5)
    suite.equal("metrics: +Inf bucket equals the count",
                after.get('http_request_duration_ms_bucket{method="GET",route="/products/:id",'
                          'le="+Inf"}'),
                after.get('http_request_duration_ms_count{method="GET",route="/products/:id"}'))
    buckets = re.findall(r'http_request_duration_ms_bucket\{method="GET",route="/report",'
                         r'le="([^"]+)"\}', text)
    suite.equal("metrics: duration buckets are the contract's", buckets,
                ["10", "50", "100", "200", "500", "1000", "2000", "5000", "+Inf"])
    route_labels = set(re.findall(r'route="([^"]*)"', text))
    suite.check("metrics: route labels are patterns only",
                route_labels <= {"/health", "/health/live", "/health/ready", "/products",
                                 "/products/:id", "/report", "/orders", "/metrics", "unmatched"},
                sorted(route_labels))

    # ---- the listing's order is the server's: price, then id, also for equal prices and
    # negative ones, whatever order PostgreSQL sends the rows in ----------------------------------
    harness.psql("INSERT INTO products (id, name, category, price_cents, stock) VALUES"
                 " (90003, 'c', 'ties', 500, 1), (90001, 'a', 'ties', 500, 1),"
                 " (90002, 'b', 'ties', -20, 1), (90004, 'd', 'ties', 500, 1),"
                 " (90000, 'e', 'ties', 2147483647, 1)", db=NAME)
    status, _, value, _ = request_json("GET", "/products?category=ties")
    suite.equal("GET /products?category=ties: price then id, ties by id",
                [(p["price_cents"], p["id"]) for p in value] if status == 200 else status,
                [(-20, 90002), (500, 90001), (500, 90003), (500, 90004), (2147483647, 90000)])
    harness.psql("DELETE FROM products WHERE category = 'ties'", db=NAME)

suite.finish()
