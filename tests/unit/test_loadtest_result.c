/* test_loadtest_result.c: unit tests for loadtest/loadtest_result (verdict thresholds, SLO
 * thresholds, summary, JSON round trip, comparison), loadtest/per_second (the run second by
 * second, its JSON), loadtest/loadtest_request (--path specs, request bytes) and loadtest/ceiling
 * (a stage's judgement, the search's next rate). */
#include "ceiling.h"
#include "loadtest_request.h"
#include "loadtest_result.h"
#include "per_second.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static loadtest_result_t make_result(double p99_ms, uint64_t errors, uint64_t timeouts,
                                     uint64_t status_5xx)
{
    loadtest_result_t r = {0};
    r.requests = 1000;
    r.errors = errors;
    r.read_errors = errors;
    r.timeouts = timeouts;
    r.status_5xx = status_5xx;
    r.non2xx = status_5xx;
    r.latency.p99_ms = p99_ms;
    return r;
}

static void test_verdict(void)
{
    loadtest_result_t r = make_result(500, 0, 0, 0);
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_GREEN); /* 500 is not over 500 */
    r = make_result(500.1, 0, 0, 0);
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_YELLOW);
    CHECK_STR(loadtest_verdict_of(&r).headline, "past the yellow threshold");
    r = make_result(2000, 10, 0, 0);
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_YELLOW); /* 10 errors is not over 10 */
    r = make_result(2000.1, 0, 0, 0);
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_RED);
    CHECK_STR(loadtest_verdict_of(&r).headline, "past the red threshold");
    /* The load generator sees no CPU: the verdict claims no headroom, only its thresholds. */
    r = make_result(10, 0, 0, 0);
    CHECK_STR(loadtest_verdict_of(&r).headline, "p99 and failures within the thresholds");
    /* A request still unanswered after more than 500 ms at the end is never green, even when
     * it is too rare to move p99; unfinished requests are failures. */
    r.unfinished = 1;
    r.unfinished_max_ms = 501;
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_YELLOW);
    CHECK(strstr(loadtest_verdict_of(&r).reason, "1 unfinished") != NULL);
    r.unfinished_max_ms = 400;
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_GREEN);
    CHECK_INT(loadtest_failures(&r), 1);
    r.unfinished = 11;
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_RED);
    r = make_result(10, 11, 0, 0);
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_RED);
    /* The reference missed these: 5xx answers and timeouts are failures too. */
    r = make_result(10, 0, 0, 11);
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_RED);
    CHECK(strstr(loadtest_verdict_of(&r).reason, "5xx 11") != NULL);
    r = make_result(10, 4, 4, 3);
    CHECK_INT(loadtest_failures(&r), 11);
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_RED);
    r = make_result(10, 0, 0, 0);
    r.requests = 0;
    CHECK_INT(loadtest_verdict_of(&r).level, LOADTEST_RED);
    CHECK_STR(loadtest_verdict_of(&r).name, "red");
    CHECK_STR(loadtest_verdict_of(&r).headline, "no answer: the target is down or unreachable");
}

static void test_slo(void)
{
    loadtest_result_t r = make_result(400, 1, 1, 1);
    int p99_held = -1, failures_held = -1;
    CHECK_INT(loadtest_slo_check(&r, &p99_held, &failures_held), 1); /* none given */
    CHECK_INT(p99_held, 1);
    CHECK_INT(failures_held, 1);
    r.slo_p99_set = 1;
    r.slo_p99_ms = 400; /* 400 is not over 400 */
    CHECK_INT(loadtest_slo_check(&r, &p99_held, &failures_held), 1);
    r.slo_p99_ms = 399.9;
    CHECK_INT(loadtest_slo_check(&r, &p99_held, &failures_held), 0);
    CHECK_INT(p99_held, 0);
    CHECK_INT(failures_held, 1);
    r.slo_p99_set = 0;
    r.slo_failures_set = 1;
    r.slo_failures = 3; /* errors + timeouts + 5xx = 3 */
    CHECK_INT(loadtest_slo_check(&r, &p99_held, &failures_held), 1);
    r.unfinished = 1; /* and unfinished ones */
    CHECK_INT(loadtest_slo_check(&r, &p99_held, &failures_held), 0);
    CHECK_INT(failures_held, 0);
    buf_t out = {0};
    loadtest_summary_write(&out, &r, 0);
    buf_append_char(&out, 0);
    CHECK(strstr(out.data, "SLO:     failures 4 <= 3: BROKEN\n") != NULL);
    buf_reset(&out);
    loadtest_result_write_json(&out, &r);
    buf_append_char(&out, 0);
    CHECK(strstr(out.data,
                 "\"slo\": {\"failures\": 3, \"failures_held\": false, \"held\": false}") != NULL);
    buf_free(&out);
}

