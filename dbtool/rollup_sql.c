/* rollup_sql.c: sql/rollup.sql embedded into catalog-db, applied right after sql/schema.sql. */
#include "dbtool.h"

/* As in schema_sql.c: the assembler runs from the repository root, and the Makefile makes this
 * object depend on sql/rollup.sql so an edited file is re-embedded. */
__asm__(".section .rodata\n"
        ".global dbtool_rollup_sql\n"
        ".type dbtool_rollup_sql, @object\n"
        "dbtool_rollup_sql:\n"
        ".incbin \"sql/rollup.sql\"\n"
        ".byte 0\n"
        ".size dbtool_rollup_sql, . - dbtool_rollup_sql\n"
        ".previous\n");
