/* tokenizer.h: text <-> token ids for the vocabularies stored in GGUF files.
 *
 * cit_tokenizer_load reads the tokenizer.ggml.* metadata of an open GGUF
 * file and builds one of two tokenizers:
 *  - "llama": SentencePiece-style BPE over scores, with an optional space
 *    prefix, spaces written as U+2581 and byte fallback (<0xXX> tokens);
 *  - "gpt2": byte-level BPE over ranked merges, after a regex pre-tokenizer
 *    chosen by tokenizer.ggml.pre.
 * Both follow the reference engine (llama.cpp), whose conformance vectors
 * they reproduce id for id, so prompts get the ids models were run with.
 * Not implemented: WordPiece ("bert"), Unigram ("t5"), and the per-model
 * whitespace stripping around special tokens (lstrip/rstrip attributes) the
 * reference hard-codes for a few families.
 *
 * The tokenizer copies everything it needs out of the GGUF mapping: it keeps
 * no pointer into it and may outlive the handle. A loaded tokenizer is
 * immutable; every function taking a const tokenizer may be called from
 * several threads at once.
 *
 * Token ids coming from callers are untrusted: every function checks them
 * against the vocabulary size and reports out-of-range ids (CIT_ERR_RANGE,
 * or the documented neutral value for the plain accessors). */
#ifndef CITADEL_TOKENIZER_H
#define CITADEL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cit_gguf;
struct cit_tokenizer;

/* Returned by the special-token accessors when the vocabulary has none. */
#define CIT_TOKEN_NONE (-1)

/* Largest text cit_tokenize accepts (bytes); larger inputs get CIT_ERR_LIMIT. */
#define CIT_TOKENIZE_MAX_BYTES ((size_t)1 << 28)

enum cit_tokenizer_kind {
    CIT_TOKENIZER_SPM = 1, /* tokenizer.ggml.model = "llama" */
    CIT_TOKENIZER_BPE = 2, /* tokenizer.ggml.model = "gpt2" */
};

/* tokenizer.ggml.token_type values, numbered as in GGUF. */
enum cit_token_type {
    CIT_TOKEN_UNDEFINED = 0,
    CIT_TOKEN_NORMAL = 1,
    CIT_TOKEN_UNKNOWN = 2,
    CIT_TOKEN_CONTROL = 3,
    CIT_TOKEN_USER_DEFINED = 4,
    CIT_TOKEN_UNUSED = 5,
    CIT_TOKEN_BYTE = 6,
};

/* ---- loading ---- */

/* Builds a tokenizer from g's metadata. Errors name the key and, where it
 * applies, the index and value: CIT_ERR_NOT_FOUND (no tokenizer.ggml.model /
 * tokens / merges), CIT_ERR_UNSUPPORTED (a model other than llama/gpt2, or
 * an unknown tokenizer.ggml.pre), CIT_ERR_FORMAT (array lengths that differ
 * from the vocabulary, a malformed merge, a NaN score, a token type outside
 * 0..6, ...), CIT_ERR_RANGE (a special token id >= n_vocab; the value
 * 0xFFFFFFFF, or -1 for signed keys, means "none"), CIT_ERR_TYPE. */
enum cit_status cit_tokenizer_load(const struct cit_gguf *g, struct cit_tokenizer **out, char *err,
                                   size_t errlen);

/* Accepts NULL. */
void cit_tokenizer_free(struct cit_tokenizer *tok);

/* ---- vocabulary ---- */

enum cit_tokenizer_kind cit_tokenizer_kind(const struct cit_tokenizer *tok);
/* Name of the pre-tokenizer regex set in use ("default", "gpt-2", "llama3",
 * ...); "" for SentencePiece. */
const char *cit_tokenizer_pre(const struct cit_tokenizer *tok);
uint32_t cit_tokenizer_n_vocab(const struct cit_tokenizer *tok);
uint32_t cit_tokenizer_n_merges(const struct cit_tokenizer *tok);

