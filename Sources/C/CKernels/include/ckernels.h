// CKernels: Turing's own matrix kernels, chosen at run time from the CPU's features.
//
// Every GEMM and GEMV of inference and training goes through these products (Swift sees them
// through TensorCore's `Compute`). The right operand lives in panels of 32 columns (weights are
// packed once at load; a general product packs per call), and every output element is one fused
// multiply-add chain over k in order, from 0, followed by one fixed epilogue (alpha, bias, beta).
// AVX-512, AVX2 and portable C run the same operations in the same order: the same bits on every
// ISA. No product splits k across threads or changes its order with the number of rows, the tile
// an element lands in or the thread count: a row's result is the same alone or in any batch.
// Panels may be f32 or bf16 (widened exactly in registers; f32 accumulation).
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { TK_F32 = 0, TK_BF16 = 1 };
enum { TK_ISA_PORTABLE = 0, TK_ISA_AVX2 = 1, TK_ISA_AVX512 = 2 };

/// Elements of the packed form of a [n, k] weight (n rounded up to a multiple of 32).
long tk_packed_count(long n, long k);
/// Pack w[n, k] (row stride ldw; the PyTorch Linear layout) as the right operand of x w^T, in `dtype`
/// (TK_BF16 narrows, round to nearest even).
void tk_pack_rows(void *dst, int dtype, const float *w, long ldw, long n, long k);
/// The same from bf16 values (no conversion).
void tk_pack_rows_bf16(uint16_t *dst, const uint16_t *w, long ldw, long n, long k);
/// Pack b[k, n] (row stride ldb) as the right operand of a b.
void tk_pack_cols(float *dst, const float *b, long ldb, long k, long n);
/// tk_pack_rows of a matrix whose row j (k values) is at rows[j]: a fused matrix packed from its parts in place.
void tk_pack_row_list(void *dst, int dtype, const float *const *rows, long n, long k);
/// tk_pack_cols of b[k, n] whose row p starts at rows[p] + c0 (the transpose of a fused matrix, from its parts).
void tk_pack_cols_list(float *dst, const float *const *rows, long c0, long k, long n);
/// Row j of the packed weight (the k values of w[j, :]) widened to f32.
void tk_packed_row(float *dst, const void *panels, int dtype, long k, long j);

/// c[m, n] = alpha * (A[m, k] . B[k, n]) (+ bias[n] if bias) + beta * c, where A(i, p) = a[i * rsa + p * csa]
/// and B is packed (tk_pack_rows: B = w^T; tk_pack_cols: B = b). beta == 0 never reads c.
void tk_gemm_packed(float *c, long ldc, const float *a, long rsa, long csa, const void *panels, int btype,
                    const float *bias, float alpha, float beta, long m, long n, long k);

/// y[m, n] = alpha * (x[m, k] . w[n, k]^T) + (bias[n] if bias) + beta * y (w packed per call).
void tk_gemm_nt(float *y, long ldy, const float *x, long ldx, const void *w, int wtype, long ldw,
                const float *bias, float alpha, float beta, long m, long n, long k);

/// c[m, n] = alpha * (A[m, k] . b[k, n]) + beta * c, A(i, p) = a[i * rsa + p * csa] (A or A^T), b row-major.
void tk_gemm_nn(float *c, long ldc, const float *a, long rsa, long csa, const float *b, long ldb,
                float alpha, float beta, long m, long n, long k);

/// Decode attention's halves, in the products' order (the same bits as tk_gemm_nt / tk_gemm_nn would give):
/// s[j] = scale * (q[0..D) . k[j * ldk ..]) for j < n, each dot one FMA chain over d in order from 0;
/// o[d] = sum over j < n of p[j] * v[j * ldv + d], each element one FMA chain over j in order from 0.
void tk_dot_rows(float *s, const float *q, const float *k, long ldk, long n, long D, float scale);
void tk_weighted_sum(float *o, const float *p, const float *v, long ldv, long n, long D);

