import XCTest
@testable import Engine
@testable import Checkpoints
import Model
import TensorCore

/// Every engine layout gives TP 1 x PP 1's logits (within 1e-5) and the same generated text.
final class LayoutTests: XCTestCase {
    /// A GPT-style config with biases, and a Llama-style one with GQA (4 heads, 2 groups).
    static let gpt = ModelConfig(vocabSize: 301, hiddenSize: 32, numLayers: 4, numHeads: 4, ffnSize: 64, maxPositions: 64, activation: .geluTanh)
    static let llama = ModelConfig(vocabSize: 301, hiddenSize: 32, numLayers: 5, numHeads: 4, numKVHeads: 2, ffnSize: 48, maxPositions: 64,
                                   norm: .rmsnorm, activation: .swiglu, positions: .rope, tiedEmbeddings: false, linearBias: false)

    func compare(_ config: ModelConfig, _ layout: ParallelLayout, microBatches: Int? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let ckpt = CanonicalCheckpoint.random(config: config, seed: 9, std: 0.2)
        let ref = DecoderModel(weights: try DecoderWeights(ckpt))
        let eng = try ShardedEngine(ckpt, layout: layout, microBatches: microBatches)
        let seqs = [[1, 5, 9, 200, 300, 7], [3], [4, 4, 4, 8]]
        let want = try ref.forward(tokens: seqs, caches: seqs.map { _ in try ref.makeSequenceCache(capacity: nil) }, logits: .all)
        let caches = try seqs.map { _ in try eng.makeSequenceCache(capacity: nil) }
        let got = try eng.forward(tokens: seqs, caches: caches, logits: .all)
        XCTAssertEqual(got.shape, want.shape, file: file, line: line)
        let err = zip(got.data, want.data).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(err, 1e-5, "\(layout): max |logit - TP1xPP1| = \(err)", file: file, line: line)
        // incremental decode on the sharded caches equals recompute
        let step = try eng.forward(tokens: [[11], [12], [13]], caches: caches, logits: .last)
        let full = try ref.forward(tokens: zip(seqs, [11, 12, 13]).map { $0 + [$1] }, caches: seqs.map { _ in try ref.makeSequenceCache(capacity: nil) }, logits: .last)
        let err2 = zip(step.data, full.data).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(err2, 1e-5, "\(layout): decode vs recompute \(err2)", file: file, line: line)
        // seeded sampling gives the same tokens under every layout
        let req = GenerationRequest(prompt: [1, 2, 3], maxTokens: 12, sampling: SamplingParams(temperature: 0.9, topK: 50, topP: 0.95, seed: 77))
        XCTAssertEqual(try Generator(model: eng).generate([req]), try Generator(model: ref).generate([req]), "\(layout): sampled tokens", file: file, line: line)
    }

    func testGPTLayouts() throws {
        for (tp, pp) in [(1, 1), (2, 1), (4, 1), (1, 2), (1, 3), (2, 2), (4, 2)] {
            try compare(Self.gpt, ParallelLayout(tp: tp, pp: pp))
        }
    }

    func testLlamaGQALayoutsAndUnevenStages() throws {
        for (tp, pp) in [(2, 1), (1, 2), (2, 3)] { try compare(Self.llama, ParallelLayout(tp: tp, pp: pp)) }
        try compare(Self.llama, ParallelLayout(tp: 2, pp: 2, layersPerStage: [1, 4]))
        try compare(Self.llama, ParallelLayout(tp: 1, pp: 3, layersPerStage: [3, 1, 1]), microBatches: 3)
    }

    /// The layout's vocabulary padding reaches the engine's shards: Megatron's 128 x TP rows (zero
    /// padding, dropped from the logits) give the same logits as padding to a multiple of TP only.
    func testMegatronVocabPaddingGivesTheSameLogits() throws {
        try compare(Self.gpt, ParallelLayout(tp: 2, pp: 2, vocab: .megatronDefault))
        let e = try ShardedEngine(.random(config: Self.gpt), layout: ParallelLayout(tp: 2, vocab: .megatronDefault))
        XCTAssertEqual(e.ranks[0].weights.paddedVocab, 512)
    }

