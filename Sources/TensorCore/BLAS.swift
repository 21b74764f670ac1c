// BLAS: the matrix products of the compute path, through OpenBLAS's CBLAS interface.
//
// Owns: `linear` (y = x W^T + b, PyTorch Linear layout) and raw row-major sgemm, and the BLAS thread
// count. Does not own: anything elementwise (Kernels.swift).

import CBLAS
#if canImport(Glibc)
import Glibc
#endif

public enum BLAS {
    /// Threads OpenBLAS may use for one call. In-process TP ranks each get their share of the cores.
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Stop OpenBLAS's worker threads until its next threaded call starts them again (its lazy
    /// re-init after fork). After process start and after every threaded call they spin on sched_yield
    /// for OpenBLAS's thread timeout (about a quarter second) and take a core from work on Turing's own
    /// threads, such as a checkpoint load. Only while no BLAS call runs on any thread. Looked up at run
    /// time (`blas_thread_shutdown_`, which OpenBLAS's fork handler uses): a no-op for a BLAS without it.
    public static func stopWorkerThreads() {
        guard let sym = dlsym(dlopen(nil, RTLD_NOW), "blas_thread_shutdown_") else { return }
        _ = unsafeBitCast(sym, to: (@convention(c) () -> Int32).self)()
    }

    /// C[m, n] = alpha * A[m, k] * op(B) + beta * C, row-major; B is [k, n] or, when `transB`, [n, k].
    @inline(__always)
    public static func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                            _ a: UnsafePointer<Float>, lda: Int,
                            _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
                            m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// y[N, out] = x[N, in] · W[out, in]^T (+ bias[out]).
public func linear(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                   _ bias: UnsafePointer<Float>?, rows n: Int, inFeatures: Int, outFeatures: Int) {
    if n == 1 {
        // decode: a matrix-vector product; GEMV avoids GEMM's packing for a single row
        if let bias { y.update(from: bias, count: outFeatures) }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), 1, w, Int32(inFeatures),
                    x, 1, bias == nil ? 0 : 1, y, 1)
        return
    }
    if let bias {
        for r in 0..<n { (y + r * outFeatures).update(from: bias, count: outFeatures) }
        BLAS.gemm(y, ldc: outFeatures, x, lda: inFeatures, w, ldb: inFeatures, transB: true,
                  m: n, n: outFeatures, k: inFeatures, beta: 1)
    } else {
        BLAS.gemm(y, ldc: outFeatures, x, lda: inFeatures, w, ldb: inFeatures, transB: true,
                  m: n, n: outFeatures, k: inFeatures, beta: 0)
    }
}

extension BLAS {
    /// C[m, n] = alpha * A^T B + beta * C with A stored [k, m] and B stored [k, n] (weight gradients: dW += dY^T X).
    @inline(__always)
    public static func gemmTA(_ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int,
                              _ b: UnsafePointer<Float>, ldb: Int, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 1) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// Backward of `linear`: dx[N, in] (+)= dy[N, out] W[out, in]; dW[out, in] += dy^T x; db[out] += sum over rows of dy.
public func linearBackward(dx: UnsafeMutablePointer<Float>?, accumulate: Bool, dW: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>?,
                           dy: UnsafePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                           rows n: Int, inFeatures: Int, outFeatures: Int) {
    if let dx {
        BLAS.gemm(dx, ldc: inFeatures, dy, lda: outFeatures, w, ldb: inFeatures, transB: false,
                  m: n, n: inFeatures, k: outFeatures, beta: accumulate ? 1 : 0)
    }
    BLAS.gemmTA(dW, ldc: inFeatures, dy, lda: outFeatures, x, ldb: inFeatures, m: outFeatures, n: inFeatures, k: n)
    if let db { for r in 0..<n { addInPlace(db, dy + r * outFeatures, count: outFeatures) } }
}
