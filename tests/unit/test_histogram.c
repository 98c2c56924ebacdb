/* test_histogram.c: unit tests for loadtest/histogram: percentiles against a sorted array. */
#include "histogram.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

/* xorshift64*: a fixed-seed generator so a failure reproduces. */
static uint64_t random_state = 0x9E3779B97F4A7C15ull;
static uint64_t random_next(void)
{
    random_state ^= random_state >> 12;
    random_state ^= random_state << 25;
    random_state ^= random_state >> 27;
    return random_state * 0x2545F4914F6CDD1Dull;
}
static double random_unit(void)
{
    return (double)(random_next() >> 11) / 9007199254740992.0;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The value at percentile p of sorted[0..n), with the histogram's rank rule. */
static uint64_t sorted_percentile(const uint64_t *sorted, size_t n, double p)
{
    double exact_rank = p / 100.0 * (double)n;
    size_t rank = (size_t)exact_rank;
    if ((double)rank < exact_rank) rank++;
    if (rank == 0) rank = 1;
    return sorted[rank - 1];
}

static double worst_error;

static void check_close(uint64_t got, uint64_t want, double p)
{
    double error = fabs((double)got - (double)want) / (double)want;
    if (error > worst_error) worst_error = error;
    if (error <= 0.01) {
        test_passed++;
    } else {
        test_failed++;
        fprintf(stderr, "p%g: got %" PRIu64 ", want %" PRIu64 " (error %.4f)\n", p, got, want,
                error);
    }
}

/* Log-uniform values from 1 us to 60 s in nanoseconds: every decade equally represented. */
static void test_random_log_uniform(size_t n)
{
    uint64_t *values = malloc(n * sizeof(*values));
    histogram_t *h = histogram_new();
    for (size_t i = 0; i < n; i++) {
        values[i] = (uint64_t)exp(log(1e3) + random_unit() * (log(6e10) - log(1e3)));
        histogram_record(h, values[i]);
    }
    qsort(values, n, sizeof(*values), compare_u64);
    static const double percentiles[] = {0.001, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof(percentiles) / sizeof(percentiles[0]); i++) {
        double p = percentiles[i];
        check_close(histogram_percentile(h, p), sorted_percentile(values, n, p), p);
    }
    for (double p = 0.5; p < 100; p += 0.5)
        check_close(histogram_percentile(h, p), sorted_percentile(values, n, p), p);
    CHECK_INT(h->total_count, n);
    CHECK_INT(h->min_value, values[0]);
    CHECK_INT(h->max_value, values[n - 1]);
    CHECK_INT(histogram_percentile(h, 100), values[n - 1]);
    free(values);
    histogram_free(h);
}

/* Every single value from 1 us to 60 s (sampled densely) comes back within 1%. */
static void test_single_values(void)
{
    histogram_t *h = histogram_new();
    int bad = 0;
    for (double v = 1e3; v <= 6e10; v *= 1.0007) {
        uint64_t value = (uint64_t)v;
        histogram_reset(h);
        histogram_record(h, value);
        histogram_record(h, value + 1000000000000ull); /* a max far away: no clamping help */
        uint64_t got = histogram_percentile(h, 50);
        double error = fabs((double)got - (double)value) / (double)value;
        if (error > 0.005) {
            if (!bad++) fprintf(stderr, "value %" PRIu64 " read back as %" PRIu64 "\n", value, got);
        }
    }
    CHECK_INT(bad, 0);
    histogram_free(h);
}

/* The buckets tile the number line: each starts where the previous ended. */
static void test_buckets_contiguous(void)
{
    int gaps = 0, misplaced = 0;
    for (uint32_t i = 1; i < HISTOGRAM_BUCKETS; i++) {
        if (histogram_bucket_low(i) != histogram_bucket_low(i - 1) + histogram_bucket_width(i - 1))
            gaps++;
        uint64_t low = histogram_bucket_low(i), last = low + histogram_bucket_width(i) - 1;
        if (histogram_bucket_index(low) != i || histogram_bucket_index(last) != i) misplaced++;
        if (low >= 128 && (double)histogram_bucket_width(i) / (double)low > 1.0 / 128 + 1e-12)
            misplaced++;
    }
    CHECK_INT(gaps, 0);
    CHECK_INT(misplaced, 0);
    CHECK_INT(histogram_bucket_index(0), 0);
    CHECK_INT(histogram_bucket_index(UINT64_MAX), HISTOGRAM_BUCKETS - 1);
}

static void test_merge_and_edges(void)
{
    histogram_t *a = histogram_new(), *b = histogram_new(), *all = histogram_new();
    CHECK_INT(histogram_percentile(a, 50), 0);
    CHECK(histogram_mean(a) == 0);
    for (uint64_t v = 1; v <= 1000; v++) {
        histogram_record(v % 2 ? a : b, v * 1000);
        histogram_record(all, v * 1000);
    }
    histogram_merge(a, b);
    CHECK_INT(a->total_count, 1000);
    CHECK_INT(a->min_value, 1000);
    CHECK_INT(a->max_value, 1000000);
    CHECK(memcmp(a->counts, all->counts, sizeof(a->counts)) == 0);
    CHECK(fabs(histogram_mean(a) - 500500.0) < 1e-6);
    check_close(histogram_percentile(a, 50), 500000, 50);
    check_close(histogram_percentile(a, 99), 990000, 99);
    CHECK_INT(histogram_percentile(a, 0), 1000);
    CHECK_INT(histogram_percentile(a, 150), 1000000);
    histogram_reset(b);
    histogram_record_n(b, 5, 3);
    CHECK_INT(histogram_percentile(b, 50), 5); /* exact below 128 */
    CHECK_INT(b->total_count, 3);
    histogram_record(b, UINT64_MAX); /* clamped into the top bucket, max stays exact */
    CHECK_INT(b->max_value, UINT64_MAX);
    CHECK_INT(histogram_percentile(b, 100), UINT64_MAX);
    histogram_free(a);
    histogram_free(b);
    histogram_free(all);
    histogram_free(NULL);
}

int main(void)
{
    test_random_log_uniform(200000);
    test_random_log_uniform(1001);
    test_single_values();
    test_buckets_contiguous();
    test_merge_and_edges();
    printf("histogram: worst relative error against a sorted array: %.5f\n", worst_error);
    return test_report("histogram");
}