static void test_ceiling_judge(void)
{
    ceiling_options_t o = {.slo_p99_ms = 500, .slo_failures = 0, .cpus = 2};
    ceiling_stage_t s = {.rate_rps = 100, .achieved_rps = 98, .p99_ms = 500};
    ceiling_stage_judge(&s, 5, &o);
    CHECK_INT(s.passed, 1);
    CHECK_STR(s.why, "");
    /* Just above capacity: the queue is still short (p99 fine) but the rate was not met. */
    s = (ceiling_stage_t){.rate_rps = 100, .achieved_rps = 97.5, .p99_ms = 20};
    ceiling_stage_judge(&s, 5, &o);
    CHECK_INT(s.passed, 0);
    CHECK(strstr(s.why, "achieved 97.5/s < 98% of 100.0/s") != NULL);
    /* One request short in a short stage is rounding: 49 of 50. */
    s = (ceiling_stage_t){.rate_rps = 10, .achieved_rps = 9.8 - 0.19, .p99_ms = 20};
    ceiling_stage_judge(&s, 5, &o);
    CHECK_INT(s.passed, 1);
    s = (ceiling_stage_t){.rate_rps = 100, .achieved_rps = 100, .p99_ms = 20, .missed_sends = 1};
    ceiling_stage_judge(&s, 5, &o);
    CHECK_INT(s.passed, 0);
    CHECK(strstr(s.why, "backlog") != NULL);
    s = (ceiling_stage_t){.rate_rps = 100, .achieved_rps = 100, .p99_ms = 500.5, .failures = 1};
    ceiling_stage_judge(&s, 5, &o);
    CHECK_INT(s.passed, 0);
    CHECK_STR(s.why, "p99 500.5 ms > 500.0 ms; 1 failures > 0");
    o.slo_failures = 1;
    s.p99_ms = 10;
    ceiling_stage_judge(&s, 5, &o);
    CHECK_INT(s.passed, 1);

    /* Doubling while nothing failed, then bisection, then stop within 3%. */
    CHECK(ceiling_next_rate(0, 0, 10) == 20);
    CHECK(ceiling_next_rate(640, 0, 640) == 1280);
    CHECK(ceiling_next_rate(640, 1280, 1280) == 960);
    CHECK(ceiling_next_rate(1000, 1020, 1020) == 0);
    CHECK(ceiling_next_rate(10, 10.9, 10.9) == 0); /* within 1 request/s */
    CHECK(ceiling_next_rate(0, 10, 10) == 0);      /* the first stage broke */
}

static void fill_sample(loadtest_result_t *r)
{
    *r = make_result(12.5, 1, 2, 3);
    snprintf(r->label, sizeof(r->label), "one \"server\"");
    snprintf(r->target, sizeof(r->target), "http://127.0.0.1:3000");
    r->connections = 100;
    r->threads = 2;
    r->duration_s = 30.001;
    r->keep_alive = 1;
    r->rps = 33.333;
    r->connect_errors = 1;
    r->read_errors = 0;
    r->latency = (loadtest_latency_t){1.5, 1.25, 5, 12.5, 20, 31.75};
    r->route_count = 2;
    r->routes = calloc(2, sizeof(*r->routes));
    snprintf(r->routes[0].name, sizeof(r->routes[0].name), "GET /products?category=electronics");
    r->routes[0].requests = 600;
    r->routes[0].status_5xx = 3;
    r->routes[0].latency.p99_ms = 9.5;
    snprintf(r->routes[1].name, sizeof(r->routes[1].name), "GET /report");
    r->routes[1].requests = 400;
    r->server_count = 2;
    r->servers = calloc(2, sizeof(*r->servers));
    snprintf(r->servers[0].name, sizeof(r->servers[0].name), "server-1");
    r->servers[0].requests = 500;
    snprintf(r->servers[1].name, sizeof(r->servers[1].name), "server-2");
    r->servers[1].requests = 500;
    /* [route][server]: the first route mostly on server-1, the second mostly on server-2. */
    r->route_servers = calloc(4, sizeof(*r->route_servers));
    static const uint64_t cells[4] = {450, 150, 50, 350};
    for (int i = 0; i < 4; i++) {
        snprintf(r->route_servers[i].name, sizeof(r->route_servers[i].name), "%s",
                 r->servers[i % 2].name);
        r->route_servers[i].requests = cells[i];
        r->route_servers[i].latency.p99_ms = 10.0 * (i + 1);
    }
}

