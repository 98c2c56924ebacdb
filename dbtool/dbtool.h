/* dbtool.h: what the files of catalog-db (wait, migrate, seed, status) share. */
#ifndef CATALOG_DBTOOL_H
#define CATALOG_DBTOOL_H

#include <libpq-fe.h>
#include <stddef.h>

/* Exit statuses of catalog-db.  1 means "not done" for every command: for status, the seed is
 * not complete (the reference's "Still seeding"); for the others, the command failed. */
typedef enum dbtool_exit {
    DBTOOL_EXIT_OK = 0,        /* done; for status: the seed is complete */
    DBTOOL_EXIT_NOT_DONE = 1,  /* failed (message on stderr); status: fewer than SEED_ORDERS */
    DBTOOL_EXIT_NOT_READY = 2, /* status: cannot connect, or no tables yet */
    DBTOOL_EXIT_USAGE = 3,     /* bad command line or environment value */
} dbtool_exit_t;

/* Settings from the environment (docs/api.md, Processes and settings). */
typedef struct dbtool_config {
    const char *host;                 /* DB_HOST, default localhost */
    const char *port;                 /* DB_PORT, default 5432, validated 1..65535 */
    const char *name;                 /* DB_NAME, default catalogdb */
    const char *user;                 /* DB_USER, default postgres */
    const char *password;             /* DB_PASSWORD, default postgres */
    unsigned long seed_products;      /* SEED_PRODUCTS, default 5000 */
    unsigned long seed_orders;        /* SEED_ORDERS, default 500000 */
    unsigned long wait_tries;         /* DB_WAIT_TRIES, default 20 */
    unsigned long wait_interval_ms;   /* DB_WAIT_INTERVAL_MS, default 2000 */
    unsigned long connect_timeout_ms; /* DB_CONNECT_TIMEOUT_MS, default 3000 (one attempt) */
} dbtool_config_t;

/* The text of sql/schema.sql, NUL-terminated, embedded at build time (sql_files.c). */
extern const char dbtool_schema_sql[];

/* The text of sql/rollup.sql (product_sales and its triggers, for REPORT_MODE=rollup),
 * NUL-terminated, embedded at build time (sql_files.c).  Applied after the schema. */
extern const char dbtool_rollup_sql[];

/* Opens a connection to database dbname with the config's server and credentials, session
 * options TimeZone=UTC and DateStyle=ISO; its notices are printed as one line each on stderr
 * ("catalog-db: database WARNING 01000: ...").  Returns the connection, or NULL with a one-line
 * reason in err (never longer than err_size).  The caller PQfinish()es the connection. */
PGconn *dbtool_connect(const dbtool_config_t *config, const char *dbname, char *err,
                       size_t err_size);

/* Waits for the server: tries DB_WAIT_TRIES times, DB_WAIT_INTERVAL_MS apart, printing
 * progress.  When create_database is nonzero a missing DB_NAME is created (CREATE DATABASE
 * over the `postgres` database; a concurrent creation is fine).  Returns a connection to
 * DB_NAME (caller PQfinish()es it), or NULL after printing why on stderr.  When
 * create_database is zero and the server answers but DB_NAME does not exist, returns NULL and
 * sets *server_up to 1 (server_up may be NULL). */
PGconn *dbtool_wait(const dbtool_config_t *config, int create_database, int *server_up);

/* Runs sql (no parameters) and checks it returned status want.  Returns 0, or -1 after
 * printing "catalog-db: <what>: <server message>" on stderr.  The result is always cleared. */
int dbtool_exec(PGconn *conn, const char *sql, ExecStatusType want, const char *what);

/* Runs a query that returns one bigint in one row.  Returns 0 and sets *out, or -1 after
 * printing why on stderr.  The result is always cleared. */
int dbtool_query_count(PGconn *conn, const char *sql, long long *out);

/* The commands.  Each returns the process exit status. */
dbtool_exit_t dbtool_command_wait(const dbtool_config_t *config);
dbtool_exit_t dbtool_command_migrate(const dbtool_config_t *config);
dbtool_exit_t dbtool_command_seed(const dbtool_config_t *config);
dbtool_exit_t dbtool_command_status(const dbtool_config_t *config);

#endif
