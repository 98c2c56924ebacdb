/* config.h: settings from the environment, validated strictly (a bad value stops start-up). */
#ifndef CATALOG_CONFIG_H
#define CATALOG_CONFIG_H

#include <stddef.h>

/* Reads the environment variable name as a decimal integer in [min, max].  Unset or empty
 * gives default_value.  Returns 0 with *out set, or -1 with a message for a person in err,
 * e.g. "DB_POOL_MAX must be an integer from 1 to 1000, got '0'" (*out untouched). */
int config_env_uint(const char *name, unsigned long default_value, unsigned long min,
                    unsigned long max, unsigned long *out, char *err, size_t err_len);

/* The value of the environment variable name, or default_value when it is unset (an empty
 * value counts as set).  The pointer belongs to the environment or the caller; don't free. */
const char *config_env_str(const char *name, const char *default_value);

/* Reads name as a boolean: 1/true/yes/on or 0/false/no/off (any case).  Unset or empty gives
 * default_value.  Returns 0 with *out set to 1 or 0, or -1 with a message in err, e.g.
 * "ACCESS_LOG must be one of 1, 0, true, false, yes, no, on, off, got 'maybe'". */
int config_env_bool(const char *name, int default_value, int *out, char *err, size_t err_len);

/* ---- the PostgreSQL login, read by catalog-server and catalog-db alike --------------------- */

#define CONFIG_DB_HOST_DEFAULT "localhost"
#define CONFIG_DB_PORT_DEFAULT "5432"
#define CONFIG_DB_NAME_DEFAULT "catalogdb"
#define CONFIG_DB_USER_DEFAULT "postgres"
#define CONFIG_DB_PASSWORD_DEFAULT "postgres"

/* Session settings every database connection of both programs starts with (libpq "options"):
 * timestamps are computed and written in UTC, ISO 8601. */
#define CONFIG_DB_SESSION_OPTIONS "-c TimeZone=UTC -c DateStyle=ISO"

typedef struct config_db {
    const char *host;     /* DB_HOST */
    const char *port;     /* DB_PORT, checked to be 1 to 65535 */
    const char *name;     /* DB_NAME */
    const char *user;     /* DB_USER */
    const char *password; /* DB_PASSWORD */
} config_db_t;

/* Reads DB_HOST, DB_PORT, DB_NAME, DB_USER and DB_PASSWORD (the defaults above when unset).
 * The strings belong to the environment.  Returns 0, or -1 with a message in err when DB_PORT
 * is not an integer from 1 to 65535. */
int config_db_load(config_db_t *db, char *err, size_t err_len);

#endif
