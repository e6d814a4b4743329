/* matmul.c: the matmul dispatch over the type traits (reference path).
 *
 * Two parallel phases: convert every token's activation row to the weight's
 * vec_dot_type (split over tokens), then compute outputs split over weight
 * rows with tokens innermost, so a weight row is streamed from memory once
 * per batch while it sits in cache. The loops never allocate. */
#include "kernels/matmul.h"

#include <assert.h>

#include "base/threadpool.h"

bool cit_matmul_supported(uint32_t type, uint64_t n_in)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    if (!tr || !tr->to_float || !tr->vec_dot || n_in == 0 || n_in % tr->block_size != 0)
        return false;
    const struct cit_type_traits *vt = cit_type_traits(tr->vec_dot_type);
    return vt && vt->from_float && n_in % vt->block_size == 0;
}

bool cit_matmul_act_row_bytes(uint32_t type, uint64_t n_in, uint64_t *bytes)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    if (!tr)
        return false;
    if (tr->vec_dot_type == CIT_TYPE_F32) {
        *bytes = 0;
        return true;
    }
    return cit_type_row_size(tr->vec_dot_type, n_in, bytes);
}

struct convert_job {
    const struct cit_matrix *w;
    const float *x;    /* (n_tokens, n_in) */
    unsigned char *act; /* (n_tokens, act_row) */
    size_t act_row;
};

static void convert_rows(void *arg, size_t begin, size_t end, unsigned tid)
{
    const struct convert_job *j = arg;
    const struct cit_type_traits *vt = cit_type_traits(j->w->tr->vec_dot_type);
    for (size_t t = begin; t < end; t++)
        vt->from_float(j->x + t * j->w->n_in, j->act + t * j->act_row, j->w->n_in);
}

struct dot_job {
    const struct cit_matrix *w;
    const unsigned char *act; /* (n_tokens, act_row) */
    size_t act_row;
    size_t n_tokens;
    float *y; /* (n_tokens, n_out) */
};

static void dot_rows(void *arg, size_t begin, size_t end, unsigned tid)
{
    const struct dot_job *j = arg;
    const struct cit_matrix *w = j->w;
    const unsigned char *wd = w->data;
    cit_vec_dot_fn dot = w->tr->vec_dot;
    for (size_t r = begin; r < end; r++) {
        const void *row = wd + r * w->row_bytes;
        for (size_t t = 0; t < j->n_tokens; t++) {
            float s;
            dot(w->n_in, &s, row, j->act + t * j->act_row);
            j->y[t * w->n_out + r] = s;
        }
    }
}

void cit_matmul(struct cit_threadpool *pool, const struct cit_matrix *w, const float *x, size_t n_tokens,
                float *y, void *act)
{
    if (n_tokens == 0)
        return;
    struct dot_job dj = {.w = w, .n_tokens = n_tokens, .y = y};
    if (w->tr->vec_dot_type == CIT_TYPE_F32) {
        dj.act = (const unsigned char *)x;
        dj.act_row = (size_t)w->n_in * sizeof(float);
    } else {
        uint64_t act_row = 0;
        bool ok = cit_matmul_act_row_bytes(w->type, w->n_in, &act_row);
        assert(ok && act);
        (void)ok;
        struct convert_job cj = {.w = w, .x = x, .act = act, .act_row = (size_t)act_row};
        cit_threadpool_for(pool, n_tokens, 4, convert_rows, &cj);
        dj.act = act;
        dj.act_row = (size_t)act_row;
    }
    /* Grain: enough multiply-adds per chunk to amortise the claim. */
    size_t work_per_row = (size_t)w->n_in * n_tokens;
    size_t grain = work_per_row >= 65536 ? 1 : 65536 / work_per_row;
    cit_threadpool_for(pool, w->n_out, grain, dot_rows, &dj);
}

void cit_matrix_row(const struct cit_matrix *w, size_t row, float *dst)
{
    assert(row < w->n_out);
    w->tr->to_float((const unsigned char *)w->data + row * w->row_bytes, dst, w->n_in);
}