/* Writes json (NUL-terminated; the NUL is not written) to a new file made from the template path
 * (mkstemp, which leaves the file's name in path), then reads it back into *back: the return
 * value of loadtest_result_read_json. */
static int write_and_read_back(const buf_t *json, char *path, loadtest_result_t *back, char *err,
                               size_t err_size)
{
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, json->data, json->len - 1), (long long)json->len - 1);
    close(fd);
    return loadtest_result_read_json(path, back, err, err_size);
}

static void test_json_round_trip(void)
{
    loadtest_result_t r;
    fill_sample(&r);
    buf_t json = {0};
    loadtest_result_write_json(&json, &r);
    buf_append_char(&json, 0);
    CHECK(strstr(json.data, "\"label\": \"one \\\"server\\\"\"") != NULL);
    CHECK(strstr(json.data, "\"requests\": 1000,") != NULL);
    CHECK(strstr(json.data, "\"latency_ms\": {\"avg\": 1.500, \"p50\": 1.250, \"p90\": 5.000, "
                            "\"p99\": 12.500, \"p999\": 20.000, \"max\": 31.750}") != NULL);
    CHECK(strstr(json.data, "\"failures\": 6,") != NULL);
    CHECK(strstr(json.data, "\"verdict\": {\"level\": \"green\"") != NULL);
    CHECK(strstr(json.data, "\"kind\": \"run\",") != NULL);
    CHECK(strstr(json.data, "\"by_route_server\": {\n    \"GET /products?category=electronics\": "
                            "{\n      \"server-1\": {\"requests\": 450,") != NULL);
    CHECK(strstr(json.data, "\"GET /report\": {\n      \"server-1\": {\"requests\": 50,") != NULL);

    char path[] = "/tmp/test_loadtest_result.XXXXXX";
    loadtest_result_t back = {0};
    char err[256] = "";
    CHECK_INT(write_and_read_back(&json, path, &back, err, sizeof(err)), 0);
    CHECK_STR(back.label, "one \"server\"");
    CHECK_STR(back.target, "http://127.0.0.1:3000");
    CHECK_INT(back.requests, 1000);
    CHECK_INT(back.errors, 1);
    CHECK_INT(back.connect_errors, 1);
    CHECK_INT(back.timeouts, 2);
    CHECK_INT(back.status_5xx, 3);
    CHECK_INT(back.connections, 100);
    CHECK(back.rps == 33.333);
    CHECK(back.latency.p99_ms == 12.5 && back.latency.max_ms == 31.75);
    CHECK_INT(back.route_count, 2);
    CHECK_STR(back.routes[0].name, "GET /products?category=electronics");
    CHECK_INT(back.routes[0].status_5xx, 3);
    CHECK(back.routes[0].latency.p99_ms == 9.5);
    CHECK_INT(back.server_count, 2);
    CHECK_STR(back.servers[1].name, "server-2");

    /* Compare: a run with twice the throughput shows 2.00x. */
    loadtest_result_t runs[2] = {r, back};
    runs[1].rps = r.rps * 2;
    buf_t table = {0};
    loadtest_compare_write(&table, runs, 2);
    buf_append_char(&table, 0);
    CHECK(strstr(table.data, "requests/s") != NULL);
    CHECK(strstr(table.data, "2.00x") != NULL);
    CHECK(strstr(table.data, "#2/#1") != NULL);
    /* The columns by number (no label cut mid-word). */
    CHECK(strncmp(table.data + 16, "             #1             #2", 30) == 0);
    buf_free(&table);

    /* Files that are not results. */
    FILE *f = fopen(path, "w");
    fputs("{\"rps\": 1}", f);
    fclose(f);
    loadtest_result_t bad = {0};
    CHECK_INT(loadtest_result_read_json(path, &bad, err, sizeof(err)), -1);
    CHECK(strstr(err, "not a catalog-loadtest result") != NULL);
    f = fopen(path, "w");
    fputs("{nope", f);
    fclose(f);
    CHECK_INT(loadtest_result_read_json(path, &bad, err, sizeof(err)), -1);
    CHECK(strstr(err, path) != NULL);
    unlink(path);
    CHECK_INT(loadtest_result_read_json(path, &bad, err, sizeof(err)), -1);

    buf_free(&json);
    loadtest_result_free(&r);
    loadtest_result_free(&back);
    loadtest_result_free(NULL);
}

