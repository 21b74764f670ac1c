// Sampler: turns one row of logits into a token. Greedy, temperature, top-k, top-p, with our own
// seeded RNG (xorshift64*, as llama2.c) so one seed gives one text on every machine.

import Foundation

public struct SamplingParams: Sendable, Equatable {
    public var temperature: Float = 0       // 0 = greedy
    public var topK: Int = 0                // 0 = off
    public var topP: Float = 1              // 1 = off
    public var seed: UInt64 = 1234
    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 1234) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.seed = seed
    }
}

/// xorshift64* (llama2.c's `random_u32`), returning floats in [0, 1) from the top 24 bits.
public struct TuringRNG: Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed == 0 ? 0x9E3779B97F4A7C15 : seed }
    public mutating func nextU32() -> UInt32 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return UInt32(truncatingIfNeeded: (state &* 0x2545F4914F6CDD1D) >> 32)
    }
    public mutating func nextFloat() -> Float { Float(nextU32() >> 8) / 16777216.0 }
}

public struct Sampler: Sendable {
    public let params: SamplingParams
    var rng: TuringRNG

    public init(_ params: SamplingParams) { self.params = params; rng = TuringRNG(seed: params.seed) }

    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Int {
        let n = logits.count
        if params.temperature <= 0 { return argmaxIndex(logits) }
        // probabilities at temperature, in f64 for a stable cumulative sum
        var m = -Float.infinity
        for v in logits { m = max(m, v) }
        var idx = Array(0..<n)
        var p = [Double](repeating: 0, count: n)
        var s = 0.0
        let invT = 1 / Double(params.temperature)
        for i in 0..<n { let e = exp(Double(logits[i] - m) * invT); p[i] = e; s += e }
        for i in 0..<n { p[i] /= s }
        var k = n
        if params.topK > 0 && params.topK < n || params.topP < 1 {
            // sort by probability descending, ties by index (deterministic)
            idx.sort { p[$0] != p[$1] ? p[$0] > p[$1] : $0 < $1 }
            if params.topK > 0 { k = min(k, params.topK) }
            if params.topP < 1 {
                var cum = 0.0
                for j in 0..<k { cum += p[idx[j]]; if cum >= Double(params.topP) { k = j + 1; break } }
            }
        }
        var mass = 0.0
        for j in 0..<k { mass += p[idx[j]] }
        let r = Double(rng.nextFloat()) * mass
        var cum = 0.0
        for j in 0..<k { cum += p[idx[j]]; if r < cum { return idx[j] } }
        return idx[k - 1]
    }
}

public func argmaxIndex(_ x: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    var bv = x[0]
    for i in 1..<x.count where x[i] > bv { bv = x[i]; best = i }
    return best
}
