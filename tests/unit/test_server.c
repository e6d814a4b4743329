/* test_server.c: the server's building blocks that need no running server:
 * Prometheus rendering (metrics.c) and answer helpers (json_out.c). The
 * server as a whole is tested black-box in tests/http. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/json_out.h"
#include "server/metrics.h"

static void test_metrics_counters_and_histograms(void **state)
{
    struct srv_metrics *m = srv_metrics_new(2);
    assert_non_null(m);
    srv_metrics_request(m, "/v1/completions", 200);
    srv_metrics_request(m, "/v1/completions", 200);
    srv_metrics_request(m, "/v1/completions", 400);
    srv_metrics_ttft(m, 0, 0.02);  /* bucket le=0.025 */
    srv_metrics_ttft(m, 0, 0.3);   /* le=0.5 */
    srv_metrics_ttft(m, 0, 100.0); /* above every bound: only +Inf */
    srv_metrics_itl(m, 1, 0.001);  /* exactly a bound: counted in it (le) */
    srv_metrics_ttft(m, 7, 1.0);   /* no such model: ignored */
    struct srv_metrics_model mm[2] = {{.name = "a"}, {.name = "b"}};
    mm[0].stats.prompt_tokens = 123;
    mm[1].stats.busy_slots = 3;
    mm[1].stats.n_slots = 4;
    mm[1].stats.kv_used = 1;
    mm[1].stats.kv_total = 4;
    char *t = srv_metrics_render(m, mm, 2);
    assert_non_null(t);
    assert_non_null(strstr(t, "citadel_requests_total{route=\"/v1/completions\",status=\"200\"} 2\n"));
    assert_non_null(strstr(t, "citadel_requests_total{route=\"/v1/completions\",status=\"400\"} 1\n"));
    assert_non_null(strstr(t, "citadel_prompt_tokens_total{model=\"a\"} 123\n"));
    assert_non_null(strstr(t, "citadel_slots_busy{model=\"b\"} 3\n"));
    assert_non_null(strstr(t, "citadel_slots_total{model=\"b\"} 4\n"));
    assert_non_null(strstr(t, "citadel_kv_cache_used_ratio{model=\"b\"} 0.250000\n"));
    assert_non_null(strstr(t, "citadel_time_to_first_token_seconds_bucket{model=\"a\",le=\"0.01\"} 0\n"));
    assert_non_null(strstr(t, "citadel_time_to_first_token_seconds_bucket{model=\"a\",le=\"0.025\"} 1\n"));
    assert_non_null(strstr(t, "citadel_time_to_first_token_seconds_bucket{model=\"a\",le=\"0.5\"} 2\n"));
    assert_non_null(strstr(t, "citadel_time_to_first_token_seconds_bucket{model=\"a\",le=\"30\"} 2\n"));
    assert_non_null(strstr(t, "citadel_time_to_first_token_seconds_bucket{model=\"a\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t, "citadel_time_to_first_token_seconds_count{model=\"a\"} 3\n"));
    assert_non_null(strstr(t, "citadel_time_to_first_token_seconds_sum{model=\"a\"} 100.32\n"));
    assert_non_null(strstr(t, "citadel_inter_token_latency_seconds_bucket{model=\"b\",le=\"0.001\"} 1\n"));
    assert_non_null(strstr(t, "citadel_time_to_first_token_seconds_count{model=\"b\"} 0\n"));
    /* Every HELP has its TYPE, and each family appears once. */
    assert_int_equal(strstr(t, "# TYPE citadel_slots_busy gauge"), strstr(t, "# TYPE citadel_slots_busy"));
    assert_null(strstr(strstr(t, "# TYPE citadel_slots_busy") + 1, "# TYPE citadel_slots_busy"));
    free(t);
    srv_metrics_free(m);
    srv_metrics_free(NULL);
}

static void test_json_text_replaces_invalid_utf8(void **state)
{
    struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"plain", 5, "plain"},
        {"caf\xC3\xA9", 5, "caf\xC3\xA9"},
        {"a\xFF" "b", 3, "a\xEF\xBF\xBD" "b"},
        {"\xE2\x82", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"}, /* half a character: each byte replaced */
        {"\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong */
        {"nul\0x", 5, "nul\0x"},
        {"", 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = srv_json_text(cases[i].in, cases[i].n);
        assert_non_null(j);
        size_t want_len = strlen(cases[i].want) + (i == 5 ? 2 : 0);
        assert_int_equal(json_string_length(j), want_len);
        assert_memory_equal(json_string_value(j), cases[i].want, want_len);
        json_decref(j);
    }
    json_t *b = srv_json_bytes("\xFF" "A", 2);
    assert_int_equal(json_array_size(b), 2);
    assert_int_equal(json_integer_value(json_array_get(b, 0)), 255);
    assert_int_equal(json_integer_value(json_array_get(b, 1)), 65);
    json_decref(b);
}

static void test_sse_framing(void **state)
{
    struct srv_buf b = {0};
    assert_true(srv_sse_json(&b, json_pack("{s:s}", "a", "x\ny")));
    assert_true(srv_sse_json(&b, json_pack("{s:i}", "b", 2)));
    /* One line per event (newlines in strings are escaped), blank line after each. */
    assert_string_equal(b.data, "data: {\"a\":\"x\\ny\"}\n\ndata: {\"b\":2}\n\n");
    assert_false(srv_sse_json(&b, NULL));
    free(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_counters_and_histograms),
        cmocka_unit_test(test_json_text_replaces_invalid_utf8),
        cmocka_unit_test(test_sse_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
