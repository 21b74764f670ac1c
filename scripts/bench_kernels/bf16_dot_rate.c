// bf16_dot_rate: is AVX512-BF16's dot product (VDPBF16PS: 32 bf16 multiply-adds into 16 f32 sums) faster
// per multiply-add than the f32 FMA (VFMADD231PS zmm: 16) that Turing's kernels use? Each is timed on
// 12 independent chains (enough to hide either's latency), alternately, best of 5; prints multiply-adds
// per second for both and their ratio. Above 1 the bf16 instruction would pay in a compute-bound
// product; below 1 it would not (and it also rounds the activations to bf16).
// Build and run: cc -O2 -o /tmp/bf16_dot_rate scripts/bench_kernels/bf16_dot_rate.c && /tmp/bf16_dot_rate
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static const long ITERS = 20000000;

// the sums stay in registers (an empty asm that "uses" them), and are added up after timing
#define KEEP __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11))
#define SINK do { __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)), _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7))); \
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11))); if (_mm512_reduce_add_ps(s) == 42) puts(""); } while (0)

// RATE(name, target, operand type, a, b, step, multiply-adds per instruction): one timed function
#define RATE(NAME, TARGET, T, A, B, OP, MACS)                                                              \
    __attribute__((target(TARGET), noinline)) static double NAME(void) {                                \
        __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0,  \
               c8 = c0, c9 = c0, c10 = c0, c11 = c0;                                                     \
        T a = A, b = B;                                                                                 \
        double t = now();                                                                               \
        for (long r = 0; r < ITERS; r++) {                                                              \
            c0 = OP(c0); c1 = OP(c1); c2 = OP(c2); c3 = OP(c3); c4 = OP(c4); c5 = OP(c5);               \
            c6 = OP(c6); c7 = OP(c7); c8 = OP(c8); c9 = OP(c9); c10 = OP(c10); c11 = OP(c11);           \
            KEEP;                                                                                       \
        }                                                                                               \
        t = now() - t;                                                                                  \
        SINK;                                                                                           \
        return ITERS * 12.0 * MACS / t;                                                                 \
    }
#define DP(x) _mm512_dpbf16_ps(x, a, b)
#define FM(x) _mm512_fmadd_ps(a, b, x)
RATE(dp_rate, "avx512f,avx512bf16,avx512bw,avx512vl", __m512bh, (__m512bh)_mm512_set1_epi32(0x3f803f80),
     (__m512bh)_mm512_set1_epi32(0x33803380), DP, 32)
RATE(fma_rate, "avx512f,fma", __m512, _mm512_set1_ps(1.0f), _mm512_set1_ps(1e-7f), FM, 16)

int main(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) { puts("this CPU has no AVX512-BF16"); return 0; }
    double dp = 0, fm = 0;
    for (int r = 0; r < 5; r++) {
        double d = dp_rate(), f = fma_rate();
        if (d > dp) dp = d;
        if (f > fm) fm = f;
    }
    printf("one thread: VDPBF16PS %.1f G multiply-adds/s, f32 VFMADD231PS %.1f G multiply-adds/s, bf16 / f32 = %.2f\n",
           dp / 1e9, fm / 1e9, dp / fm);
    return 0;
}
