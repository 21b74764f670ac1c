// packed.c: the one product kernel. B (the weights, or the right operand packed per call) lives in
// panels of 32 columns: panel q holds B[p, 32q + c] at q * 32k + 32p + c, zero-padded past n.
// A tile of rows x 32 columns keeps its sums in registers; each sum is one FMA chain over p in
// order, from 0 (or carried on from the raw sums of the pass before), then the shared epilogue
// (internal.h). AVX-512: 12 rows x 32 columns, and a single
// row four panels at a time (decode); AVX2: 4 rows x 16 columns (a half panel); portable C: one
// element at a time. Panels are prefetched ahead on AVX-512, and the tiles of a panel fetch shares of
// their task's next panel into L2 as they go (AVX-512 and AVX2): weights come from memory once per task.
// Same operations, same bits.
#include "internal.h"
#include <math.h>
#include <string.h>

// MARK: - packing

long tk_packed_count(long n, long k) { return ((n + 31) / 32) * 32 * k; }

void tk_pack_rows(void *dst, int dtype, const float *w, long ldw, long n, long k) {
    long panels = (n + 31) / 32;
    for (long q = 0; q < panels; q++) {
        long rows = n - q * 32 < 32 ? n - q * 32 : 32;
        if (dtype == TK_F32) {   // one step of k at a time: 32 rows read side by side, the panel written in order
            float *d = (float *)dst + q * 32 * k;
            const float *src = w + q * 32 * ldw;
            for (long p = 0; p < k; p++, d += 32) {
                for (long c = 0; c < rows; c++) d[c] = src[c * ldw + p];
                for (long c = rows; c < 32; c++) d[c] = 0.0f;
            }
        } else {   // each source row read in order, narrowed as it is placed
            uint16_t *d = (uint16_t *)dst + q * 32 * k;
            for (long c = 0; c < rows; c++) { const float *src = w + (q * 32 + c) * ldw; for (long p = 0; p < k; p++) d[p * 32 + c] = tk_bf16_round(src[p]); }
            for (long c = rows; c < 32; c++) for (long p = 0; p < k; p++) d[p * 32 + c] = 0;
        }
    }
}

void tk_pack_rows_bf16(uint16_t *dst, const uint16_t *w, long ldw, long n, long k) {
    long panels = (n + 31) / 32;
    for (long q = 0; q < panels; q++)
        for (long p = 0; p < k; p++)
            for (long c = 0; c < 32; c++) {
                long j = q * 32 + c;
                dst[q * 32 * k + p * 32 + c] = j < n ? w[j * ldw + p] : 0;
            }
}

void tk_pack_row_list(void *dst, int dtype, const float *const *rows, long n, long k) {
    long panels = (n + 31) / 32;
    for (long q = 0; q < panels; q++) {
        long nr = n - q * 32 < 32 ? n - q * 32 : 32;
        const float *const *src = rows + q * 32;
        if (dtype == TK_F32) {
            float *d = (float *)dst + q * 32 * k;
            for (long p = 0; p < k; p++, d += 32) {
                for (long c = 0; c < nr; c++) d[c] = src[c][p];
                for (long c = nr; c < 32; c++) d[c] = 0.0f;
            }
        } else {
            uint16_t *d = (uint16_t *)dst + q * 32 * k;
            for (long c = 0; c < nr; c++) for (long p = 0; p < k; p++) d[p * 32 + c] = tk_bf16_round(src[c][p]);
            for (long c = nr; c < 32; c++) for (long p = 0; p < k; p++) d[p * 32 + c] = 0;
        }
    }
}

/// Row p of B (n values at src) into step p of every panel: each source row read once, in order; a whole
/// panel's 32 values a fixed-size copy (inlined), the last panel's padded with zeros.
static void pack_cols_row(float *dst, const float *src, long p, long k, long n) {
    long q = 0;
    for (; (q + 1) * 32 <= n; q++) __builtin_memcpy(dst + q * 32 * k + p * 32, src + q * 32, 128);
    if (q * 32 < n) {
        float *d = dst + q * 32 * k + p * 32;
        long cn = n - q * 32;
        memcpy(d, src + q * 32, (size_t)cn * 4);
        for (long c = cn; c < 32; c++) d[c] = 0.0f;
    }
}

void tk_pack_cols_list(float *dst, const float *const *rows, long c0, long k, long n) {
    for (long p = 0; p < k; p++) pack_cols_row(dst, rows[p] + c0, p, k, n);
}

