/* gupio's C ABI, tested from C: a small machine of 64 pages whose
 * `struct page` embeds gupio's counters, its callbacks, and the scenarios a
 * C kernel runs. `cargo xtask test` compiles this file with
 *   cc -std=c11 -Wall -Wextra -Werror -pedantic
 * links it against the host static library and runs it; it prints one line
 * per check group and "N passed, M failed", and exits non-zero on any
 * failure. */

#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gupio.h"

/* ---- the harness ------------------------------------------------------- */

static int passed, failed;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (cond) {                                                          \
            passed++;                                                        \
        } else {                                                             \
            failed++;                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
        }                                                                    \
    } while (0)

/* A call that must succeed (return >= 0). */
#define OK(call)                                                           \
    do {                                                                   \
        intptr_t ok_ret_ = (call);                                         \
        if (ok_ret_ < 0) {                                                 \
            failed++;                                                      \
            fprintf(stderr, "%s:%d: %s failed: %ld\n", __FILE__, __LINE__, \
                    #call, (long)ok_ret_);                                 \
        } else {                                                           \
            passed++;                                                      \
        }                                                                  \
    } while (0)

/* The kernel's panic hook (the library is built with `panic-handler`):
 * reached only through a bug in gupio. */
void gupio_panic(const uint8_t *file, uintptr_t file_len, uint32_t line)
{
    fprintf(stderr, "gupio panicked at %.*s:%u\n", (int)file_len, (const char *)file, line);
    abort();
}

/* ---- the machine: 64 pages from pfn 0x1000 ------------------------------ */

#define BASE_PFN ((uintptr_t)0x1000)
#define NPAGES 64
#define ZERO_PFN BASE_PFN            /* page 0 is the shared zero page */
#define NOT_LONGTERM_PFN (BASE_PFN + 56) /* a mapped user page */

struct page {
    struct gupio_page_counters counters; /* gupio's: 16 bytes, aligned 8 */
    atomic_uint frees;                   /* times freed as a folio head */
};

struct machine {
    struct page pages[NPAGES];
    atomic_size_t pins_acquired, pins_released, acquire_calls, release_calls;
    atomic_uint warnings;
    atomic_int last_warning;
    atomic_uint frees;
};

static struct machine machine;

static struct gupio_page_counters *counters_of(void *ctx, uintptr_t pfn)
{
    struct machine *m = ctx;
    if (pfn < BASE_PFN || pfn >= BASE_PFN + NPAGES)
        return NULL;
    return &m->pages[pfn - BASE_PFN].counters;
}

static bool is_zero_page(void *ctx, uintptr_t pfn)
{
    (void)ctx;
    return pfn == ZERO_PFN;
}

static bool is_longterm_pinnable(void *ctx, uintptr_t pfn)
{
    (void)ctx;
    return pfn != NOT_LONGTERM_PFN;
}

static void free_folio(void *ctx, uintptr_t head, uint32_t order)
{
    struct machine *m = ctx;
    (void)order;
    atomic_fetch_add(&m->pages[head - BASE_PFN].frees, 1);
    atomic_fetch_add(&m->frees, 1);
}

static void warn(void *ctx, const struct gupio_warning *w)
{
    struct machine *m = ctx;
    atomic_fetch_add(&m->warnings, 1);
    atomic_store(&m->last_warning, (int)w->kind);
}

static void pins_acquired(void *ctx, uintptr_t pages)
{
    struct machine *m = ctx;
    atomic_fetch_add(&m->pins_acquired, pages);
    atomic_fetch_add(&m->acquire_calls, 1);
}

static void pins_released(void *ctx, uintptr_t pages)
{
    struct machine *m = ctx;
    atomic_fetch_add(&m->pins_released, pages);
    atomic_fetch_add(&m->release_calls, 1);
}

static const struct gupio_page_ops ops = {
    .counters = counters_of,
    .is_zero_page = is_zero_page,
    .is_longterm_pinnable = is_longterm_pinnable,
    .free_folio = free_folio,
    .warn = warn,
    .pins_acquired = pins_acquired,
    .pins_released = pins_released,
    /* lock and dirty: gupio's bits in the counters */
    .ctx = &machine,
};

static struct gupio_tracker tracker;

static struct gupio_page_counters *page(uintptr_t pfn)
{
    return counters_of(&machine, pfn);
}

static intptr_t refcount(uintptr_t pfn)
{
    return gupio_counters_refcount(page(pfn), NULL);
}

static intptr_t pincount(uintptr_t pfn)
{
    return gupio_counters_pincount(page(pfn), NULL);
}

/* Every page's counts, to compare against after a scenario. */
struct snapshot {
    intptr_t ref[NPAGES], pin[NPAGES];
    size_t acquired, released;
};

static void snapshot(struct snapshot *s)
{
    for (int i = 0; i < NPAGES; i++) {
        s->ref[i] = refcount(BASE_PFN + (uintptr_t)i);
        s->pin[i] = pincount(BASE_PFN + (uintptr_t)i);
    }
    s->acquired = atomic_load(&machine.pins_acquired);
    s->released = atomic_load(&machine.pins_released);
}

static int at_baseline(const struct snapshot *before)
{
    struct snapshot now;
    snapshot(&now);
    for (int i = 0; i < NPAGES; i++) {
        if (now.ref[i] != before->ref[i] || now.pin[i] != before->pin[i]) {
            fprintf(stderr, "page %#lx: refcount %ld pincount %ld, was %ld %ld\n",
                    (unsigned long)(BASE_PFN + (uintptr_t)i), (long)now.ref[i],
                    (long)now.pin[i], (long)before->ref[i], (long)before->pin[i]);
            return 0;
        }
    }
    /* pins acquired == pins released over the scenario */
    return now.acquired - before->acquired == now.released - before->released;
}

/* ---- the address space: user 0x400000 + n pages maps pfn 0x1010 + n ---- */

#define USER_BASE ((uintptr_t)0x400000)
#define USER_PAGES 44 /* pfn 0x1010 .. 0x103b */
#define USER_PFN (BASE_PFN + 16)
#define ZERO_ADDR ((uintptr_t)0x800000) /* maps the zero page */
#define PAGE_SIZE 4096u

static uint32_t translate_run(void *ctx, uintptr_t addr, uintptr_t max_pages,
                              struct gupio_mapped_run *run)
{
    (void)ctx;
    if (addr >= ZERO_ADDR && addr < ZERO_ADDR + PAGE_SIZE) {
        /* A (buggy) page table mapping the zero page writable: gupio
         * still refuses a write pin of it. */
        run->pfn = ZERO_PFN;
        run->pages = 1;
        run->flags = GUPIO_MAPPING_WRITABLE;
        return GUPIO_FAULT_NONE;
    }
    if (addr < USER_BASE || addr >= USER_BASE + USER_PAGES * PAGE_SIZE) {
        run->pages = 0; /* not mapped: gupio faults it in */
        return GUPIO_FAULT_NONE;
    }
    uintptr_t n = (addr - USER_BASE) / PAGE_SIZE;
    uintptr_t left = USER_PAGES - n;
    run->pfn = USER_PFN + n;
    run->pages = left < max_pages ? left : max_pages;
    run->flags = GUPIO_MAPPING_WRITABLE;
    return GUPIO_FAULT_NONE;
}

static uint32_t fault_in(void *ctx, uintptr_t addr, bool write)
{
    (void)ctx;
    (void)addr;
    (void)write;
    return GUPIO_FAULT_UNMAPPED; /* everything mapped is present */
}

static const struct gupio_address_space space = {
    .translate_run = translate_run,
    .fault_in = fault_in,
    .mapping_kind = NULL,
    .ctx = NULL,
    .page_shift = 12,
};

static uintptr_t user_addr(uintptr_t pfn)
{
    return USER_BASE + (pfn - USER_PFN) * PAGE_SIZE;
}

/* ---- scenarios ---------------------------------------------------------- */

/* Small pages 0x1010..0x1017, an order-3 folio at 0x1018, an order-2 folio
 * at 0x1020 for the threads, small pages 0x1024..0x103b. */
static void set_up_memory(void)
{
    OK(gupio_tracker_init(&tracker, &ops, NULL));
    /* Zero-filled counters are free small pages: allocate what we use. */
    OK(gupio_folio_prepare(&tracker, ZERO_PFN, 0, NULL));
    for (uintptr_t pfn = USER_PFN; pfn < USER_PFN + 8; pfn++)
        OK(gupio_folio_prepare(&tracker, pfn, 0, NULL));
    OK(gupio_folio_prepare(&tracker, USER_PFN + 8, 3, NULL));
    OK(gupio_folio_prepare(&tracker, USER_PFN + 16, 2, NULL));
    for (uintptr_t pfn = USER_PFN + 20; pfn < USER_PFN + USER_PAGES; pfn++)
        OK(gupio_folio_prepare(&tracker, pfn, 0, NULL));
}

/* A direct-I/O read into four user pages: pin, build, dirty, submit,
 * complete, release; every count back at baseline. */
static void pin_bio_submit_complete_release(void)
{
    struct snapshot before;
    struct gupio_bvec bvecs[8];
    struct gupio_bio bio;
    struct gupio_completion done;
    struct gupio_deferred_list deferred;
    struct gupio_release_stats stats;
    struct gupio_bio_info info;
    uint32_t status = 99;
    enum gupio_error cause;

    snapshot(&before);
    OK(gupio_bio_init(&bio, bvecs, 8, GUPIO_OP_READ, 2048, NULL, NULL));
    intptr_t added = gupio_bio_add_user_range(&bio, &tracker, &space, user_addr(USER_PFN),
                                              4 * PAGE_SIZE, GUPIO_GUP_WRITE, &cause);
    CHECK(added == 4 * PAGE_SIZE && cause == GUPIO_OK);
    CHECK(gupio_maybe_dma_pinned(&tracker, USER_PFN + 2, NULL) == 1);
    CHECK(refcount(USER_PFN + 2) == 1 + 1024); /* a small page's pin: 1024 */
    OK(gupio_bio_get_info(&bio, &info, NULL));
    /* four contiguous pinned pages: one multi-page bvec */
    CHECK(info.vcnt == 1 && info.size == 4 * PAGE_SIZE && info.sector == 2048);
    CHECK(bvecs[0].len == 4 * PAGE_SIZE && bvecs[0].offset == 0);
    uintptr_t pfn = 0;
    enum gupio_origin origin = GUPIO_ORIGIN_BORROWED;
    OK(gupio_bvec_decode(&bvecs[0], &pfn, &origin, NULL));
    CHECK(pfn == USER_PFN && origin == GUPIO_ORIGIN_PINNED);

    OK(gupio_bio_set_pages_dirty(&bio, &tracker, NULL));
    CHECK(gupio_counters_flags(page(USER_PFN), NULL) & GUPIO_PAGE_DIRTY);
    OK(gupio_completion_init(&done, NULL));
    OK(gupio_completion_start(&done, NULL));
    OK(gupio_bio_submit(&bio, NULL));
    CHECK(gupio_bio_get_state(&bio, NULL) == GUPIO_BIO_SUBMITTED);
    /* ... the device writes the pages, then interrupts: a lone bio ends in one call */
    OK(gupio_bio_end(&bio, &done, &tracker, GUPIO_STATUS_OK, &status, NULL));
    CHECK(status == GUPIO_STATUS_OK);
    CHECK(gupio_bio_get_state(&bio, NULL) == GUPIO_BIO_COMPLETED);
    OK(gupio_deferred_init(&deferred, NULL));
    /* every page still dirty: released at once */
    CHECK(gupio_bio_complete_dio_read(&bio, &tracker, &deferred, NULL) == 0);
    CHECK(gupio_bio_get_state(&bio, NULL) == GUPIO_BIO_RELEASED);
    CHECK(gupio_maybe_dma_pinned(&tracker, USER_PFN + 2, NULL) == 0);
    CHECK(at_baseline(&before));

    /* Again, but writeback cleans a page while the device writes: the
     * release is deferred to process context, which re-dirties it. */
    OK(gupio_bio_init(&bio, bvecs, 8, GUPIO_OP_READ, 0, NULL, NULL));
    CHECK(gupio_bio_add_user_range(&bio, &tracker, &space, user_addr(USER_PFN), 2 * PAGE_SIZE,
                                   GUPIO_GUP_WRITE, NULL) == 2 * PAGE_SIZE);
    OK(gupio_bio_set_pages_dirty(&bio, &tracker, NULL));
    OK(gupio_completion_start(&done, NULL));
    OK(gupio_bio_submit(&bio, NULL));
    OK(gupio_counters_update_flags(page(USER_PFN + 1), GUPIO_PAGE_DIRTY, false, NULL));
    CHECK(gupio_completion_complete(&done, &tracker, GUPIO_STATUS_OK, &status, NULL) == 1);
    OK(gupio_bio_complete(&bio, status, NULL));
    CHECK(gupio_bio_complete_dio_read(&bio, &tracker, &deferred, NULL) == 1);
    CHECK(gupio_bio_get_state(&bio, NULL) == GUPIO_BIO_DEFERRED);
    CHECK(gupio_maybe_dma_pinned(&tracker, USER_PFN + 1, NULL) == 1);
    CHECK(gupio_deferred_drain(&deferred, &tracker, NULL, NULL, NULL) == 1);
    CHECK(gupio_bio_get_state(&bio, NULL) == GUPIO_BIO_RELEASED);
    CHECK(gupio_counters_flags(page(USER_PFN + 1), NULL) & GUPIO_PAGE_DIRTY);
    CHECK(at_baseline(&before));

    /* A write: pins taken into an array, added by origin, released
     * without dirtying, with the counts by origin. */
    uintptr_t pinned[3];
    CHECK(gupio_pin_user_pages(&tracker, &space, user_addr(USER_PFN + 4), 3, 0, pinned, NULL) ==
          3);
    CHECK(pinned[0] == USER_PFN + 4 && pinned[2] == USER_PFN + 6);
    OK(gupio_get_range(&tracker, USER_PFN + 7, 1, NULL));
    OK(gupio_bio_init(&bio, bvecs, 8, GUPIO_OP_WRITE, 8, NULL, NULL));
    for (int i = 0; i < 3; i++)
        OK(gupio_bio_add_page(&bio, &tracker, pinned[i], PAGE_SIZE, 0, GUPIO_ORIGIN_PINNED, NULL));
    /* contiguous but another origin: a new bvec, never merged */
    CHECK(gupio_bio_add_page(&bio, &tracker, USER_PFN + 7, 512, 0, GUPIO_ORIGIN_REFERENCED,
                             NULL) == 0);
    OK(gupio_bio_get_info(&bio, &info, NULL));
    CHECK(info.vcnt == 2);
    OK(gupio_completion_start(&done, NULL));
    OK(gupio_bio_submit(&bio, NULL));
    CHECK(gupio_completion_complete(&done, &tracker, GUPIO_STATUS_MEDIUM, &status, NULL) == 1);
    CHECK(status == GUPIO_STATUS_MEDIUM);
    OK(gupio_bio_complete(&bio, status, NULL));
    OK(gupio_bio_get_info(&bio, &info, NULL));
    CHECK(info.status == GUPIO_STATUS_MEDIUM);
    OK(gupio_bio_release(&bio, &tracker, false, &stats, NULL));
    CHECK(stats.unpinned == 3 && stats.put == 1 && stats.borrowed == 0 && stats.bvecs == 2);
    CHECK(at_baseline(&before));
    printf("ok: pin -> bio -> submit -> complete -> release\n");
}

/* A large folio: one run at pin, one batched unpin. */
static void large_folio_batched_unpin(void)
{
    struct snapshot before;
    uintptr_t pfns[8];
    uintptr_t head = USER_PFN + 8;

    snapshot(&before);
    size_t calls = atomic_load(&machine.acquire_calls);
    CHECK(gupio_pin_user_pages(&tracker, &space, user_addr(head), 8, GUPIO_GUP_WRITE, pfns,
                               NULL) == 8);
    /* one run: one accounting call of 8 pages */
    CHECK(atomic_load(&machine.acquire_calls) == calls + 1);
    CHECK(pincount(head) == 8 && refcount(head) == 1 + 8);
    CHECK(gupio_maybe_dma_pinned(&tracker, head + 5, NULL) == 1);
    /* a small page beside it is not pinned */
    CHECK(gupio_maybe_dma_pinned(&tracker, head + 8 + 8, NULL) == 0);
    calls = atomic_load(&machine.release_calls);
    OK(gupio_unpin_pages(&tracker, pfns, 8, NULL));
    CHECK(atomic_load(&machine.release_calls) == calls + 1);
    CHECK(pincount(head) == 0 && refcount(head) == 1);
    CHECK(gupio_maybe_dma_pinned(&tracker, head + 5, NULL) == 0);
    /* the range calls and the dirtying unpin do the same */
    OK(gupio_pin_range(&tracker, head + 2, 4, NULL));
    CHECK(pincount(head) == 4);
    uintptr_t some[4] = {head + 2, head + 3, head + 4, head + 5};
    OK(gupio_unpin_pages_dirty_lock(&tracker, some, 4, true, NULL));
    CHECK(gupio_counters_flags(page(head), NULL) & GUPIO_PAGE_DIRTY);
    CHECK(at_baseline(&before));
    printf("ok: large folio, batched unpin\n");
}

/* The zero page: pinning it changes nothing and counts nothing. */
static void zero_page(void)
{
    struct snapshot before;
    uintptr_t pfn = 0;
    enum gupio_error cause;

    snapshot(&before);
    intptr_t ref = refcount(ZERO_PFN);
    OK(gupio_pin_range(&tracker, ZERO_PFN, 1, NULL));
    CHECK(refcount(ZERO_PFN) == ref);
    CHECK(gupio_maybe_dma_pinned(&tracker, ZERO_PFN, NULL) == 0);
    OK(gupio_unpin_range(&tracker, ZERO_PFN, 1, NULL));
    /* a read pin through a user mapping of it */
    CHECK(gupio_pin_user_pages(&tracker, &space, ZERO_ADDR, 1, 0, &pfn, NULL) == 1);
    CHECK(pfn == ZERO_PFN && refcount(ZERO_PFN) == ref);
    OK(gupio_unpin_pages(&tracker, &pfn, 1, NULL));
    /* a write pin of it is refused */
    CHECK(gupio_pin_user_pages(&tracker, &space, ZERO_ADDR, 1, GUPIO_GUP_WRITE, &pfn, &cause) ==
          -GUPIO_EFAULT);
    CHECK(cause == GUPIO_ERR_WRITE_TO_ZERO_PAGE);
    CHECK(at_baseline(&before));
    CHECK(atomic_load(&machine.pins_acquired) == before.acquired);
    printf("ok: zero page\n");
}

/* A pin that would pass the refcount ceiling fails and changes nothing. */
static void overflow_refusal(void)
{
    enum gupio_error cause;
    uintptr_t pfn = USER_PFN + 30;
    uint32_t near = 0x7fffffffu - 1000u; /* fewer than one pin's 1024 left */

    OK(gupio_counters_init(page(pfn), near, 0, 0, NULL));
    unsigned warnings = atomic_load(&machine.warnings);
    CHECK(gupio_pin_range(&tracker, pfn, 1, &cause) == -GUPIO_EOVERFLOW);
    CHECK(cause == GUPIO_ERR_REFCOUNT_OVERFLOW);
    CHECK(refcount(pfn) == (intptr_t)near);
    /* a get still fits */
    OK(gupio_get_range(&tracker, pfn, 1, NULL));
    CHECK(refcount(pfn) == (intptr_t)near + 1);
    OK(gupio_put_range(&tracker, pfn, 1, NULL));
    CHECK(atomic_load(&machine.warnings) == warnings);
    OK(gupio_counters_init(page(pfn), 1, 0, 0, NULL));
    printf("ok: overflow refused\n");
}

/* An unpin without a pin is warned and refused; nothing changes. */
static void unpin_without_pin(void)
{
    struct snapshot before;
    enum gupio_error cause;

    snapshot(&before);
    unsigned warnings = atomic_load(&machine.warnings);
    CHECK(gupio_unpin_range(&tracker, USER_PFN + 3, 1, &cause) == -GUPIO_EINVAL);
    CHECK(cause == GUPIO_ERR_NOT_PINNED);
    CHECK(atomic_load(&machine.warnings) == warnings + 1);
    CHECK(atomic_load(&machine.last_warning) == GUPIO_WARN_UNPIN_WITHOUT_PIN);
    /* on a large folio too, though it holds references */
    CHECK(gupio_unpin_range(&tracker, USER_PFN + 9, 1, &cause) == -GUPIO_EINVAL);
    CHECK(cause == GUPIO_ERR_NOT_PINNED);
    CHECK(atomic_load(&machine.warnings) == warnings + 2);
    CHECK(at_baseline(&before));
    printf("ok: unpin without pin, warned and refused\n");
}

/* ---- every error code --------------------------------------------------- */

static int seen[GUPIO_ERR_UNFINISHED + 1];

/* `ret` must be the negative errno of `expected`, stored in `cause`. */
static void expect(intptr_t ret, enum gupio_error cause, enum gupio_error expected, int line)
{
    if (ret == gupio_error_errno(expected) && ret < 0 && cause == expected) {
        passed++;
        seen[expected] = 1;
    } else {
        failed++;
        fprintf(stderr, "%s:%d: expected %s (%d), got %ld with %s\n", __FILE__, line,
                gupio_error_name(expected), gupio_error_errno(expected), (long)ret,
                gupio_error_name(cause) ? gupio_error_name(cause) : "(none)");
    }
}

/* The cause every EXPECT'd call writes (they pass `&c`). */
static enum gupio_error c;

#define EXPECT(call, expected)                \
    do {                                      \
        c = GUPIO_OK;                         \
        intptr_t r_ = (call);                 \
        expect(r_, c, (expected), __LINE__);  \
    } while (0)

static void drained_bio(void *ctx, struct gupio_bio *bio, intptr_t ret, enum gupio_error why)
{
    unsigned *count = ctx;
    (void)bio;
    if (ret == 0 && why == GUPIO_OK)
        (*count)++;
}

static void every_error_code(void)
{
    struct snapshot before;
    struct gupio_bvec bvecs[4];
    struct gupio_bio bio, fresh;
    struct gupio_completion done, idle;
    struct gupio_chain_link link;
    struct gupio_tracker bad;
    struct gupio_page_ops no_counters = ops;
    uintptr_t pfn = 0;
    uintptr_t small = USER_PFN + 31;

    snapshot(&before);
    memset(&fresh, 0, sizeof fresh);
    OK(gupio_completion_init(&done, NULL));

    EXPECT(gupio_pin_range(NULL, small, 1, &c), GUPIO_ERR_NULL_POINTER);
    EXPECT(gupio_tracker_init(&bad, NULL, &c), GUPIO_ERR_NULL_POINTER);
    EXPECT(gupio_pin_pages(&tracker, NULL, 1, &c), GUPIO_ERR_NULL_POINTER);
    EXPECT(gupio_bio_init(NULL, bvecs, 4, GUPIO_OP_READ, 0, NULL, &c),
           GUPIO_ERR_NULL_POINTER);
    EXPECT(gupio_bio_init(&bio, NULL, 4, GUPIO_OP_READ, 0, NULL, &c), GUPIO_ERR_NULL_POINTER);
    EXPECT(gupio_pin_user_pages(&tracker, NULL, USER_BASE, 1, 0, &pfn, &c),
           GUPIO_ERR_NULL_POINTER);
    EXPECT(gupio_pin_user_pages(&tracker, &space, USER_BASE, 1, 0, NULL, &c),
           GUPIO_ERR_NULL_POINTER);
    EXPECT(gupio_counters_refcount(NULL, &c), GUPIO_ERR_NULL_POINTER);
    EXPECT(gupio_completion_start(NULL, &c), GUPIO_ERR_NULL_POINTER);
    EXPECT(gupio_bvec_decode(NULL, &pfn, NULL, &c), GUPIO_ERR_NULL_POINTER);

    EXPECT(gupio_pin_range((const struct gupio_tracker *)((const char *)&tracker + 4), small, 1,
                           &c),
           GUPIO_ERR_MISALIGNED_POINTER);

    EXPECT(gupio_bio_submit(&fresh, &c), GUPIO_ERR_NOT_INITIALIZED);
    memset(&bad, 0, sizeof bad);
    EXPECT(gupio_pin_range(&bad, small, 1, &c), GUPIO_ERR_NOT_INITIALIZED);

    OK(gupio_bio_init(&bio, bvecs, 4, GUPIO_OP_WRITE, 0, NULL, NULL));
    EXPECT(gupio_bio_complete(&bio, GUPIO_STATUS_OK, &c), GUPIO_ERR_WRONG_STATE);

    EXPECT(gupio_bio_add_page(&bio, &tracker, small, 512, 0, 7, &c),
           GUPIO_ERR_INVALID_ARGUMENT);
    EXPECT(gupio_counters_init(page(small), 1, GUPIO_MAX_ORDER + 1, 0, &c),
           GUPIO_ERR_INVALID_ARGUMENT);
    EXPECT(gupio_bio_init(&fresh, bvecs, 4, 9, 0, NULL, &c), GUPIO_ERR_INVALID_ARGUMENT);
    EXPECT(gupio_completion_complete(&done, &tracker, 200, NULL, &c),
           GUPIO_ERR_INVALID_ARGUMENT);
    struct gupio_address_space odd = space;
    odd.page_shift = 13;
    EXPECT(gupio_pin_user_pages(&tracker, &odd, USER_BASE, 1, 0, &pfn, &c),
           GUPIO_ERR_INVALID_ARGUMENT);

    no_counters.counters = NULL;
    EXPECT(gupio_tracker_init(&bad, &no_counters, &c), GUPIO_ERR_MISSING_CALLBACK);
    struct gupio_address_space no_fault = space;
    no_fault.fault_in = NULL;
    EXPECT(gupio_pin_user_pages(&tracker, &no_fault, USER_BASE, 1, 0, &pfn, &c),
           GUPIO_ERR_MISSING_CALLBACK);

    EXPECT(gupio_pin_range(&tracker, UINTPTR_MAX, 1, &c), GUPIO_ERR_PFN_OUT_OF_RANGE);
    EXPECT(gupio_bio_add_page(&bio, &tracker, UINTPTR_MAX >> 1, 512, 0, GUPIO_ORIGIN_BORROWED,
                              &c),
           GUPIO_ERR_PFN_OUT_OF_RANGE);

    EXPECT(gupio_pin_range(&tracker, BASE_PFN + NPAGES, 1, &c), GUPIO_ERR_NOT_IN_MEMORY_MAP);
    EXPECT(gupio_folio_prepare(&tracker, BASE_PFN, 7, &c), /* 128 pages */
           GUPIO_ERR_NOT_IN_MEMORY_MAP);

    /* a tail whose head is not a head */
    uintptr_t tail = USER_PFN + 33;
    OK(gupio_counters_init(page(tail), 0, 1, 1, NULL));
    EXPECT(gupio_pin_range(&tracker, tail, 1, &c), GUPIO_ERR_CORRUPT_COUNTERS);
    OK(gupio_counters_init(page(tail), 1, 0, 0, NULL));

    uintptr_t free_pfn = BASE_PFN + 61; /* never allocated */
    unsigned warnings = atomic_load(&machine.warnings);
    EXPECT(gupio_get_range(&tracker, free_pfn, 1, &c), GUPIO_ERR_PAGE_FREE);
    CHECK(atomic_load(&machine.warnings) == warnings + 1);
    CHECK(atomic_load(&machine.last_warning) == GUPIO_WARN_GRAB_OF_FREE_PAGE);

    EXPECT(gupio_folio_prepare(&tracker, small, 0, &c), GUPIO_ERR_PAGE_IN_USE);

    OK(gupio_counters_init(page(small), 0x7fffffffu, 0, 0, NULL));
    EXPECT(gupio_get_range(&tracker, small, 1, &c), GUPIO_ERR_REFCOUNT_OVERFLOW);
    OK(gupio_counters_init(page(small), 1, 0, 0, NULL));

    EXPECT(gupio_unpin_range(&tracker, small, 1, &c), GUPIO_ERR_NOT_PINNED);

    /* put the allocation reference (freeing the page), then once more */
    uintptr_t victim = BASE_PFN + 62;
    OK(gupio_folio_prepare(&tracker, victim, 0, NULL));
    unsigned frees = atomic_load(&machine.pages[victim - BASE_PFN].frees);
    OK(gupio_put_range(&tracker, victim, 1, NULL));
    CHECK(atomic_load(&machine.pages[victim - BASE_PFN].frees) == frees + 1);
    EXPECT(gupio_put_range(&tracker, victim, 1, &c), GUPIO_ERR_NO_REFERENCE);
    CHECK(atomic_load(&machine.last_warning) == GUPIO_WARN_PUT_WITHOUT_REFERENCE);
    CHECK(atomic_load(&machine.pages[victim - BASE_PFN].frees) == frees + 1);

    EXPECT(gupio_pin_user_pages(&tracker, &space, USER_BASE, 1, 0x100, &pfn, &c),
           GUPIO_ERR_GUP_FLAGS);
    EXPECT(gupio_get_user_pages(&tracker, &space, USER_BASE, 1, GUPIO_GUP_LONGTERM, &pfn, &c),
           GUPIO_ERR_GUP_FLAGS);

    EXPECT(gupio_pin_user_pages(&tracker, &space, UINTPTR_MAX - PAGE_SIZE + 1, 2, 0,
                                (uintptr_t[2]){0}, &c),
           GUPIO_ERR_ADDRESS_OVERFLOW);

    EXPECT(gupio_pin_user_pages(&tracker, &space, USER_BASE + USER_PAGES * PAGE_SIZE, 1, 0, &pfn,
                                &c),
           GUPIO_ERR_FAULT);
    EXPECT(gupio_bio_add_user_range(&bio, &tracker, &space, 0x1000, 100, 0, &c),
           GUPIO_ERR_FAULT);

    EXPECT(gupio_pin_user_pages(&tracker, &space, ZERO_ADDR, 1, GUPIO_GUP_WRITE, &pfn, &c),
           GUPIO_ERR_WRITE_TO_ZERO_PAGE);

    EXPECT(gupio_pin_user_pages(&tracker, &space, user_addr(NOT_LONGTERM_PFN), 1,
                                GUPIO_GUP_LONGTERM, &pfn, &c),
           GUPIO_ERR_LONGTERM_REFUSED);

    EXPECT(gupio_bio_add_page(&bio, &tracker, small, 0, 0, GUPIO_ORIGIN_BORROWED, &c),
           GUPIO_ERR_BIO_REFUSED);
    EXPECT(gupio_bio_add_page(&bio, &tracker, small, 4000, 200, GUPIO_ORIGIN_BORROWED, &c),
           GUPIO_ERR_BIO_REFUSED);
    EXPECT(gupio_bio_submit(&bio, &c), GUPIO_ERR_BIO_REFUSED); /* empty */
    struct gupio_bio_limits limits = {.logical_block_size = 1000};
    EXPECT(gupio_bio_init(&fresh, bvecs, 4, GUPIO_OP_READ, 0, &limits, &c),
           GUPIO_ERR_BIO_REFUSED);

    /* non-contiguous borrowed pages until the four bvecs are used */
    for (uintptr_t i = 0; i < 4; i++)
        CHECK(gupio_bio_add_page(&bio, &tracker, small + 2 * i, 512, 0, GUPIO_ORIGIN_BORROWED,
                                 NULL) == 0);
    EXPECT(gupio_bio_add_page(&bio, &tracker, small + 9, 512, 0, GUPIO_ORIGIN_BORROWED, &c),
           GUPIO_ERR_BIO_FULL);

    OK(gupio_completion_init(&done, NULL));
    OK(gupio_completion_init(&idle, NULL));
    EXPECT(gupio_completion_complete(&idle, &tracker, GUPIO_STATUS_OK, NULL, &c),
           GUPIO_ERR_NOT_STARTED);
    EXPECT(gupio_completion_chain(&idle, &link, &c), GUPIO_ERR_CHAIN_REFUSED);
    OK(gupio_completion_start(&done, NULL));
    EXPECT(gupio_completion_start(&done, &c), GUPIO_ERR_ALREADY_STARTED);
    OK(gupio_bio_submit(&bio, NULL));

    /* a chained child: the parent finishes after both parts reported */
    uint32_t status = 99;
    OK(gupio_completion_chain(&done, &link, NULL));
    CHECK(gupio_completion_complete(&done, &tracker, GUPIO_STATUS_OK, &status, NULL) == 0);
    CHECK(status == 99);
    CHECK(gupio_chain_complete(&link, &tracker, GUPIO_STATUS_TIMEOUT, &status, NULL) == 1);
    CHECK(status == GUPIO_STATUS_TIMEOUT);
    warnings = atomic_load(&machine.warnings);
    EXPECT(gupio_chain_complete(&link, &tracker, GUPIO_STATUS_OK, NULL, &c),
           GUPIO_ERR_DOUBLE_COMPLETION);
    EXPECT(gupio_completion_complete(&done, &tracker, GUPIO_STATUS_OK, NULL, &c),
           GUPIO_ERR_DOUBLE_COMPLETION);
    CHECK(atomic_load(&machine.warnings) == warnings + 2);
    CHECK(atomic_load(&machine.last_warning) == GUPIO_WARN_DOUBLE_COMPLETION);
    OK(gupio_bio_complete(&bio, status, NULL));
    OK(gupio_bio_release(&bio, &tracker, false, NULL, NULL));
    EXPECT(gupio_bio_release(&bio, &tracker, false, NULL, &c), GUPIO_ERR_WRONG_STATE);

    /* the deferred list holds GUPIO_DEFERRED_CAPACITY bios */
    static struct gupio_bio bios[GUPIO_DEFERRED_CAPACITY + 1];
    static struct gupio_bvec tables[GUPIO_DEFERRED_CAPACITY + 1][1];
    static struct gupio_deferred_list deferred;
    uintptr_t clean = USER_PFN + 35;
    OK(gupio_deferred_init(&deferred, NULL));
    OK(gupio_counters_update_flags(page(clean), GUPIO_PAGE_DIRTY, false, NULL));
    for (int i = 0; i <= GUPIO_DEFERRED_CAPACITY; i++) {
        OK(gupio_bio_init(&bios[i], tables[i], 1, GUPIO_OP_READ, 0, NULL, NULL));
        OK(gupio_get_range(&tracker, clean, 1, NULL));
        OK(gupio_bio_add_page(&bios[i], &tracker, clean, PAGE_SIZE, 0, GUPIO_ORIGIN_REFERENCED,
                              NULL));
        OK(gupio_bio_submit(&bios[i], NULL));
        OK(gupio_bio_complete(&bios[i], GUPIO_STATUS_OK, NULL));
        if (i < GUPIO_DEFERRED_CAPACITY)
            CHECK(gupio_bio_complete_dio_read(&bios[i], &tracker, &deferred, NULL) == 1);
    }
    EXPECT(gupio_bio_complete_dio_read(&bios[GUPIO_DEFERRED_CAPACITY], &tracker, &deferred,
                                       &c),
           GUPIO_ERR_DEFERRED_FULL);
    CHECK(gupio_bio_get_state(&bios[GUPIO_DEFERRED_CAPACITY], NULL) == GUPIO_BIO_COMPLETED);
    OK(gupio_bio_release(&bios[GUPIO_DEFERRED_CAPACITY], &tracker, true, NULL, NULL));
    unsigned drained = 0;
    CHECK(gupio_deferred_drain(&deferred, &tracker, drained_bio, &drained, NULL) ==
          GUPIO_DEFERRED_CAPACITY);
    CHECK(drained == GUPIO_DEFERRED_CAPACITY);
    CHECK(gupio_counters_flags(page(clean), NULL) & GUPIO_PAGE_DIRTY);

    /* a bio ended alone while a child is still chained to its completion:
     * completed with an I/O error all the same, so it can be released; the
     * child's report finishes the completion later */
    static struct gupio_bio lone;
    static struct gupio_bvec lone_bvecs[1];
    OK(gupio_bio_init(&lone, lone_bvecs, 1, GUPIO_OP_WRITE, 0, NULL, NULL));
    OK(gupio_bio_add_page(&lone, &tracker, small, 512, 0, GUPIO_ORIGIN_BORROWED, NULL));
    EXPECT(gupio_bio_end(&lone, &done, &tracker, GUPIO_STATUS_OK, NULL, &c),
           GUPIO_ERR_WRONG_STATE); /* not submitted: left as it was */
    CHECK(gupio_bio_get_state(&lone, NULL) == GUPIO_BIO_BUILDING);
    OK(gupio_completion_start(&done, NULL));
    OK(gupio_completion_chain(&done, &link, NULL));
    OK(gupio_bio_submit(&lone, NULL));
    status = 99;
    EXPECT(gupio_bio_end(&lone, &done, &tracker, GUPIO_STATUS_OK, &status, &c),
           GUPIO_ERR_UNFINISHED);
    CHECK(status == GUPIO_STATUS_IO_ERROR);
    CHECK(gupio_bio_get_state(&lone, NULL) == GUPIO_BIO_COMPLETED);
    OK(gupio_bio_release(&lone, &tracker, false, NULL, NULL));
    CHECK(gupio_chain_complete(&link, &tracker, GUPIO_STATUS_OK, &status, NULL) == 1);
    CHECK(status == GUPIO_STATUS_OK);

    /* every cause but GUPIO_OK was reached, with its errno */
    for (int e = GUPIO_ERR_NULL_POINTER; e <= GUPIO_ERR_UNFINISHED; e++) {
        if (!seen[e])
            fprintf(stderr, "never reached: %s\n", gupio_error_name((uint32_t)e));
        CHECK(seen[e]);
    }
    CHECK(gupio_error_name(GUPIO_ERR_UNFINISHED + 1) == NULL);
    CHECK(gupio_error_errno(GUPIO_OK) == 0);
    CHECK(at_baseline(&before));
    printf("ok: every error code\n");
}


/* ---- two threads pinning and releasing one folio -------------------------- */

#define ROUNDS 2000
#define THREAD_FOLIO (USER_PFN + 16) /* order 2: 4 pages */

struct worker {
    int index;
    int errors;
};

static void *pin_and_release(void *arg)
{
    struct worker *w = arg;
    struct gupio_bvec bvecs[4];
    struct gupio_bio bio;
    struct gupio_completion done;
    uint32_t status;

    if (gupio_completion_init(&done, NULL) < 0)
        w->errors++;
    for (int round = 0; round < ROUNDS; round++) {
        /* both threads pin the whole folio; each its own bio */
        uintptr_t pfns[4];
        intptr_t n = gupio_pin_user_pages(&tracker, &space, user_addr(THREAD_FOLIO), 4,
                                          w->index ? GUPIO_GUP_WRITE : 0, pfns, NULL);
        if (n != 4) {
            w->errors++;
            continue;
        }
        int bad = gupio_bio_init(&bio, bvecs, 4, GUPIO_OP_WRITE, 0, NULL, NULL) < 0;
        for (int i = 0; i < 4; i++)
            bad |= gupio_bio_add_page(&bio, &tracker, pfns[i], PAGE_SIZE, 0,
                                      GUPIO_ORIGIN_PINNED, NULL) < 0;
        bad |= gupio_maybe_dma_pinned(&tracker, THREAD_FOLIO + 3, NULL) != 1;
        bad |= gupio_completion_start(&done, NULL) < 0;
        bad |= gupio_bio_submit(&bio, NULL) < 0;
        bad |= gupio_completion_complete(&done, &tracker, GUPIO_STATUS_OK, &status, NULL) != 1;
        bad |= gupio_bio_complete(&bio, status, NULL) < 0;
        bad |= gupio_bio_release(&bio, &tracker, w->index == 0, NULL, NULL) < 0;
        w->errors += bad;
    }
    return NULL;
}

static void two_threads_one_folio(void)
{
    struct snapshot before;
    pthread_t threads[2];
    struct worker workers[2] = {{0, 0}, {1, 0}};

    snapshot(&before);
    unsigned warnings = atomic_load(&machine.warnings);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&threads[i], NULL, pin_and_release, &workers[i]) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(workers[0].errors == 0 && workers[1].errors == 0);
    CHECK(atomic_load(&machine.warnings) == warnings);
    CHECK(pincount(THREAD_FOLIO) == 0 && refcount(THREAD_FOLIO) == 1);
    CHECK(atomic_load(&machine.pins_acquired) - before.acquired == 2 * ROUNDS * 4);
    CHECK(at_baseline(&before));
    printf("ok: two threads pinning and releasing one folio\n");
}

int main(void)
{
    CHECK(gupio_abi_version() == GUPIO_ABI_VERSION);
    CHECK(sizeof(struct gupio_bvec) == 2 * sizeof(uintptr_t));
    CHECK(sizeof(struct gupio_page_counters) == GUPIO_PAGE_COUNTERS_SIZE);
    CHECK(_Alignof(struct gupio_page_counters) == GUPIO_OPAQUE_ALIGN);
    set_up_memory();
    unsigned frees = atomic_load(&machine.frees);
    pin_bio_submit_complete_release();
    large_folio_batched_unpin();
    zero_page();
    overflow_refusal();
    unpin_without_pin();
    every_error_code();
    two_threads_one_folio();
    /* only the page freed on purpose by the error test was freed */
    CHECK(atomic_load(&machine.frees) == frees + 1);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
