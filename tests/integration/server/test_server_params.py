"""test_server_params.py: bytes in a query parameter or path segment that PostgreSQL cannot take
(not UTF-8 after percent-decoding, NUL) are the client's mistake: a 400 with a message that says
so, no query sent and nothing logged as an error; valid UTF-8 still works.  Before this check,
/products?category=%FF answered 500 and logged SQLSTATE 22021 for every request."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

NAME = "test_server_params"


def main():
    suite = harness.Suite(NAME)
    env = harness.make_db(NAME, products=50, orders=100)
    harness.psql("INSERT INTO products (name, category, price_cents, stock)"
                 " VALUES ('Crème', 'café', 100, 1)", db=NAME)
    with harness.Server(dict(env, WORKERS="1")) as server:
        not_utf8 = {
            "%FF": "a byte that never occurs in UTF-8",
            "caf%E9": "Latin-1 e-acute",
            "%C0%AF": "an overlong '/'",
            "%ED%A0%80": "a UTF-16 surrogate",
            "%F4%90%80%80": "above U+10FFFF",
            "%E2%82": "a truncated sequence",
        }
        for encoded, what in not_utf8.items():
            status, _, value = harness.http_json(server.port, "GET",
                                                 f"/products?category={encoded}")
            suite.equal(f"category={encoded} ({what}): 400", status, 400)
            suite.check(f"category={encoded}: the message names UTF-8",
                        "UTF-8" in str(value.get("error", "")), repr(value))
        status, _, value = harness.http_json(server.port, "GET", "/products?category=a%00b")
        suite.equal("category with a NUL byte: 400", status, 400)
        suite.check("category with a NUL byte: the message names NUL",
                    "NUL" in str(value.get("error", "")), repr(value))
        status, _, value = harness.http_json(server.port, "GET", "/products/%FF")
        suite.equal("/products/%FF: 400 Invalid product ID", (status, value),
                    (400, {"error": "Invalid product ID"}))

        # Valid UTF-8, percent-encoded or not, reaches the database and finds the row.
        status, _, value = harness.http_json(server.port, "GET", "/products?category=caf%C3%A9")
        suite.equal("category=caf%C3%A9 (UTF-8): 200 with the one product",
                    (status, [p.get("name") for p in value] if status == 200 else value),
                    (200, ["Crème"]))
        # Only the parameter the route reads is checked: others are ignored, as before.
        status, _, _ = harness.http(server.port, "GET", "/products?other=%FF")
        suite.equal("an ignored parameter with %FF: 200", status, 200)

        status, _, _ = harness.http(server.port, "GET", "/health")
        suite.equal("the server is healthy afterwards", status, 200)
        server.stop()
        log = server.stderr_text()
        suite.check("nothing logged as an error (no SQLSTATE 22021 line)",
                    " error " not in log and "SQLSTATE" not in log, log[-2000:])
    harness.drop_db(NAME)
    suite.finish()


if __name__ == "__main__":
    main()
