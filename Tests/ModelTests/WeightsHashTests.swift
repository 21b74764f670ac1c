// The weights' fingerprint is the same from the canonical checkpoint and from its TP pieces (any TP,
// any vocabulary padding), and it changes when one weight does.

import XCTest
import TensorCore
@testable import Model

final class WeightsHashTests: XCTestCase {
    func testSplitHashEqualsCanonicalHash() throws {
        let gpt = ModelConfig(vocabSize: 1000, hiddenSize: 64, numLayers: 2, numHeads: 4, maxPositions: 32, activation: .geluTanh)
        let llama = ModelConfig(vocabSize: 301, hiddenSize: 48, numLayers: 2, numHeads: 4, numKVHeads: 2, headDim: 16, ffnSize: 64,
                                maxPositions: 64, norm: .rmsnorm, normEpsilon: 1e-6, activation: .swiglu, positions: .rope,
                                tiedEmbeddings: false, linearBias: false)
        for c in [gpt, llama] {
            let ck = CanonicalCheckpoint.random(config: c, seed: 3, std: 0.02)
            let h = ck.weightsHash
            XCTAssertTrue(h.hasPrefix("fnv1a64:") && h.count == 24, h)
            for tp in [1, 2] + (c.numKVHeads % 4 == 0 ? [4] : []) {
                for d in [1, 128] {
                    XCTAssertEqual(try CanonicalCheckpoint.weightsHash(config: c, rankTensors: try ck.split(ParallelLayout(tp: tp, vocab: .megatron(divisibleBy: d)))), h, "TP \(tp), divisibleBy \(d)")
                }
            }
            var other = ck
            other.tensors["layers.1.attn.out.weight"]!.data[5] += 1e-3
            XCTAssertNotEqual(other.weightsHash, h)
            XCTAssertNotEqual(try CanonicalCheckpoint.weightsHash(config: c, rankTensors: try other.split(ParallelLayout(tp: 2, vocab: .megatronDefault))), h)
        }
    }
}
