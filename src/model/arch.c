/* arch.c: the table of supported architectures (see arch.h). */
#include "model/arch.h"

#include <string.h>

static const struct cit_arch arches[] = {
    /* Llama 1/2/3: the GGUF converter permutes Q and K rows so adjacent
     * pairs are the rotated ones. */
    {"llama", false, false},
    /* Qwen2: biases on Q, K, V; rotate-half (NEOX) RoPE. */
    {"qwen2", true, true},
};

const struct cit_arch *cit_arch_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
        if (strlen(arches[i].name) == len && memcmp(arches[i].name, name, len) == 0)
            return &arches[i];
    return NULL;
}

const char *cit_arch_list(void)
{
    return "llama, qwen2";
}
