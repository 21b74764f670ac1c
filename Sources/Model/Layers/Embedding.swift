// Embedding: the vocab-parallel word embedding (each TP rank holds rows [lo, lo + Vl) of the padded
// vocabulary; rows outside stay zero, then reduce-from sums the ranks' rows) plus the learned
// position table when the model has one, forward and backward (reduce-from's backward: identity).

import TensorCore
import Collectives

public struct VocabParallelEmbedding {
    public let words: WeightMatrix           // [Vl, C]
    public let positions: [Float]?           // [P, C]
    public let first: Int                    // lo: the first token id this rank holds

    public init(words: WeightMatrix, positions: [Float]?, first: Int) { self.words = words; self.positions = positions; self.first = first }

    /// x[n, C] (overwritten) for `tokens` (already checked against the vocabulary) at `positions`.
    public func forward(_ x: UnsafeMutableBufferPointer<Float>, tokens: [Int], positions pos: [Int], tp: Collective) throws {
        let C = words.cols, lo = first, Vl = words.rows
        x.update(repeating: 0)
        for (r, t) in tokens.enumerated() where t >= lo && t < lo + Vl { words.copyRow(t - lo, into: x.baseAddress! + r * C) }
        try Region.reduceFromForward(x, tp)
        if let positions {
            positions.withUnsafeBufferPointer { pb in
                for r in 0..<tokens.count { addInPlace(x.baseAddress! + r * C, pb.baseAddress! + pos[r] * C, count: C) }
            }
        }
    }

    /// dWords[Vl, C] and dPositions[P, C] += the rows of dx[n, C] (reduce-from's backward: identity).
    public func backward(dWords: UnsafeMutablePointer<Float>, dPositions: UnsafeMutablePointer<Float>?, dx: UnsafeMutableBufferPointer<Float>,
                         tokens: [Int], positions pos: [Int], tp: Collective) throws {
        try Region.reduceFromBackward(dx, tp)
        let C = words.cols, lo = first, Vl = words.rows
        for (r, t) in tokens.enumerated() {
            let row = dx.baseAddress! + r * C
            if t >= lo && t < lo + Vl { addInPlace(dWords + (t - lo) * C, row, count: C) }
            if let dPositions { addInPlace(dPositions + pos[r] * C, row, count: C) }
        }
    }
}
