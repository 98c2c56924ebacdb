/* output_budget.c: OUTPUT_BUDGET_BYTES, the bound on the output buffers of all the process's
 * connections together (the policy is in server/conn.c's opening comment), and handing freed
 * output memory back to the system after a peak. */
#include "output_budget.h"

#include <malloc.h>
#include <stdatomic.h>

#include "log.h"
#include "server.h"

/* One log line at most this often when the output budget is reached; freed output memory
 * handed back to the system at most this often. */
#define OUTPUT_LOG_INTERVAL_MS 60000
#define OUTPUT_TRIM_INTERVAL_MS 1000

static void output_budget_reached(server_t *s, size_t total, uint64_t now_ms)
{
    uint64_t hits = atomic_fetch_add_explicit(&s->output_budget_hits, 1, memory_order_relaxed) + 1;
    uint64_t last = atomic_load(&s->output_logged_ms);
    if ((last == 0 || now_ms >= last + OUTPUT_LOG_INTERVAL_MS) &&
        atomic_compare_exchange_strong(&s->output_logged_ms, &last, now_ms))
        log_warn("output budget reached: %zu bytes of responses wait for clients "
                 "(OUTPUT_BUDGET_BYTES=%u); connections with unsent output start no new request "
                 "until their client takes it, and close after HTTP_SEND_TIMEOUT_MS=%u without "
                 "progress (%llu times so far, at most one line a minute)",
                 total, s->config.output_budget_bytes, s->config.send_timeout_ms,
                 (unsigned long long)hits);
}

void output_budget_account(server_t *s, size_t *charged, size_t cap, uint64_t now_ms)
{
    size_t want = cap > IDLE_BUFFER_KEEP_BYTES ? cap : 0;
    if (want == *charged) return;
    if (want > *charged) {
        size_t add = want - *charged;
        size_t total = atomic_fetch_add_explicit(&s->output_bytes, add, memory_order_relaxed) + add;
        size_t budget = s->config.output_budget_bytes;
        if (total > budget && total - add <= budget) output_budget_reached(s, total, now_ms);
        size_t peak = atomic_load_explicit(&s->output_peak, memory_order_relaxed);
        while (total > peak && !atomic_compare_exchange_weak(&s->output_peak, &peak, total)) {
        }
    } else {
        atomic_fetch_sub_explicit(&s->output_bytes, *charged - want, memory_order_relaxed);
    }
    *charged = want;
}

int output_budget_over(const server_t *s)
{
    return atomic_load_explicit(&s->output_bytes, memory_order_relaxed) >
           s->config.output_budget_bytes;
}

void output_budget_trim(server_t *s, uint64_t now_ms)
{
    size_t peak = atomic_load_explicit(&s->output_peak, memory_order_relaxed);
    if (peak < s->config.output_budget_bytes / 2) return;
    size_t now = atomic_load_explicit(&s->output_bytes, memory_order_relaxed);
    if (now > peak / 4) return;
    uint64_t last = atomic_load(&s->output_trimmed_ms);
    if (now_ms < last + OUTPUT_TRIM_INTERVAL_MS) return; /* workers' clocks differ */
    /* One worker trims; the others see the new peak (or the time) and skip. */
    if (!atomic_compare_exchange_strong(&s->output_peak, &peak, now)) return;
    atomic_store(&s->output_trimmed_ms, now_ms);
    /* The large buffers came from the heaps (below M_MMAP_THRESHOLD): free() keeps their pages,
     * malloc_trim hands back every whole free page of every arena. */
    malloc_trim(0);
}
