// gemm.c: the products' entry points. Weights are packed once (WeightMatrix); a general product
// packs its right operand per call (O(k n) against O(m k n) work) and runs the same kernel, so
// every product of Turing computes each element the same way. A stored transposed (the weight
// gradients' dY^T) is packed too, in tiles of the kernel's rows (p-major inside a tile: one stream
// instead of a cache line per step of k). Very deep products (the head's dx: k = the vocabulary)
// run in passes over blocks of k, each sum stored raw between passes and carried on: the same FMA
// chain as one pass. Tasks are a block of rows x a group of panels, taken in row-block order:
//   - A^T larger than B: blocks of rows that stay in a core's cache, each task packing its own rows
//     into its thread's buffer and taking every panel (B read once per block);
//   - A beyond a core's cache and B small enough to read again (not the head): blocks of rows;
//   - else all rows (48-row blocks when there are few columns), A^T packed once for all tasks.
#include "internal.h"
#include <stdlib.h>

enum { K_DEEP = 4096, K_PASS = 512, A_BLOCK_FLOATS = 196608,   // 768 KB of A per row block
       B_REREAD_FLOATS = 8 << 20 };                              // B up to 32 MB may be read once per row block

typedef void (*pk_block_fn)(const tk_pk_args *, long, long, long, long);
/// local: each task packs its own rows of A (its block takes every panel) into its thread's buffer; a.a stays A.
typedef struct { tk_pk_args a; pk_block_fn block; long mb, qb, tasksQ, panels, mr; int local; } pk_job;

/// Rows [i0, i1) of A's columns [p0, p0 + kc) in tiles of `mr` rows from i0: A(i, p0 + p) at
/// dst[((i - i0) / mr) * mr * kc + p * mr + (i - i0) % mr]. A^T's columns: each stretch read in order.
static void pack_a_rows(float *dst, const float *a, long rsa, long csa, long i0, long i1, long p0, long kc, long mr) {
    for (long p = 0; p < kc; p++)
        for (long t0 = i0; t0 < i1; t0 += mr) {
            long rows = i1 - t0 < mr ? i1 - t0 : mr;
            float *d = dst + (t0 - i0) * kc + p * mr;
            const float *src = a + t0 * rsa + (p0 + p) * csa;
            for (long r = 0; r < rows; r++) d[r] = src[r * rsa];
        }
}

static _Thread_local float *local_a;   // a thread's buffer for its task's rows of A (kept for the next product)
static _Thread_local size_t local_cap;

static void pk_task(void *ctx, long t) {
    const pk_job *J = ctx;
    long bi = t / J->tasksQ, bq = t % J->tasksQ;
    long i0 = bi * J->mb, i1 = i0 + J->mb < J->a.m ? i0 + J->mb : J->a.m;
    long q0 = bq * J->qb, q1 = q0 + J->qb < J->panels ? q0 + J->qb : J->panels;
    if (!J->local) { J->block(&J->a, i0, i1, q0, q1); return; }
    size_t need = (size_t)(i1 - i0 + J->mr) * J->a.kc;
    if (need > local_cap) { free(local_a); local_a = malloc(need * 4 + 64); local_cap = local_a ? need : 0; }
    tk_pk_args a = J->a;
    if (local_a) {
        pack_a_rows(local_a, J->a.a, J->a.rsa, J->a.csa, i0, i1, J->a.p0, J->a.kc, J->mr);
        a.a = local_a; a.ai0 = i0; a.rsa = 1; a.csa = J->mr; a.tsa = J->a.kc;
    } else a.a = J->a.a + J->a.p0 * J->a.csa;   // no memory: A read in place (same sums)
    J->block(&a, i0, i1, q0, q1);
}

typedef struct { float *dst; const float *a; long rsa, csa, m, p0, kc, mr, rowsPerTask; } pack_a_job;

static void pack_a_task(void *ctx, long t) {
    const pack_a_job *J = ctx;
    long i0 = t * J->rowsPerTask, i1 = i0 + J->rowsPerTask < J->m ? i0 + J->rowsPerTask : J->m;
    pack_a_rows(J->dst + i0 * J->kc, J->a, J->rsa, J->csa, i0, i1, J->p0, J->kc, J->mr);
}

