/* statements.c: the server's prepared statements: the SQL of sql/statements.sql, embedded at
 * build time and found by name at start-up, with how each shares its connection. */
#include "statements.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "embed.h"
#include "error.h"

EMBED_FILE(statements_sql, "sql/statements.sql");
extern const char statements_sql[];

static const struct {
    const char *name;
    enum pool_sharing sharing;
    int binary; /* result columns in binary: the product rows (server/rows.c) */
    int read;   /* may run on a read replica (server/replicas.h) */
} STATEMENTS[ST_COUNT] = {
    /* /health's: it checks the primary, where the orders go. */
    [ST_COUNT_PRODUCTS] = {"count_products", POOL_SHARED, 0, 0},
    [ST_LIST_CHEAPEST] = {"list_cheapest", POOL_SHARED, 1, 1},
    /* About 1,000 rows: alone on its connection, so no cheap statement waits behind it. */
    [ST_LIST_CATEGORY] = {"list_category", POOL_ALONE, 1, 1},
    [ST_PRODUCT] = {"product", POOL_SHARED, 1, 1},
    /* Reads every order (or every product's totals): long, never shares its connection. */
    [ST_REPORT] = {"report", POOL_ALONE, 0, 1},
    /* A write may wait on a lock: nothing is queued behind it. */
    [ST_INSERT_ORDER] = {"insert_order", POOL_LAST, 0, 0},
    [ST_INSERT_ORDER_WITH_KEY] = {"insert_order_with_key", POOL_LAST, 0, 0},
};

/* The statement named name in text (sql/statements.sql's layout: its lines after "-- name:
 * NAME", comment lines left out, each stripped and joined with one space, the closing ';'
 * dropped), in a new string; NULL when there is none. */
static char *find_statement(const char *text, const char *name)
{
    static const char marker[] = "-- name: ";
    size_t name_len = strlen(name);
    const char *p = text;
    for (;;) {
        p = strstr(p, marker);
        if (!p) return NULL;
        p += sizeof marker - 1;
        if (strncmp(p, name, name_len) == 0 && (p[name_len] == '\n' || p[name_len] == '\0')) break;
    }
    p += name_len;
    char *sql = xmalloc(strlen(p) + 1), *out = sql;
    while (*p) {
        const char *line = p, *end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        p = *end ? end + 1 : end;
        while (line < end && (*line == ' ' || *line == '\t' || *line == '\r'))
            line++;
        while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            end--;
        if (end - line >= 2 && line[0] == '-' && line[1] == '-') {
            if (strncmp(line, marker, sizeof marker - 1) == 0) break; /* the next statement */
            continue;
        }
        if (line == end) continue;
        if (out > sql) *out++ = ' ';
        memcpy(out, line, (size_t)(end - line));
        out += end - line;
    }
    while (out > sql && (out[-1] == ';' || out[-1] == ' '))
        out--;
    *out = 0;
    return sql;
}

const pool_statement_t *statements_load(int report_rollup, unsigned *count, char *err,
                                        size_t err_len)
{
    static pool_statement_t table[ST_COUNT];
    for (int st = 0; st < ST_COUNT; st++) {
        const char *name = STATEMENTS[st].name;
        if (st == ST_REPORT && report_rollup) name = "report_rollup";
        char *sql = find_statement(statements_sql, name);
        if (!sql || !*sql) {
            free(sql);
            error_set(err, err_len, "statement %s not found in sql/statements.sql", name);
            return NULL;
        }
        table[st] = (pool_statement_t){name, sql, STATEMENTS[st].sharing};
    }
    *count = ST_COUNT;
    return table;
}

int statements_binary(enum statement st)
{
    return STATEMENTS[st].binary;
}

int statements_read(enum statement st)
{
    return STATEMENTS[st].read;
}