void tk_pack_cols(float *dst, const float *b, long ldb, long k, long n) {
    for (long p = 0; p < k; p++) pack_cols_row(dst, b + p * ldb, p, k, n);
}

void tk_packed_row(float *dst, const void *panels, int dtype, long k, long j) {
    long base = (j / 32) * 32 * k + (j % 32);
    for (long p = 0; p < k; p++) {
        long i = base + p * 32;
        if (dtype == TK_BF16) { uint32_t u = (uint32_t)((const uint16_t *)panels)[i] << 16; memcpy(&dst[p], &u, 4); }
        else dst[p] = ((const float *)panels)[i];
    }
}

// MARK: - the next panel, fetched while this one is computed

/// A tile's share of its task's next panel: `left` cache lines from `at`, fetched into L2 one every `every`
/// steps of k, so that panel's first tile finds it there instead of waiting on memory at every step.
typedef struct { const char *at; long left, every, countdown; } next_share;

/// Tile ti (of `tiles`) of panel q: its share of panel q + 1's kc steps; none after the task's last panel (q1 - 1).
TK_INLINE next_share next_share_of(const tk_pk_args *a, long q, long q1, long ti, long tiles) {
    const long es = a->btype == TK_BF16 ? 2 : 4, lines = q + 1 < q1 ? 32 * a->kc * es / 64 : 0;
    const long l0 = lines * ti / tiles, nl = lines * (ti + 1) / tiles - l0;
    const long every = nl > 0 ? (a->kc / nl > 0 ? a->kc / nl : 1) : a->kc + 1;
    return (next_share){ (const char *)a->b + ((q + 1) * 32 * a->k + a->p0 * 32) * es + l0 * 64, nl, every, every };
}

/// One step of k: the share's next line when its turn comes.
TK_INLINE void next_share_step(next_share *s) {
    if (--s->countdown == 0) { s->countdown = s->every; if (s->left > 0) { _mm_prefetch(s->at, _MM_HINT_T1); s->at += 64; s->left--; } }
}

// MARK: - AVX-512

enum { PF_AHEAD = 24 };   // k steps between a panel prefetch and its use

TK_AVX512 TK_INLINE __m512 ldp512(const void *b, long off, int bf16) {
    if (bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)b + off))), 16));
    return _mm512_loadu_ps((const float *)b + off);
}

TK_AVX512 TK_INLINE void store512(const tk_pk_args *a, long i, long j, __m512 v, __mmask16 mask) {
    float *c = a->c + i * a->ldc + j;
    if (a->last) {
        if (a->alpha != 1.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(a->alpha));
        if (a->bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, a->bias + j));
        if (a->beta != 0.0f) v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_set1_ps(a->beta), _mm512_maskz_loadu_ps(mask, c)));
    }
    _mm512_mask_storeu_ps(c, mask, v);
}

/// Where 16 sums of row i from column j start: 0, or the raw sums the pass before stored (a masked load: with
/// the mask 0 of a first pass it reads nothing; a branch here would keep the sums out of registers).
TK_AVX512 TK_INLINE __m512 start512(const tk_pk_args *a, long i, long j, __mmask16 mask) {
    return _mm512_maskz_loadu_ps(a->first ? 0 : mask, a->c + i * a->ldc + j);
}

TK_AVX512 TK_INLINE void masks512(const tk_pk_args *a, long j, __mmask16 *m0, __mmask16 *m1) {
    long nc = a->n - j < 32 ? a->n - j : 32;
    *m0 = nc >= 16 ? 0xFFFF : (__mmask16)((1u << nc) - 1);
    *m1 = nc >= 32 ? 0xFFFF : nc <= 16 ? 0 : (__mmask16)((1u << (nc - 16)) - 1);
}

