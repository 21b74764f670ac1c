// optim.c: the optimizer's element-wise pass and the gradient norm's sum of squares, vectorized. AdamW does
// torch.optim.AdamW's operations in its order, each rounded (no fused multiply-adds): the same bits on
// every ISA and any split into spans. The sum of squares has a fixed order of its own (16 double lanes,
// then the lanes added in order), so a span's sum is the same on every ISA.
#include "internal.h"
#include <math.h>

typedef struct { float gscale, b1, b2, stepSize, bc2Sqrt, eps, decay; } adamw_k;

TK_INLINE float adamw_one(float *p, float *m, float *v, float *g, long i, const adamw_k *K) {
    float gi = g[i];
    if (K->gscale != 1.0f) { gi = gi * K->gscale; g[i] = gi; }
    float t1 = K->b1 * m[i], t2 = (1.0f - K->b1) * gi, mi = t1 + t2;
    float u1 = K->b2 * v[i], u2 = (1.0f - K->b2) * gi, u3 = u2 * gi, vi = u1 + u3;
    m[i] = mi; v[i] = vi;
    float pi = p[i] * K->decay;
    float num = K->stepSize * mi, den = sqrtf(vi) / K->bc2Sqrt + K->eps;
    return pi - num / den;
}

static TK_AVX512 void adamw_avx512(float *p, float *m, float *v, float *g, long n, const adamw_k *K) {
    const __m512 gs = _mm512_set1_ps(K->gscale), b1 = _mm512_set1_ps(K->b1), c1 = _mm512_set1_ps(1.0f - K->b1);
    const __m512 b2 = _mm512_set1_ps(K->b2), c2 = _mm512_set1_ps(1.0f - K->b2), st = _mm512_set1_ps(K->stepSize);
    const __m512 bc = _mm512_set1_ps(K->bc2Sqrt), eps = _mm512_set1_ps(K->eps), dec = _mm512_set1_ps(K->decay);
    const int scale = K->gscale != 1.0f;
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 gi = _mm512_loadu_ps(g + i);
        if (scale) { gi = _mm512_mul_ps(gi, gs); _mm512_storeu_ps(g + i, gi); }
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(c1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
        _mm512_storeu_ps(m + i, mi); _mm512_storeu_ps(v + i, vi);
        __m512 pi = _mm512_mul_ps(_mm512_loadu_ps(p + i), dec);
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc), eps);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(pi, _mm512_div_ps(_mm512_mul_ps(st, mi), den)));
    }
    for (; i < n; i++) p[i] = adamw_one(p, m, v, g, i, K);
}

void tk_adamw(float *p, float *m, float *v, float *g, long n, float gscale, float b1, float b2,
              float stepSize, float bc2Sqrt, float eps, float decay) {
    adamw_k K = { gscale, b1, b2, stepSize, bc2Sqrt, eps, decay };
    if (tk_isa() == TK_ISA_AVX512) { adamw_avx512(p, m, v, g, n, &K); return; }
    for (long i = 0; i < n; i++) p[i] = adamw_one(p, m, v, g, i, &K);
}

static TK_AVX512 double sumsq_avx512(const float *x, long n) {
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d a = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), b = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        acc0 = _mm512_add_pd(acc0, _mm512_mul_pd(a, a)); acc1 = _mm512_add_pd(acc1, _mm512_mul_pd(b, b));
    }
    double lanes[16];
    _mm512_storeu_pd(lanes, acc0); _mm512_storeu_pd(lanes + 8, acc1);
    for (; i < n; i++) { double d = x[i]; lanes[i % 16] += d * d; }
    double s = 0;
    for (int l = 0; l < 16; l++) s += lanes[l];
    return s;
}

double tk_sum_squares(const float *x, long n) {
    if (tk_isa() == TK_ISA_AVX512) return sumsq_avx512(x, n);
    double lanes[16] = { 0 };
    long i = 0;
    for (; i + 16 <= n; i += 16) for (int l = 0; l < 16; l++) { double d = x[i + l]; lanes[l] += d * d; }
    for (; i < n; i++) { double d = x[i]; lanes[i % 16] += d * d; }
    double s = 0;
    for (int l = 0; l < 16; l++) s += lanes[l];
    return s;
}
