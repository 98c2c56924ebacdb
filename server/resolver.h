/* resolver.h: the addresses of DB_HOST, looked up on a thread of its own, so that no event loop
 * ever waits on a name lookup.
 *
 * libpq resolves a host name with a blocking getaddrinfo inside PQconnectStartParams: on a
 * worker thread, a resolver that does not answer would stall every client of that worker.  The
 * pool instead connects with the addresses found here, given to libpq as `hostaddr` beside
 * `host` (which libpq still uses for authentication and TLS).  The lookup runs once at start
 * and again whenever the pool asks (after a connection attempt failed: the address may have
 * changed); a lookup that fails keeps the addresses of the last one that worked.
 *
 * A host list needs no lookup (resolver_new returns NULL, libpq gets the list as it is) when
 * every entry is a socket directory (starts with '/' or '@') or a numeric address, or when the
 * port is a list (its entries match the host entries one to one). */
#ifndef CATALOG_RESOLVER_H
#define CATALOG_RESOLVER_H

#include <stddef.h>

typedef struct resolver resolver_t;

/* The longest host or hostaddr list handed to libpq, with its NUL. */
#define RESOLVER_LIST_MAX 1024

/* Starts a lookup of host (a libpq host list, "db" or "db1,db2") on a new thread, with every
 * signal blocked.  Returns NULL when host needs no lookup (see above), or when the thread
 * cannot start (then libpq resolves the name itself, as before). */
resolver_t *resolver_new(const char *host, const char *port);
/* Stops the thread, or leaves a lookup that is still running to finish on its own (it frees
 * what it uses).  Accepts NULL. */
void resolver_free(resolver_t *r);
/* Waits up to wait_ms for the first lookup to finish.  Returns 1 when it has. */
int resolver_wait_first(resolver_t *r, unsigned wait_ms);
/* Copies the host list and the matching hostaddr list of the last lookup that worked into
 * host and hostaddr (each len bytes).  Returns 0, or -1 with a sentence in err when no lookup
 * has worked yet (still running, or the name does not resolve); then a new lookup is asked
 * for unless one runs.  Never blocks on the lookup (a mutex held for a copy). */
int resolver_get(resolver_t *r, char *host, char *hostaddr, size_t len, char *err, size_t err_len);
/* Asks for a new lookup (a connection attempt failed); one already running is not repeated. */
void resolver_refresh(resolver_t *r);

#endif