/// nx: this tile's share of the task's next panel (next_share).
TK_AVX512 TK_INLINE void tile512(const tk_pk_args *a, long i, long q, next_share nx, const int MR, const int BF) {
    const long kc = a->kc, rsa = a->rsa, csa = a->csa;
    const long boff = q * 32 * a->k + a->p0 * 32;
    const long j = q * 32;
    __mmask16 m0, m1;
    masks512(a, j, &m0, &m1);
    __m512 acc[12][2];
    for (int r = 0; r < MR; r++) { acc[r][0] = start512(a, i + r, j, m0); acc[r][1] = start512(a, i + r, j + 16, m1); }
    const float *ap = a->a + (i - a->ai0) * a->tsa;
    const char *pf = (const char *)a->b + (boff + 32 * PF_AHEAD) * (BF ? 2 : 4);
    for (long p = 0; p < kc; p++) {
        _mm_prefetch(pf + p * (BF ? 64 : 128), _MM_HINT_T0);   // the panel PF_AHEAD steps ahead (past its end: harmless)
        next_share_step(&nx);
        __m512 b0 = ldp512(a->b, boff + p * 32, BF), b1 = ldp512(a->b, boff + p * 32 + 16, BF);
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(ap[r * rsa + p * csa]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < MR; r++) {
        store512(a, i + r, j, acc[r][0], m0);
        if (m1) store512(a, i + r, j + 16, acc[r][1], m1);
    }
}

/// One row (decode): up to four panels at once, so eight FMA chains run side by side (each still one
/// chain over p in order: the same bits as a row of a larger tile).
TK_AVX512 TK_INLINE void row512(const tk_pk_args *a, long i, long q, const int NQ, const int BF) {
    const long kc = a->kc, csa = a->csa;
    const float *ap = a->a + (i - a->ai0) * a->tsa;
    const long es = BF ? 2 : 4;
    __m512 acc[4][2];
    __mmask16 m0[4], m1[4];
    for (int t = 0; t < NQ; t++) {
        masks512(a, (q + t) * 32, &m0[t], &m1[t]);
        acc[t][0] = start512(a, i, (q + t) * 32, m0[t]); acc[t][1] = start512(a, i, (q + t) * 32 + 16, m1[t]);
    }
    for (long p = 0; p < kc; p++) {
        __m512 av = _mm512_set1_ps(ap[p * csa]);
        for (int t = 0; t < NQ; t++) {
            long off = (q + t) * 32 * a->k + (a->p0 + p) * 32;
            _mm_prefetch((const char *)a->b + (off + 32 * PF_AHEAD) * es, _MM_HINT_T0);
            acc[t][0] = _mm512_fmadd_ps(av, ldp512(a->b, off, BF), acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(av, ldp512(a->b, off + 16, BF), acc[t][1]);
        }
    }
    for (int t = 0; t < NQ; t++) {
        long j = (q + t) * 32;
        store512(a, i, j, acc[t][0], m0[t]);
        if (m1[t]) store512(a, i, j + 16, acc[t][1], m1[t]);
    }
}
#define R(NQ) \
    static TK_AVX512 void rf512_##NQ(const tk_pk_args *a, long i, long q) { row512(a, i, q, NQ, 0); } \
    static TK_AVX512 void rh512_##NQ(const tk_pk_args *a, long i, long q) { row512(a, i, q, NQ, 1); }
R(1) R(2) R(3) R(4)
#undef R

typedef void (*tile_fn)(const tk_pk_args *, long, long);
static const tile_fn rf512[4] = { rf512_1, rf512_2, rf512_3, rf512_4 };
static const tile_fn rh512[4] = { rh512_1, rh512_2, rh512_3, rh512_4 };
typedef void (*tile_pf_fn)(const tk_pk_args *, long, long, next_share);
#define T(MR) \
    static TK_AVX512 void f512_##MR(const tk_pk_args *a, long i, long q, next_share nx) { tile512(a, i, q, nx, MR, 0); } \
    static TK_AVX512 void h512_##MR(const tk_pk_args *a, long i, long q, next_share nx) { tile512(a, i, q, nx, MR, 1); }
T(1) T(2) T(3) T(4) T(5) T(6) T(7) T(8) T(9) T(10) T(11) T(12)
#undef T
static const tile_pf_fn f512[12] = { f512_1, f512_2, f512_3, f512_4, f512_5, f512_6, f512_7, f512_8, f512_9, f512_10, f512_11, f512_12 };
static const tile_pf_fn h512[12] = { h512_1, h512_2, h512_3, h512_4, h512_5, h512_6, h512_7, h512_8, h512_9, h512_10, h512_11, h512_12 };

void tk_pk_block_avx512(const tk_pk_args *a, long i0, long i1, long q0, long q1) {
    if (i1 - i0 == 1) {
        const tile_fn *r = a->btype == TK_BF16 ? rh512 : rf512;
        for (long q = q0; q < q1; q += 4) { long nq = q1 - q < 4 ? q1 - q : 4; r[nq - 1](a, i0, q); }
        return;
    }
    const tile_pf_fn *t = a->btype == TK_BF16 ? h512 : f512;
    const long tiles = (i1 - i0 + 11) / 12;
    for (long q = q0; q < q1; q++)
        for (long i = i0, ti = 0; i < i1; i += 12, ti++) {
            long mr = i1 - i < 12 ? i1 - i : 12;
            t[mr - 1](a, i, q, next_share_of(a, q, q1, ti, tiles));
        }
}

// MARK: - AVX2

TK_AVX2 TK_INLINE __m256 ldp256(const void *b, long off, int bf16) {
    if (bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)b + off))), 16));
    return _mm256_loadu_ps((const float *)b + off);
}

