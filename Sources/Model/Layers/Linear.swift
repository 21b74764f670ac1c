// Linear: Megatron's column- and row-parallel linear layers, forward and backward side by side,
// crossing tensor-parallel ranks only through the region operations (Collectives/Regions.swift):
//
//   column-parallel (QKV, fc1 / gate|up)   forward: copy-to on the input, y = x W^T + b (local rows of W)
//                                          backward: dx = dy W, then copy-to's backward (all-reduce dx)
//   row-parallel (attn out, fc2)           forward: partial y = x W^T, reduce-from, then the bias once
//                                          backward: reduce-from's backward (identity), dx = dy W
//
// Weights are packed `WeightMatrix`es ([out, in]); the backward takes the same matrix packed
// transposed ([in, out], `TransposedLayer`). Weight gradients ACCUMULATE (dW += dy^T x).

import TensorCore
import Collectives

/// Where a linear layer's gradients go. A fused matrix (QKV, gate|up) is stored as separate
/// tensors, so its output rows come in segments, each with its own dW [rows, in] and db [rows].
public struct LinearGrad {
    public struct Segment {
        public let rows: Int
        public let dW: UnsafeMutablePointer<Float>
        public let db: UnsafeMutablePointer<Float>?
        public init(rows: Int, dW: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>?) { self.rows = rows; self.dW = dW; self.db = db }
    }
    public let segments: [Segment]
    public init(_ segments: [Segment]) { self.segments = segments }

    /// dW += dy^T x and db += sum over rows of dy, segment by segment. dy [n, out], x [n, in].
    func accumulate(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows n: Int, inFeatures: Int) {
        let out = segments.reduce(0) { $0 + $1.rows }
        var lo = 0
        for s in segments {
            Compute.gemmTA(s.dW, ldc: inFeatures, dy + lo, lda: out, x, ldb: inFeatures, m: s.rows, n: inFeatures, k: n)
            if let db = s.db { for r in 0..<n { addInPlace(db, dy + r * out + lo, count: s.rows) } }
            lo += s.rows
        }
    }
}

public enum ColumnParallelLinear {
    /// y[n, out] = x[n, in] W^T (+ b), after copy-to (the identity forward) on x.
    public static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeMutableBufferPointer<Float>, _ w: WeightMatrix,
                               bias: [Float]?, rows n: Int, tp: Collective) throws {
        try Region.copyToForward(x, tp)
        withOptional(bias) { linear(y, x.baseAddress!, w, $0, rows: n) }
    }

    /// dx[n, in] = dy W (overwritten), gradients into `grad`, then copy-to's backward: all-reduce dx.
    public static func backward(dx: UnsafeMutableBufferPointer<Float>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                transposed wT: WeightMatrix, grad: LinearGrad, rows n: Int, tp: Collective) throws {
        linear(dx.baseAddress!, dy, wT, nil, rows: n)
        grad.accumulate(dy: dy, x: x, rows: n, inFeatures: wT.rows)
        try Region.copyToBackward(dx, tp)
    }
}

public enum RowParallelLinear {
    /// y[n, out] = sum over TP ranks of x[n, in/tp] W^T (reduce-from), then + b once.
    public static func forward(_ y: UnsafeMutableBufferPointer<Float>, _ x: UnsafePointer<Float>, _ w: WeightMatrix,
                               bias: [Float]?, rows n: Int, tp: Collective) throws {
        linear(y.baseAddress!, x, w, nil, rows: n)
        try Region.reduceFromForward(y, tp)
        if let bias {
            let out = w.rows
            bias.withUnsafeBufferPointer { bb in for r in 0..<n { addInPlace(y.baseAddress! + r * out, bb.baseAddress!, count: out) } }
        }
    }

    /// Reduce-from's backward (identity) on dy, then dx[n, in/tp] = dy W (overwritten) and the gradients.
    public static func backward(dx: UnsafeMutablePointer<Float>, dy: UnsafeMutableBufferPointer<Float>, x: UnsafePointer<Float>,
                                transposed wT: WeightMatrix, grad: LinearGrad, rows n: Int, tp: Collective) throws {
        try Region.reduceFromBackward(dy, tp)
        linear(dx, dy.baseAddress!, wT, nil, rows: n)
        grad.accumulate(dy: dy.baseAddress!, x: x, rows: n, inFeatures: wT.rows)
    }
}

@inline(__always)
func withOptional<R>(_ a: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    if let a { return a.withUnsafeBufferPointer { body($0.baseAddress!) } }
    return body(nil)
}

/// body(r) for every row r < n, in blocks of 16 rows on the kernels' threads (a row's bits never
/// depend on the rows around it).
func forRowBlocks(_ n: Int, _ body: (Int) -> Void) {
    let block = 16
    Compute.parallelFor((n + block - 1) / block) { b in for r in (b * block)..<min(n, (b + 1) * block) { body(r) } }
}
