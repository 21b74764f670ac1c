// act.c: TensorCore's vexp (Cephes expf: clamp, floor by the 1.5*2^23 rounding trick, degree-6 polynomial,
// exponent by bit shifting) and what the passes build on it: the tanh-approximation GeLU,
// x / (1 + exp(-2u)), u = sqrt(2/pi)(x + 0.044715 x^3), the softmax's exp pass, and the backward of the
// GeLU and of the SiLU gate (training's MLP). The same operations in
// the same order on every lane as their Swift SIMD8 definitions (FastMath.swift), each rounded, nothing
// fused, sums kept per SIMD8 lane in the order of the elements: the same bits on every ISA (KernelTests
// checks them against the Swift functions). AVX-512 takes 16 lanes, AVX2 8, portable C one at a time;
// Swift keeps the count % 8 tail (its scalar reference), so these take the first count - count % 8 values.
#include "internal.h"
#include <string.h>

#define EXP_LO -87.33654f
#define EXP_HI 88.37626f
#define MAGIC 12582912.0f   /* 1.5 * 2^23 */

TK_INLINE float exp1(float x) {
    x = x >= EXP_LO ? x : EXP_LO;   // NaN too, as vexp's compare
    x = x > EXP_HI ? EXP_HI : x;
    float w = x * 1.44269504088896341f + 0.5f;
    float r = (w + MAGIC) - MAGIC;
    float fx = r > w ? r - 1 : r;
    float fm = fx + MAGIC; int32_t n; memcpy(&n, &fm, 4); n = n - 0x4B400000 + 127;
    float y1 = x - fx * 0.693359375f;
    y1 = y1 - fx * -2.12194440e-4f;
    float z = y1 * y1, y = 1.9875691500e-4f;
    y = y * y1 + 1.3981999507e-3f;
    y = y * y1 + 8.3334519073e-3f;
    y = y * y1 + 4.1665795894e-2f;
    y = y * y1 + 1.6666665459e-1f;
    y = y * y1 + 5.0000001201e-1f;
    y = y * z + y1 + 1;
    uint32_t pb = (uint32_t)n << 23; float pow2; memcpy(&pow2, &pb, 4);
    return y * pow2;
}

TK_INLINE float gelu1(float v) {
    float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    return v / (1 + exp1(-2 * u));
}

// vexp on a vector: clamp (NaN to the low bound), floor by the rounding trick, polynomial, 2^n by bits.
#define VEXP(V, SET, ADD, SUB, MUL, GE, GT, BLEND, ICAST, FCAST, IADD, ISUB, ISET, SHL, xin, result)          \
    V result;                                                                                            \
    {                                                                                                    \
        V x = BLEND(GE(xin, SET(EXP_LO)), SET(EXP_LO), xin);                                             \
        x = BLEND(GT(x, SET(EXP_HI)), x, SET(EXP_HI));                                                   \
        V w = ADD(MUL(x, SET(1.44269504088896341f)), SET(0.5f));                                         \
        V r = SUB(ADD(w, SET(MAGIC)), SET(MAGIC));                                                       \
        V fx = BLEND(GT(r, w), r, SUB(r, SET(1.0f)));                                                    \
        V pow2 = FCAST(SHL(IADD(ISUB(ICAST(ADD(fx, SET(MAGIC))), ISET(0x4B400000)), ISET(127)), 23));   \
        V y1 = SUB(x, MUL(fx, SET(0.693359375f)));                                                       \
        y1 = SUB(y1, MUL(fx, SET(-2.12194440e-4f)));                                                     \
        V z = MUL(y1, y1), y = SET(1.9875691500e-4f);                                                    \
        y = ADD(MUL(y, y1), SET(1.3981999507e-3f));                                                      \
        y = ADD(MUL(y, y1), SET(8.3334519073e-3f));                                                      \
        y = ADD(MUL(y, y1), SET(4.1665795894e-2f));                                                      \
        y = ADD(MUL(y, y1), SET(1.6666665459e-1f));                                                      \
        y = ADD(MUL(y, y1), SET(5.0000001201e-1f));                                                      \
        y = ADD(ADD(MUL(y, z), y1), SET(1.0f));                                                          \
        result = MUL(y, pow2);                                                                           \
    }

// masks select where the compare holds: BLEND(m, a, b) = m ? b : a
#define B512(m, a, b) _mm512_mask_blend_ps((m), (a), (b))
#define GE512(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_GE_OQ)
#define GT512(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_GT_OQ)
#define VEXP512(xin, result) VEXP(__m512, _mm512_set1_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, GE512, GT512, B512, \
    _mm512_castps_si512, _mm512_castsi512_ps, _mm512_add_epi32, _mm512_sub_epi32, _mm512_set1_epi32, _mm512_slli_epi32, xin, result)
