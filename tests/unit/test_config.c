/* test_config.c: unit tests for lib/config (environment settings and their messages). */
#include "config.h"
#include "test.h"

#include <stdlib.h>

/* Sets (or with NULL unsets) the variable the tests read. */
static void set_test_env(const char *value)
{
    if (value)
        setenv("CATALOG_TEST_SETTING", value, 1);
    else
        unsetenv("CATALOG_TEST_SETTING");
}

int main(void)
{
    unsigned long n;
    char err[256];

    set_test_env(NULL);
    CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 10, 1, 1000, &n, err, sizeof err), 0);
    CHECK_INT(n, 10);
    set_test_env("");
    n = 0;
    CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 10, 1, 1000, &n, err, sizeof err), 0);
    CHECK_INT(n, 10);
    set_test_env("5");
    CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 10, 1, 1000, &n, err, sizeof err), 0);
    CHECK_INT(n, 5);
    set_test_env("1000");
    CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 10, 1, 1000, &n, err, sizeof err), 0);
    CHECK_INT(n, 1000);
    set_test_env("0");
    CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 10, 1, 1000, &n, err, sizeof err), -1);
    CHECK_STR(err, "CATALOG_TEST_SETTING must be an integer from 1 to 1000, got '0'");
    CHECK_INT(n, 1000); /* untouched */

    const char *bad[] = {"1001", "abc", "12abc", " 5",   "5 ",
                         "+5",   "-1",  "1.5",   "0x10", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_test_env(bad[i]);
        err[0] = '\0';
        CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 10, 1, 1000, &n, err, sizeof err), -1);
        char want[128];
        snprintf(want, sizeof want,
                 "CATALOG_TEST_SETTING must be an integer from 1 to 1000, got '%s'", bad[i]);
        CHECK_STR(err, want);
    }
    set_test_env("65535");
    CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 3000, 1, 65535, &n, err, sizeof err), 0);
    CHECK_INT(n, 65535);
    set_test_env("65536");
    CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 3000, 1, 65535, &n, err, sizeof err), -1);
    CHECK_STR(err, "CATALOG_TEST_SETTING must be an integer from 1 to 65535, got '65536'");
    set_test_env("0");
    CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 5, 0, 60, &n, err, sizeof err), 0);
    CHECK_INT(n, 0);

    set_test_env(NULL);
    CHECK_STR(config_env_str("CATALOG_TEST_SETTING", "app"), "app");
    CHECK(config_env_str("CATALOG_TEST_SETTING", NULL) == NULL);
    set_test_env("");
    CHECK_STR(config_env_str("CATALOG_TEST_SETTING", "app"), ""); /* empty counts as set */
    set_test_env("app2");
    CHECK_STR(config_env_str("CATALOG_TEST_SETTING", "app"), "app2");

    int flag = -1;
    set_test_env(NULL);
    CHECK_INT(config_env_bool("CATALOG_TEST_SETTING", 1, &flag, err, sizeof err), 0);
    CHECK_INT(flag, 1);
    set_test_env("");
    CHECK_INT(config_env_bool("CATALOG_TEST_SETTING", 0, &flag, err, sizeof err), 0);
    CHECK_INT(flag, 0);
    const char *yes[] = {"1", "true", "TRUE", "yes", "Yes", "on", "ON"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        set_test_env(yes[i]);
        flag = -1;
        CHECK_INT(config_env_bool("CATALOG_TEST_SETTING", 0, &flag, err, sizeof err), 0);
        CHECK_INT(flag, 1);
    }
    const char *no[] = {"0", "false", "False", "no", "NO", "off", "Off"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        set_test_env(no[i]);
        flag = -1;
        CHECK_INT(config_env_bool("CATALOG_TEST_SETTING", 1, &flag, err, sizeof err), 0);
        CHECK_INT(flag, 0);
    }
    const char *bad_bool[] = {"maybe", "2", "yess", " on", "t", "-1"};
    for (size_t i = 0; i < sizeof bad_bool / sizeof bad_bool[0]; i++) {
        set_test_env(bad_bool[i]);
        flag = -1;
        CHECK_INT(config_env_bool("CATALOG_TEST_SETTING", 1, &flag, err, sizeof err), -1);
        CHECK_INT(flag, -1);
    }
    set_test_env("maybe");
    config_env_bool("CATALOG_TEST_SETTING", 1, &flag, err, sizeof err);
    CHECK_STR(
        err,
        "CATALOG_TEST_SETTING must be one of 1, 0, true, false, yes, no, on, off, got 'maybe'");
    /* err may be absent */
    CHECK_INT(config_env_bool("CATALOG_TEST_SETTING", 1, &flag, NULL, 0), -1);
    CHECK_INT(config_env_uint("CATALOG_TEST_SETTING", 1, 1, 2, &n, NULL, 0), -1);
    set_test_env(NULL);
    return test_report("config");
}