static void test_summary(void)
{
    loadtest_result_t r;
    fill_sample(&r);
    r.latency.p99_ms = 2500;
    buf_t out = {0};
    loadtest_summary_write(&out, &r, 0);
    buf_append_char(&out, 0);
    CHECK(strstr(out.data, "Requests    1000 in 30.00 s, 33.3 requests/s\n") != NULL);
    CHECK(strstr(out.data, "\n5xx         3 (server errors: counted as failures") != NULL);
    CHECK(strstr(out.data, "Timeouts    2\n") != NULL);
    CHECK(strstr(out.data, "p99.9 20.00 ms") != NULL);
    CHECK(strstr(out.data, "By route") != NULL);
    CHECK(strstr(out.data, "By server (X-Server-Id)") != NULL);
    CHECK(strstr(out.data, "  50.0%") != NULL);
    /* Each route by server, with the server's share of that route and its own p99. */
    CHECK(strstr(out.data, "By route and server") != NULL);
    CHECK(strstr(out.data, "server-2        150   25.0%") != NULL);
    CHECK(strstr(out.data, "server-1         50   12.5%") != NULL);
    CHECK(strstr(out.data, "Verdict: RED: past the red threshold (p99 2500.0 ms > 2000 ms)") !=
          NULL);
    CHECK(strstr(out.data, "\033") == NULL);
    buf_reset(&out);
    loadtest_summary_write(&out, &r, 1);
    buf_append_char(&out, 0);
    CHECK(strstr(out.data, "\033[31mRED\033[0m") != NULL);
    buf_free(&out);
    loadtest_result_free(&r);
}

static void test_requests(void)
{
    loadtest_request_t q;
    char err[256];
    CHECK_INT(loadtest_request_parse("/products/1", NULL, &q, err, sizeof(err)), 0);
    CHECK_STR(q.method, "GET");
    CHECK_STR(q.name, "GET /products/1");
    loadtest_request_build(&q, "localhost", 3000, 1);
    CHECK_MEM(q.bytes.data, q.bytes.len,
              "GET /products/1 HTTP/1.1\r\nHost: localhost:3000\r\nUser-Agent: catalog-loadtest\r\n"
              "Accept: */*\r\n\r\n");
    loadtest_request_build(&q, "::1", 80, 0);
    CHECK_MEM(q.bytes.data, q.bytes.len,
              "GET /products/1 HTTP/1.1\r\nHost: [::1]\r\nUser-Agent: catalog-loadtest\r\n"
              "Accept: */*\r\nConnection: close\r\n\r\n");
    loadtest_request_free(&q);

    CHECK_INT(loadtest_request_parse("POST /orders {\"product_id\":1,\"quantity\":1}", "/api/", &q,
                                     err, sizeof(err)),
              0);
    CHECK_STR(q.path, "/api/orders");
    CHECK_STR(q.name, "POST /api/orders");
    loadtest_request_build(&q, "127.0.0.1", 8080, 1);
    CHECK_MEM(
        q.bytes.data, q.bytes.len,
        "POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: catalog-loadtest\r\n"
        "Accept: */*\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n"
        "{\"product_id\":1,\"quantity\":1}");
    loadtest_request_free(&q);

    CHECK_INT(loadtest_request_parse("  HEAD /report  ", NULL, &q, err, sizeof(err)), 0);
    CHECK(q.is_head);
    CHECK_INT(q.body.len, 0);
    loadtest_request_free(&q);

    CHECK_INT(loadtest_request_parse("products/1", NULL, &q, err, sizeof(err)), -1);
    CHECK(strstr(err, "expected \"/path\"") != NULL);
    CHECK_INT(loadtest_request_parse("post /orders", NULL, &q, err, sizeof(err)), -1);
    CHECK_INT(loadtest_request_parse("POST orders", NULL, &q, err, sizeof(err)), -1);
    CHECK(strstr(err, "must start with '/'") != NULL);
    CHECK_INT(loadtest_request_parse("", NULL, &q, err, sizeof(err)), -1);
}

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

/* Within 3.2% (the per-second histogram's resolution). */
static int close_to(double got, double want)
{
    return got >= want * 0.968 && got <= want * 1.032;
}

