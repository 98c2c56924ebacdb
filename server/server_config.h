/* server_config.h: catalog-server's settings, read from the environment (server/config.c). */
#ifndef CATALOG_SERVER_CONFIG_H
#define CATALOG_SERVER_CONFIG_H

#include <stdio.h>

#include "http_parse.h"

typedef struct server_config {
    char host[256];     /* listen address (HOST) */
    unsigned port;      /* PORT */
    char server_id[64]; /* SERVER_ID, shown in X-Server-Id and /health */
    const char *db_host, *db_port, *db_name, *db_user, *db_password;
    unsigned db_pool_max; /* DB_POOL_MAX: connections on each instance, all workers */
    unsigned db_pool_acquire_timeout_ms; /* DB_POOL_ACQUIRE_TIMEOUT_MS */
    unsigned db_pool_idle_timeout_ms;    /* DB_POOL_IDLE_TIMEOUT_MS */
    unsigned db_connect_timeout_ms;      /* DB_CONNECT_TIMEOUT_MS */
    unsigned db_statement_timeout_ms;    /* DB_STATEMENT_TIMEOUT_MS */
    unsigned db_pipeline;                /* DB_PIPELINE: statements in flight per connection */
    unsigned db_prepare;                 /* DB_PREPARE: 0 = unnamed statements only */
    const char *db_read_hosts;           /* DB_READ_HOSTS: replicas for reads ("" none) */
    int db_read_primary;                 /* DB_READ_PRIMARY: the primary takes reads too */
    unsigned db_read_max_lag_ms;         /* DB_READ_MAX_LAG_MS: a replica lagging more: no reads */
    unsigned workers;                    /* WORKERS: threads, each its own event loop */
    int report_rollup;                   /* REPORT_MODE=rollup */
    int access_log;                      /* ACCESS_LOG */
    unsigned keepalive_timeout_ms;       /* HTTP_KEEPALIVE_TIMEOUT_MS */
    unsigned header_timeout_ms;          /* HTTP_HEADER_TIMEOUT_MS: whole request must arrive */
    http_limits_t limits;                /* HTTP_MAX_* */
    unsigned max_connections;            /* MAX_CONNECTIONS: open client connections */
    unsigned output_budget_bytes;        /* OUTPUT_BUDGET_BYTES: all connections' output */
    unsigned send_timeout_ms;            /* HTTP_SEND_TIMEOUT_MS: a write without progress */
    unsigned shutdown_timeout_ms;        /* SHUTDOWN_TIMEOUT_MS */
} server_config_t;

/* Reads and validates the environment.  Returns 0, or -1 with a message naming the variable. */
int server_config_load(server_config_t *config, char *err, size_t err_len);
/* Prints --help text. */
void server_config_usage(FILE *out);
/* The CPU quota (Docker's `cpus:`, a Kubernetes limit, the lab's SERVER_CPUS) of the cgroup
 * that cgroup_file names (in the format of /proc/self/cgroup: inside a container, the root of
 * its own hierarchy), read under mount_root (/sys/fs/cgroup): cgroup v2's cpu.max, or v1's
 * cpu/cpu.cfs_quota_us and cpu.cfs_period_us when a v1 cpu controller is listed.  Rounded up to
 * whole CPUs; 0 when there is no quota or nothing can be read.  WORKERS defaults to it. */
unsigned server_cgroup_cpu_quota(const char *cgroup_file, const char *mount_root);

#endif
