// Training and inference run one decoder core: the training loss of a batch (in-process TP 2 x PP 2
// ranks, before the optimizer step) equals minus the mean of the Scorer's token log-likelihoods of
// the same tokens (ShardedEngine at TP 2 x PP 2), for the GPT-2 and Llama families.

import XCTest
import TestSupport
import Foundation
@testable import Training
@testable import Checkpoints
import Engine
import Model
import TensorCore

final class LossEqualsScorerTests: XCTestCase {
    func check(_ model: String) throws {
        let ckpt = try HFAdapter.load(Paths.fixture("models/\(model)"))
        let c = ckpt.config
        var rng = SplitMix64(seed: 11)
        let T = min(24, c.maxPositions)
        let seqs = (0..<3).map { _ in (0...T).map { _ in Int(rng.next() % UInt64(c.vocabSize)) } }
        let batch = TrainingBatch(inputs: seqs.map { Array($0[0..<T]) }, targets: seqs.map { Array($0[1...T]) })

        let canon = ParameterLayout(config: c)
        let state = TrainerState(params: try canon.flatten(ckpt), adam: AdamW(layout: canon, config: AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0)), step: 0)
        let ex = try InProcessTraining(config: c, grid: ParallelLayout(tp: 2, pp: 2))
        try ex.load(state)
        let loss = try ex.step(micro: [batch], lr: 0, clip: 0).loss

        let engine = try ShardedEngine(ckpt, layout: ParallelLayout(tp: 2, pp: 2))
        let results = try Scorer(model: engine).loglikelihood(seqs.map { LoglikelihoodRequest(context: [$0[0]], continuation: Array($0[1...T])) })
        let lps = results.flatMap(\.tokenLogprobs)
        XCTAssertEqual(lps.count, 3 * T)
        let mean = -lps.reduce(0, +) / Double(lps.count)
        XCTAssertGreaterThan(mean, 1, "a random model's loss is far from 0")
        XCTAssertEqual(Double(loss), mean, accuracy: 2e-6 * mean, "\(model): training loss \(loss), scorer \(mean)")
        print("\(model): training loss \(loss), minus the scorer's mean token log-likelihood \(mean)")
    }

    func testGPT2LossEqualsScorer() throws { try check("gpt2-tiny-rand") }
    func testLlamaLossEqualsScorer() throws { try check("llama-tiny-rand") }
}
