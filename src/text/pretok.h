/* pretok.h: the regex pre-tokenizers of byte-level BPE vocabularies.
 *
 * tokenizer.ggml.pre names a set of regexes (the published patterns of each
 * model family, as the reference engine applies them). They are applied in
 * order: each one splits every piece the previous ones produced into its
 * matches and the gaps between them, gaps being pieces too. Patterns are
 * compiled once per tokenizer with PCRE2 (UTF, Unicode properties, JIT when
 * available); matching needs a per-call pretok_work, so a tokenizer can be
 * shared by threads. */
#ifndef CITADEL_TEXT_PRETOK_H
#define CITADEL_TEXT_PRETOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/status.h"

#define PRETOK_MAX_REGEX 6

struct span {
    uint32_t start, len; /* bytes */
};

struct span_vec {
    struct span *v; /* [cap] */
    size_t n, cap;
};

struct pretok {
    const char *name; /* canonical set name ("gpt-2", "llama3", ...) */
    bool ignore_merges;   /* a whole piece that is a token skips merging */
    bool add_bos;         /* default of add_bos_token for this family */
    unsigned n_regex;
    void *code[PRETOK_MAX_REGEX]; /* pcre2_code_8 * */
};

/* Scratch for pretok_split; zero-initialise, release with pretok_work_free. */
struct pretok_work {
    void *match_data;  /* pcre2_match_data_8 * */
    void *mcontext;    /* pcre2_match_context_8 * */
    void *jit_stack;   /* pcre2_jit_stack_8 * */
    struct span_vec tmp;
};

/* Compiles the set for tokenizer.ggml.pre = name[0..len) (name NULL: the
 * key is absent, which selects "default" as in the reference).
 * CIT_ERR_UNSUPPORTED names an unknown value. */
enum cit_status pretok_init(struct pretok *p, const char *name, size_t len, char *err, size_t errlen);
void pretok_free(struct pretok *p);

/* Splits text[0..len) (any bytes; invalid UTF-8 never matches and ends up in
 * gap pieces) into out (cleared first). CIT_ERR_LIMIT if PCRE2 gives up (its
 * match or JIT stack limits), CIT_ERR_NOMEM. */
enum cit_status pretok_split(const struct pretok *p, struct pretok_work *w, const char *text, size_t len,
                             struct span_vec *out, char *err, size_t errlen);
void pretok_work_free(struct pretok_work *w);

bool span_push(struct span_vec *v, uint32_t start, uint32_t len);
void span_vec_free(struct span_vec *v);

#endif
