// gemm.c: the products' entry points. Weights are packed once (WeightMatrix); a general product
// packs its right operand per call (O(k n) against O(m k n) work) and runs the same kernel, so
// every product of Turing computes each element the same way. Tasks are column blocks of two
// panels (64 columns; four for a single row), cut by rows too when there are few; a task walks its
// rows in tiles.
#include "internal.h"
#include <stdlib.h>

typedef void (*pk_block_fn)(const tk_pk_args *, long, long, long, long);
typedef struct { tk_pk_args a; pk_block_fn block; long mb, qb, tasksQ, panels; } pk_job;

static void pk_task(void *ctx, long t) {
    const pk_job *J = ctx;
    long bi = t / J->tasksQ, bq = t % J->tasksQ;
    long i0 = bi * J->mb, i1 = i0 + J->mb < J->a.m ? i0 + J->mb : J->a.m;
    long q0 = bq * J->qb, q1 = q0 + J->qb < J->panels ? q0 + J->qb : J->panels;
    J->block(&J->a, i0, i1, q0, q1);
}

void tk_gemm_packed(float *c, long ldc, const float *a, long rsa, long csa, const void *panels, int btype,
                    const float *bias, float alpha, float beta, long m, long n, long k) {
    if (m <= 0 || n <= 0) return;
    pk_job J = { .a = { c, ldc, a, rsa, csa, panels, btype, bias, alpha, beta, m, n, k } };
    int isa = tk_isa();
    J.block = isa == TK_ISA_AVX512 ? tk_pk_block_avx512 : isa == TK_ISA_AVX2 ? tk_pk_block_avx2 : tk_pk_block_portable;
    J.panels = (n + 31) / 32;
    J.qb = m == 1 ? 4 : 2;   // one row (decode) takes four panels at a time
    J.tasksQ = (J.panels + J.qb - 1) / J.qb;
    int threads = (double)m * n * (k > 0 ? k : 1) < 65536.0 ? 1 : tk_threads();
    J.mb = m;
    if (threads > 1 && J.tasksQ < 4L * threads && m >= 48) J.mb = 48;   // few columns: cut the rows too (a multiple of 12 and 4)
    tk_parallel(((m + J.mb - 1) / J.mb) * J.tasksQ, threads, pk_task, &J);
}

/// Without memory for the packed operand: the same chains, element by element (same bits, slowly).
static void direct(const tk_pk_args *a, const void *w, int wtype, long ldw, int transposed) {
    for (long i = 0; i < a->m; i++) for (long j = 0; j < a->n; j++) {
        float s = 0.0f;
        for (long p = 0; p < a->k; p++) {
            long off = transposed ? j * ldw + p : p * ldw + j;
            float bv;
            if (wtype == TK_BF16) { uint32_t u = (uint32_t)((const uint16_t *)w)[off] << 16; __builtin_memcpy(&bv, &u, 4); }
            else bv = ((const float *)w)[off];
            s = __builtin_fmaf(a->a[i * a->rsa + p * a->csa], bv, s);
        }
        tk_pk_store(a, i, j, s);
    }
}

void tk_gemm_nt(float *y, long ldy, const float *x, long ldx, const void *w, int wtype, long ldw,
                const float *bias, float alpha, float beta, long m, long n, long k) {
    if (m <= 0 || n <= 0) return;
    long count = tk_packed_count(n, k);
    void *p = malloc((size_t)count * (wtype == TK_BF16 ? 2 : 4) + 64);
    if (!p) {
        tk_pk_args a = { y, ldy, x, ldx, 1, NULL, 0, bias, alpha, beta, m, n, k };
        direct(&a, w, wtype, ldw, 1);
        return;
    }
    if (wtype == TK_BF16) tk_pack_rows_bf16(p, w, ldw, n, k); else tk_pack_rows(p, TK_F32, w, ldw, n, k);
    tk_gemm_packed(y, ldy, x, ldx, 1, p, wtype, bias, alpha, beta, m, n, k);
    free(p);
}

void tk_gemm_nn(float *c, long ldc, const float *a, long rsa, long csa, const float *b, long ldb,
                float alpha, float beta, long m, long n, long k) {
    if (m <= 0 || n <= 0) return;
    float *p = malloc((size_t)tk_packed_count(n, k) * 4 + 64);
    if (!p) {
        tk_pk_args args = { c, ldc, a, rsa, csa, NULL, 0, NULL, alpha, beta, m, n, k };
        direct(&args, b, TK_F32, ldb, 0);
        return;
    }
    tk_pack_cols(p, b, ldb, k, n);
    tk_gemm_packed(c, ldc, a, rsa, csa, p, TK_F32, NULL, alpha, beta, m, n, k);
    free(p);
}

// MARK: - bf16

void tk_f32_to_bf16(uint16_t *dst, const float *src, long count) {
    for (long i = 0; i < count; i++) dst[i] = tk_bf16_round(src[i]);
}

void tk_bf16_to_f32(float *dst, const uint16_t *src, long count) {
    for (long i = 0; i < count; i++) { uint32_t u = (uint32_t)src[i] << 16; __builtin_memcpy(&dst[i], &u, 4); }
}
