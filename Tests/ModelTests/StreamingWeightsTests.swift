// The streaming pieces of the Model target: `RandomTensorSource` makes each tensor from (seed, name)
// alone, and `DecoderWeightsBuilder` fed tensors one at a time, in any order, builds the same
// weights bit for bit as `DecoderWeights` built from the whole model.

import XCTest
import TensorCore
@testable import Model

/// Assert two weight sets hold the same values bit for bit (matrices in their packed storage).
func assertSameWeights(_ a: DecoderWeights, _ b: DecoderWeights, file: StaticString = #filePath, line: UInt = #line) {
    func bits(_ m: WeightMatrix?) -> [UInt32]? {
        guard let m else { return nil }
        switch m.storage {
        case .f32(let x): return [UInt32(m.rows), UInt32(m.cols), 32] + x.map(\.bitPattern)
        case .bf16(let x): return [UInt32(m.rows), UInt32(m.cols), 16] + x.map(UInt32.init)
        }
    }
    func bits(_ x: [Float]?) -> [UInt32]? { x?.map(\.bitPattern) }
    XCTAssertEqual(a.layers.count, b.layers.count, file: file, line: line)
    XCTAssertEqual(a.dtype, b.dtype, file: file, line: line)
    XCTAssertEqual(bits(a.wordEmbedding), bits(b.wordEmbedding), "word embedding", file: file, line: line)
    XCTAssertEqual(bits(a.positionEmbedding), bits(b.positionEmbedding), "positions", file: file, line: line)
    XCTAssertEqual(bits(a.lmHead), bits(b.lmHead), "head", file: file, line: line)
    XCTAssertEqual(bits(a.finalNormW), bits(b.finalNormW), file: file, line: line)
    XCTAssertEqual(bits(a.finalNormB), bits(b.finalNormB), file: file, line: line)
    for (i, (x, y)) in zip(a.layers, b.layers).enumerated() {
        for (m, n, what) in [(x.qkvW, y.qkvW, "qkv"), (x.outW, y.outW, "out"), (x.fc1W, y.fc1W, "fc1"), (x.fc2W, y.fc2W, "fc2")] {
            XCTAssertEqual(bits(m), bits(n), "layer \(i) \(what)", file: file, line: line)
        }
        for (m, n, what) in [(x.norm1W, y.norm1W, "norm1"), (x.norm2W, y.norm2W, "norm2")] {
            XCTAssertEqual(bits(m), bits(n), "layer \(i) \(what)", file: file, line: line)
        }
        for (m, n, what) in [(x.norm1B, y.norm1B, "norm1 bias"), (x.norm2B, y.norm2B, "norm2 bias"), (x.qkvB, y.qkvB, "qkv bias"),
                             (x.outB, y.outB, "out bias"), (x.fc1B, y.fc1B, "fc1 bias"), (x.fc2B, y.fc2B, "fc2 bias")] {
            XCTAssertEqual(bits(m), bits(n), "layer \(i) \(what)", file: file, line: line)
        }
    }
}

final class StreamingWeightsTests: XCTestCase {
    static let llama = ModelConfig(vocabSize: 37, hiddenSize: 16, numLayers: 3, numHeads: 4, numKVHeads: 2, ffnSize: 24,
                                   maxPositions: 32, norm: .rmsnorm, activation: .swiglu, positions: .rope,
                                   tiedEmbeddings: false, linearBias: false)
    static let gpt = ModelConfig(vocabSize: 41, hiddenSize: 16, numLayers: 2, numHeads: 2, maxPositions: 16)

