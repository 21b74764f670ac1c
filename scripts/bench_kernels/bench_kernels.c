// The kernel choice, measured: Turing's packed product, or (built with -DPEERS and -DWITH_DNNL /
// -DWITH_OPENBLAS) oneDNN's dnnl_sgemm and OpenBLAS's cblas_sgemm, on one shape, best of N; and whether
// Turing's rows are the same alone, and on AVX2, as in the batch (they must be). Turing is timed in a
// binary that links no BLAS: OpenBLAS's threads spin after process start and would take its cores.
// With `copies` > 1, Turing's f32 product also runs over that many copies of the packed weights in turn (more
// than the L3 holds: weights streamed from memory, as a model's are), reported per product.
// Usage: bench_kernels M N K [reps] [threads] [copies]   (scripts/bench_kernels.sh builds and runs it)
#include "ckernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef WITH_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef WITH_OPENBLAS
#include <cblas.h>
#endif
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float *rnd(long n) { float *p = malloc(n * 4); for (long i = 0; i < n; i++) p[i] = (float)(rand() % 1000) / 1000 - 0.5f; return p; }
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s M N K [reps] [threads]\n", argv[0]); return 2; }
    long M = atol(argv[1]), N = atol(argv[2]), K = atol(argv[3]);
    int reps = argc > 4 ? atoi(argv[4]) : 10;
    if (argc > 5) tk_set_threads(atoi(argv[5]));
    float *x = rnd(M * K), *w = rnd(N * K), *y = rnd(M * N), *y2 = rnd(M * N);
    float *pk = malloc(tk_packed_count(N, K) * 4); tk_pack_rows(pk, TK_F32, w, K, N, K);
    uint16_t *pb = malloc(tk_packed_count(N, K) * 2); tk_pack_rows(pb, TK_BF16, w, K, N, K);
    double fl = 2.0 * M * N * K, best;
#define BENCH(name, stmt) best = 1e9; stmt; for (int r = 0; r < reps; r++) { double t = now(); stmt; t = now() - t; if (t < best) best = t; } \
    printf("%-28s %8.1f GFLOP/s %9.3f ms\n", name, fl / best / 1e9, best * 1e3);
    const char *isa[] = { "portable", "AVX2", "AVX-512" };
    printf("%ld x %ld x %ld, %d threads, ISA %s\n", M, N, K, tk_threads(), isa[tk_isa()]);
#ifndef PEERS
    int copies = argc > 6 ? atoi(argv[6]) : 1;
    if (copies > 1) {
        float **cp = malloc(copies * sizeof(float *));
        for (int c = 0; c < copies; c++) { cp[c] = malloc(tk_packed_count(N, K) * 4); memcpy(cp[c], pk, tk_packed_count(N, K) * 4); }
        char name[64]; snprintf(name, sizeof name, "turing f32, %d copies (%.0f MB)", copies, copies * 4.0 * N * K / 1e6);
        fl *= copies;
        BENCH(name, for (int c = 0; c < copies; c++) tk_gemm_packed(y, N, x, K, 1, cp[c], TK_F32, NULL, 1, 0, M, N, K));
        fl /= copies;
        for (int c = 0; c < copies; c++) free(cp[c]);
        free(cp);
    }
    BENCH("turing f32 (packed)", tk_gemm_packed(y, N, x, K, 1, pk, TK_F32, NULL, 1, 0, M, N, K));
    BENCH("turing bf16 weights", tk_gemm_packed(y2, N, x, K, 1, pb, TK_BF16, NULL, 1, 0, M, N, K));
#else
    tk_gemm_packed(y, N, x, K, 1, pk, TK_F32, NULL, 1, 0, M, N, K);
#endif
#ifdef WITH_DNNL
    BENCH("oneDNN dnnl_sgemm", dnnl_sgemm('N', 'T', M, N, K, 1, x, K, w, K, 0, y2, N));
#endif
#ifdef WITH_OPENBLAS
    BENCH("OpenBLAS cblas_sgemm", cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, x, K, w, K, 0, y2, N));
#endif
#ifdef PEERS
    return 0;
#endif
    tk_gemm_packed(y2, N, x, K, 1, pk, TK_F32, NULL, 1, 0, 1, N, K);
    int same = 1; for (long j = 0; j < N; j++) same &= y2[j] == y[j];
    printf("row 0 alone = row 0 in the batch: %s\n", same ? "yes" : "NO");
    if (tk_cpu_isa() >= TK_ISA_AVX2) {
        int was = tk_isa(); tk_limit_isa(TK_ISA_AVX2);
        BENCH("turing f32, AVX2 only", tk_gemm_packed(y2, N, x, K, 1, pk, TK_F32, NULL, 1, 0, M, N, K));
        same = 1; for (long j = 0; j < M * N; j++) same &= y2[j] == y[j];
        printf("AVX2 = %s bit for bit: %s\n", isa[was], same ? "yes" : "NO");
    }
    return 0;
}
