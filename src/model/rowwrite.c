/* rowwrite.c: the parallel row writer of rowwrite.h. */
#include "model/rowwrite.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/threadpool.h"
#include "citadel/gguf_write.h"

#define CHUNK_BYTES ((size_t)32 << 20) /* encoded bytes made per parallel loop */

enum cit_status cit_row_writer_init(struct cit_row_writer *rw, unsigned n_threads, uint64_t max_ne0, uint64_t total,
                                    cit_progress_fn progress, void *cb_arg, char *err, size_t errlen)
{
    memset(rw, 0, sizeof *rw);
    unsigned nt = n_threads ? n_threads : cit_cpu_count();
    if (nt > CIT_THREADPOOL_MAX_THREADS)
        nt = CIT_THREADPOOL_MAX_THREADS;
    rw->max_ne0 = max_ne0 ? max_ne0 : 1;
    rw->total = total;
    rw->progress = progress;
    rw->cb_arg = cb_arg;
    enum cit_status st = cit_threadpool_new(nt, &rw->pool, err, errlen);
    if (st)
        return st;
    if (rw->max_ne0 <= SIZE_MAX / sizeof(float) / nt)
        rw->scratch = malloc((size_t)rw->max_ne0 * nt * sizeof(float));
    rw->buf = malloc(CHUNK_BYTES);
    rw->buf_bytes = CHUNK_BYTES;
    if (!rw->scratch || !rw->buf)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for %u threads' rows of %llu elements", nt,
                        (unsigned long long)rw->max_ne0);
    return CIT_OK;
}

struct chunk_job {
    const struct cit_row_writer *rw;
    cit_row_fn fn;
    const void *arg;
    uint64_t r0, ne0, row_bytes;
};

static void chunk_rows(void *arg, size_t begin, size_t end, unsigned tid)
{
    const struct chunk_job *j = arg;
    float *scratch = j->rw->scratch + (size_t)tid * j->ne0;
    for (size_t r = begin; r < end; r++)
        j->fn(j->arg, j->r0 + r, j->rw->buf + r * j->row_bytes, scratch);
}

enum cit_status cit_row_writer_tensor(struct cit_row_writer *rw, struct cit_gguf_writer *w, uint64_t rows,
                                      uint64_t ne0, uint64_t row_bytes, cit_row_fn fn, const void *arg, char *err,
                                      size_t errlen)
{
    if (ne0 > rw->max_ne0 || row_bytes == 0)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "rows of %llu elements, %llu bytes: beyond %llu elements",
                        (unsigned long long)ne0, (unsigned long long)row_bytes, (unsigned long long)rw->max_ne0);
    if (row_bytes > rw->buf_bytes) { /* a row longer than a chunk: one row at a time */
        if (row_bytes > SIZE_MAX)
            return cit_fail(CIT_ERR_LIMIT, err, errlen, "rows of %llu bytes", (unsigned long long)row_bytes);
        uint8_t *b = realloc(rw->buf, (size_t)row_bytes);
        if (!b)
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for a row of %llu bytes",
                            (unsigned long long)row_bytes);
        rw->buf = b;
        rw->buf_bytes = (size_t)row_bytes;
    }
    uint64_t chunk = rw->buf_bytes / row_bytes;
    struct chunk_job job = {rw, fn, arg, 0, ne0, row_bytes};
    enum cit_status st = CIT_OK;
    for (uint64_t r0 = 0; r0 < rows && st == CIT_OK; r0 += chunk) {
        uint64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        job.r0 = r0;
        cit_threadpool_for(rw->pool, (size_t)n, 1, chunk_rows, &job);
        st = cit_gguf_writer_write(w, rw->buf, (size_t)(n * row_bytes), err, errlen);
        rw->done += n * ne0;
        if (rw->progress)
            rw->progress(rw->cb_arg, rw->done, rw->total);
    }
    return st;
}

void cit_row_writer_free(struct cit_row_writer *rw)
{
    if (!rw)
        return;
    cit_threadpool_free(rw->pool);
    free(rw->scratch);
    free(rw->buf);
    memset(rw, 0, sizeof *rw);
}