void tk_gemm_packed(float *c, long ldc, const float *a, long rsa, long csa, const void *panels, int btype,
                    const float *bias, float alpha, float beta, long m, long n, long k) {
    if (m <= 0 || n <= 0) return;
    pk_job J = { .a = { .c = c, .ldc = ldc, .a = a, .rsa = rsa, .csa = csa, .tsa = rsa, .b = panels, .btype = btype, .k = k, .kc = k,
                        .first = 1, .last = 1, .bias = bias, .alpha = alpha, .beta = beta, .m = m, .n = n } };
    int isa = tk_isa();
    J.block = isa == TK_ISA_AVX512 ? tk_pk_block_avx512 : isa == TK_ISA_AVX2 ? tk_pk_block_avx2 : tk_pk_block_portable;
    J.mr = isa == TK_ISA_AVX512 ? 12 : isa == TK_ISA_AVX2 ? 4 : 0;   // rows of the kernel's tile (0: A read in place)
    J.panels = (n + 31) / 32;
    // one row (decode) takes four panels at a time; rows take two, or eight when there are many panels (the
    // head): a task's panels after its first are fetched while the one before is computed (tk_pk_block_*)
    J.qb = m == 1 ? 4 : J.panels >= 128L * tk_threads() ? 8 : 2;
    int threads = (double)m * n * (k > 0 ? k : 1) < 65536.0 ? 1 : tk_threads();
    // passes over k: only when sums may be stored in c between them (beta == 0: c is output only)
    long kc = m > 1 && beta == 0.0f && k > K_DEEP ? K_PASS : k;
    int packA = J.mr && csa != 1 && m >= 2 * J.mr && J.panels >= 2 && kc > 0;
    J.mb = m;
    long blockRows = A_BLOCK_FLOATS / (kc > 0 ? kc : 1) / 12 * 12;   // a multiple of 12 and 4, like 48
    if (blockRows < 48) blockRows = 48;
    if (packA && m > 32 * J.panels) { J.mb = blockRows; J.qb = J.panels; J.local = 1; }
    else if (m * kc > 2L * A_BLOCK_FLOATS && J.panels > 4 && J.panels * 32 * kc <= B_REREAD_FLOATS) J.mb = blockRows;
    else if (threads > 1 && (J.panels + J.qb - 1) / J.qb < 4L * threads && m >= 48) J.mb = 48;   // few columns: cut the rows too (a multiple of 12 and 4)
    J.tasksQ = (J.panels + J.qb - 1) / J.qb;
    float *ap = packA && !J.local ? malloc((size_t)((m + J.mr - 1) / J.mr) * J.mr * kc * 4 + 64) : NULL;
    long tasks = ((m + J.mb - 1) / J.mb) * J.tasksQ;
    for (long p0 = 0; p0 < k || p0 == 0; p0 += kc) {
        J.a.p0 = p0; J.a.kc = k - p0 < kc ? k - p0 : kc;
        J.a.first = p0 == 0; J.a.last = p0 + kc >= k;
        if (ap) {
            long per = ((m + 4L * threads - 1) / (4L * threads) + J.mr - 1) / J.mr * J.mr;
            pack_a_job P = { ap, a, rsa, csa, m, p0, J.a.kc, J.mr, per };
            tk_parallel((m + per - 1) / per, threads, pack_a_task, &P);
            J.a.a = ap; J.a.rsa = 1; J.a.csa = J.mr; J.a.tsa = J.a.kc;
        } else if (!J.local) {
            J.a.a = a + p0 * csa;
        }
        tk_parallel(tasks, threads, pk_task, &J);
        if (kc == 0) break;
    }
    free(ap);
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

/// A general product's right operand packed per call, panels split over the kernels' threads (each
/// panel packed alone: the same result on any number of threads). how: 0 tk_pack_cols of b[k, n],
/// 1 tk_pack_rows of w[n, k] in f32, 2 from bf16.
typedef struct { void *dst; const void *src; long ld, n, k, per; int how; } pack_b_job;

static void pack_b_task(void *ctx, long t) {
    const pack_b_job *J = ctx;
    long panels = (J->n + 31) / 32, q0 = t * J->per, q1 = q0 + J->per < panels ? q0 + J->per : panels;
    long n0 = q0 * 32, nn = (J->n < q1 * 32 ? J->n : q1 * 32) - n0;
    if (J->how == 0) tk_pack_cols((float *)J->dst + n0 * J->k, (const float *)J->src + n0, J->ld, J->k, nn);
    else if (J->how == 1) tk_pack_rows((float *)J->dst + n0 * J->k, TK_F32, (const float *)J->src + n0 * J->ld, J->ld, nn, J->k);
    else tk_pack_rows_bf16((uint16_t *)J->dst + n0 * J->k, (const uint16_t *)J->src + n0 * J->ld, J->ld, nn, J->k);
}

static void pack_b(void *dst, const void *src, long ld, long n, long k, int how) {
    long panels = (n + 31) / 32;
    int threads = (double)n * k < 262144.0 ? 1 : tk_threads();
    long per = (panels + 4L * threads - 1) / (4L * threads);
    pack_b_job J = { dst, src, ld, n, k, per, how };
    tk_parallel((panels + per - 1) / per, threads, pack_b_task, &J);
}

void tk_gemm_nt(float *y, long ldy, const float *x, long ldx, const void *w, int wtype, long ldw,
                const float *bias, float alpha, float beta, long m, long n, long k) {
    if (m <= 0 || n <= 0) return;
    long count = tk_packed_count(n, k);
    void *p = malloc((size_t)count * (wtype == TK_BF16 ? 2 : 4) + 64);
    if (!p) {
        tk_pk_args a = { .c = y, .ldc = ldy, .a = x, .rsa = ldx, .csa = 1, .tsa = ldx, .k = k, .kc = k, .first = 1, .last = 1,
                          .bias = bias, .alpha = alpha, .beta = beta, .m = m, .n = n };
        direct(&a, w, wtype, ldw, 1);
        return;
    }
    pack_b(p, w, ldw, n, k, wtype == TK_BF16 ? 2 : 1);
    tk_gemm_packed(y, ldy, x, ldx, 1, p, wtype, bias, alpha, beta, m, n, k);
    free(p);
}

void tk_gemm_nn(float *c, long ldc, const float *a, long rsa, long csa, const float *b, long ldb,
                float alpha, float beta, long m, long n, long k) {
    if (m <= 0 || n <= 0) return;
    float *p = malloc((size_t)tk_packed_count(n, k) * 4 + 64);
    if (!p) {
        tk_pk_args args = { .c = c, .ldc = ldc, .a = a, .rsa = rsa, .csa = csa, .tsa = rsa, .k = k, .kc = k, .first = 1, .last = 1,
                             .alpha = alpha, .beta = beta, .m = m, .n = n };
        direct(&args, b, TK_F32, ldb, 0);
        return;
    }
    pack_b(p, b, ldb, n, k, 0);
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
