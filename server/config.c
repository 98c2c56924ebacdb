/* config.c: the server's configuration from the environment, validated at start-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>

#include "config.h"
#include "error.h"
#include "pool.h"
#include "replicas.h"
#include "server_config.h"

/* One row per numeric setting: the table drives both validation and --help. */
typedef struct uint_setting {
    const char *name;
    unsigned long default_value, min, max;
    size_t offset; /* of the unsigned field in server_config_t, or (size_t)-1 for limits */
    const char *help;
} uint_setting_t;

#define FIELD(f) offsetof(server_config_t, f)
static const uint_setting_t UINT_SETTINGS[] = {
    {"PORT", 3000, 1, 65535, FIELD(port), "TCP port to listen on"},
    {"DB_POOL_MAX", 10, 1, 1000, FIELD(db_pool_max),
     "database connections on each instance (the primary, each DB_READ_HOSTS replica), shared "
     "by all worker threads"},
    {"DB_READ_MAX_LAG_MS", 1000, 1, 60000, FIELD(db_read_max_lag_ms),
     "a replica whose replay lags the primary by more takes no reads until it has caught up"},
    {"DB_POOL_ACQUIRE_TIMEOUT_MS", 5000, 1, 600000, FIELD(db_pool_acquire_timeout_ms),
     "longest wait for a free connection before answering 503"},
    {"DB_POOL_IDLE_TIMEOUT_MS", 30000, 100, 86400000, FIELD(db_pool_idle_timeout_ms),
     "idle connections are closed after this"},
    {"DB_CONNECT_TIMEOUT_MS", 3000, 100, 600000, FIELD(db_connect_timeout_ms),
     "a database connection attempt that takes longer fails"},
    {"DB_STATEMENT_TIMEOUT_MS", 30000, 0, 3600000, FIELD(db_statement_timeout_ms),
     "PostgreSQL cancels a statement running longer (0: never), answered 503"},
    {"DB_PIPELINE", 64, 0, POOL_MAX_PIPELINE_DEPTH, FIELD(db_pipeline),
     "most cheap statements in flight on one database connection in libpq's pipeline mode "
     "(0: no pipeline mode, for poolers that cannot carry it)"},
    {"DB_PREPARE", 1, 0, 1, FIELD(db_prepare),
     "1: prepared statements (each prepared on a connection at first use); 0: each statement "
     "parsed anew, for poolers that cannot keep prepared statements (PgBouncer before 1.21 in "
     "transaction mode)"},
    {"WORKERS", 0, 0, 64, FIELD(workers),
     "worker threads, each with its own event loop (0 or unset: one per CPU the process may use, "
     "counting a cgroup CPU quota)"},
    {"HTTP_KEEPALIVE_TIMEOUT_MS", 75000, 100, 3600000, FIELD(keepalive_timeout_ms),
     "idle keep-alive connections are closed after this"},
    {"HTTP_HEADER_TIMEOUT_MS", 10000, 100, 600000, FIELD(header_timeout_ms),
     "a request (head and body) must arrive within this, else 408"},
    {"MAX_CONNECTIONS", 10000, 1, 1000000, FIELD(max_connections),
     "open client connections; more are closed at once"},
    {"OUTPUT_BUDGET_BYTES", 64u << 20, 1u << 20, 4294967295u, FIELD(output_budget_bytes),
     "response bytes held for all clients together; past it, connections with unsent output "
     "start no new request"},
    {"HTTP_SEND_TIMEOUT_MS", 30000, 100, 3600000, FIELD(send_timeout_ms),
     "a connection whose client takes no bytes of a response for this long is closed"},
    {"SHUTDOWN_TIMEOUT_MS", 10000, 0, 600000, FIELD(shutdown_timeout_ms),
     "on SIGTERM, longest wait for in-flight requests"},
};

static const struct {
    const char *name;
    unsigned long default_value, min, max;
    const char *help;
} LIMIT_SETTINGS[] = {
    {"HTTP_MAX_REQUEST_LINE", HTTP_DEFAULT_MAX_REQUEST_LINE, 64, 1048576,
     "longest request line (else 414)"},
    {"HTTP_MAX_HEADER_BYTES", HTTP_DEFAULT_MAX_HEADER_BYTES, 256, 1048576,
     "largest request head (else 431)"},
    {"HTTP_MAX_HEADERS", HTTP_DEFAULT_MAX_HEADERS, 1, HTTP_MAX_HEADERS,
     "most header fields (else 431)"},
    {"HTTP_MAX_BODY_BYTES", HTTP_DEFAULT_MAX_BODY, 0, 16777216, "largest request body (else 413)"},
};