    func testRandomSourceMakesEachTensorFromSeedAndNameAlone() throws {
        let c = Self.llama
        let a = RandomTensorSource(config: c, seed: 7), b = RandomTensorSource(config: c, seed: 7)
        // made alone, in another order, by another source value: the same bits
        let names = CanonicalSchema.shapes(for: c).map(\.0)
        let first = try names.map { try a.tensor($0) }
        let reversed = try names.reversed().map { try b.tensor($0) }.reversed()
        for (n, (x, y)) in zip(names, zip(first, reversed)) {
            XCTAssertEqual(x.data.map(\.bitPattern), y.data.map(\.bitPattern), n)
            XCTAssertEqual(x.shape, CanonicalSchema.shapes(for: c).first { $0.0 == n }!.1, n)
        }
        // another seed, another name: other values
        let q = try a.tensor("layers.0.attn.q.weight")
        XCTAssertNotEqual(q.data, try RandomTensorSource(config: c, seed: 8).tensor("layers.0.attn.q.weight").data)
        XCTAssertNotEqual(Array(q.data.prefix(16)), Array(try a.tensor("layers.1.attn.q.weight").data.prefix(16)))
        // norms 1; values centred with the asked std, bounded by 2 sqrt(3) std
        XCTAssertEqual(Set(try a.tensor("layers.2.norm1.weight").data), [1])
        let big = try RandomTensorSource(config: ModelConfig(vocabSize: 4096, hiddenSize: 64, numLayers: 1, numHeads: 2, maxPositions: 8),
                                         seed: 1, std: 0.5).tensor("embedding.word.weight").data
        let mean = big.reduce(0, +) / Float(big.count)
        let sd = (big.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(big.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(sd, 0.5, accuracy: 0.01)
        XCTAssertLessThanOrEqual(big.map(abs).max()!, 0.5 * 2 * Float(3.0).squareRoot())
        XCTAssertThrowsError(try a.tensor("layers.9.attn.q.weight")) { XCTAssertEqual($0 as? ModelError, .missingTensor("layers.9.attn.q.weight")) }
        // a CanonicalCheckpoint is a source too
        let ck = try CanonicalCheckpoint(config: c, tensors: Dictionary(uniqueKeysWithValues: names.map { ($0, try a.tensor($0)) }), format: "t")
        XCTAssertEqual(try ck.tensor("lm_head.weight"), try a.tensor("lm_head.weight"))
    }

    func testBuilderFedInAnyOrderEqualsWholeModelBitwise() throws {
        for c in [Self.llama, Self.gpt] {
            let ck = CanonicalCheckpoint.random(config: c, seed: 3, std: 0.2)
            for dtype in ComputeDType.allCases {
                let whole = try DecoderWeights(ck, dtype: dtype)
                var order = CanonicalSchema.shapes(for: c).map(\.0)
                var rng = SplitMix64(seed: 11)
                for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                let b = try DecoderWeightsBuilder(config: c, dtype: dtype)
                for n in order { try b.add(n, ck.tensors[n]!) }
                XCTAssertEqual(b.missing, [])
                assertSameWeights(try b.finish(), whole)
            }
        }
    }

    func testBuilderForOneRankEqualsRankTensorsInit() throws {
        let c = Self.llama
        let ck = CanonicalCheckpoint.random(config: c, seed: 4, std: 0.2)
        let shard = try RankPlace(layout: ParallelLayout(tp: 2, pp: 2), tpRank: 1, stage: 1, numLayers: c.numLayers)
        XCTAssertEqual(shard.layers, 2..<3)
        let t = try ck.shard(shard)
        let whole = try DecoderWeights(config: c, rankTensors: t, shard: shard, dtype: .bfloat16)
        let b = try DecoderWeightsBuilder(config: c, shard: shard, dtype: .bfloat16)
        for (n, x) in t.sorted(by: { $0.key > $1.key }) { try b.add(n, x) }
        assertSameWeights(try b.finish(), whole)
    }

    func testBuilderRefusesWrongShapesRepeatsAndMissingTensors() throws {
        let c = Self.llama
        let ck = CanonicalCheckpoint.random(config: c, seed: 5)
        let b = try DecoderWeightsBuilder(config: c)
        XCTAssertThrowsError(try b.add("layers.0.attn.q.weight", Tensor(zeros: [16, 15]))) {
            XCTAssertEqual($0 as? ModelError, .shapeMismatch(tensor: "layers.0.attn.q.weight", expected: [16, 16], found: [16, 15]))
        }
        try b.add("layers.0.attn.q.weight", ck.tensors["layers.0.attn.q.weight"]!)
        XCTAssertThrowsError(try b.add("layers.0.attn.q.weight", ck.tensors["layers.0.attn.q.weight"]!))
        for (n, x) in ck.tensors where n != "layers.1.mlp.up.weight" && n != "layers.0.attn.q.weight" { try b.add(n, x) }
        XCTAssertEqual(b.missing, ["layers.1.mlp.up.weight"])
        XCTAssertThrowsError(try b.finish()) { XCTAssertEqual($0 as? ModelError, .missingTensor("layers.1.mlp.up.weight")) }
    }
}
