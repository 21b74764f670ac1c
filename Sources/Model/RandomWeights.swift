// Random weights for a config: benchmarks and tests of shapes, seeded with our own generator.
// N(0, std) via Box-Muller on SplitMix64; norm gains 1, biases 0. Not an initialisation for training.

import Foundation
import TensorCore

public struct SplitMix64: Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    /// Uniform in (0, 1).
    public mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) / 9007199254740992.0 }
    public mutating func normal() -> Double {
        let u1 = uniform(), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

extension CanonicalCheckpoint {
    public static func random(config: ModelConfig, seed: UInt64 = 1234, std: Float = 0.02) -> CanonicalCheckpoint {
        var rng = SplitMix64(seed: seed)
        var t: [String: Tensor] = [:]
        for (name, shape) in CanonicalSchema.shapes(for: config) {
            let n = shape.reduce(1, *)
            let data: [Float]
            if name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") || name == "final_norm.weight" {
                data = [Float](repeating: 1, count: n)
            } else if name.hasSuffix(".bias") {
                data = [Float](repeating: 0, count: n)
            } else {
                data = (0..<n).map { _ in Float(rng.normal()) * std }
            }
            t[name] = Tensor(shape: shape, data: data)
        }
        return CanonicalCheckpoint(config: config, tensors: t, format: "random")
    }
}

extension ModelConfig {
    /// GPT-2 124M's shapes: 12 layers, 768 hidden, 12 heads, 50257 vocab, 1024 positions.
    public static let gpt2Small = ModelConfig(vocabSize: 50257, hiddenSize: 768, numLayers: 12, numHeads: 12,
                                              maxPositions: 1024, activation: .geluTanh)
}
