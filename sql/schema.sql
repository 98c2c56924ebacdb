-- schema.sql: the catalog's tables and indexes (CONTRACT section 2); idempotent, safe to re-run.
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

-- GET /products?category=C runs `WHERE category = $1 ORDER BY price_cents, id`: this index
-- hands the rows over already in that order, so the server reads about 1,000 index entries
-- in order instead of fetching and sorting them.
CREATE INDEX IF NOT EXISTS products_category_price_id_idx ON products (category, price_cents, id);

-- GET /products (no category) runs `ORDER BY price_cents, id LIMIT 100`: with this index it
-- reads the first 100 entries instead of sorting every product.
CREATE INDEX IF NOT EXISTS products_price_id_idx ON products (price_cents, id);

-- GET /report sums every order's total_cents per product: with total_cents in the index, each
-- product's orders are one short range of this index, read without visiting the table
-- (an index-only scan; see the report statement in server/routes.c).
CREATE INDEX IF NOT EXISTS orders_product_id_total_cents_idx ON orders (product_id) INCLUDE (total_cents);
