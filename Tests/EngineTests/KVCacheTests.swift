import XCTest
@testable import Engine
@testable import Checkpoints
@testable import Model
import TensorCore

final class KVCacheTests: XCTestCase {
    func loadStories() throws -> DecoderModel {
        let bin = sharedData().appendingPathComponent("models/stories260K/stories260K.bin")
        guard FileManager.default.fileExists(atPath: bin.path) else { throw XCTSkip("shared data not found: \(bin.path)") }
        return DecoderModel(weights: try DecoderWeights(try Llama2cAdapter.load(bin)))
    }

    /// Token-by-token decode, chunked prefill and one full forward give the same logits.
    func testIncrementalDecodeEqualsFullRecompute() throws {
        let model = try loadStories()
        var rng = TuringRNG(seed: 7)
        let ids = (0..<40).map { _ in Int(rng.nextU32() % 512) }
        let full = try model.forward(tokens: [ids], caches: [KVCache(config: model.config)], logits: .all)
        let inc = try KVCache(config: model.config)
        var maxErr: Float = 0
        // chunks of 1, 5, then 1-token steps
        var pos = 0
        for chunk in [1, 5] + Array(repeating: 1, count: 34) {
            let out = try model.forward(tokens: [Array(ids[pos..<(pos + chunk)])], caches: [inc], logits: .all)
            for r in 0..<chunk { for v in 0..<512 {
                maxErr = max(maxErr, abs(out.data[r * 512 + v] - full.data[(pos + r) * 512 + v])) } }
            pos += chunk
        }
        XCTAssertEqual(pos, 40)
        XCTAssertLessThan(maxErr, 1e-4, "max |incremental - full| = \(maxErr)")
    }

    /// Sequences stacked in one forward give the same logits as each alone; forks branch correctly.
    func testBatchedAndForkedEqualSingle() throws {
        let model = try loadStories()
        let a = [1, 400, 20, 33, 7, 90], b = [1, 5, 6]
        let alone = try model.forward(tokens: [a], caches: [KVCache(config: model.config)], logits: .last)
        let both = try model.forward(tokens: [b, a], caches: [KVCache(config: model.config), KVCache(config: model.config)], logits: .last)
        let rowA = Array(both.data[512..<1024])
        XCTAssertEqual(zip(rowA, alone.data).map { abs($0 - $1) }.max()!, 0, accuracy: 1e-5)
        let base = try KVCache(config: model.config)
        _ = try model.forward(tokens: [Array(a[..<3])], caches: [base], logits: .none)
        let fork = try base.fork()
        let branched = try model.forward(tokens: [Array(a[3...])], caches: [fork], logits: .last)
        XCTAssertEqual(zip(branched.data, alone.data).map { abs($0 - $1) }.max()!, 0, accuracy: 1e-5)
        XCTAssertEqual(base.length, 3)
    }

    /// The layers over groups of sequences (`microBatchTokens`) give the bits of the whole batch: logits of
    /// every row and of the last, caches after, with sequences that add no rows between the others.
    func testMicroBatchesGiveTheWholeBatchsBits() throws {
        XCTAssertEqual(DecoderModel.microBatches(counts: [600, 0, 600], tokens: 512), [0..<2, 2..<3])
        XCTAssertEqual(DecoderModel.microBatches(counts: [0, 600, 3, 4], tokens: 512), [0..<2, 2..<4])
        XCTAssertEqual(DecoderModel.microBatches(counts: [5, 5, 5], tokens: 10), [0..<2, 2..<3])
        XCTAssertEqual(DecoderModel.microBatches(counts: [5, 5, 5], tokens: 512), [0..<3])
        // rotary positions: the layers see each row's position
        let config = ModelConfig(vocabSize: 97, hiddenSize: 32, numLayers: 2, numHeads: 4, numKVHeads: 2, ffnSize: 48, maxPositions: 64,
                                 norm: .rmsnorm, activation: .swiglu, positions: .rope, tiedEmbeddings: false, linearBias: false)
        let whole = DecoderModel(weights: try DecoderWeights(.random(config: config, seed: 3, std: 0.2)))
        var rng = SplitMix64(seed: 11)
        let prompts = [9, 0, 17, 4, 30].map { n in (0..<n).map { _ in Int(rng.next() % 97) } }
        func run(_ model: DecoderModel) throws -> [[Float]] {
            let caches = try prompts.map { _ in try model.makeCache(capacity: 64) }
            _ = try model.forward(tokens: prompts.map { [3] + $0 }, caches: caches, logits: .none)
            let all = try model.forward(tokens: prompts, caches: caches, logits: .all)
            let last = try model.forward(tokens: prompts.map { Array($0.prefix(1)) }, caches: caches, logits: .last)
            return [all.data, last.data] + caches.map { $0.contents() }
        }
        let reference = try run(whole)
        for tokens in [1, 8, 20, 31] {
            var grouped = whole
            grouped.microBatchTokens = tokens
            XCTAssertEqual(try run(grouped).map { $0.map(\.bitPattern) }, reference.map { $0.map(\.bitPattern) }, "groups of \(tokens) rows")
        }
    }

