-- statements.sql: the SQL of catalog-server's routes, one statement after each `-- name:` line.
-- Embedded into catalog-server (server/statements.c), which prepares each on a connection the
-- first time that connection runs it; scripts/bench/server_sql.py gives the same text to pgbench.
-- A statement is its lines after its name, comments (lines starting with --) left out, each line
-- stripped and joined to the next with one space, the closing ';' dropped.  How each statement
-- shares its connection, and which read their results in binary, is in server/statements.c.

-- GET /health, GET /health/ready.
-- name: count_products
SELECT count(*) FROM products;

-- GET /products without a category: the cheapest 100, read through products_price_id_idx.
-- name: list_cheapest
SELECT id, name, category, price_cents, stock, description, created_at
FROM products ORDER BY price_cents, id LIMIT 100;

-- GET /products?category=C: about 1,000 rows.  Without the category column: `category = $1` is
-- byte equality (text's equality under the database's deterministic collation), so the server
-- writes the parameter in each row and PostgreSQL need not send the same bytes a thousand
-- times.  In no order: the server orders the rows by price, then id (server/handlers.c), which
-- costs it a fraction of what PostgreSQL's sort of the whole wide rows costs PostgreSQL.
-- name: list_category
SELECT id, name, price_cents, stock, description, created_at
FROM products WHERE category = $1;

-- GET /products/:id.
-- name: product
SELECT id, name, category, price_cents, stock, description, created_at
FROM products WHERE id = $1;

-- GET /report, REPORT_MODE=live: a live, exact aggregate of every order (docs/api.md, GET
-- /report), the expensive route.  Each product's orders are counted and summed by a lateral
-- subquery, which PostgreSQL runs as an index-only scan of orders_product_id_total_cents_idx
-- (product_id INCLUDE total_cents, sql/schema.sql): one short range read of a narrow index per
-- product, instead of a scan of every order row and a hash of them all.  The per-product totals
-- are then summed per category; a product without orders counts 0, so a category without
-- orders still appears ($0.00).
-- name: report
SELECT p.category, sum(s.orders)::bigint, coalesce(sum(s.revenue), 0)::bigint,
coalesce(round(sum(s.revenue) / nullif(sum(s.orders), 0)), 0)::bigint
FROM products p CROSS JOIN LATERAL
(SELECT count(*) AS orders, sum(o.total_cents) AS revenue
FROM orders o WHERE o.product_id = p.id) s
GROUP BY p.category ORDER BY 3 DESC, 1;

-- GET /report, REPORT_MODE=rollup: per-product totals kept exact by a trigger (sql/rollup.sql).
-- name: report_rollup
SELECT p.category, coalesce(sum(r.orders), 0)::bigint, coalesce(sum(r.revenue_cents), 0),
coalesce(round(sum(r.revenue_cents)::numeric / nullif(sum(r.orders), 0)), 0)::bigint
FROM products p LEFT JOIN product_sales r ON r.product_id = p.id
GROUP BY p.category ORDER BY 3 DESC, 1;

-- POST /orders: one statement, so the price lookup and the insert are atomic.
-- price_cents * quantity is integer arithmetic, so an overflow is SQLSTATE 22003, answered with
-- a 400 (server/db_errors.c).
-- name: insert_order
INSERT INTO orders (product_id, quantity, total_cents)
SELECT id, $2::integer, price_cents * $2::integer FROM products WHERE id = $1::integer
RETURNING id, product_id, quantity, total_cents, status, created_at;

-- POST /orders with an Idempotency-Key: sql/schema.sql's function checks and records the key in
-- the order's own transaction.  Column 0 is its outcome, then the order's columns.
-- name: insert_order_with_key
SELECT outcome, id, product_id, quantity, total_cents, status, created_at
FROM place_order_with_key($1::integer, $2::integer, $3::varchar);
