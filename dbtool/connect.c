/* connect.c: catalog-db's connections: options, waiting for the server, creating DB_NAME. */
#include "dbtool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "error.h"
#include "pgnotice.h"

/* The database that always exists, used to check for and create DB_NAME. */
#define MAINTENANCE_DATABASE "postgres"

/* Copies a libpq message into err as one line (libpq ends messages with newlines). */
static void copy_message(char *err, size_t err_size, const char *message)
{
    snprintf(err, err_size, "%s", message ? message : "unknown error");
    size_t len = strlen(err);
    while (len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' '))
        err[--len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (err[i] == '\n' || err[i] == '\t') err[i] = ' ';
}

/* A notice (or an error PostgreSQL sends outside a query) as one line on stderr, instead of
 * libpq's default raw lines. */
static void print_notice(void *arg, const PGresult *res)
{
    (void)arg;
    char line[1024];
    fprintf(stderr, "catalog-db: database %s\n", pgnotice_format(res, line, sizeof line));
}

PGconn *dbtool_connect(const dbtool_config_t *config, const char *dbname, char *err,
                       size_t err_size)
{
    /* libpq's connect_timeout is whole seconds, minimum 2 (smaller values are raised). */
    char timeout_s[24];
    long seconds = (config->connect_timeout_ms + 999) / 1000;
    snprintf(timeout_s, sizeof timeout_s, "%lu", seconds < 2 ? 2 : seconds);

    const char *keys[] = {"host",     "port",    "dbname",           "user",
                          "password", "options", "application_name", "connect_timeout",
                          NULL};
    const char *values[] = {config->host, config->port,     dbname,
                            config->user, config->password, CONFIG_DB_SESSION_OPTIONS,
                            "catalog-db", timeout_s,        NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (!conn) {
        error_set(err, err_size, "out of memory creating a libpq connection");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char message[512];
        copy_message(message, sizeof message, PQerrorMessage(conn));
        error_set(err, err_size, "cannot connect to database \"%s\" at %s:%s as %s: %s", dbname,
                  config->host, config->port, config->user, message);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeReceiver(conn, print_notice, NULL);
    return conn;
}

int dbtool_exec(PGconn *conn, const char *sql, ExecStatusType want, const char *what)
{
    PGresult *result = PQexec(conn, sql);
    if (PQresultStatus(result) != want) {
        char message[512];
        copy_message(message, sizeof message,
                     result ? PQresultErrorMessage(result) : PQerrorMessage(conn));
        fprintf(stderr, "catalog-db: %s: %s\n", what, message);
        PQclear(result);
        return -1;
    }
    PQclear(result);
    return 0;
}

int dbtool_query_count(PGconn *conn, const char *sql, long long *out)
{
    PGresult *result = PQexec(conn, sql);
    if (PQresultStatus(result) != PGRES_TUPLES_OK || PQntuples(result) != 1 ||
        PQnfields(result) != 1 || PQgetisnull(result, 0, 0)) {
        char message[512];
        copy_message(message, sizeof message,
                     result ? PQresultErrorMessage(result) : PQerrorMessage(conn));
        fprintf(stderr, "catalog-db: query \"%s\" failed: %s\n", sql,
                message[0] ? message : "no single value returned");
        PQclear(result);
        return -1;
    }
    *out = strtoll(PQgetvalue(result, 0, 0), NULL, 10);
    PQclear(result);
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&delay, &delay) != 0) {
    }
}

/* Over the maintenance database: does DB_NAME exist, and create it when asked.  Returns 1 when
 * the database exists (now), 0 when it does not (and was not to be created), -1 when the
 * server cannot be reached or the creation failed (reason in err). */
static int ensure_database(const dbtool_config_t *config, int create_database, char *err,
                           size_t err_size)
{
    PGconn *conn = dbtool_connect(config, MAINTENANCE_DATABASE, err, err_size);
    if (!conn) return -1;

    int found = -1;
    const char *params[] = {config->name};
    PGresult *result = PQexecParams(conn, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL,
                                    params, NULL, NULL, 0);
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
        copy_message(err, err_size, PQresultErrorMessage(result));
        goto done;
    }
    found = PQntuples(result) > 0;
    if (found || !create_database) goto done;

    char *identifier = PQescapeIdentifier(conn, config->name, strlen(config->name));
    if (!identifier) {
        copy_message(err, err_size, PQerrorMessage(conn));
        found = -1;
        goto done;
    }
    char sql[600];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", identifier);
    PQfreemem(identifier);
    PQclear(result);
    result = PQexec(conn, sql);
    if (PQresultStatus(result) == PGRES_COMMAND_OK) {
        printf("catalog-db: created database \"%s\"\n", config->name);
        found = 1;
    } else {
        /* Another catalog-db creating it at the same moment is success: 42P04
         * duplicate_database, or 23505 when both passed the catalog check together. */
        const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        if (state && (strcmp(state, "42P04") == 0 || strcmp(state, "23505") == 0)) {
            found = 1;
        } else {
            char message[400];
            copy_message(message, sizeof message, PQresultErrorMessage(result));
            error_set(err, err_size, "cannot create database \"%s\": %s", config->name, message);
            found = -1;
        }
    }
done:
    PQclear(result);
    PQfinish(conn);
    return found;
}

PGconn *dbtool_wait(const dbtool_config_t *config, int create_database, int *server_up)
{
    char err[1024] = "";
    if (server_up) *server_up = 0;
    for (unsigned long attempt = 1; attempt <= config->wait_tries; attempt++) {
        PGconn *conn = dbtool_connect(config, config->name, err, sizeof err);
        if (conn) return conn;

        /* The server may be up without DB_NAME: find out (and create it) over `postgres`. */
        char check_err[1024] = "";
        int exists = ensure_database(config, create_database, check_err, sizeof check_err);
        if (exists == 0) {
            if (server_up) *server_up = 1;
            fprintf(stderr,
                    "catalog-db: PostgreSQL at %s:%s is up but database \"%s\" does not exist "
                    "(catalog-db migrate creates it)\n",
                    config->host, config->port, config->name);
            return NULL;
        }
        if (exists == 1) {
            conn = dbtool_connect(config, config->name, err, sizeof err);
            if (conn) return conn;
        } else if (strstr(check_err, "cannot create database")) {
            fprintf(stderr, "catalog-db: %s\n", check_err);
            return NULL;
        }
        if (attempt < config->wait_tries) {
            fprintf(stderr, "catalog-db: waiting for PostgreSQL (attempt %lu of %lu): %s\n",
                    attempt, config->wait_tries, err);
            sleep_ms(config->wait_interval_ms);
        }
    }
    fprintf(stderr, "catalog-db: gave up after %lu attempts %lu ms apart: %s\n", config->wait_tries,
            config->wait_interval_ms, err);
    fprintf(stderr, "catalog-db: check that PostgreSQL runs and DB_HOST, DB_PORT, DB_USER and "
                    "DB_PASSWORD are right\n");
    return NULL;
}