/* The first line of a small file, or "" when it cannot be read. */
static void read_line(const char *path, char *out, size_t out_len)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(out, (int)out_len, f)) out[0] = 0;
    fclose(f);
}

unsigned server_cgroup_cpu_quota(const char *cgroup_file, const char *mount_root)
{
    char v1_path[512] = "", v2_path[512] = "", line[512];
    FILE *f = fopen(cgroup_file, "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            char *controllers = strchr(line, ':');
            char *group = controllers ? strchr(controllers + 1, ':') : NULL;
            if (!group) continue;
            *group++ = 0;
            controllers++;
            if (*controllers == 0) {
                snprintf(v2_path, sizeof v2_path, "%s%s/cpu.max", mount_root, group);
            } else {
                /* "cpu" or "cpu,cpuacct": the cpu hierarchy is mounted at ROOT/cpu */
                char *save = NULL;
                for (char *tok = strtok_r(controllers, ",", &save); tok;
                     tok = strtok_r(NULL, ",", &save))
                    if (strcmp(tok, "cpu") == 0)
                        snprintf(v1_path, sizeof v1_path, "%s/cpu%s", mount_root, group);
            }
        }
        fclose(f);
    }
    long long quota = -1, period = 0;
    char text[64];
    if (v1_path[0]) {
        char path[600];
        snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", v1_path);
        read_line(path, text, sizeof text);
        quota = text[0] ? strtoll(text, NULL, 10) : -1;
        snprintf(path, sizeof path, "%s/cpu.cfs_period_us", v1_path);
        read_line(path, text, sizeof text);
        period = strtoll(text, NULL, 10);
    } else if (v2_path[0]) {
        read_line(v2_path, text, sizeof text); /* "max 100000" or "150000 100000" */
        if (text[0] && strncmp(text, "max", 3) != 0) {
            char *end;
            quota = strtoll(text, &end, 10);
            period = strtoll(end, NULL, 10);
        }
    }
    if (quota <= 0 || period <= 0) return 0;
    return (unsigned)((quota + period - 1) / period);
}

static unsigned cpus_available(void)
{
    unsigned quota = server_cgroup_cpu_quota("/proc/self/cgroup", "/sys/fs/cgroup");
    if (quota > 0 && quota < 64) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0 && (unsigned)CPU_COUNT(&set) < quota)
            return (unsigned)CPU_COUNT(&set);
        return quota;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return (unsigned)(n > 64 ? 64 : n);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)(n > 64 ? 64 : n) : 1;
}

