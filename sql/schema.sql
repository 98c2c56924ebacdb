-- schema.sql: the catalog's tables and indexes (docs/api.md, Schema); idempotent, safe to re-run.
-- Embedded into catalog-db, which applies it in one transaction under an advisory lock.

CREATE TABLE IF NOT EXISTS products (
    id          serial PRIMARY KEY,
    name        varchar(255) NOT NULL,
    category    varchar(100) NOT NULL,
    price_cents integer NOT NULL,
    stock       integer NOT NULL DEFAULT 0,
    description text,
    created_at  timestamp NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    id          serial PRIMARY KEY,
    product_id  integer NOT NULL CONSTRAINT orders_product_id_fkey REFERENCES products (id),
    quantity    integer NOT NULL,
    total_cents integer NOT NULL,
    status      varchar(50) NOT NULL DEFAULT 'pending',
    created_at  timestamp NOT NULL DEFAULT now()
);

-- The contract's indexes.
CREATE INDEX IF NOT EXISTS products_category_idx ON products (category);
CREATE INDEX IF NOT EXISTS orders_product_id_idx ON orders (product_id);
CREATE INDEX IF NOT EXISTS orders_created_at_idx ON orders (created_at);

-- GET /products?category=C runs `WHERE category = $1` through products_category_idx and the
-- server orders the rows by price, then id (server/rows.c).  An index on (category,
-- price_cents, id) that earlier versions made for an ordered scan was never chosen over a
-- bitmap scan and a sort, and nothing reads it now: it goes.
DROP INDEX IF EXISTS products_category_price_id_idx;

-- GET /products (no category) runs `ORDER BY price_cents, id LIMIT 100`: with this index it
-- reads the first 100 entries instead of sorting every product.
CREATE INDEX IF NOT EXISTS products_price_id_idx ON products (price_cents, id);

-- GET /report sums every order's total_cents per product: with total_cents in the index, each
-- product's orders are one short range of this index, read without visiting the table
-- (an index-only scan; see the report statement in sql/statements.sql).
CREATE INDEX IF NOT EXISTS orders_product_id_total_cents_idx ON orders (product_id) INCLUDE (total_cents);

-- POST /orders with an Idempotency-Key header (docs/api.md, "Retries"): the key and the answer it
-- got are written in the same transaction as the order, so a retry on any server finds them,
-- and a key is never stored without its order or an order without its key.  The answer's
-- fields are kept as they were (the retry gets the first answer, whatever happens to the order
-- later).  No foreign key to orders: TRUNCATE orders stays possible.
CREATE TABLE IF NOT EXISTS order_idempotency_keys (
    idempotency_key  varchar(255) PRIMARY KEY,
    order_id         integer NOT NULL,
    product_id       integer NOT NULL,
    quantity         integer NOT NULL,
    total_cents      integer NOT NULL,
    status           varchar(50) NOT NULL,
    order_created_at timestamp NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- Expired keys are found (and purged) by age.
CREATE INDEX IF NOT EXISTS order_idempotency_keys_created_at_idx
    ON order_idempotency_keys (created_at);

-- Places an order for an Idempotency-Key, in one statement (one round trip, one transaction).
-- outcome is one of:
--   created      the order was inserted, with the key; the other columns are the new order
--   replayed     the key was used less than 24 hours ago with the same product and quantity;
--                the other columns are the first answer's; nothing was inserted
--   mismatch     the key was used less than 24 hours ago for another product or quantity
--   in_progress  another transaction is placing an order with this key right now
-- No row: the product does not exist.  A key older than 24 hours is forgotten: the request
-- counts as new.  Each call also deletes a few expired keys, so the table holds about one
-- day of keys without a separate clean-up job.
CREATE OR REPLACE FUNCTION place_order_with_key(p_product_id integer, p_quantity integer,
                                                p_key varchar)
RETURNS TABLE (outcome text, id integer, product_id integer, quantity integer,
               total_cents integer, status varchar, created_at timestamp)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    kept order_idempotency_keys%ROWTYPE;
BEGIN
    -- One transaction per key at a time, across every server: a second request for the key
    -- is told at once (409) instead of waiting behind the first.  The lock is released at
    -- commit, after which the next statement of any session sees the key (VOLATILE: every
    -- statement below takes a fresh snapshot).
    IF NOT pg_try_advisory_xact_lock(1869771333, hashtext(p_key)) THEN
        outcome := 'in_progress';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT * INTO kept FROM order_idempotency_keys k WHERE k.idempotency_key = p_key;
    IF FOUND AND kept.created_at > now() - interval '24 hours' THEN
        outcome := CASE WHEN kept.product_id = p_product_id AND kept.quantity = p_quantity
                        THEN 'replayed' ELSE 'mismatch' END;
        id := kept.order_id;
        product_id := kept.product_id;
        quantity := kept.quantity;
        total_cents := kept.total_cents;
        status := kept.status;
        created_at := kept.order_created_at;
        RETURN NEXT;
        RETURN;
    END IF;
    DELETE FROM order_idempotency_keys k
        WHERE k.idempotency_key = p_key
           OR k.idempotency_key IN (SELECT e.idempotency_key FROM order_idempotency_keys e
                                    WHERE e.created_at <= now() - interval '24 hours'
                                    ORDER BY e.created_at LIMIT 8 FOR UPDATE SKIP LOCKED);
    INSERT INTO orders (product_id, quantity, total_cents)
        SELECT p.id, p_quantity, p.price_cents * p_quantity FROM products p
        WHERE p.id = p_product_id
        RETURNING orders.id, orders.product_id, orders.quantity, orders.total_cents,
                  orders.status, orders.created_at
        INTO id, product_id, quantity, total_cents, status, created_at;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO order_idempotency_keys (idempotency_key, order_id, product_id, quantity,
                                        total_cents, status, order_created_at)
        VALUES (p_key, id, product_id, quantity, total_cents, status, created_at);
    outcome := 'created';
    RETURN NEXT;
END
$$;
