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
    func makeSequenceCache(capacity: Int?) -> SequenceCache { inner.makeSequenceCache(capacity: capacity) }
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
}