/* Special ids, or CIT_TOKEN_NONE. eot is tokenizer.ggml.eot_token_id or,
 * when absent, a token whose text is a well-known end-of-turn marker
 * ("<|eot_id|>", "<|im_end|>", "<end_of_turn>", ...). */
int32_t cit_tokenizer_bos(const struct cit_tokenizer *tok);
int32_t cit_tokenizer_eos(const struct cit_tokenizer *tok);
int32_t cit_tokenizer_eot(const struct cit_tokenizer *tok);
int32_t cit_tokenizer_eom(const struct cit_tokenizer *tok);
int32_t cit_tokenizer_unk(const struct cit_tokenizer *tok);
int32_t cit_tokenizer_pad(const struct cit_tokenizer *tok);

/* Whether add_special tokenization prepends BOS / appends EOS. add_bos is
 * false when the vocabulary has no BOS token, whatever the metadata says. */
bool cit_tokenizer_add_bos(const struct cit_tokenizer *tok);
bool cit_tokenizer_add_eos(const struct cit_tokenizer *tok);
/* SentencePiece only: a space is put before the text (and before text that
 * follows a special token). */
bool cit_tokenizer_add_space_prefix(const struct cit_tokenizer *tok);

/* End of generation: eos, eot, eom and the tokens whose text is a known
 * end-of-turn marker. False for out-of-range ids. */
bool cit_tokenizer_is_eog(const struct cit_tokenizer *tok, int32_t id);

/* CIT_TOKEN_UNDEFINED for out-of-range ids. */
enum cit_token_type cit_tokenizer_token_type(const struct cit_tokenizer *tok, int32_t id);
/* Score (SentencePiece log-probability; 0 when the file has none); 0 for
 * out-of-range ids. */
float cit_tokenizer_token_score(const struct cit_tokenizer *tok, int32_t id);
/* Raw vocabulary text of a token as stored in the file (U+2581 for spaces in
 * SentencePiece, the byte-to-unicode alphabet in byte-level BPE), not
 * NUL-terminated; *len gets its length. NULL (and *len = 0) when out of range. */
const char *cit_tokenizer_token_text(const struct cit_tokenizer *tok, int32_t id, size_t *len);
/* Id of the token whose raw text is exactly text[0..len), or CIT_TOKEN_NONE. */
int32_t cit_tokenizer_find(const struct cit_tokenizer *tok, const char *text, size_t len);

/* ---- text -> ids ---- */

/* Tokenizes text[0..len) (need not be NUL-terminated; may contain NUL).
 *  add_special:   prepend BOS / append EOS as the vocabulary asks;
 *  parse_special: text equal to a control (or unknown) token maps to that
 *                 token; otherwise such text is tokenized as plain text.
 *                 User-defined tokens are always matched, as the reference
 *                 does. Matching takes special tokens longest first.
 * Ids are written to out[0..cap) (out may be NULL when cap is 0); *n_out gets
 * the number of ids. When cap is too small: CIT_ERR_LIMIT, *n_out is the
 * count needed, out holds the first cap ids.
 * Invalid UTF-8 never fails: each byte that is not part of a valid sequence
 * stands alone and becomes its byte token (SentencePiece byte fallback; the
 * unknown token if there is none) or its byte-level symbol (BPE). As in the
 * reference, a BPE vocabulary without a token for some byte's character
 * (many lack 0xC0, 0xC1, 0xF5..0xFF) drops that byte; it never becomes a
 * special token. */
enum cit_status cit_tokenize(const struct cit_tokenizer *tok, const char *text, size_t len, bool add_special,
                             bool parse_special, int32_t *out, size_t cap, size_t *n_out, char *err,
                             size_t errlen);

/* Same, into a malloc'd array the caller frees (*out is NULL when *n_out is 0). */
enum cit_status cit_tokenize_alloc(const struct cit_tokenizer *tok, const char *text, size_t len,
                                   bool add_special, bool parse_special, int32_t **out, size_t *n_out,
                                   char *err, size_t errlen);

/* A prompt as the engine will run it (a rendered chat template or a user's
 * prompt): special tokens are parsed, and BOS is prepended as the vocabulary
 * asks unless the text already begins with the BOS token's text (templates
 * that write {{ bos_token }} themselves), so a prompt never gets two. Same
 * output and errors as cit_tokenize_alloc. */
