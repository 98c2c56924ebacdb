/* main.c: catalog-db, the database tool: wait, migrate, seed, status (docs/api.md, Seed). */
#include "dbtool.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_help(FILE *out)
{
    fputs("Usage: catalog-db COMMAND\n"
          "\n"
          "Commands:\n"
          "  wait     wait until PostgreSQL accepts connections (DB_WAIT_TRIES tries,\n"
          "           DB_WAIT_INTERVAL_MS apart)\n"
          "  migrate  wait, create DB_NAME if missing, apply the schema (with the\n"
          "           Idempotency-Key table and function) and the rollup table product_sales\n"
          "           with its triggers (idempotent)\n"
          "  seed     migrate, then seed SEED_PRODUCTS products and SEED_ORDERS orders in one\n"
          "           transaction; skips a complete seed, refuses other data\n"
          "  status   print the number of orders and whether the database is ready\n"
          "\n"
          "Environment (default):\n"
          "  DB_HOST (" CONFIG_DB_HOST_DEFAULT ")  DB_PORT (" CONFIG_DB_PORT_DEFAULT
          ")  DB_NAME (" CONFIG_DB_NAME_DEFAULT ")  DB_USER (" CONFIG_DB_USER_DEFAULT ")\n"
          "  DB_PASSWORD (" CONFIG_DB_PASSWORD_DEFAULT
          ")  SEED_PRODUCTS (5000)  SEED_ORDERS (500000)\n"
          "  DB_WAIT_TRIES (20)  DB_WAIT_INTERVAL_MS (2000)  DB_CONNECT_TIMEOUT_MS (3000)\n"
          "\n"
          "Exit status: 0 done (status: ready), 1 failed (status: still seeding),\n"
          "2 status: database not ready, 3 bad command line or environment value.\n",
          out);
}

static int load_config(dbtool_config_t *config)
{
    char err[256];
    config_db_t db;
    int rc = config_db_load(&db, err, sizeof err);
    config->host = db.host;
    config->port = db.port;
    config->name = db.name;
    config->user = db.user;
    config->password = db.password;
    /* Seed sizes stay in int range: the ids are PostgreSQL integers. */
    if (rc != 0 ||
        config_env_uint("SEED_PRODUCTS", 5000, 1, 100000000, &config->seed_products, err,
                        sizeof err) != 0 ||
        config_env_uint("SEED_ORDERS", 500000, 0, 2000000000, &config->seed_orders, err,
                        sizeof err) != 0 ||
        config_env_uint("DB_WAIT_TRIES", 20, 1, 100000, &config->wait_tries, err, sizeof err) !=
            0 ||
        config_env_uint("DB_WAIT_INTERVAL_MS", 2000, 0, 3600000, &config->wait_interval_ms, err,
                        sizeof err) != 0 ||
        config_env_uint("DB_CONNECT_TIMEOUT_MS", 3000, 1, 3600000, &config->connect_timeout_ms, err,
                        sizeof err) != 0) {
        fprintf(stderr, "catalog-db: %s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        if (argc > 2) fprintf(stderr, "catalog-db: one command expected, got %d words\n", argc - 1);
        print_help(stderr);
        return DBTOOL_EXIT_USAGE;
    }
    const char *command = argv[1];
    if (!strcmp(command, "--help") || !strcmp(command, "-h") || !strcmp(command, "help")) {
        print_help(stdout);
        return DBTOOL_EXIT_OK;
    }

    static const struct {
        const char *name;
        dbtool_exit_t (*run)(const dbtool_config_t *config);
    } commands[] = {
        {"wait", dbtool_command_wait},
        {"migrate", dbtool_command_migrate},
        {"seed", dbtool_command_seed},
        {"status", dbtool_command_status},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(command, commands[i].name) != 0) continue;
        dbtool_config_t config;
        if (load_config(&config) != 0) return DBTOOL_EXIT_USAGE;
        setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up at once in pipes too */
        return commands[i].run(&config);
    }
    fprintf(stderr,
            "catalog-db: unknown command \"%s\" (wait, migrate, seed, status; see "
            "catalog-db --help)\n",
            command);
    return DBTOOL_EXIT_USAGE;
}
