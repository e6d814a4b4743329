/* arch.h: descriptions of the supported architectures.
 *
 * An architecture is data: the name stored in general.architecture (also
 * the prefix of its hyper-parameter keys), its RoPE pairing and whether its
 * attention projections carry biases. The loader and the forward pass read
 * these flags instead of comparing names, so adding a Llama-like family is
 * one row in arch.c. */
#ifndef CITADEL_MODEL_ARCH_H
#define CITADEL_MODEL_ARCH_H

#include <stdbool.h>
#include <stddef.h>

struct cit_arch {
    const char *name;  /* general.architecture and key prefix */
    bool rope_neox;    /* RoPE pairs (x[i], x[i + n_rot/2]) instead of (x[2i], x[2i+1]) */
    bool qkv_bias;     /* blk.N.attn_{q,k,v}.bias present */
};

/* The description named name[0, len), or NULL. */
const struct cit_arch *cit_arch_find(const char *name, size_t len);

/* Comma-separated names of the supported architectures (for messages). */
const char *cit_arch_list(void);

#endif
