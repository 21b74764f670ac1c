// internal.h: what the kernel files share (the pool, the ISA attributes, the product's epilogue).
#ifndef CKERNELS_INTERNAL_H
#define CKERNELS_INTERNAL_H
#include "ckernels.h"
#include <immintrin.h>

// No silent fusing of a * b + c: every FMA below is written out, the same on every ISA.
#pragma clang fp contract(off)

typedef void (*tk_task_fn)(void *ctx, long task);
/// Run tasks 0..<ntasks on up to `threads` threads (the caller included); returns when all are done.
void tk_parallel(long ntasks, int threads, tk_task_fn fn, void *ctx);

#define TK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define TK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TK_INLINE static inline __attribute__((always_inline))

/// bf16 of v, round to nearest even (a NaN stays a quiet NaN): the one narrowing rule of the kernels.
TK_INLINE uint16_t tk_bf16_round(float v) {
    uint32_t u; __builtin_memcpy(&u, &v, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/// One pass of a product on packed panels: p in [p0, p0 + kc) of c = alpha * A B (+ bias) (+ beta * c). The tile
/// at row i reads A at a + (i - ai0) * tsa, its (r, p) at [r * rsa + p * csa] (A in place, or packed in tiles of
/// rows). B lives in panels of 32 columns (packed.c) of depth k, dtype `btype`. A pass that is not `first` takes
/// its sums from c (where the pass before stored them raw, exactly), so the passes of a product make each sum the
/// one FMA chain over p in order that a single pass makes; only the `last` pass applies the epilogue.
typedef struct {
    float *c; long ldc;
    const float *a; long rsa, csa, tsa, ai0;
    const void *b; int btype; long k;
    long p0, kc; int first, last;
    const float *bias; float alpha, beta;
    long m, n;
} tk_pk_args;

/// Where the sum of row i, column j starts: 0, or the raw sum the pass before stored.
TK_INLINE float tk_pk_start(const tk_pk_args *a, long i, long j) { return a->first ? 0.0f : a->c[i * a->ldc + j]; }

/// The epilogue every ISA applies to a finished sum `s` of row i, column j (a pass before the last stores `s` raw).
TK_INLINE void tk_pk_store(const tk_pk_args *a, long i, long j, float s) {
    float *c = a->c + i * a->ldc + j;
    if (!a->last) { *c = s; return; }
    float v = a->alpha == 1.0f ? s : a->alpha * s;
    if (a->bias) v += a->bias[j];
    if (a->beta != 0.0f) { float t = a->beta * *c; v += t; }
    *c = v;
}

/// Rows [i0, i1) x panels [q0, q1) of a packed product.
void tk_pk_block_avx512(const tk_pk_args *a, long i0, long i1, long q0, long q1);
void tk_pk_block_avx2(const tk_pk_args *a, long i0, long i1, long q0, long q1);
void tk_pk_block_portable(const tk_pk_args *a, long i0, long i1, long q0, long q1);
#endif
