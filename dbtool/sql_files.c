/* sql_files.c: sql/schema.sql and sql/rollup.sql embedded into catalog-db, so the binary needs
 * no data files. */
#include "dbtool.h"

/* EMBED_SQL(symbol, path): a NUL-terminated const char symbol[] holding the file at path.  The
 * assembler runs from the repository root (the Makefile's directory); the Makefile makes this
 * object depend on the files so an edited one is re-embedded. */
#define EMBED_SQL(symbol, path)                                                                    \
    __asm__(".section .rodata\n"                                                                   \
            ".global " #symbol "\n"                                                                \
            ".type " #symbol ", @object\n" #symbol ":\n"                                           \
            ".incbin \"" path "\"\n"                                                               \
            ".byte 0\n"                                                                            \
            ".size " #symbol ", . - " #symbol "\n"                                                 \
            ".previous\n")

EMBED_SQL(dbtool_schema_sql, "sql/schema.sql");
EMBED_SQL(dbtool_rollup_sql, "sql/rollup.sql");
