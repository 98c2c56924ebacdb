/* schema_sql.c: sql/schema.sql embedded into catalog-db, so the binary needs no data files. */
#include "dbtool.h"

/* The assembler runs from the repository root (the Makefile's directory); the Makefile makes
 * this object depend on sql/schema.sql so an edited schema is re-embedded. */
__asm__(".section .rodata\n"
        ".global dbtool_schema_sql\n"
        ".type dbtool_schema_sql, @object\n"
        "dbtool_schema_sql:\n"
        ".incbin \"sql/schema.sql\"\n"
        ".byte 0\n"
        ".size dbtool_schema_sql, . - dbtool_schema_sql\n"
        ".previous\n");
