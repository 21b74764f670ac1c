import XCTest
import Foundation
@testable import Evaluation
@testable import Engine
import Model
import TensorCore

/// A model that counts the sequences it is asked to run.
final class CountingModel: CausalLM {
    let inner: DecoderModel
    var sequences = 0
    init(_ m: DecoderModel) { inner = m }
    var config: ModelConfig { inner.config }
    func makeSequenceCache(capacity: Int?) throws -> SequenceCache { try inner.makeSequenceCache(capacity: capacity) }
    func forward(tokens: [[Int]], caches: [SequenceCache], logits: LogitRows) throws -> Tensor {
        sequences += tokens.count
        return try inner.forward(tokens: tokens, caches: caches, logits: logits)
    }
}

final class RequestCacheTests: XCTestCase {
    func testInterruptedRunResumesWithIdenticalResults() throws {
        let config = ModelConfig(vocabSize: 60, hiddenSize: 16, numLayers: 2, numHeads: 2, maxPositions: 32)
        let model = DecoderModel(weights: try DecoderWeights(.random(config: config, seed: 4, std: 0.3)))
        let reqs = (0..<12).map { i in LoglikelihoodRequest(context: [1, 2, i % 5 + 3], continuation: [i + 7, (i * 3) % 50 + 1]) }
        let fresh = try Scorer(model: model).loglikelihood(reqs).map { ($0.logprob, $0.isGreedy) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("turing-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        // "interrupted": only the first 5 requests were scored, and the file ends in a torn line
        do {
            let c = try RequestCache(directory: dir, modelHash: "m")
            _ = try c.resolve(Array(reqs[..<5])) { try Scorer(model: model).loglikelihood($0) }
        }
        let file = dir.appendingPathComponent("m.jsonl")
        let h = try FileHandle(forWritingTo: file); h.seekToEndOfFile(); h.write(Data("{\"k\":\"torn".utf8)); try h.close()
        let counting = CountingModel(model)
        let c2 = try RequestCache(directory: dir, modelHash: "m")
        XCTAssertEqual(c2.count, 5)
        let resumed = try c2.resolve(reqs) { try Scorer(model: counting).loglikelihood($0) }
        XCTAssertEqual(c2.hits, 5)
        // batch shapes differ from the fresh run's: equal to float rounding, decisions identical
        for (a, b) in zip(resumed, fresh) { XCTAssertEqual(a.0, b.0, accuracy: 1e-5) }
        XCTAssertEqual(resumed.map(\.1), fresh.map(\.1))
        let before = counting.sequences
        let again = try RequestCache(directory: dir, modelHash: "m").resolve(reqs) { try Scorer(model: counting).loglikelihood($0) }
        XCTAssertEqual(counting.sequences, before, "a complete cache runs no model")
        XCTAssertEqual(again.map(\.0), resumed.map(\.0))      // from disk: bit for bit
    }

    /// A document whose choices are partly cached is rescored whole: one decision never compares bits
    /// from two scoring calls; the rescored bits replace the cached ones on disk.
    func testPartiallyCachedGroupIsRescoredWhole() throws {
        let config = ModelConfig(vocabSize: 60, hiddenSize: 16, numLayers: 2, numHeads: 2, maxPositions: 32)
        let model = DecoderModel(weights: try DecoderWeights(.random(config: config, seed: 4, std: 0.3)))
        let reqs = (0..<6).map { i in LoglikelihoodRequest(context: [1, 2, 3], continuation: [i + 7, i + 9]) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("turing-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        do { _ = try RequestCache(directory: dir, modelHash: "m").resolve([reqs[0], reqs[3]]) { try Scorer(model: model).loglikelihood($0) } }
        let c = try RequestCache(directory: dir, modelHash: "m")
        var asked: [[LoglikelihoodRequest]] = []
        let out = try c.resolve(reqs, groups: [3, 3]) { asked.append($0); return try Scorer(model: model).loglikelihood($0) }
        XCTAssertEqual(asked.count, 1)
        XCTAssertEqual(asked[0].map(\.continuation), reqs.map(\.continuation), "both groups had a request missing: all six scored together")
        XCTAssertEqual(c.hits, 0)
        let fresh = try Scorer(model: model).loglikelihood(reqs)
        XCTAssertEqual(out.map(\.0), fresh.map(\.logprob), "one call: the same bits as an uninterrupted run")
        // a fully cached group is served from disk; groups must cover the requests
        let c2 = try RequestCache(directory: dir, modelHash: "m")
        _ = try c2.resolve(reqs, groups: [3, 3]) { _ in XCTFail("nothing is missing"); return [] }
        XCTAssertEqual(c2.hits, 6)
        XCTAssertThrowsError(try c2.resolve(reqs, groups: [3, 2]) { try Scorer(model: model).loglikelihood($0) })
    }

    /// A torn last line is cut off the file itself, so the next append starts a line of its own.
    func testTornLastLineIsCutFromTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("turing-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("m.jsonl")
        let good = "{\"k\":\"1-1-abc\",\"lp\":\"bff0000000000000\",\"g\":true}\n"
        try Data((good + "{\"k\":\"1-1-de").utf8).write(to: file)
        let c = try RequestCache(directory: dir, modelHash: "m")
        XCTAssertEqual(c.count, 1)
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), good)
    }
}
