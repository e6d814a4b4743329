/* test_stopper.c: unit tests of the engine's stop-string hold-back
 * (src/engine/stopper.c), fed piece by piece; expected outputs are written
 * out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/stopper.h"

struct run {
    char out[1024];
    size_t n;
    bool matched;
    size_t at_piece; /* piece index that matched */
};

/* Feeds pieces in order until a match; collects everything released. */
static struct run feed_all(const char *const *stops, size_t n_stop, const char *const *pieces, size_t n_pieces,
                           bool flush)
{
    struct cit_stopper s;
    size_t lens[CIT_ENGINE_MAX_STOP] = {0};
    for (size_t i = 0; i < n_stop; i++)
        lens[i] = strlen(stops[i]);
    cit_stopper_init(&s, stops, lens, n_stop);
    struct run r = {.n = 0};
    char buf[CIT_ENGINE_MAX_STOP_LEN + 64];
    for (size_t i = 0; i < n_pieces; i++) {
        size_t n = 0;
        bool m = cit_stopper_feed(&s, pieces[i], strlen(pieces[i]), buf, &n);
        memcpy(r.out + r.n, buf, n);
        r.n += n;
        if (m) {
            r.matched = true;
            r.at_piece = i;
            return r;
        }
    }
    if (flush)
        r.n += cit_stopper_flush(&s, r.out + r.n);
    return r;
}

static void test_no_stops(void **state)
{
    (void)state;
    const char *pieces[] = {"Once", " upon", " a time"};
    struct run r = feed_all(NULL, 0, pieces, 3, false);
    assert_false(r.matched);
    assert_int_equal(r.n, strlen("Once upon a time"));
    assert_memory_equal(r.out, "Once upon a time", r.n);
}

/* A stop string split over three pieces: nothing of it is released. */
static void test_across_pieces(void **state)
{
    (void)state;
    const char *stops[] = {"END!"};
    const char *pieces[] = {"abc E", "N", "D! tail"};
    struct run r = feed_all(stops, 1, pieces, 3, false);
    assert_true(r.matched);
    assert_int_equal(r.at_piece, 2);
    assert_int_equal(r.n, 4);
    assert_memory_equal(r.out, "abc ", 4);
}

/* Held text that turns out not to be a stop string is released later, in
 * order; what is still held at the end comes out of flush. */
static void test_release_and_flush(void **state)
{
    (void)state;
    const char *stops[] = {"xyz"};
    struct cit_stopper s;
    size_t len = 3;
    cit_stopper_init(&s, stops, &len, 1);
    char buf[300];
    size_t n = 9;
    assert_false(cit_stopper_feed(&s, "abx", 3, buf, &n));
    assert_int_equal(n, 2); /* "x" held */
    assert_memory_equal(buf, "ab", 2);
    assert_false(cit_stopper_feed(&s, "y", 1, buf, &n));
    assert_int_equal(n, 0); /* "xy" held */
    assert_false(cit_stopper_feed(&s, "q", 1, buf, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "xyq", 3);
    assert_false(cit_stopper_feed(&s, "xy", 2, buf, &n));
    assert_int_equal(n, 0);
    assert_int_equal(cit_stopper_flush(&s, buf), 2);
    assert_memory_equal(buf, "xy", 2);
    assert_int_equal(cit_stopper_flush(&s, buf), 0);
}

/* Several stop strings: the earliest occurrence wins, whichever string it
 * is; a held suffix is the longest that could still match any of them. */
static void test_earliest_of_several(void **state)
{
    (void)state;
    const char *stops[] = {"world", "lo w", "o"};
    const char *pieces[] = {"hel", "lo world"};
    struct run r = feed_all(stops, 3, pieces, 2, false);
    assert_true(r.matched);
    assert_int_equal(r.n, 3); /* "lo w" starts before "o" and "world" */
    assert_memory_equal(r.out, "hel", 3);

    const char *stops2[] = {"abcd", "cdX"};
    const char *pieces2[] = {"zzabc", "dd"};
    r = feed_all(stops2, 2, pieces2, 2, false);
    assert_true(r.matched);
    assert_int_equal(r.n, 2);
    assert_memory_equal(r.out, "zz", 2);

    const char *pieces3[] = {"zzabc", "X"};
    r = feed_all(stops2, 2, pieces3, 2, true);
    assert_false(r.matched);
    assert_int_equal(r.n, 6);
    assert_memory_equal(r.out, "zzabcX", 6);
}

/* A stop string that is the whole first piece; empty pieces change nothing. */
static void test_edges(void **state)
{
    (void)state;
    const char *stops[] = {"\n\n"};
    const char *pieces[] = {"", "\n", "", "\n"};
    struct run r = feed_all(stops, 1, pieces, 4, false);
    assert_true(r.matched);
    assert_int_equal(r.at_piece, 3);
    assert_int_equal(r.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_stops),
        cmocka_unit_test(test_across_pieces),
        cmocka_unit_test(test_release_and_flush),
        cmocka_unit_test(test_earliest_of_several),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
