/* pgnotice.c: a PostgreSQL notice as one line, for the logs of the programs that talk to it. */
#include "pgnotice.h"

#include <stdio.h>
#include <string.h>

static const char *field(const PGresult *res, int code)
{
    const char *value = PQresultErrorField(res, code);
    return value ? value : "";
}

static const char *severity(const PGresult *res)
{
    const char *s = field(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    return *s ? s : field(res, PG_DIAG_SEVERITY);
}

/* Appends to out at *len (cut at out_len - 1 bytes). */
static void append(char *out, size_t out_len, size_t *len, const char *label, const char *text)
{
    if (*len + 1 >= out_len) return;
    int n = snprintf(out + *len, out_len - *len, "%s%s%s", label, text, *label ? ")" : "");
    if (n > 0) *len += (size_t)n < out_len - *len ? (size_t)n : out_len - *len - 1;
}

char *pgnotice_format(const PGresult *res, char *out, size_t out_len)
{
    if (out_len == 0) return out;
    int n = snprintf(out, out_len, "%s %s: %s", severity(res), field(res, PG_DIAG_SQLSTATE),
                     field(res, PG_DIAG_MESSAGE_PRIMARY));
    size_t len = n < 0 ? 0 : (size_t)n < out_len ? (size_t)n : out_len - 1;
    const char *detail = field(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = field(res, PG_DIAG_MESSAGE_HINT);
    if (*detail) append(out, out_len, &len, " (detail: ", detail);
    if (*hint) append(out, out_len, &len, " (hint: ", hint);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    return out;
}

const char *pgnotice_level(const PGresult *res)
{
    const char *s = severity(res);
    if (strcmp(s, "ERROR") == 0 || strcmp(s, "FATAL") == 0 || strcmp(s, "PANIC") == 0)
        return "error";
    if (strcmp(s, "WARNING") == 0) return "warn";
    return "info";
}