int server_config_load(server_config_t *c, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sizeof UINT_SETTINGS / sizeof UINT_SETTINGS[0]; i++) {
        const uint_setting_t *s = &UINT_SETTINGS[i];
        unsigned long v;
        if (config_env_uint(s->name, s->default_value, s->min, s->max, &v, err, err_len) < 0)
            return -1;
        *(unsigned *)((char *)c + s->offset) = (unsigned)v;
    }
    unsigned long limit[4];
    for (int i = 0; i < 4; i++)
        if (config_env_uint(LIMIT_SETTINGS[i].name, LIMIT_SETTINGS[i].default_value,
                            LIMIT_SETTINGS[i].min, LIMIT_SETTINGS[i].max, &limit[i], err,
                            err_len) < 0)
            return -1;
    c->limits.max_request_line = limit[0];
    c->limits.max_header_bytes = limit[1];
    c->limits.max_headers = (unsigned)limit[2];
    c->limits.max_body = limit[3];
    if (c->limits.max_request_line > c->limits.max_header_bytes) {
        return error_set(err, err_len,
                         "HTTP_MAX_REQUEST_LINE (%lu) must not exceed HTTP_MAX_HEADER_BYTES (%lu)",
                         limit[0], limit[1]);
    }
    if (c->workers == 0) c->workers = cpus_available();

    const char *host = config_env_str("HOST", "0.0.0.0");
    if (!*host || strlen(host) >= sizeof c->host) {
        return error_set(err, err_len,
                         "HOST must be a listen address such as 0.0.0.0 or 127.0.0.1");
    }
    strcpy(c->host, host);

    const char *id = config_env_str("SERVER_ID", "app");
    size_t id_len = strlen(id);
    if (id_len == 0 || id_len >= sizeof c->server_id) {
        return error_set(err, err_len, "SERVER_ID must be 1 to %zu characters",
                         sizeof c->server_id - 1);
    }
    for (size_t i = 0; i < id_len; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !(ch >= '0' && ch <= '9') &&
            ch != '-' && ch != '_' && ch != '.') {
            return error_set(err, err_len,
                             "SERVER_ID may hold only letters, digits, '-', '_' and '.', got '%s'",
                             id);
        }
    }
    strcpy(c->server_id, id);

    config_db_t db;
    if (config_db_load(&db, err, err_len) < 0) return -1;
    c->db_host = db.host;
    c->db_port = db.port;
    c->db_name = db.name;
    c->db_user = db.user;
    c->db_password = db.password;
    if (!*c->db_host || !*c->db_name || !*c->db_user) {
        return error_set(err, err_len, "DB_HOST, DB_NAME and DB_USER must not be empty");
    }

    /* Checked here, used by replicas_new: a bad list stops the start-up as a setting. */
    c->db_read_hosts = config_env_str("DB_READ_HOSTS", "");
    char hosts[REPLICAS_MAX][256], ports[REPLICAS_MAX][8];
    unsigned replicas;
    if (replicas_parse_hosts(c->db_read_hosts, c->db_port, hosts, ports, &replicas, err, err_len) <
        0)
        return -1;
    if (config_env_bool("DB_READ_PRIMARY", 1, &c->db_read_primary, err, err_len) < 0) return -1;

    const char *mode = config_env_str("REPORT_MODE", "live");
    if (strcmp(mode, "live") == 0) {
        c->report_rollup = 0;
    } else if (strcmp(mode, "rollup") == 0) {
        c->report_rollup = 1;
    } else {
        return error_set(err, err_len, "REPORT_MODE must be 'live' or 'rollup', got '%s'", mode);
    }
    if (config_env_bool("ACCESS_LOG", 1, &c->access_log, err, err_len) < 0) return -1;
    return 0;
}

void server_config_usage(FILE *out)
{
    fprintf(out,
            "catalog-server: the catalog HTTP/JSON API over PostgreSQL.\n\n"
            "Usage: catalog-server [--help]\n\n"
            "Routes: GET /health, /health/live, /health/ready, /products[?category=C],\n"
            "        /products/:id, /report, /metrics; POST /orders.\n\n"
            "Configuration comes from the environment (default in brackets):\n"
            "  HOST                       listen address [0.0.0.0]\n"
            "  SERVER_ID                  this server's name in X-Server-Id and /health [app]\n"
            "  DB_HOST, DB_PORT, DB_NAME  PostgreSQL [" CONFIG_DB_HOST_DEFAULT
            ", " CONFIG_DB_PORT_DEFAULT ", " CONFIG_DB_NAME_DEFAULT "]\n"
            "  DB_USER, DB_PASSWORD       PostgreSQL login [" CONFIG_DB_USER_DEFAULT
            ", " CONFIG_DB_PASSWORD_DEFAULT "]\n"
            "  DB_READ_HOSTS              hot standbys for reads, host:port,... (the report,\n"
            "                             the listings, the product page) []\n"
            "  DB_READ_PRIMARY            the primary takes reads too, 1 or 0 [1]\n"
            "  REPORT_MODE                live (aggregate all orders) or rollup [live]\n"
            "  ACCESS_LOG                 one line per request on stderr, 1 or 0 [1]\n");
    for (size_t i = 0; i < sizeof UINT_SETTINGS / sizeof UINT_SETTINGS[0]; i++)
        fprintf(out, "  %-26s %s [%lu]\n", UINT_SETTINGS[i].name, UINT_SETTINGS[i].help,
                UINT_SETTINGS[i].default_value);
    for (int i = 0; i < 4; i++)
        fprintf(out, "  %-26s %s [%lu]\n", LIMIT_SETTINGS[i].name, LIMIT_SETTINGS[i].help,
                LIMIT_SETTINGS[i].default_value);
    fprintf(out,
            "\nSIGTERM or SIGINT: stop accepting, finish in-flight requests, exit 0 (a second\n"
            "one while stopping is logged and ignored).  SIGQUIT: exit at once, status 131.\n");
}
