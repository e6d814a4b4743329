/* tok_impl.h: the tokenizer's internal state, shared by its source files
 * (tokenizer.c loads it, spm.c and bpe.c tokenize, detok.c renders). */
#ifndef CITADEL_TEXT_TOK_IMPL_H
#define CITADEL_TEXT_TOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/tokenizer.h"
#include "text/merge.h"
#include "text/pretok.h"
#include "text/strtab.h"

/* Tokens longer than this are rejected at load (real vocabularies stay far
 * below; it keeps every per-token length comfortably in 32 bits). */
#define TOK_MAX_TOKEN_BYTES (1u << 16)
/* Vocabulary size limit (ids are int32 in the API). */
#define TOK_MAX_VOCAB (1u << 24)

struct cit_tokenizer {
    enum cit_tokenizer_kind kind;
    uint32_t n_vocab;
    uint32_t n_merges;

    /* Entries 0..n_vocab-1 are the tokens' raw texts (copied from the
     * file); later entries are strings only merges mention. */
    struct strtab strs;
    float *scores;  /* [n_vocab] */
    uint8_t *types; /* [n_vocab] enum cit_token_type */
    uint8_t *eog;   /* [n_vocab] 1 for end-of-generation tokens */

    /* Rendered pieces (detokenization), verbatim text for control tokens
     * included: piece i is piece_pool[piece_off[i] .. piece_off[i+1]). */
    char *piece_pool;
    uint32_t *piece_off; /* [n_vocab + 1] */
    size_t max_piece;

    /* Tokens split out of the text before tokenizing (control, unknown and
     * user-defined with non-empty text), longest text first. */
    int32_t *specials; /* [n_specials] */
    uint32_t n_specials;

    int32_t bos, eos, eot, eom, unk, pad;
    bool add_bos, add_eos, add_space_prefix;

    /* SentencePiece: token for each byte value (byte fallback), -1 if none. */
    int32_t byte_tok[256];

    /* Byte-level BPE. */
    struct pretok pre;
    struct pairmap merges;
    int32_t byte_sym[256]; /* string entry of each byte's mapped character, -1 if none */
};

/* Growable id list the tokenizers append to. */
struct idvec {
    int32_t *v; /* [cap] */
    size_t n, cap;
};

bool idvec_push(struct idvec *v, int32_t id);

/* Scratch reused across the fragments of one cit_tokenize call. */
struct tok_work {
    struct sym *syms; /* [sym_cap] */
    size_t sym_cap;
    struct bigram_heap heap;
    char *buf; /* [buf_cap] escaped (SPM) or byte-mapped (BPE) text */
    size_t buf_cap;
    struct span_vec words;
    struct pretok_work pre;
};

bool tok_work_reserve_syms(struct tok_work *w, size_t n);
bool tok_work_reserve_buf(struct tok_work *w, size_t n);

/* Appends the ids of plain text[0..len) (no special tokens in it).
 * with_prefix: SentencePiece puts the space prefix before it. */
enum cit_status spm_tokenize(const struct cit_tokenizer *tok, struct tok_work *w, const char *text, size_t len,
                             bool with_prefix, struct idvec *out, char *err, size_t errlen);
enum cit_status bpe_tokenize(const struct cit_tokenizer *tok, struct tok_work *w, const char *text, size_t len,
                             struct idvec *out, char *err, size_t errlen);

/* Byte-level BPE alphabet: the code point standing for byte b, and back
 * (-1 for code points outside the alphabet). */
uint32_t bpe_byte_to_cp(uint8_t b);
int bpe_cp_to_byte(uint32_t cp);

/* Loading helpers of bpe.c / detok.c. */
enum cit_status bpe_load_merges(struct cit_tokenizer *tok, const struct cit_gguf *g, char *err, size_t errlen);
enum cit_status tok_build_pieces(struct cit_tokenizer *tok, char *err, size_t errlen);

#endif