/// In place, the first count - count % 8 values (returned): GeLU's tanh form exactly as TensorCore's
/// geluTanhFast computes it (the same bits; its scalar tail stays in Swift).
long tk_gelu_tanh(float *x, long count);
/// The softmax's exp pass over the first count - count % 8 values (returned): x[i] = vexp(x[i] - m), and acc[j]
/// the sum of the values with i % 8 == j, added in the order of i (TensorCore's SIMD8 lanes).
long tk_exp_shifted8(float *x, long count, float m, float acc[8]);
/// The same lane sums without storing the exps (x unchanged).
long tk_sum_exp8(const float *x, long count, float m, float acc[8]);
/// The MLP's backward activations over the first count - count % 8 values (returned), exactly as TensorCore's
/// geluTanhBackwardFast / siluGateBackwardFast compute them (the same bits; their scalar tails stay in Swift):
/// dx = GeLU'(x) * dout (tanh form); dup = dout * silu(gate), dgate = dout * up * silu'(gate).
long tk_gelu_tanh_backward(float *dx, const float *x, const float *dout, long count);
long tk_silu_gate_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long count);

/// dst[i] = float16(src[i]), round to nearest even (NaN stays a quiet NaN); returns how many finite values
/// were too large for float16 (magnitude 65520 or more: stored as infinite).
long tk_f32_to_f16(uint16_t *dst, const float *src, long count);
/// dst[i] = src[i] (float16 bits) as f32, exactly.
void tk_f16_to_f32(float *dst, const uint16_t *src, long count);
/// `rows` rows of D float16 values (row r at src + r * ld) widened into this thread's buffer `slot` (0 or 1),
/// [rows, D]; valid until this thread's next call with that slot. NULL without memory.
const float *tk_f16_rows(const uint16_t *src, long ld, long rows, long D, int slot);

/// dst[i] = bf16(src[i]), round to nearest even (NaN stays NaN).
void tk_f32_to_bf16(uint16_t *dst, const float *src, long count);
/// dst[i] = f32(src[i]) (exact).
void tk_bf16_to_f32(float *dst, const uint16_t *src, long count);

/// AdamW over n elements, torch.optim.AdamW's operations in its order, each rounded: g = G * gscale (stored
/// back into G when gscale != 1: clipping), m = b1 m + (1 - b1) g, v = b2 v + ((1 - b2) g) g,
/// p = p * decay - (stepSize * m) / (sqrt(v) / bc2Sqrt + eps). Element-wise: the same bits however split.
void tk_adamw(float *p, float *m, float *v, float *g, long n, float gscale, float b1, float b2,
              float stepSize, float bc2Sqrt, float eps, float decay);
/// The sum of x[i]^2 in double, in a fixed order (16 lanes, i % 16, then the lanes in order) on every ISA.
double tk_sum_squares(const float *x, long n);

/// The instruction set the kernels use (TK_ISA_*), the best the CPU has unless limited.
int tk_isa(void);
/// The best instruction set the CPU itself has (ignores any limit).
int tk_cpu_isa(void);
/// Limit the kernels to `isa` or below (for measurement and tests); returns the ISA now in use.
int tk_limit_isa(int isa);
/// Whether the CPU has AVX512-BF16 / AVX512-FP16 / AVX-VNNI (reported, not required).
int tk_cpu_has_avx512bf16(void);

/// Threads one product may use (default: the CPUs this process may run on). In-process ranks set
/// their share of the cores; a product started while another holds the pool runs on its own thread.
void tk_set_threads(int n);
int tk_threads(void);
/// Cores this process may run on.
int tk_available_cores(void);
/// Run fn(ctx, 0 ..< ntasks) on up to tk_threads() threads (the caller included) from the kernels' pool;
/// returns when all are done. Tasks must be independent; which thread runs one changes nothing.
void tk_parallel_for(long ntasks, void (*fn)(void *ctx, long task), void *ctx);
/// Give memory malloc holds but no longer uses back to the system (glibc's malloc_trim).
void tk_release_freed_memory(void);
/// Keep freed memory for reuse (one malloc arena, no trimming, blocks up to 32 MB from the heap): for
/// loops that free and reallocate the same large buffers (training steps). Call before threads start.
void tk_keep_freed_memory(void);

#ifdef __cplusplus
}
#endif
#endif
