// Head: the vocab-parallel LM head (each TP rank holds rows [lo, lo + Vl) of the padded vocabulary:
// its own matrix or the tied word embedding) after the final norm, with what is done with its
// logits, forward and backward:
//   logits         local logits [n, Vl] (copy-to on the input), gather-from, padding dropped: [n, V]
//   statistics     per row over the whole vocabulary, never gathering it: each rank reduces its
//                  slice to (max, first argmax, sum of exp relative to its max, target logit if it
//                  owns it); the TP group all-gathers those 5 numbers per row and combines them in
//                  rank order into (max, argmax, log-sum-exp in Double, target logit)
//   crossEntropy   training: loss per counted row = lse - target logit; dlogits = softmax * w minus w
//                  at the target (0 on padding and on rows that do not count)
//   scores         the scoring variant: statistics over chunks of 256 rows (the products are
//                  batch-invariant, so chunking changes no bit), log-prob as a hi/lo pair of floats
//                  and the greedy flag; a scoring batch never holds [rows, V/tp] floats at once
//   backward       dh = dlogits W, dW += dlogits^T h, copy-to's backward (all-reduce dh)

import Foundation
import TensorCore
import Collectives

public struct VocabParallelHead {
    public let weight: WeightMatrix          // [Vl, C]
    public let vocab: Int                    // V: real tokens (the rest of the padded rows is padding)
    public let first: Int                    // lo: the first token id of this rank's rows
    public var localVocab: Int { weight.rows }
    /// This rank's columns that are real tokens.
    public var valid: Int { max(0, min(localVocab, vocab - first)) }

    public init(weight: WeightMatrix, vocab: Int, first: Int) { self.weight = weight; self.vocab = vocab; self.first = first }

    /// Local logits out[n, Vl] of normed rows h[n, C].
    public func localLogits(_ out: UnsafeMutablePointer<Float>, _ h: UnsafeMutableBufferPointer<Float>, rows n: Int, tp: Collective) throws {
        try ColumnParallelLinear.forward(out, h, weight, bias: nil, rows: n, tp: tp)
    }

    /// Logits [n, V] of normed rows h[n, C], gathered over the TP group.
    public func logits(_ h: inout [Float], rows n: Int, tp: Collective) throws -> [Float] {
        let Vl = localVocab, V = vocab
        var local = [Float](repeating: 0, count: n * Vl)
        try local.withUnsafeMutableBufferPointer { ob in try h.withUnsafeMutableBufferPointer { try localLogits(ob.baseAddress!, $0, rows: n, tp: tp) } }
        let full = try Region.gatherFromForward(local, rows: n, localCols: Vl, tp)
        let Vp = Vl * tp.size
        if Vp == V { return full }
        var trimmed = [Float](repeating: 0, count: n * V)
        for r in 0..<n { for j in 0..<V { trimmed[r * V + j] = full[r * Vp + j] } }
        return trimmed
    }

    /// Per row over the whole vocabulary: max, first argmax, log-sum-exp, and the target's logit.
    public struct RowStatistics { public var max: [Float], argmax: [Int], logSumExp: [Double], target: [Float] }

    /// Statistics of local logits [rows, Vl] for `targets` (token ids), combined over the TP group.
    public func statistics(_ local: UnsafePointer<Float>, targets: [Int], tp: Collective) throws -> RowStatistics {
        let Vl = localVocab, lo = first, valid = valid, rows = targets.count
        var stats = [Float](repeating: 0, count: rows * 5)
        stats.withUnsafeMutableBufferPointer { sb in
            let S = sb.baseAddress!
            Compute.parallelFor(rows) { r in   // rows apart: the same bits on any number of threads
                let row = local + r * Vl
                var m = -Float.infinity, am = -1, sum = 0.0
                if valid > 0 { let st = maxArgmaxSumExp(row, count: valid); m = st.max; am = lo + st.argmax; sum = st.sumExp }
                let t = targets[r] - lo
                let hi = Float(sum)
                S[r * 5 + 0] = m; S[r * 5 + 1] = Float(am); S[r * 5 + 2] = hi; S[r * 5 + 3] = Float(sum - Double(hi))
                S[r * 5 + 4] = t >= 0 && t < valid ? row[t] : -.infinity
            }
        }
        let size = tp.size
        var all = [Float](repeating: 0, count: size * rows * 5)      // [rank][row][5]
        try stats.withUnsafeBufferPointer { sb in try all.withUnsafeMutableBufferPointer { try tp.allGather(sb, into: $0) } }
        var out = RowStatistics(max: [], argmax: [], logSumExp: [], target: [])
        for r in 0..<rows {
            var gmax = -Float.infinity, arg = -1, target = -Float.infinity
            for k in 0..<size {
                let st = (k * rows + r) * 5
                if all[st] > gmax { gmax = all[st]; arg = Int(all[st + 1]) }
                if all[st + 4] > -.infinity { target = all[st + 4] }
            }
            var total = 0.0
            for k in 0..<size {
                let st = (k * rows + r) * 5
                if all[st] > -.infinity { total += (Double(all[st + 2]) + Double(all[st + 3])) * Double(expf(all[st] - gmax)) }
            }
            out.max.append(gmax); out.argmax.append(arg); out.logSumExp.append(Double(gmax) + log(total)); out.target.append(target)
        }
        return out
    }

