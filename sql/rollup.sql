-- rollup.sql: per-product order totals kept exact by triggers, for REPORT_MODE=rollup; idempotent.
-- Embedded into catalog-db, which applies it right after schema.sql, in the same transaction
-- and under the same advisory lock.
--
-- product_sales holds, for every product that ever had an order, the number of its orders and
-- the sum of their total_cents.  Statement-level triggers with transition tables fold every
-- INSERT, UPDATE, DELETE and TRUNCATE of orders into it in the same transaction, so a report
-- read from it is exactly the live aggregate at the same snapshot, and costs O(products)
-- instead of O(orders).  One statement of any size costs one grouped upsert: the seed's bulk
-- load of 500,000 orders folds in with a single INSERT ... ON CONFLICT of 5,000 rows.
--
-- No foreign key to products: it would make `TRUNCATE orders, products` fail, and the report
-- joins from products anyway, so a row of a deleted product is never read.

CREATE TABLE IF NOT EXISTS product_sales (
    product_id    integer PRIMARY KEY,
    orders        bigint NOT NULL DEFAULT 0,
    revenue_cents bigint NOT NULL DEFAULT 0
);

-- Adds the per-product deltas of one statement.  Rows are upserted in product_id order, so two
-- statements touching the same products lock their rows in the same order and never deadlock.
-- Groups whose deltas are both zero (an UPDATE of status only) are skipped: no write at all.
CREATE OR REPLACE FUNCTION product_sales_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO product_sales AS s (product_id, orders, revenue_cents)
        SELECT product_id, count(*), sum(total_cents)
        FROM new_rows GROUP BY product_id ORDER BY product_id
        ON CONFLICT (product_id) DO UPDATE
        SET orders = s.orders + excluded.orders,
            revenue_cents = s.revenue_cents + excluded.revenue_cents;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO product_sales AS s (product_id, orders, revenue_cents)
        SELECT product_id, -count(*), -sum(total_cents)
        FROM old_rows GROUP BY product_id ORDER BY product_id
        ON CONFLICT (product_id) DO UPDATE
        SET orders = s.orders + excluded.orders,
            revenue_cents = s.revenue_cents + excluded.revenue_cents;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO product_sales AS s (product_id, orders, revenue_cents)
        SELECT product_id, sum(orders_delta), sum(revenue_delta)
        FROM (SELECT product_id, 1 AS orders_delta, total_cents::bigint AS revenue_delta
              FROM new_rows
              UNION ALL
              SELECT product_id, -1, -total_cents::bigint FROM old_rows) AS delta
        GROUP BY product_id
        HAVING sum(orders_delta) <> 0 OR sum(revenue_delta) <> 0
        ORDER BY product_id
        ON CONFLICT (product_id) DO UPDATE
        SET orders = s.orders + excluded.orders,
            revenue_cents = s.revenue_cents + excluded.revenue_cents;
    ELSIF TG_OP = 'TRUNCATE' THEN
        DELETE FROM product_sales;
    END IF;
    RETURN NULL;
END
$$;

-- Rebuilds product_sales from orders.  Exact only while no order can change meanwhile: callers
-- hold a lock on orders that keeps writers out (the install below, the seed's bulk load).
CREATE OR REPLACE FUNCTION product_sales_rebuild() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM product_sales;
    INSERT INTO product_sales (product_id, orders, revenue_cents)
    SELECT product_id, count(*), sum(total_cents) FROM orders GROUP BY product_id;
$$;

-- Install the triggers and back-fill once.  The triggers are created only when missing; the
-- back-fill runs exactly then (first migrate, or after someone dropped a trigger), with orders
-- locked against writes so no order lands between the back-fill and the triggers.
DO $$
DECLARE
    installed integer;
BEGIN
    SELECT count(*) INTO installed FROM pg_trigger
    WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal
      AND tgname IN ('orders_product_sales_insert', 'orders_product_sales_update',
                     'orders_product_sales_delete', 'orders_product_sales_truncate');
    IF installed = 4 THEN
        RETURN;
    END IF;

    LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE;
    DROP TRIGGER IF EXISTS orders_product_sales_insert ON orders;
    DROP TRIGGER IF EXISTS orders_product_sales_update ON orders;
    DROP TRIGGER IF EXISTS orders_product_sales_delete ON orders;
    DROP TRIGGER IF EXISTS orders_product_sales_truncate ON orders;

    PERFORM product_sales_rebuild();

    CREATE TRIGGER orders_product_sales_insert AFTER INSERT ON orders
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION product_sales_apply();
    CREATE TRIGGER orders_product_sales_update AFTER UPDATE ON orders
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION product_sales_apply();
    CREATE TRIGGER orders_product_sales_delete AFTER DELETE ON orders
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION product_sales_apply();
    CREATE TRIGGER orders_product_sales_truncate AFTER TRUNCATE ON orders
        FOR EACH STATEMENT EXECUTE FUNCTION product_sales_apply();
END
$$;