    /// A bf16 model keeps its keys and values in float16 (half an f32 cache's bytes); one beyond float16's
    /// range is refused with an error naming the layer, sequence and position, never stored as infinite.
    /// A cache the system cannot give (its size overflowing, or more bytes than any machine has) is a thrown
    /// error naming its shape, not a stopped process; so is a fork of a cache into such a capacity.
    func testACacheWithoutMemoryIsAnError() throws {
        for (layers, capacity, why) in [(1 << 20, 1 << 40, "overflows"), (1 << 16, 1 << 30, "no memory")] {
            XCTAssertThrowsError(try KVCache(layers: layers, groups: 8, headDim: 128, capacity: capacity)) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(why) && text.contains("\(layers) layers") && text.contains("\(capacity) positions"), text)
            }
        }
        let small = try KVCache(layers: 2, groups: 1, headDim: 8, capacity: 4)
        XCTAssertThrowsError(try small.fork(keeping: 0, capacity: 1 << 58)) { e in XCTAssertTrue("\(e)".contains("overflows"), "\(e)") }
    }

    func testBF16ModelsCacheFloat16AndRefuseWhatItCannotHold() throws {
        let config = ModelConfig(vocabSize: 50, hiddenSize: 32, numLayers: 2, numHeads: 4, maxPositions: 16)
        let tame = DecoderModel(weights: try DecoderWeights(.random(config: config, seed: 2, std: 0.2), dtype: .bfloat16))
        let cache = try tame.makeCache()
        XCTAssertEqual(cache.storage, .float16)
        XCTAssertEqual(cache.bytes, try DecoderModel(weights: DecoderWeights(.random(config: config, seed: 2, std: 0.2))).makeCache().bytes / 2)
        _ = try tame.forward(tokens: [[1, 2, 3]], caches: [cache], logits: .last)
        // keys and values of magnitude ~ 1e5 x sqrt(32): beyond 65504
        let wild = DecoderModel(weights: try DecoderWeights(.random(config: config, seed: 2, std: 1e5), dtype: .bfloat16))
        let c = try wild.makeCache()
        XCTAssertThrowsError(try wild.forward(tokens: [[1, 2, 3]], caches: [c], logits: .last)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("float16") && text.contains("layer 0") && text.contains("--dtype float32"), text)
        }
    }

    func testScorerMatchesDirectComputation() throws {
        let model = try loadStories()
        let ctx = [1, 400, 20, 33], cont1 = [7, 90, 11], cont2 = [8]
        let res = try Scorer(model: model).loglikelihood([.init(context: ctx, continuation: cont1), .init(context: ctx, continuation: cont2)])
        let full = try model.forward(tokens: [ctx + cont1.dropLast()], caches: [KVCache(config: model.config)], logits: .all)
        var expect = 0.0
        for (k, t) in cont1.enumerated() {
            let row = Array(full.data[((ctx.count - 1 + k) * 512)..<((ctx.count + k) * 512)])
            let m = Double(row.max()!)
            let lse = m + log(row.reduce(0.0) { $0 + exp(Double($1) - m) })
            expect += Double(row[t]) - lse
        }
        XCTAssertEqual(res[0].logprob, expect, accuracy: 1e-4)
        XCTAssertEqual(res[0].tokens, 3); XCTAssertEqual(res[1].tokens, 1)
        XCTAssertLessThan(res[1].logprob, 0)
    }

    func testRollingWindowsMatchLmEval() {
        // Printed by lm-eval 0.4 (pip lm-eval): [make_disjoint_window(w) for w in
        // get_rolling_token_windows(list(range(10)), prefix_token=-1, max_seq_len=4, context_len=1)]
        let w = rollingWindows(Array(0..<10), prefixToken: -1, maxLength: 4)
        XCTAssertEqual(w.map(\.context), [[-1], [3], [5, 6, 7]])
        XCTAssertEqual(w.map(\.continuation), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
        XCTAssertEqual(w.flatMap(\.continuation), Array(0..<10))
    }
}