#define B256(m, a, b) _mm256_blendv_ps((a), (b), (m))
#define GE256(a, b) _mm256_cmp_ps((a), (b), _CMP_GE_OQ)
#define GT256(a, b) _mm256_cmp_ps((a), (b), _CMP_GT_OQ)
#define VEXP256(xin, result) VEXP(__m256, _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, GE256, GT256, B256, \
    _mm256_castps_si256, _mm256_castsi256_ps, _mm256_add_epi32, _mm256_sub_epi32, _mm256_set1_epi32, _mm256_slli_epi32, xin, result)

// GeLU of the vector v into `out`, with the vector width's ops and vexp (the formula of gelu1, lane by lane).
#define GELU_STEP(V, SET, ADD, MUL, DIV, VEXPW, v, out)                                                  \
    V out;                                                                                               \
    {                                                                                                    \
        V u = MUL(SET(0.7978845608028654f), ADD(v, MUL(MUL(MUL(SET(0.044715f), v), v), v)));            \
        V t = MUL(SET(-2.0f), u);                                                                        \
        VEXPW(t, e)                                                                                      \
        out = DIV(v, ADD(SET(1.0f), e));                                                                 \
    }

/// 8 at a time (n a multiple of 8).
TK_AVX2 static void gelu_avx2(float *p, long n) {
    for (long i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(p + i);
        GELU_STEP(__m256, _mm256_set1_ps, _mm256_add_ps, _mm256_mul_ps, _mm256_div_ps, VEXP256, v, g)
        _mm256_storeu_ps(p + i, g);
    }
}

/// 16 at a time; a last 8 by the AVX2 pass, as the softmax's exp pass does.
TK_AVX512 static void gelu_avx512(float *p, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(p + i);
        GELU_STEP(__m512, _mm512_set1_ps, _mm512_add_ps, _mm512_mul_ps, _mm512_div_ps, VEXP512, v, g)
        _mm512_storeu_ps(p + i, g);
    }
    gelu_avx2(p + i, n - i);
}

long tk_gelu_tanh(float *x, long count) {
    long n = count - count % 8;
    int isa = tk_isa();
    if (isa == TK_ISA_AVX512) gelu_avx512(x, n);
    else if (isa == TK_ISA_AVX2) gelu_avx2(x, n);
    else for (long i = 0; i < n; i++) x[i] = gelu1(x[i]);
    return n;
}

/// 8 lanes at a time, adding to the lane sums already in acc; the exps stored to `out` unless it is NULL.
TK_AVX2 static void exp_shifted_avx2(const float *p, float *out, long n, float m, float *acc) {
    __m256 a = _mm256_loadu_ps(acc);
    for (long i = 0; i + 8 <= n; i += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_set1_ps(m));
        VEXP256(t, e)
        if (out) _mm256_storeu_ps(out + i, e);
        a = _mm256_add_ps(a, e);
    }
    _mm256_storeu_ps(acc, a);
}

/// 16 at a time, lanes 0-7 then 8-15 added in turn (each sum in the order of i); a last 8 by the AVX2 pass.
TK_AVX512 static void exp_shifted_avx512(const float *p, float *out, long n, float m, float *acc) {
    __m256 a = _mm256_loadu_ps(acc);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 t = _mm512_sub_ps(_mm512_loadu_ps(p + i), _mm512_set1_ps(m));
        VEXP512(t, e)
        if (out) _mm512_storeu_ps(out + i, e);
        a = _mm256_add_ps(a, _mm512_castps512_ps256(e));
        a = _mm256_add_ps(a, _mm512_extractf32x8_ps(e, 1));
    }
    _mm256_storeu_ps(acc, a);
    exp_shifted_avx2(p + i, out ? out + i : NULL, n - i, m, acc);
}

static long exp_pass(const float *x, float *out, long count, float m, float acc[8]) {
    long n = count - count % 8;
    for (int j = 0; j < 8; j++) acc[j] = 0;
    int isa = tk_isa();
    if (isa == TK_ISA_AVX512) exp_shifted_avx512(x, out, n, m, acc);
    else if (isa == TK_ISA_AVX2) exp_shifted_avx2(x, out, n, m, acc);
    else for (long i = 0; i < n; i++) { float e = exp1(x[i] - m); if (out) out[i] = e; acc[i % 8] += e; }
    return n;
}

long tk_exp_shifted8(float *x, long count, float m, float acc[8]) { return exp_pass(x, x, count, m, acc); }

long tk_sum_exp8(const float *x, long count, float m, float acc[8]) { return exp_pass(x, NULL, count, m, acc); }

// MARK: - the MLP's backward activations

#define GK 0.7978845608028654f