    /// A rank that fails (here: stage 0 rejects a token) makes the whole forward throw, nothing hangs,
    /// and the engine works afterwards.
    func testFailingRankThrowsAndEngineRecovers() throws {
        let ckpt = CanonicalCheckpoint.random(config: Self.gpt, seed: 3)
        let eng = try ShardedEngine(ckpt, layout: ParallelLayout(tp: 2, pp: 2), timeout: 5)
        XCTAssertThrowsError(try eng.forward(tokens: [[1, 999]], caches: [eng.makeSequenceCache(capacity: nil)], logits: .last)) { e in
            XCTAssertTrue("\(e)".contains("token id 999 is outside the vocabulary"), "\(e)")
        }
        let ref = DecoderModel(weights: try DecoderWeights(ckpt))
        let a = try eng.forward(tokens: [[1, 2]], caches: [eng.makeSequenceCache(capacity: nil)], logits: .last)
        let b = try ref.forward(tokens: [[1, 2]], caches: [ref.makeCache()], logits: .last)
        XCTAssertLessThan(zip(a.data, b.data).map { abs($0 - $1) }.max()!, 1e-5)
    }

    /// The vocab-parallel log-softmax (vocabulary 301 over 4 ranks: padding columns on the last rank)
    /// equals log-softmax over the full TP 1 logits, and the greedy flags agree.
    func testVocabParallelScoresEqualFullLogSoftmax() throws {
        let ckpt = CanonicalCheckpoint.random(config: Self.gpt, seed: 11, std: 0.3)
        let ref = DecoderModel(weights: try DecoderWeights(ckpt))
        let seqs = [[1, 5, 9, 200, 300], [3, 4]]
        let full = try ref.forward(tokens: seqs, caches: seqs.map { _ in try ref.makeCache() }, logits: .all)
        let row1 = Array(full.data[301..<602])
        let greedyTarget = row1.firstIndex(of: row1.max()!)!          // one target is the argmax
        let targets = [[5, greedyTarget, 200, 300, 7], [4, 17]]
        for layout in [ParallelLayout(tp: 1, pp: 1), ParallelLayout(tp: 4, pp: 1), ParallelLayout(tp: 2, pp: 2)] {
            let eng = try ShardedEngine(ckpt, layout: layout)
            let sc = try eng.forward(tokens: seqs, caches: seqs.map { _ in try eng.makeSequenceCache(capacity: nil) }, logits: .scores(targets: targets))
            XCTAssertEqual(sc.shape, [7, 3])
            XCTAssertEqual(sc.data[1 * 3 + 2], 1, "\(layout): the argmax target is greedy")
            for (r, t) in targets.flatMap({ $0 }).enumerated() {
                let row = Array(full.data[(r * 301)..<((r + 1) * 301)])
                let m = Double(row.max()!)
                let lse = m + log(row.reduce(0.0) { $0 + exp(Double($1) - m) })
                XCTAssertEqual(Double(sc.data[r * 3]) + Double(sc.data[r * 3 + 1]), Double(row[t]) - lse, accuracy: 1e-5, "\(layout) row \(r)")
                XCTAssertEqual(sc.data[r * 3 + 2] == 1, row.firstIndex(of: row.max()!) == t, "\(layout) row \(r) greedy")
            }
        }
    }

    func testBadLayoutsAreClearErrors() {
        XCTAssertThrowsError(try ShardedEngine(.random(config: Self.gpt), layout: ParallelLayout(tp: 3, pp: 1))) { e in
            XCTAssertTrue("\(e)".contains("does not divide the 4 attention heads"), "\(e)")
        }
        XCTAssertThrowsError(try ShardedEngine(.random(config: Self.gpt), layout: ParallelLayout(tp: 1, pp: 5))) { e in
            XCTAssertTrue("\(e)".contains("larger than the model's 4 layers"), "\(e)")
        }
        XCTAssertThrowsError(try ShardedEngine(.random(config: Self.llama), layout: ParallelLayout(tp: 4, pp: 1))) { e in
            XCTAssertTrue("\(e)".contains("query groups"), "\(e)")
        }
        XCTAssertThrowsError(try ShardedEngine(.random(config: Self.gpt), layout: ParallelLayout(tp: 2, dp: 2))) { e in
            XCTAssertEqual("\(e)", "an engine runs one replica; got TP 2 x PP 1 x DP 2, expected DP 1")
        }
    }
}
