// Non-finite logits stop scoring and generation naming the request (class 4); a continuation longer
// than the model's positions is scored as lm-eval scores it, with a warning giving the count (class 6).
// Weights here are finite (the load would refuse others) but overflow to inf/NaN in the forward pass.

import XCTest
import Foundation
@testable import Evaluation
@testable import Engine
import Model
import TensorCore

final class HostileScoringTests: XCTestCase {
    static let config = ModelConfig(vocabSize: 60, hiddenSize: 16, numLayers: 2, numHeads: 2, maxPositions: 8)

    func overflowing() throws -> DecoderModel {
        var ck = CanonicalCheckpoint.random(config: Self.config, seed: 4, std: 0.3)
        for k in ck.tensors.keys where k.hasSuffix("fc1.weight") || k.hasSuffix("fc2.weight") {
            ck.tensors[k]!.data = ck.tensors[k]!.data.map { $0 * 3e30 }   // finite weights, products overflow to inf
        }
        return DecoderModel(weights: try DecoderWeights(ck))
    }

    func testNonFiniteLogitsStopScoringAndGenerationNamingTheRequest() throws {
        let model = try overflowing()
        let reqs = [LoglikelihoodRequest(context: [1, 2], continuation: [3]), LoglikelihoodRequest(context: [4], continuation: [5, 6])]
        XCTAssertThrowsError(try Scorer(model: model).loglikelihood(reqs)) { e in
            XCTAssertTrue("\(e)".hasPrefix("request 0: the log-likelihood is ") && "\(e)".hasSuffix("the model's logits hold NaN or infinite values (non-finite weights or activations)"), "\(e)")
        }
        XCTAssertThrowsError(try Generator(model: model).generate([GenerationRequest(prompt: [1, 2], maxTokens: 3)])) { e in
            XCTAssertEqual("\(e)", "generation request 0: the model's logits hold NaN or infinite values after 0 generated tokens (non-finite weights or activations)")
        }
    }

    func testLongContinuationsAreScoredAsLMEvalDoesWithAWarning() throws {
        let model = DecoderModel(weights: try DecoderWeights(.random(config: Self.config, seed: 4, std: 0.3)))
        var warnings: [String] = []
        let saved = EngineWarnings.handler; EngineWarnings.handler = { warnings.append($0) }; defer { EngineWarnings.handler = saved }
        let long = LoglikelihoodRequest(context: [1], continuation: Array(2..<14))   // 12 tokens, 8 positions
        let r = try Scorer(model: model).loglikelihood([LoglikelihoodRequest(context: [1], continuation: [2]), long])
        XCTAssertEqual(warnings, ["1 request(s) have a continuation longer than the model's 8 positions; as lm-eval does, only its last 8 tokens are scored (request 1: 4 tokens not scored)"])
        // the number is lm-eval's: the last 8 tokens conditioned on the 1 before them
        let tail = try Scorer(model: model).loglikelihood([LoglikelihoodRequest(context: [5], continuation: Array(6..<14))])
        XCTAssertEqual(r[1].logprob, tail[0].logprob)
        warnings = []
        _ = try Scorer(model: model).loglikelihood([LoglikelihoodRequest(context: Array(1..<20), continuation: [2, 3])])
        XCTAssertEqual(warnings, [], "a long context is cut as usual, silently")
    }
}
