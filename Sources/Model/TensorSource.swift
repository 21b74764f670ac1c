// TensorSource: canonical tensors made one at a time, by name (names and shapes as
// `CanonicalSchema.shapes(for: config)`), so a writer can stream a model it never holds whole.
// `CanonicalCheckpoint` is one (its tensors, looked up); `RandomTensorSource` makes seeded random
// tensors on demand, each from (seed, name) alone: any tensor can be made alone, and the same call
// gives the same values bit for bit.

import TensorCore

public protocol TensorSource: Sendable {
    var config: ModelConfig { get }
    /// The canonical tensor `name` ([full shape], f32); throws `ModelError.missingTensor` for a name it lacks.
    func tensor(_ name: String) throws -> Tensor
}

extension CanonicalCheckpoint: TensorSource {
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw ModelError.missingTensor(name) }
        return t
    }
}

/// Seeded random weights made per tensor: norm gains 1, biases 0, every other value approximately
/// N(0, std) (the sum of four 16-bit uniforms of one SplitMix64 draw, centred and scaled: bounded
/// at +-2*sqrt(3)*std). The stream of tensor `name` is seeded with `seed` mixed with a 64-bit FNV-1a
/// hash of the name. For benchmarks and tests of shapes; not an initialisation for training.
public struct RandomTensorSource: TensorSource {
    public let config: ModelConfig
    public let seed: UInt64, std: Float
    private let shapes: [String: [Int]]

    public init(config: ModelConfig, seed: UInt64 = 1234, std: Float = 0.02) {
        self.config = config; self.seed = seed; self.std = std
        shapes = Dictionary(uniqueKeysWithValues: CanonicalSchema.shapes(for: config))
    }

    /// The per-tensor seed: `seed` mixed with FNV-1a-64 of the name's UTF-8 bytes.
    public func seed(for name: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        var m = SplitMix64(seed: seed ^ h)
        return m.next()
    }

    public func tensor(_ name: String) throws -> Tensor {
        guard let shape = shapes[name] else { throw ModelError.missingTensor(name) }
        let n = shape.reduce(1, *)
        if name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") || name == "final_norm.weight" {
            return Tensor(shape: shape, data: [Float](repeating: 1, count: n))
        }
        if name.hasSuffix(".bias") { return Tensor(shape: shape, data: [Float](repeating: 0, count: n)) }
        var rng = SplitMix64(seed: seed(for: name))
        // sum of four uniforms on (0, 1): mean 2, variance 4/12; z = (s - 2) * sqrt(3) has variance 1
        let scale = Float(3.0.squareRoot()) * std / 65536, centre: Float = 2 * 65536 - 2   // in units of 1/65536, +0.5 each
        let data = [Float](unsafeUninitializedCapacity: n) { b, c in
            for i in 0..<n {
                let x = rng.next()
                let s = Float(x & 0xFFFF) + Float((x >> 16) & 0xFFFF) + Float((x >> 32) & 0xFFFF) + Float(x >> 48)
                b[i] = (s - centre) * scale
            }
            c = n
        }
        return Tensor(shape: shape, data: data)
    }
}

extension ModelConfig {
    /// Llama-2-7B's shapes: 32 layers, hidden 4096, 32 heads, SwiGLU FFN 11008, vocabulary 32000,
    /// RMSNorm (eps 1e-5), RoPE (theta 10000), untied head, no biases, 4096 positions.
    public static let llama2_7b = ModelConfig(vocabSize: 32000, hiddenSize: 4096, numLayers: 32, numHeads: 32, ffnSize: 11008,
                                              maxPositions: 4096, norm: .rmsnorm, normEpsilon: 1e-5, activation: .swiglu,
                                              positions: .rope, ropeTheta: 10000, tiedEmbeddings: false, linearBias: false,
                                              bosToken: 1, eosToken: 2)
}
