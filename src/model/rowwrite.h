/* rowwrite.h: writing a GGUF file's tensor data row by row on a thread
 * pool, shared by the quantizer (rows converted from another file) and the
 * synthetic-model writer (rows made from a seed). The caller says how one
 * row is made; this module owns the pool, the per-thread float scratch, the
 * chunk buffer, the writes and the progress count. */
#ifndef CITADEL_MODEL_ROWWRITE_H
#define CITADEL_MODEL_ROWWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "citadel/quantize.h"
#include "citadel/status.h"

struct cit_gguf_writer;
struct cit_threadpool;

/* Makes row `row` of a tensor into dst (its encoded bytes), using scratch
 * (ne0 floats of this thread) as it likes. Called from several threads at
 * once for different rows. */
typedef void (*cit_row_fn)(const void *arg, uint64_t row, uint8_t *dst, float *scratch);

struct cit_row_writer {
    struct cit_threadpool *pool;
    uint64_t max_ne0;  /* longest row, in elements */
    float *scratch;    /* (threads of the pool, max_ne0) */
    uint8_t *buf;      /* one chunk of encoded rows */
    size_t buf_bytes;
    uint64_t done, total; /* elements written, of all */
    cit_progress_fn progress; /* may be NULL */
    void *cb_arg;
};

/* Starts the pool (n_threads 0 = every CPU, at most CIT_THREADPOOL_MAX_THREADS)
 * and the buffers for rows of up to max_ne0 elements. Errors: CIT_ERR_NOMEM,
 * or the pool's. rw_free is needed after a failure too. */
enum cit_status cit_row_writer_init(struct cit_row_writer *rw, unsigned n_threads, uint64_t max_ne0, uint64_t total,
                                    cit_progress_fn progress, void *cb_arg, char *err, size_t errlen);

/* Writes `rows` rows of ne0 elements (row_bytes each when encoded) to w, in
 * chunks of about 32 MiB made in parallel by fn(arg, row, ...). ne0 must not
 * exceed the max_ne0 given to init. */
enum cit_status cit_row_writer_tensor(struct cit_row_writer *rw, struct cit_gguf_writer *w, uint64_t rows,
                                      uint64_t ne0, uint64_t row_bytes, cit_row_fn fn, const void *arg, char *err,
                                      size_t errlen);

/* Accepts a zeroed or failed writer. */
void cit_row_writer_free(struct cit_row_writer *rw);

#endif
