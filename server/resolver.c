/* resolver.c: DB_HOST looked up on a thread of its own (resolver.h). */
#include "resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "alloc.h"
#include "error.h"
#include "loop.h"

/* Addresses kept per name: libpq tries them in order. */
#define RESOLVER_ADDRS_PER_NAME 8
/* The longest entry of a host list. */
#define RESOLVER_ENTRY_MAX 256

struct resolver {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a lookup is asked for (the thread waits), or one finished */
    pthread_t thread;
    char *names; /* the host list as configured */
    /* below: under lock */
    char host[RESOLVER_LIST_MAX], hostaddr[RESOLVER_LIST_MAX]; /* the last lookup that worked */
    int known;                                                 /* host and hostaddr are set */
    unsigned lookups;                                          /* lookups finished */
    int wanted, running, stopping;
    char error[256]; /* why the last lookup failed */
    int detached;    /* the owner left during a lookup: the thread frees r */
};

static int is_socket_dir(const char *entry)
{
    return entry[0] == '/' || entry[0] == '@' || entry[0] == '\0';
}

static int is_numeric(const char *entry)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, entry, addr) == 1 || inet_pton(AF_INET6, entry, addr) == 1;
}

/* Copies the entry of list at *at (up to the next comma) into entry and moves *at past it.
 * Returns 0, or -1 when it is too long. */
static int next_entry(const char **at, char entry[RESOLVER_ENTRY_MAX])
{
    size_t n = strcspn(*at, ",");
    if (n >= RESOLVER_ENTRY_MAX) return -1;
    memcpy(entry, *at, n);
    entry[n] = '\0';
    *at += n + ((*at)[n] == ',');
    return 0;
}

/* Appends one host,hostaddr pair to the two lists (first: they are empty).  Returns 0, or -1
 * when they are full (both left as they were: a cut entry would leave libpq lists of different
 * lengths, which it refuses). */
static int append_pair(char *host, char *hostaddr, size_t len, int first, const char *name,
                       const char *addr)
{
    size_t hn = strlen(host), an = strlen(hostaddr);
    int hw = snprintf(host + hn, len - hn, "%s%s", first ? "" : ",", name);
    int aw = snprintf(hostaddr + an, len - an, "%s%s", first ? "" : ",", addr);
    if (hw < 0 || (size_t)hw >= len - hn || aw < 0 || (size_t)aw >= len - an) {
        host[hn] = hostaddr[an] = '\0';
        return -1;
    }
    return 0;
}

/* Looks up every entry of names (blocking: only ever on the resolver's thread) and writes the
 * lists libpq gets: one host,hostaddr pair per address (an empty hostaddr for a socket
 * directory).  A name that does not resolve is left out while another entry gives an address.
 * Returns 0, or -1 with a sentence in err. */
static int lookup(const char *names, char *host, char *hostaddr, size_t len, char *err,
                  size_t err_len)
{
    char entry[RESOLVER_ENTRY_MAX];
    int pairs = 0;
    host[0] = hostaddr[0] = '\0';
    err[0] = '\0';
    for (const char *at = names; *at;) {
        if (next_entry(&at, entry) < 0)
            return error_set(err, err_len, "a DB_HOST entry is longer than %d bytes",
                             RESOLVER_ENTRY_MAX - 1);
        if (is_socket_dir(entry) || is_numeric(entry)) {
            if (append_pair(host, hostaddr, len, pairs == 0, entry,
                            is_socket_dir(entry) ? "" : entry) < 0)
                return error_set(err, err_len, "DB_HOST has too many addresses");
            pairs++;
            continue;
        }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *found = NULL;
        int rc = getaddrinfo(entry, NULL, &hints, &found);
        if (rc != 0) {
            error_set(err, err_len, "cannot resolve DB_HOST '%s': %s", entry, gai_strerror(rc));
            continue;
        }
        int kept = 0;
        for (struct addrinfo *ai = found; ai && kept < RESOLVER_ADDRS_PER_NAME; ai = ai->ai_next) {
            char text[INET6_ADDRSTRLEN];
            const void *addr =
                ai->ai_family == AF_INET
                    ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
                : ai->ai_family == AF_INET6
                    ? (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                    : NULL;
            if (!addr || !inet_ntop(ai->ai_family, addr, text, sizeof text)) continue;
            if (append_pair(host, hostaddr, len, pairs + kept == 0, entry, text) < 0) break;
            kept++;
        }
        freeaddrinfo(found);
        pairs += kept;
        if (!kept) error_set(err, err_len, "DB_HOST '%s' has no IPv4 or IPv6 address", entry);
    }
    if (pairs == 0) return err[0] ? -1 : error_set(err, err_len, "DB_HOST is empty");
    return 0;
}

static void resolver_destroy(resolver_t *r)
{
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r->names);
    free(r);
}