static void test_per_second(void)
{
    /* The buckets tile the values: each starts where the previous ended, and a bucket's low
     * end falls in that bucket. */
    int tiled = 1;
    for (uint32_t i = 0; i + 1 < PER_SECOND_BUCKETS; i++) {
        if (per_second_bucket_low(i) + per_second_bucket_width(i) != per_second_bucket_low(i + 1))
            tiled = 0;
        if (per_second_bucket_index(per_second_bucket_low(i)) != i) tiled = 0;
    }
    CHECK(tiled);
    CHECK_INT(per_second_bucket_index(UINT64_MAX), PER_SECOND_BUCKETS - 1);

    /* Two workers.  Second 0: 1..100 ms, one of them a 5xx, and a timeout; second 1: nothing;
     * second 2: 50 answers of 200 ms from the other worker, which also answered 100 times in
     * 1 ms in second 0. */
    per_second_t a = {0}, b = {0};
    for (int ms = 1; ms <= 100; ms++)
        per_second_response(&a, (uint64_t)ms * 9 * NS_PER_MS, (uint64_t)ms * NS_PER_MS, ms == 50);
    per_second_failure(&a, 990 * NS_PER_MS);
    for (int i = 0; i < 100; i++)
        per_second_response(&b, 5 * NS_PER_MS, 1 * NS_PER_MS, 0);
    for (int i = 0; i < 50; i++)
        per_second_response(&b, 2 * NS_PER_S + 500 * NS_PER_MS, 200 * NS_PER_MS, 0);
    CHECK_INT(a.count, 1);
    CHECK_INT(b.count, 3);
    per_second_t all = {0};
    per_second_merge(&all, &a);
    per_second_merge(&all, &b);

    loadtest_second_t *seconds = NULL;
    size_t count = per_second_summarise(&all, 5, &seconds); /* a 5 s run: 5 entries */
    CHECK_INT(count, 5);
    CHECK_INT(seconds[0].requests, 200);
    CHECK_INT(seconds[0].failures, 2);
    CHECK(close_to(seconds[0].p50_ms, 1.0));  /* half the answers took 1 ms */
    CHECK(close_to(seconds[0].p99_ms, 98.0)); /* rank 198 of 200: the 98th of 1..100 ms */
    CHECK_INT(seconds[1].requests, 0);
    CHECK(seconds[1].p99_ms == 0);
    CHECK_INT(seconds[2].requests, 50);
    CHECK(close_to(seconds[2].p50_ms, 200.0) && close_to(seconds[2].p99_ms, 200.0));
    CHECK_INT(seconds[3].requests + seconds[4].requests, 0);
    free(seconds);
    /* A run whose answers went on past its duration (the drain) keeps those seconds too. */
    CHECK_INT(per_second_summarise(&all, 2, &seconds), 3);
    free(seconds);
    per_second_t none = {0};
    CHECK_INT(per_second_summarise(&none, 0, &seconds), 0);
    CHECK(seconds == NULL);

    /* In the result's JSON and back. */
    loadtest_result_t r = {0};
    snprintf(r.label, sizeof(r.label), "per-second");
    r.requests = 250;
    r.rps = 50;
    r.second_count = per_second_summarise(&all, 5, &r.per_second);
    buf_t json = {0};
    loadtest_result_write_json(&json, &r);
    buf_append_char(&json, 0);
    CHECK(strstr(json.data,
                 "\"per_second\": [\n    {\"t\": 0, \"requests\": 200, \"failures\": 2, ") != NULL);
    CHECK(strstr(json.data, "{\"t\": 1, \"requests\": 0, \"failures\": 0, \"p50_ms\": 0.000, "
                            "\"p99_ms\": 0.000}") != NULL);
    char path[] = "/tmp/test_loadtest_per_second.XXXXXX";
    loadtest_result_t back = {0};
    char err[256] = "";
    CHECK_INT(write_and_read_back(&json, path, &back, err, sizeof(err)), 0);
    unlink(path);
    CHECK_INT(back.second_count, 5);
    CHECK_INT(back.per_second[0].requests, 200);
    CHECK_INT(back.per_second[0].failures, 2);
    CHECK(back.per_second[2].p99_ms > 190 && back.per_second[2].p99_ms < 210);
    CHECK_INT(back.per_second[4].requests, 0);

    buf_free(&json);
    loadtest_result_free(&r);
    loadtest_result_free(&back);
    per_second_free(&a);
    per_second_free(&b);
    per_second_free(&all);
    per_second_free(NULL);
}

int main(void)
{
    test_verdict();
    test_slo();
    test_ceiling_judge();
    test_json_round_trip();
    test_summary();
    test_requests();
    test_per_second();
    return test_report("loadtest_result");
}
