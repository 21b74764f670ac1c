// TokenLogprobs: log-probabilities of tokens from a full logits row [V], bit for bit what
// `LogitRows.scores` (and so `turing score` / `Scorer`) gives at TP 1: the same max / first argmax /
// sum-of-exp reduction (`maxArgmaxSumExp`), the same f64 combination and the same hi/lo float split.
// Top-N lists are ordered by logit, ties by lower id.

import TensorCore

public struct TokenLogprob: Sendable, Equatable {
    public var token: Int
    public var logprob: Double
    public init(token: Int, logprob: Double) { self.token = token; self.logprob = logprob }
}

public struct RowLogSoftmax {
    let row: UnsafeBufferPointer<Float>
    let logZ: Double
    public let argmax: Int

    /// `row`: one full logits row [V].
    public init(_ row: UnsafeBufferPointer<Float>) {
        self.row = row
        let st = maxArgmaxSumExp(row.baseAddress!, count: row.count)
        // the vocab-parallel combination at one rank: hi/lo floats of the sum, times exp(max - max) = 1
        let hi = Float(st.sumExp), lo = Float(st.sumExp - Double(hi))
        let total = (Double(hi) + Double(lo)) * Double(expf(st.max - st.max))
        logZ = Double(st.max) + log(total)
        argmax = st.argmax
    }

    public func logprob(_ t: Int) -> Double {
        let lp = Double(row[t]) - logZ
        let hi = Float(lp)
        return Double(hi) + Double(Float(lp - Double(hi)))
    }

    /// The `n` most likely tokens, most likely first.
    public func top(_ n: Int) -> [TokenLogprob] {
        guard n > 0 else { return [] }
        if n == 1 { return [TokenLogprob(token: argmax, logprob: logprob(argmax))] }
        var best: [(Float, Int)] = []   // kept sorted: larger logit first, then lower id
        best.reserveCapacity(n + 1)
        for i in 0..<row.count {
            let v = row[i]
            if best.count == n, let last = best.last, !(v > last.0) { continue }
            var k = best.count
            while k > 0 && v > best[k - 1].0 { k -= 1 }
            best.insert((v, i), at: k)
            if best.count > n { best.removeLast() }
        }
        return best.map { TokenLogprob(token: $0.1, logprob: logprob($0.1)) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