static void *resolver_main(void *arg)
{
    resolver_t *r = arg;
    char host[RESOLVER_LIST_MAX], hostaddr[RESOLVER_LIST_MAX], err[256];
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->wanted && !r->stopping)
            pthread_cond_wait(&r->cond, &r->lock);
        if (r->stopping) break;
        r->wanted = 0;
        r->running = 1;
        pthread_mutex_unlock(&r->lock);
        int rc = lookup(r->names, host, hostaddr, sizeof host, err, sizeof err);
        pthread_mutex_lock(&r->lock);
        r->running = 0;
        r->lookups++;
        if (rc == 0) {
            memcpy(r->host, host, sizeof host);
            memcpy(r->hostaddr, hostaddr, sizeof hostaddr);
            r->known = 1;
            r->error[0] = '\0';
        } else {
            snprintf(r->error, sizeof r->error, "%s", err);
        }
        pthread_cond_broadcast(&r->cond);
    }
    int frees = r->detached;
    pthread_mutex_unlock(&r->lock);
    if (frees) resolver_destroy(r);
    return NULL;
}

resolver_t *resolver_new(const char *host, const char *port)
{
    if (!host || !*host || (port && strchr(port, ','))) return NULL;
    int needed = 0;
    char entry[RESOLVER_ENTRY_MAX];
    for (const char *at = host; *at;) {
        if (next_entry(&at, entry) < 0) return NULL; /* libpq says what is wrong with it */
        if (!is_socket_dir(entry) && !is_numeric(entry)) needed = 1;
    }
    if (!needed) return NULL;
    resolver_t *r = xcalloc(1, sizeof *r);
    r->names = xstrdup(host);
    r->wanted = 1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &attr);
    pthread_condattr_destroy(&attr);
    /* Signals belong to the main thread (sigwait): the resolver's thread blocks them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, resolver_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        resolver_destroy(r);
        return NULL;
    }
    return r;
}

void resolver_free(resolver_t *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    int running = r->running;
    r->detached = running;
    pthread_t thread = r->thread; /* r may be freed by the thread once unlocked */
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (running) {
        /* Stuck in getaddrinfo, perhaps for good: it frees r when (if) it returns. */
        pthread_detach(thread);
        return;
    }
    pthread_join(thread, NULL); /* it sees stopping before any other lookup */
    resolver_destroy(r);
}

int resolver_wait_first(resolver_t *r, unsigned wait_ms)
{
    struct timespec until = loop_deadline_after(CLOCK_MONOTONIC, wait_ms);
    pthread_mutex_lock(&r->lock);
    while (r->lookups == 0)
        if (pthread_cond_timedwait(&r->cond, &r->lock, &until) != 0) break;
    int done = r->lookups > 0;
    pthread_mutex_unlock(&r->lock);
    return done;
}

int resolver_get(resolver_t *r, char *host, char *hostaddr, size_t len, char *err, size_t err_len)
{
    pthread_mutex_lock(&r->lock);
    if (r->known && len >= RESOLVER_LIST_MAX) {
        memcpy(host, r->host, RESOLVER_LIST_MAX);
        memcpy(hostaddr, r->hostaddr, RESOLVER_LIST_MAX);
        pthread_mutex_unlock(&r->lock);
        return 0;
    }
    if (r->running || r->lookups == 0) {
        pthread_mutex_unlock(&r->lock);
        return error_set(err, err_len, "the lookup of DB_HOST '%s' has not finished", r->names);
    }
    error_set(err, err_len, "%s", r->error);
    r->wanted = 1; /* try again */
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return -1;
}

void resolver_refresh(resolver_t *r)
{
    pthread_mutex_lock(&r->lock);
    r->wanted = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}
