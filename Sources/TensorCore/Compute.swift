// Compute: the one interface every matrix product of inference and training goes through.
//
// Owns: `linear` (y = x W^T + b, PyTorch Linear layout, packed W f32 or bf16), the general products
// (`Compute.gemm`, `Compute.gemmTA`), the thread count, and what the CPU was
// found to have. The kernels are Turing's own (CKernels), chosen at run time from the CPU's
// features (AVX-512, AVX2, portable C) and independent of any BLAS library or its environment
// variables. Every product is batch-invariant: a row's result does not depend on the other rows,
// the tile it lands in or the thread count (see ckernels.h for the order of the sums).

import CKernels
import Foundation

public enum Compute {
    /// Threads one product may use (default: the cores this process may run on). In-process ranks
    /// share the cores out.
    public static func setThreads(_ n: Int) { tk_set_threads(Int32(max(1, n))) }
    public static var threads: Int { Int(tk_threads()) }

    /// The instruction sets the CPU has, and the one the kernels use.
    public enum ISA: Int, Sendable, CustomStringConvertible {
        case portable = 0, avx2 = 1, avx512 = 2
        public var description: String { ["portable C", "AVX2+FMA", "AVX-512"][rawValue] }
    }
    public static var isa: ISA { ISA(rawValue: Int(tk_isa())) ?? .portable }
    public static var cpuISA: ISA { ISA(rawValue: Int(tk_cpu_isa())) ?? .portable }
    /// Use at most `isa` (measurement and tests; `TURING_MAX_ISA=avx2|portable` does the same at start).
    @discardableResult public static func limitISA(_ isa: ISA) -> ISA { ISA(rawValue: Int(tk_limit_isa(Int32(isa.rawValue)))) ?? .portable }
    public static var cpuHasAVX512BF16: Bool { tk_cpu_has_avx512bf16() != 0 }

    /// One line for `bench` and `inspect --system`: CPU, ISA found and used, kernels, threads.
    public static var systemSummary: String {
        let used = isa, found = cpuISA
        let kernels: String
        switch used {
        case .avx512: kernels = "Turing kernels: AVX-512 12x32 tiles on packed weights"
        case .avx2: kernels = "Turing kernels: AVX2 4x16 tiles on packed weights"
        case .portable: kernels = "Turing kernels: portable C"
        }
        return "CPU \(cpuModelName()); ISA found \(found)\(cpuHasAVX512BF16 ? " (+AVX512-BF16)" : ""), used \(used)\(used != found ? " (limited)" : ""); \(kernels); \(threads) threads"
    }

    /// body(0 ..< n) on the kernels' threads (the caller's among them); returns when all are done. The
    /// calls must be independent (disjoint outputs); a product inside one runs on that thread.
    public static func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if n == 1 || threads == 1 { for i in 0..<n { body(i) }; return }
        withoutActuallyEscaping(body) { escaping in
            let box = Unmanaged.passRetained(TaskBox(escaping))
            defer { box.release() }
            tk_parallel_for(n, { ctx, t in Unmanaged<TaskBox>.fromOpaque(ctx!).takeUnretainedValue().body(Int(t)) }, box.toOpaque())
        }
    }

    /// `body` over consecutive ranges of 0..<count, `size` elements each (the last one shorter), on the kernels'
    /// threads; the results in range order. For one pass over a large array (decode, checks) split across cores.
    public static func mapChunks<R>(_ count: Int, size: Int = 1 << 20, _ body: (Range<Int>) -> R) -> [R] {
        let n = (count + size - 1) / size
        var out = [R?](repeating: nil, count: n)
        out.withUnsafeMutableBufferPointer { o in parallelFor(n) { c in o[c] = body((c * size)..<min(count, (c + 1) * size)) } }
        return out.map { $0! }
    }

    /// Sets every element to 0, chunks of 1M on the kernels' threads (a training step's gradients:
    /// hundreds of MB that one thread would zero while the others wait).
    public static func zero(_ b: UnsafeMutableBufferPointer<Float>) {
        guard let base = b.baseAddress else { return }
        _ = mapChunks(b.count) { r in (base + r.lowerBound).update(repeating: 0, count: r.count) }
    }

    /// C[m, n] = alpha * A[m, k] * op(B) + beta * C, row-major; B is [k, n] or, when `transB`, [n, k].
    @inline(__always)
    public static func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                            _ a: UnsafePointer<Float>, lda: Int,
                            _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
                            m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0) {
        if transB {
            tk_gemm_nt(c, ldc, a, lda, b, Int32(TK_F32), ldb, nil, alpha, beta, m, n, k)
        } else {
            tk_gemm_nn(c, ldc, a, lda, 1, b, ldb, alpha, beta, m, n, k)
        }
    }

    /// C[m, n] = alpha * A^T B + beta * C with A stored [k, m] and B stored [k, n] (weight gradients: dW += dY^T X).
    @inline(__always)
    public static func gemmTA(_ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int,
                              _ b: UnsafePointer<Float>, ldb: Int, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 1) {
        tk_gemm_nn(c, ldc, a, 1, lda, b, ldb, alpha, beta, m, n, k)
    }
}

private final class TaskBox { let body: (Int) -> Void; init(_ b: @escaping (Int) -> Void) { body = b } }

/// y[N, out] = x[N, in] · W[out, in]^T (+ bias[out]) for weights of either dtype.
public func linear(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: WeightMatrix,
                   _ bias: UnsafePointer<Float>?, rows n: Int) {
    w.withRaw { p, wtype in
        tk_gemm_packed(y, w.rows, x, w.cols, 1, p, wtype, bias, 1, 0, n, w.rows, w.cols)
    }
}

/// Give memory that malloc holds but no longer uses back to the system (after dropping a load's copies).
public func releaseFreedMemory() { tk_release_freed_memory() }

/// For training: a step frees and reallocates the same activation buffers (~250 MB at GPT-2 124M,
/// batch 4 x 128); glibc's per-thread arenas hand them back to the kernel, so every step paid ~100k
/// page faults. One arena that keeps what it freed reuses them (peak RSS unchanged, measured with
/// `turing train-bench`). Inference does not call it: there it raised bench's peak RSS by 7%.
/// Call before any worker thread starts.
public func keepFreedMemory() { tk_keep_freed_memory() }

/// The CPU's model name (/proc/cpuinfo), or "unknown".
public func cpuModelName() -> String {
    guard let s = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
    for line in s.split(separator: "\n") where line.hasPrefix("model name") {
        if let i = line.firstIndex(of: ":") { return line[line.index(after: i)...].trimmingCharacters(in: .whitespaces) }
    }
    return "unknown"
}
