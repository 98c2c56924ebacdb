/* test_resolver.c: the host and hostaddr lists the resolver hands to libpq (server/resolver.c). */
#include "resolver.h"
#include "test.h"

#include <stdio.h>
#include <string.h>

/* The entries of a comma-separated list. */
static unsigned list_entries(const char *list)
{
    unsigned n = *list ? 1 : 0;
    for (; *list; list++)
        n += *list == ',';
    return n;
}

/* A DB_HOST list whose addresses do not all fit in RESOLVER_LIST_MAX: the pairs that fit are
 * kept, and the two lists still match one to one (libpq refuses lists of different lengths).
 * Once, the host list kept a cut entry of the pair that did not fit ("...,localhost,loc"). */
static void test_lists_full(void)
{
    char names[2048] = "";
    for (int i = 0; i < 150; i++)
        strcat(names, i ? ",localhost" : "localhost");
    resolver_t *r = resolver_new(names, "5432");
    CHECK(r != NULL);
    if (!r) return;
    CHECK_INT(resolver_wait_first(r, 10000), 1);
    char host[RESOLVER_LIST_MAX], hostaddr[RESOLVER_LIST_MAX], err[256];
    CHECK_INT(resolver_get(r, host, hostaddr, sizeof host, err, sizeof err), 0);
    unsigned hosts = list_entries(host), addrs = list_entries(hostaddr);
    CHECK_INT(hosts, addrs);
    CHECK(hosts > 50); /* the lists were filled up */
    /* every host entry is the name, whole */
    char copy[RESOLVER_LIST_MAX];
    snprintf(copy, sizeof copy, "%s", host);
    unsigned whole = 0;
    for (char *save = NULL, *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save))
        whole += strcmp(e, "localhost") == 0;
    CHECK_INT(whole, hosts);
    resolver_free(r);
}

/* A list of socket directories and numeric addresses needs no lookup. */
static void test_no_lookup(void)
{
    CHECK(resolver_new("/var/run/postgresql", "5432") == NULL);
    CHECK(resolver_new("127.0.0.1,::1", "5432") == NULL);
    CHECK(resolver_new("localhost", "5432,5433") == NULL);
}

int main(void)
{
    test_lists_full();
    test_no_lookup();
    return test_report("test_resolver");
}
