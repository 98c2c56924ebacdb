/* test_replicas.c: unit tests for server/replicas: DB_READ_HOSTS parsing and the replay lag
 * computed from the primary's WAL position samples. */
#include "replicas.h"
#include "test.h"

static void test_parse_hosts(void)
{
    char hosts[REPLICAS_MAX][256], ports[REPLICAS_MAX][8], err[256];
    unsigned n = 99;
    CHECK_INT(replicas_parse_hosts("", "5432", hosts, ports, &n, err, sizeof err), 0);
    CHECK_INT(n, 0);
    CHECK_INT(replicas_parse_hosts("127.0.0.1:5433,db2", "5432", hosts, ports, &n, err, sizeof err),
              0);
    CHECK_INT(n, 2);
    CHECK_STR(hosts[0], "127.0.0.1");
    CHECK_STR(ports[0], "5433");
    CHECK_STR(hosts[1], "db2");
    CHECK_STR(ports[1], "5432");
    static const char *const bad[] = {
        ",",         "a:5433,",  "a:0",
        "a:65536",   "a:x",      ":5433",
        "a:5433,,b", "a:123456", "a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK_INT(replicas_parse_hosts(bad[i], "5432", hosts, ports, &n, err, sizeof err), -1);
        CHECK(strstr(err, "DB_READ_HOSTS") != NULL);
    }
}

static void test_lag(void)
{
    /* the primary at 100, 200, 300 ms wrote up to 10, 20, 30 */
    const uint64_t t[] = {100, 200, 300}, lsn[] = {10, 20, 30};
    CHECK_INT(replicas_lag_ms(t, lsn, 0, 5, 350), -1);   /* no sample yet */
    CHECK_INT(replicas_lag_ms(t, lsn, 3, 30, 350), 0);   /* replayed the newest */
    CHECK_INT(replicas_lag_ms(t, lsn, 3, 31, 350), 0);   /* past it (a later write) */
    CHECK_INT(replicas_lag_ms(t, lsn, 3, 25, 350), 150); /* at 200 the primary had 20 <= 25 */
    CHECK_INT(replicas_lag_ms(t, lsn, 3, 20, 350), 150); /* exactly the sample of 200 */
    CHECK_INT(replicas_lag_ms(t, lsn, 3, 10, 350), 250); /* stuck since 100 */
    CHECK_INT(replicas_lag_ms(t, lsn, 3, 5, 350), 250);  /* older than every sample */
    /* an idle primary: the position stays, the lag is 0 however old the samples */
    const uint64_t idle_t[] = {100, 200, 300}, idle_lsn[] = {30, 30, 30};
    CHECK_INT(replicas_lag_ms(idle_t, idle_lsn, 3, 30, 100000), 0);
}

int main(void)
{
    test_parse_hosts();
    test_lag();
    return test_report("test_replicas");
}
