// The two halves of decode attention around its softmax, in the order Turing's products use, so the
// decode path gives the product path's bits: s[j] = scale * (q . k_j), each dot one FMA chain over d in
// order from 0 (the products' alpha epilogue: scale 1 leaves it as is); o[d] = sum over j of p[j] v_j[d],
// each element one FMA chain over j in order from 0. The FMA build (AVX2 or AVX-512 CPUs) and the
// portable build (fmaf from libm) are the same source: the same bits on every ISA.
#include "internal.h"
#include <math.h>

#define TK_DOT_ROWS_BODY                                                                               \
    long j = 0;                                                                                       \
    for (; j + 8 <= n; j += 8) {                                                                      \
        const float *k0 = k + j * ldk;                                                                \
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;                         \
        for (long d = 0; d < D; d++) {                                                                \
            float x = q[d];                                                                           \
            a0 = FMA(x, k0[d], a0); a1 = FMA(x, k0[ldk + d], a1);                                     \
            a2 = FMA(x, k0[2 * ldk + d], a2); a3 = FMA(x, k0[3 * ldk + d], a3);                       \
            a4 = FMA(x, k0[4 * ldk + d], a4); a5 = FMA(x, k0[5 * ldk + d], a5);                       \
            a6 = FMA(x, k0[6 * ldk + d], a6); a7 = FMA(x, k0[7 * ldk + d], a7);                       \
        }                                                                                             \
        float *o = s + j;                                                                             \
        if (scale != 1.0f) { a0 *= scale; a1 *= scale; a2 *= scale; a3 *= scale;                      \
                             a4 *= scale; a5 *= scale; a6 *= scale; a7 *= scale; }                    \
        o[0] = a0; o[1] = a1; o[2] = a2; o[3] = a3; o[4] = a4; o[5] = a5; o[6] = a6; o[7] = a7;       \
    }                                                                                                 \
    for (; j < n; j++) {                                                                              \
        const float *kj = k + j * ldk;                                                                \
        float a = 0;                                                                                  \
        for (long d = 0; d < D; d++) a = FMA(q[d], kj[d], a);                                         \
        s[j] = scale != 1.0f ? scale * a : a;                                                         \
    }

#define TK_WEIGHTED_SUM_BODY                                                                           \
    for (long d = 0; d < D; d++) o[d] = 0;                                                            \
    for (long j = 0; j < n; j++) {                                                                    \
        const float pj = p[j], *vj = v + j * ldv;                                                     \
        for (long d = 0; d < D; d++) o[d] = FMA(pj, vj[d], o[d]);                                     \
    }

#define FMA(a, b, c) __builtin_fmaf((a), (b), (c))
__attribute__((target("avx2,fma")))
static void dot_rows_fma(float *s, const float *q, const float *k, long ldk, long n, long D, float scale) { TK_DOT_ROWS_BODY }
__attribute__((target("avx2,fma")))
static void weighted_sum_fma(float *o, const float *p, const float *v, long ldv, long n, long D) { TK_WEIGHTED_SUM_BODY }
#undef FMA

#define FMA(a, b, c) fmaf((a), (b), (c))
static void dot_rows_portable(float *s, const float *q, const float *k, long ldk, long n, long D, float scale) { TK_DOT_ROWS_BODY }
static void weighted_sum_portable(float *o, const float *p, const float *v, long ldv, long n, long D) { TK_WEIGHTED_SUM_BODY }
#undef FMA

void tk_dot_rows(float *s, const float *q, const float *k, long ldk, long n, long D, float scale) {
    if (tk_isa() >= TK_ISA_AVX2) dot_rows_fma(s, q, k, ldk, n, D, scale);
    else dot_rows_portable(s, q, k, ldk, n, D, scale);
}

void tk_weighted_sum(float *o, const float *p, const float *v, long ldv, long n, long D) {
    if (tk_isa() >= TK_ISA_AVX2) weighted_sum_fma(o, p, v, ldv, n, D);
    else weighted_sum_portable(o, p, v, ldv, n, D);
}
