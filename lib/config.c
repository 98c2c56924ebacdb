/* config.c: settings from the environment, validated strictly. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "number.h"

int config_env_uint(const char *name, unsigned long default_value, unsigned long min,
                    unsigned long max, unsigned long *out, char *err, size_t err_len)
{
    const char *text = getenv(name);
    if (!text || !*text) {
        *out = default_value;
        return 0;
    }
    uint64_t value;
    if (number_parse_u64(text, strlen(text), &value) || value < min || value > max ||
        value > (uint64_t)(unsigned long)-1) {
        return error_set(err, err_len, "%s must be an integer from %lu to %lu, got '%.64s'", name,
                         min, max, text);
    }
    *out = (unsigned long)value;
    return 0;
}

const char *config_env_str(const char *name, const char *default_value)
{
    const char *text = getenv(name);
    return text ? text : default_value;
}

int config_env_bool(const char *name, int default_value, int *out, char *err, size_t err_len)
{
    static const char *const true_words[] = {"1", "true", "yes", "on"};
    static const char *const false_words[] = {"0", "false", "no", "off"};
    const char *text = getenv(name);
    if (!text || !*text) {
        *out = default_value ? 1 : 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof true_words / sizeof true_words[0]; i++) {
        if (strcasecmp(text, true_words[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, false_words[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return error_set(err, err_len,
                     "%s must be one of 1, 0, true, false, yes, no, on, off, got '%.64s'", name,
                     text);
}

int config_db_load(config_db_t *db, char *err, size_t err_len)
{
    db->host = config_env_str("DB_HOST", CONFIG_DB_HOST_DEFAULT);
    db->port = config_env_str("DB_PORT", CONFIG_DB_PORT_DEFAULT);
    db->name = config_env_str("DB_NAME", CONFIG_DB_NAME_DEFAULT);
    db->user = config_env_str("DB_USER", CONFIG_DB_USER_DEFAULT);
    db->password = config_env_str("DB_PASSWORD", CONFIG_DB_PASSWORD_DEFAULT);
    unsigned long port;
    return config_env_uint("DB_PORT", strtoul(CONFIG_DB_PORT_DEFAULT, NULL, 10), 1, 65535, &port,
                           err, err_len);
}
