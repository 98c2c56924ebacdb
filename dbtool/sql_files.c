/* sql_files.c: sql/schema.sql and sql/rollup.sql embedded into catalog-db, so the binary needs
 * no data files. */
#include "dbtool.h"
#include "embed.h"

EMBED_FILE(dbtool_schema_sql, "sql/schema.sql");
EMBED_FILE(dbtool_rollup_sql, "sql/rollup.sql");
