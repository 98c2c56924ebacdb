/* embed.h: a file of the repository embedded into a program at build time, so the binary needs
 * no data files (catalog-db's schema, catalog-server's statements). */
#ifndef CATALOG_EMBED_H
#define CATALOG_EMBED_H

/* EMBED_FILE(symbol, path): a NUL-terminated const char symbol[] holding the file at path.  The
 * assembler runs from the repository root (the Makefile's directory); the Makefile makes the
 * object that uses it depend on the file, so an edited one is embedded again (-MMD does not see
 * .incbin).  Declare the symbol `extern const char symbol[];` where it is read. */
#define EMBED_FILE(symbol, path)                                                                   \
    __asm__(".section .rodata\n"                                                                   \
            ".global " #symbol "\n"                                                                \
            ".type " #symbol ", @object\n" #symbol ":\n"                                           \
            ".incbin \"" path "\"\n"                                                               \
            ".byte 0\n"                                                                            \
            ".size " #symbol ", . - " #symbol "\n"                                                 \
            ".previous\n")

#endif
