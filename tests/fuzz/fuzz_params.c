/* fuzz_params.c: libFuzzer harness for request-body parsing
 * (src/server/params.c).
 *
 * Any input must either be refused by srv_json_parse with a 400/413 error,
 * or parse into an object that srv_params_parse, for every endpoint, either
 * refuses (a 400 with a printable-ASCII message that jansson can encode,
 * and a zeroed request) or accepts with every field inside its documented
 * range; an accepted generation request's sampling parameters must also be
 * accepted by cit_sampler_new. Invariant violations abort; ASan catches
 * anything read past a buffer or leaked.
 *
 * Build: CC=clang cmake -S . -B build-fuzz -DCITADEL_FUZZ=ON && cmake --build build-fuzz --target fuzz_params
 * Run:   ./build-fuzz/fuzz_params -max_total_time=60 -max_len=4096 CORPUS_DIR */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "citadel/sampler.h"
#include "server/params.h"

#define CHECK(c)                                                                                                           \
    do {                                                                                                                   \
        if (!(c))                                                                                                          \
            abort();                                                                                                       \
    } while (0)

#define N_VOCAB 4096u

static volatile uint8_t sink;

static void touch(const char *s, size_t len)
{
    CHECK(s != NULL);
    CHECK(strlen(s) == len); /* no NUL inside: jansson refuses \u0000 */
    if (len)
        sink ^= (uint8_t)(s[0] ^ s[len - 1]);
}

static void check_error(const struct srv_error *e)
{
    CHECK(e->status == 400 || e->status == 413 || e->status == 500);
    CHECK(e->type != NULL);
    CHECK(strlen(e->param) < sizeof e->param && strlen(e->code) < sizeof e->code);
    CHECK(e->code[0] != '\0' && e->message[0] != '\0');
    for (const char *p = e->message; *p; p++)
        CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    json_t *m = json_string(e->message);
    CHECK(m != NULL);
    json_decref(m);
}

static void check_tokens(const int32_t *t, size_t n)
{
    CHECK(n == 0 || t != NULL);
    for (size_t i = 0; i < n; i++)
        CHECK(t[i] >= 0 && (uint32_t)t[i] < N_VOCAB);
}

static void check_request(enum srv_endpoint ep, const struct srv_request *r)
{
    CHECK(r->ep == ep);
    CHECK(r->model != NULL && r->user != NULL && strlen(r->user) <= 256);
    check_tokens(r->tokens, r->n_tokens);
    if (r->text)
        touch(r->text, r->text_len);
    switch (ep) {
    case SRV_EP_CHAT:
        CHECK(json_is_array(r->messages) && json_array_size(r->messages) > 0);
        break;
    case SRV_EP_COMPLETION: CHECK(r->text != NULL || r->n_tokens > 0); break;
    case SRV_EP_EMBEDDING:
        CHECK(r->n_inputs >= 1 && r->n_inputs <= 256 && r->inputs != NULL);
        for (size_t i = 0; i < r->n_inputs; i++) {
            const struct srv_input *in = &r->inputs[i];
            CHECK((in->text != NULL) != (in->tokens != NULL));
            if (in->text) {
                CHECK(in->text_len > 0);
                touch(in->text, in->text_len);
            } else {
                CHECK(in->n_tokens > 0);
                check_tokens(in->tokens, in->n_tokens);
            }
        }
        break;
    case SRV_EP_TOKENIZE: CHECK(r->text != NULL); break;
    case SRV_EP_DETOKENIZE: CHECK(r->text == NULL); break;
    }
    if (ep != SRV_EP_CHAT && ep != SRV_EP_COMPLETION)
        return;
    const struct cit_sampler_params *s = &r->sampling;
    CHECK(s->temperature >= 0 && s->temperature <= 2);
    CHECK(s->top_p > 0 && s->top_p <= 1);
    CHECK(s->min_p >= 0 && s->min_p <= 1);
    CHECK(s->top_k >= -1 && s->top_k <= 1048576);
    CHECK(s->repeat_penalty > 0 && s->repeat_penalty <= 10);
    CHECK(fabsf(s->presence_penalty) <= 2 && fabsf(s->frequency_penalty) <= 2);
    CHECK(s->penalty_last_n == 0 || s->penalty_last_n == -1);
    CHECK(s->n_logit_bias <= SRV_MAX_LOGIT_BIAS && (s->n_logit_bias == 0 || s->logit_bias == r->bias));
    for (size_t i = 0; i < s->n_logit_bias; i++) {
        CHECK(s->logit_bias[i].token >= 0 && (uint32_t)s->logit_bias[i].token < N_VOCAB);
        CHECK(fabsf(s->logit_bias[i].bias) <= 100);
    }
    CHECK(r->n >= 1 && r->n <= SRV_MAX_N);
    CHECK(r->max_tokens <= 1048576 && (ep == SRV_EP_CHAT || r->max_tokens >= 1));
    CHECK(r->n_stop <= CIT_ENGINE_MAX_STOP);
    for (size_t i = 0; i < r->n_stop; i++) {
        size_t len = strlen(r->stop[i]);
        CHECK(len >= 1 && len <= CIT_ENGINE_MAX_STOP_LEN);
    }
    CHECK(r->top_logprobs <= CIT_ENGINE_MAX_TOP_LOGPROBS && (r->logprobs || r->top_logprobs == 0));
    CHECK(!r->include_usage || r->stream);
    struct cit_sampler *smp = NULL;
    char err[256];
    CHECK(cit_sampler_new(s, (int32_t)N_VOCAB, &smp, err, sizeof err) == CIT_OK);
    cit_sampler_free(smp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = (json_t *)1;
    struct srv_error e;
    memset(&e, 0, sizeof e);
    if (!srv_json_parse((const char *)data, size, 1u << 20, &body, &e)) {
        CHECK(body == NULL);
        check_error(&e);
        CHECK(e.param[0] == '\0');
        return 0;
    }
    CHECK(json_is_object(body));
    static const enum srv_endpoint eps[] = {SRV_EP_CHAT, SRV_EP_COMPLETION, SRV_EP_EMBEDDING, SRV_EP_TOKENIZE,
                                            SRV_EP_DETOKENIZE};
    static const struct srv_request zero;
    for (size_t k = 0; k < sizeof eps / sizeof eps[0]; k++) {
        struct srv_request r;
        memset(&e, 0, sizeof e);
        if (srv_params_parse(eps[k], body, N_VOCAB, &r, &e)) {
            check_request(eps[k], &r);
            srv_request_clear(&r);
        } else {
            check_error(&e);
            CHECK(e.status != 413);
        }
        CHECK(memcmp(&r, &zero, sizeof r) == 0);
    }
    json_decref(body);
    return 0;
}