enum cit_status cit_tokenize_prompt(const struct cit_tokenizer *tok, const char *text, size_t len, int32_t **out,
                                    size_t *n_out, char *err, size_t errlen);

/* ---- ids -> text ---- */

/* The bytes a token stands for: U+2581 -> ' ' and <0xXX> -> that byte for
 * SentencePiece, the unicode-to-byte mapping for byte-level BPE; user-defined
 * tokens render verbatim; control and unknown tokens render as "" unless
 * special is true (then verbatim); unused/undefined tokens render as "". The
 * returned pointer lies inside the tokenizer (valid until it is freed), is not
 * NUL-terminated and may hold invalid UTF-8 (a byte token, half a character).
 * NULL for out-of-range ids. */
const char *cit_token_piece(const struct cit_tokenizer *tok, int32_t id, bool special, size_t *len);

/* Copies the piece into buf[0..cap). CIT_ERR_RANGE for an out-of-range id;
 * CIT_ERR_LIMIT (with *n_out = bytes needed, nothing written) when cap is
 * too small. */
enum cit_status cit_token_to_piece(const struct cit_tokenizer *tok, int32_t id, bool special, char *buf,
                                   size_t cap, size_t *n_out, char *err, size_t errlen);

/* Longest piece of any token, in bytes. */
size_t cit_tokenizer_max_piece_len(const struct cit_tokenizer *tok);

/* Whole-sequence detokenization: the concatenated pieces, with
 *  remove_special:  a leading BOS (when add_bos) and a trailing EOS (when
 *                   add_eos) are dropped;
 *  unparse_special: control tokens render as their text (else as "").
 * With a space prefix (SentencePiece), one leading space is removed from the
 * first piece that renders as non-empty text, undoing the prefix that
 * tokenization adds: detokenizing cit_tokenize(text) gives text back for
 * SentencePiece (but for U+2581 in the text, which reads back as a space)
 * and for byte-level BPE. Never allocates. Errors: CIT_ERR_RANGE for an
 * out-of-range id (naming its position); CIT_ERR_LIMIT with *n_out = bytes
 * needed when cap is too small (buf then holds a truncated prefix). */
enum cit_status cit_detokenize(const struct cit_tokenizer *tok, const int32_t *ids, size_t n,
                               bool remove_special, bool unparse_special, char *buf, size_t cap,
                               size_t *n_out, char *err, size_t errlen);

/* ---- streaming detokenizer ----
 *
 * For servers that send text as it is generated: push ids one at a time and
 * get back only complete UTF-8 characters; the leading bytes of a multi-byte
 * character split across tokens (an emoji made of byte tokens) are held until
 * the character completes. Bytes that can never be part of a valid character
 * are passed through as they are. Pieces are rendered as cit_token_piece does
 * (no space-prefix removal: the reference server keeps the first piece's
 * leading space). The state is a plain struct: no allocation, no free. */
struct cit_detok {
    const struct cit_tokenizer *tok;
    bool special;          /* render control tokens as their text */
    uint8_t held[4];       /* start of an incomplete UTF-8 sequence */
    uint8_t n_held;
};

void cit_detok_init(struct cit_detok *d, const struct cit_tokenizer *tok, bool special);

/* Renders id and writes the text now complete to buf[0..cap); *n_out gets its
 * length (possibly 0). A buffer of cit_tokenizer_max_piece_len(tok) + 4 bytes
 * is always enough. On CIT_ERR_LIMIT (*n_out = bytes needed) or CIT_ERR_RANGE
 * the state is unchanged, so the call can be retried. */
enum cit_status cit_detok_push(struct cit_detok *d, int32_t id, char *buf, size_t cap, size_t *n_out,
                               char *err, size_t errlen);

/* End of stream: writes the held bytes (an incomplete character, at most 3
 * bytes; buf needs 4) as they are, resets the state and returns their count. */
size_t cit_detok_flush(struct cit_detok *d, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
