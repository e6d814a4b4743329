/* avx2_k.c: placeholder until the kernels land; registers nothing, so the
 * tier falls back to the one below it. */
#include "kernels/kernels.h"

void cit_kernels_avx2_k(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    (void)tab;
}