/// Where 8 sums of row i from column j start: 0, or the raw sums the pass before stored (a masked load, as
/// start512: no lanes on a first pass or past n).
TK_AVX2 TK_INLINE __m256 start256(const tk_pk_args *a, long i, long j) {
    long valid = a->first || j >= a->n ? 0 : a->n - j < 8 ? a->n - j : 8;
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(a->c + i * a->ldc + j, mask);
}

/// nx: as tile512's, this tile's share of the task's next panel.
TK_AVX2 TK_INLINE void tile256(const tk_pk_args *a, long i, long q, long half, next_share nx, const int MR, const int BF) {
    const long kc = a->kc, rsa = a->rsa, csa = a->csa;
    const long boff = q * 32 * a->k + a->p0 * 32 + half * 16;
    const long j = q * 32 + half * 16;
    __m256 acc[4][2];
    for (int r = 0; r < MR; r++) { acc[r][0] = start256(a, i + r, j); acc[r][1] = start256(a, i + r, j + 8); }
    const float *ap = a->a + (i - a->ai0) * a->tsa;
    for (long p = 0; p < kc; p++) {
        next_share_step(&nx);
        __m256 b0 = ldp256(a->b, boff + p * 32, BF), b1 = ldp256(a->b, boff + p * 32 + 8, BF);
        for (int r = 0; r < MR; r++) {
            __m256 av = _mm256_set1_ps(ap[r * rsa + p * csa]);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < MR; r++) {
        float out[16];
        _mm256_storeu_ps(out, acc[r][0]); _mm256_storeu_ps(out + 8, acc[r][1]);
        for (long c = 0; c < 16 && j + c < a->n; c++) tk_pk_store(a, i + r, j + c, out[c]);
    }
}
#define T(MR) \
    static TK_AVX2 void f256_##MR(const tk_pk_args *a, long i, long q, long h, next_share nx) { tile256(a, i, q, h, nx, MR, 0); } \
    static TK_AVX2 void h256_##MR(const tk_pk_args *a, long i, long q, long h, next_share nx) { tile256(a, i, q, h, nx, MR, 1); }
T(1) T(2) T(3) T(4)
#undef T
typedef void (*tile2_fn)(const tk_pk_args *, long, long, long, next_share);
static const tile2_fn f256[4] = { f256_1, f256_2, f256_3, f256_4 };
static const tile2_fn h256[4] = { h256_1, h256_2, h256_3, h256_4 };

void tk_pk_block_avx2(const tk_pk_args *a, long i0, long i1, long q0, long q1) {
    const tile2_fn *t = a->btype == TK_BF16 ? h256 : f256;
    const long tiles = 2 * ((i1 - i0 + 3) / 4);
    for (long q = q0; q < q1; q++) {
        long ti = 0;
        for (long h = 0; h < 2 && q * 32 + h * 16 < a->n; h++)
            for (long i = i0; i < i1; i += 4, ti++) {
                long mr = i1 - i < 4 ? i1 - i : 4;
                t[mr - 1](a, i, q, h, next_share_of(a, q, q1, ti, tiles));
            }
    }
}

// MARK: - portable

void tk_pk_block_portable(const tk_pk_args *a, long i0, long i1, long q0, long q1) {
    for (long q = q0; q < q1; q++)
        for (long i = i0; i < i1; i++)
            for (long c = 0; c < 32 && q * 32 + c < a->n; c++) {
                float s = tk_pk_start(a, i, q * 32 + c);
                const float *ap = a->a + (i - a->ai0) * a->tsa;
                for (long p = 0; p < a->kc; p++) {
                    long off = q * 32 * a->k + (a->p0 + p) * 32 + c;
                    float bv;
                    if (a->btype == TK_BF16) { uint32_t u = (uint32_t)((const uint16_t *)a->b)[off] << 16; memcpy(&bv, &u, 4); }
                    else bv = ((const float *)a->b)[off];
                    s = fmaf(ap[p * a->csa], bv, s);
                }
                tk_pk_store(a, i, q * 32 + c, s);
            }
}
