/* template.h: chat templates, rendered by a sandboxed Jinja interpreter.
 *
 * Models ship a Jinja2 template (GGUF key tokenizer.chat_template) that
 * turns a list of chat messages into the exact prompt text the model was
 * trained on. libcitadel renders it with its own interpreter, which covers
 * the Jinja subset real chat templates use (docs/templates.md) and behaves
 * as Jinja2 does with trim_blocks and lstrip_blocks on, byte for byte.
 *
 * The interpreter is a sandbox: a template sees only the variables it is
 * given and can reach no file, environment variable, clock (other than the
 * one passed in options) or other host state. Every render runs under
 * budgets (nesting depth, evaluation steps, output bytes, memory); going
 * over one is a CIT_ERR_LIMIT error naming the budget, in bounded time.
 *
 * A parsed template is immutable: one struct cit_template may be rendered
 * from several threads at once. */
#ifndef CITADEL_TEMPLATE_H
#define CITADEL_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cit_gguf;
struct cit_template;

/* Largest template source accepted, bytes. */
#define CIT_TEMPLATE_MAX_SOURCE ((size_t)4 << 20)

struct cit_template_limits {
    uint32_t max_depth;  /* nesting of expressions, statements and macro calls (default 500) */
    uint64_t max_steps;  /* evaluation steps: nodes evaluated, loop iterations, bytes/64 copied (default 20M) */
    size_t max_output;   /* bytes of the output and of any single string value (default 16 MiB) */
    size_t max_memory;   /* bytes a render may hold allocated at once (default 128 MiB) */
};

struct cit_template_options {
    struct cit_template_limits limits;
    int64_t now;          /* strftime_now's clock, Unix seconds; 0 = the current time */
    int32_t utc_offset_s; /* added to `now` before formatting (default 0: UTC) */
};

/* Fills defaults (see the field comments). */
void cit_template_options_default(struct cit_template_options *opts);

/* Parses a template. Syntax errors, unknown filters/tests and unsupported
 * constructs (extends/include/import, recursive loops) are reported here,
 * with "template line L, column C: ..." in err. */
enum cit_status cit_template_parse(const char *src, size_t len, struct cit_template **out, char *err,
                                   size_t errlen);

/* Accepts NULL. */
void cit_template_free(struct cit_template *t);

/* Renders with the members of the JSON object vars as the template's
 * variables (vars may be NULL). On success *out is a malloc'd,
 * NUL-terminated string (the caller frees it) of *out_len bytes. On failure
 * err holds "template line L, column C: what went wrong"; for the
 * template's own raise_exception(msg) the message is msg verbatim after
 * that prefix and the status is CIT_ERR_INVALID_ARG. opts may be NULL. */
enum cit_status cit_template_render(const struct cit_template *t, const json_t *vars,
                                    const struct cit_template_options *opts, char **out, size_t *out_len,
                                    char *err, size_t errlen);

/* The chat form: messages is an array of {"role", "content", ...} objects;
 * bos_token / eos_token NULL means the template's own (from the model, or
 * ""); extra (an object, may be NULL) adds variables such as tools or
 * date_string (messages, add_generation_prompt, bos_token and eos_token
 * given here take precedence over the same keys in extra). */
enum cit_status cit_template_render_chat(const struct cit_template *t, const json_t *messages,
                                         bool add_generation_prompt, const char *bos_token, const char *eos_token,
                                         const json_t *extra, const struct cit_template_options *opts, char **out,
                                         size_t *out_len, char *err, size_t errlen);

/* The template used for models that carry none: ChatML
 * (<|im_start|>role\ncontent<|im_end|>\n per message, then
 * <|im_start|>assistant\n when add_generation_prompt). */
const char *cit_template_fallback_source(void);

/* Loads a model's template: tokenizer.chat_template when present, else the
 * fallback; bos/eos token texts are taken from tokenizer.ggml.tokens at
 * tokenizer.ggml.bos_token_id / eos_token_id when present. A template that
 * does not parse fails here, at load time. */
enum cit_status cit_template_from_gguf(const struct cit_gguf *g, struct cit_template **out, char *err,
                                       size_t errlen);

/* True when the template is the fallback (the model had none). */
bool cit_template_is_fallback(const struct cit_template *t);
/* Source text (NUL-terminated; len may be NULL) and the default BOS/EOS texts ("" when unknown). */
const char *cit_template_source(const struct cit_template *t, size_t *len);
const char *cit_template_bos(const struct cit_template *t);
const char *cit_template_eos(const struct cit_template *t);

#ifdef __cplusplus
}
#endif
#endif