    /// Scoring variant: [rows, 3] per row of h[rows, C]: log-prob of `targets[r]` as a hi/lo pair of
    /// floats (value = Double(hi) + Double(lo)) and 1 when the target is the (first) argmax, else 0.
    public func scores(_ h: inout [Float], targets: [Int], tp: Collective) throws -> [Float] {
        let C = weight.cols, Vl = localVocab, n = targets.count, chunk = 256
        var out: [Float] = []; out.reserveCapacity(n * 3)
        var local = [Float](repeating: 0, count: min(chunk, n) * Vl)
        for r0 in stride(from: 0, to: n, by: chunk) {
            let rows = min(chunk, n - r0)
            let st = try local.withUnsafeMutableBufferPointer { ob in
                try h.withUnsafeMutableBufferPointer { hb in
                    try localLogits(ob.baseAddress!, UnsafeMutableBufferPointer(rebasing: hb[(r0 * C)..<((r0 + rows) * C)]), rows: rows, tp: tp)
                }
                return try statistics(ob.baseAddress!, targets: Array(targets[r0..<(r0 + rows)]), tp: tp)
            }
            for r in 0..<rows {
                let lp = Double(st.target[r]) - st.logSumExp[r]
                let hi = Float(lp)
                out += [hi, Float(lp - Double(hi)), st.argmax[r] == targets[r0 + r] ? 1 : 0]
            }
        }
        return out
    }

    /// Training: local logits [n, Vl] become dlogits in place (softmax * weight, minus weight at the
    /// target; 0 on padding columns and rows that do not count); returns the sum of the counted rows'
    /// cross-entropy.
    public func crossEntropy(_ local: UnsafeMutablePointer<Float>, targets: [Int], counts: [Bool], weight w: Float, tp: Collective) throws -> Double {
        let n = targets.count, Vl = localVocab, valid = valid, lo = first
        let st = try statistics(local, targets: targets, tp: tp)
        var rowLoss = [Double](repeating: 0, count: n)
        rowLoss.withUnsafeMutableBufferPointer { lb in
            let RL = lb.baseAddress!
            Compute.parallelFor(n) { r in
                let row = local + r * Vl
                guard counts[r] else { row.update(repeating: 0, count: Vl); return }
                RL[r] = st.logSumExp[r] - Double(st.target[r])
                _ = expShiftedInPlace(row, count: valid, shift: st.max[r])
                let k = Float(Double(w) * exp(Double(st.max[r]) - st.logSumExp[r]))   // w / (global sum of exp)
                for j in 0..<valid { row[j] *= k }
                for j in valid..<Vl { row[j] = 0 }
                let t = targets[r] - lo
                if t >= 0 && t < valid { row[t] -= w }
            }
        }
        return rowLoss.reduce(0, +)
    }

    /// dh[n, C] (overwritten) = dlogits W, all-reduced (copy-to's backward); dW[Vl, C] += dlogits^T h.
    public func backward(dh: UnsafeMutableBufferPointer<Float>, dlogits: UnsafePointer<Float>, h: UnsafePointer<Float>,
                         transposed: WeightMatrix, dW: UnsafeMutablePointer<Float>, rows n: Int, tp: Collective) throws {
        try ColumnParallelLinear.backward(dx: dh, dy: dlogits, x: h, transposed: transposed,
                                          grad: LinearGrad([.init(rows: localVocab, dW: dW, db: nil)]), rows: n, tp: tp)
    }
}