/// dx = GeLU'(x) * dout (tanh form, tanh(u) = 1 - 2 / (1 + exp(2u))), as geluTanhBackwardVectorReference per lane.
#define GELU_BACK_STEP(V, SET, ADD, SUB, MUL, DIV, VEXPW, v, d, out)                                       \
    V out;                                                                                               \
    {                                                                                                    \
        V v2 = MUL(v, v);                                                                                \
        V u = MUL(SET(GK), ADD(v, MUL(MUL(SET(0.044715f), v2), v)));                                     \
        V tu = MUL(SET(2.0f), u);                                                                        \
        VEXPW(tu, e)                                                                                     \
        V t = SUB(SET(1.0f), DIV(SET(2.0f), ADD(SET(1.0f), e)));                                         \
        V a = MUL(SET(0.5f), ADD(SET(1.0f), t));                                                         \
        V b = MUL(MUL(MUL(SET(0.5f), v), SUB(SET(1.0f), MUL(t, t))), SET(GK));                           \
        V c = ADD(SET(1.0f), MUL(SET(3.0f * 0.044715f), v2));                                            \
        out = MUL(ADD(a, MUL(b, c)), d);                                                                 \
    }

/// dup = dout * gate * s, dgate = dout * up * s (1 + gate (1 - s)), s = 1 / (1 + exp(-gate)), as
/// siluGateBackwardVectorReference per lane.
#define SILU_BACK_STEP(V, SET, ADD, SUB, MUL, DIV, NEG, VEXPW, g, d, up, dgate, dup)                       \
    V dgate, dup;                                                                                        \
    {                                                                                                    \
        V ng = NEG(g);                                                                                   \
        VEXPW(ng, e)                                                                                     \
        V s = DIV(SET(1.0f), ADD(SET(1.0f), e));                                                         \
        V ds = MUL(s, ADD(SET(1.0f), MUL(g, SUB(SET(1.0f), s))));                                        \
        dup = MUL(MUL(d, g), s);                                                                         \
        dgate = MUL(MUL(d, up), ds);                                                                     \
    }

TK_AVX2 static void gelu_back_avx2(float *dx, const float *x, const float *dout, long n) {
    for (long i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), d = _mm256_loadu_ps(dout + i);
        GELU_BACK_STEP(__m256, _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_div_ps, VEXP256, v, d, r)
        _mm256_storeu_ps(dx + i, r);
    }
}

TK_AVX512 static void gelu_back_avx512(float *dx, const float *x, const float *dout, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i), d = _mm512_loadu_ps(dout + i);
        GELU_BACK_STEP(__m512, _mm512_set1_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_div_ps, VEXP512, v, d, r)
        _mm512_storeu_ps(dx + i, r);
    }
    gelu_back_avx2(dx + i, x + i, dout + i, n - i);
}

TK_INLINE float gelu_back1(float v, float d) {
    float v2 = v * v, u = GK * (v + 0.044715f * v2 * v);
    float t = 1.0f - 2.0f / (1.0f + exp1(2.0f * u));
    float a = 0.5f * (1.0f + t), b = 0.5f * v * (1.0f - t * t) * GK, c = 1.0f + (3.0f * 0.044715f) * v2;
    return (a + b * c) * d;
}

long tk_gelu_tanh_backward(float *dx, const float *x, const float *dout, long count) {
    long n = count - count % 8;
    int isa = tk_isa();
    if (isa == TK_ISA_AVX512) gelu_back_avx512(dx, x, dout, n);
    else if (isa == TK_ISA_AVX2) gelu_back_avx2(dx, x, dout, n);
    else for (long i = 0; i < n; i++) dx[i] = gelu_back1(x[i], dout[i]);
    return n;
}

#define NEG256(v) _mm256_xor_ps((v), _mm256_set1_ps(-0.0f))   /* the sign flipped, as Swift's prefix minus */
#define NEG512(v) _mm512_xor_ps((v), _mm512_set1_ps(-0.0f))
TK_AVX2 static void silu_back_avx2(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    for (long i = 0; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i), d = _mm256_loadu_ps(dout + i), u = _mm256_loadu_ps(up + i);
        SILU_BACK_STEP(__m256, _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_div_ps, NEG256, VEXP256, g, d, u, dg, du)
        _mm256_storeu_ps(dup + i, du);
        _mm256_storeu_ps(dgate + i, dg);
    }
}

TK_AVX512 static void silu_back_avx512(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i), d = _mm512_loadu_ps(dout + i), u = _mm512_loadu_ps(up + i);
        SILU_BACK_STEP(__m512, _mm512_set1_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_div_ps, NEG512, VEXP512, g, d, u, dg, du)
        _mm512_storeu_ps(dup + i, du);
        _mm512_storeu_ps(dgate + i, dg);
    }
    silu_back_avx2(dgate + i, dup + i, dout + i, gate + i, up + i, n - i);
}

long tk_silu_gate_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long count) {
    long n = count - count % 8;
    int isa = tk_isa();
    if (isa == TK_ISA_AVX512) silu_back_avx512(dgate, dup, dout, gate, up, n);
    else if (isa == TK_ISA_AVX2) silu_back_avx2(dgate, dup, dout, gate, up, n);
    else for (long i = 0; i < n; i++) {
        float g = gate[i], d = dout[i], u = up[i];
        float s = 1.0f / (1.0f + exp1(-g)), ds = s * (1.0f + g * (1.0f - s));
        dup[i] = d * g * s;
        dgate[i] = d * u * ds;
    }
    return n;
}
