// half.c: IEEE float16 storage (a bf16 model's KV cache). Narrowing rounds to nearest even, NaN stays a
// quiet NaN (its payload's top bits kept) and a finite value of magnitude 65520 or more becomes infinite;
// widening is exact. The F16C build (AVX2 or AVX-512 CPUs: vcvtps2ph / vcvtph2ps, widening 16 lanes at a
// time on AVX-512) and the portable build (integer operations below) give the same bits on every input:
// KernelTests compares each with Swift's Float16 on every float16 and on a spread of floats.
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

TK_INLINE uint16_t f16_round(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));   // NaN, quiet
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);                          // 65520 and up: infinite
    if (ax < 0x38800000u) {                                                              // below 2^-14: subnormal
        if (ax < 0x33000000u) return (uint16_t)sign;                                     // up to 2^-25: zero
        uint32_t e = ax >> 23, m = (ax & 0x7FFFFFu) | 0x800000u, s = 126 - e;            // units of 2^-24: m >> s
        uint32_t r = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = (ax - 0x38000000u) >> 13, rem = ax & 0x1FFFu;                          // exponent rebased by 112
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

TK_INLINE float f16_widen(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, x;
    if (e == 0x1F) x = sign | 0x7F800000u | (m << 13) | (m ? 0x400000u : 0);   // infinite, or a NaN made quiet
    else if (e) x = sign | ((e + 112) << 23) | (m << 13);
    else if (!m) x = sign;
    else {
        uint32_t sh = (uint32_t)__builtin_clz(m) - 21;   // bring the leading 1 to bit 10
        x = sign | ((113 - sh) << 23) | (((m << sh) & 0x3FFu) << 13);
    }
    float f; memcpy(&f, &x, 4);
    return f;
}

TK_AVX2 static void narrow_f16c(uint16_t *dst, const float *src, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(src[i]), _MM_FROUND_TO_NEAREST_INT), 0);
}

TK_AVX512 static void widen_avx512(float *dst, const uint16_t *src, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(src[i])));
}

TK_AVX2 static void widen_f16c(float *dst, const uint16_t *src, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(src[i])));
}

long tk_f32_to_f16(uint16_t *dst, const float *src, long count) {
    if (tk_isa() >= TK_ISA_AVX2) narrow_f16c(dst, src, count);
    else for (long i = 0; i < count; i++) dst[i] = f16_round(src[i]);
    long over = 0;
    for (long i = 0; i < count; i++) over += fabsf(src[i]) >= 65520.0f && fabsf(src[i]) != INFINITY;
    return over;
}

void tk_f16_to_f32(float *dst, const uint16_t *src, long count) {
    int isa = tk_isa();
    if (isa == TK_ISA_AVX512) widen_avx512(dst, src, count);
    else if (isa == TK_ISA_AVX2) widen_f16c(dst, src, count);
    else for (long i = 0; i < count; i++) dst[i] = f16_widen(src[i]);
}

static _Thread_local float *rows_buf[2];
static _Thread_local long rows_cap[2];

const float *tk_f16_rows(const uint16_t *src, long ld, long rows, long D, int slot) {
    long need = rows * D;
    if (need > rows_cap[slot]) {
        free(rows_buf[slot]);
        rows_buf[slot] = malloc((size_t)(need > 0 ? need : 1) * 4);
        rows_cap[slot] = rows_buf[slot] ? need : 0;
        if (!rows_buf[slot]) return NULL;
    }
    if (ld == D) tk_f16_to_f32(rows_buf[slot], src, need);   // contiguous rows (a cache group's): one pass
    else for (long r = 0; r < rows; r++) tk_f16_to_f32(rows_buf[slot] + r * D, src + r * ld, D);
    return rows_buf[slot];
}
