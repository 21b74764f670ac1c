import XCTest
import TestSupport
import Foundation
@testable import Training
@testable import Checkpoints
import Model
import TensorCore

/// Backward and AdamW against PyTorch (scripts/fixtures_training.py), GPT-2 and Llama, the whole batch of 2 in one
/// micro-batch at TP 1 x PP 1, no clipping: first-step gradients of every tensor within 1e-4 relative (max |diff| /
/// max |grad|), 20 losses within 1e-4 relative. (ParallelTrainingTests covers the `micro_` runs at other layouts.)
final class DecoderTrainingTests: XCTestCase {
    static let fixtures = Paths.fixture()

    func testGPT2GradientsAndLossesMatchPyTorch() throws { try check(model: "gpt2-tiny-rand", prefix: "") }

    /// RMSNorm, RoPE, SwiGLU, grouped-query attention, untied head.
    func testLlamaGradientsAndLossesMatchPyTorch() throws { try check(model: "llama-tiny-rand", prefix: "llama_") }

    func check(model: String, prefix: String) throws {
        let exp = try TrainingReference.load(Self.fixtures.appendingPathComponent("training/\(prefix)expected.json"))
        XCTAssertEqual(exp.microBatches(step: 0).count, 1, "one micro-batch of the whole batch")
        XCTAssertEqual(exp.clip_grad ?? 0, 0)
        let ckpt = try HFAdapter.load(Self.fixtures.appendingPathComponent("models/\(model)"))
        let canon = ParameterLayout(config: ckpt.config)
        let ref = try SafetensorsFile(url: Self.fixtures.appendingPathComponent("training/\(prefix)first_step_grads.safetensors"))
        var grads: [String: [Float]] = [:]
        for e in canon.entries { grads[e.name] = try ref.tensor(e.name).data }
        let state = TrainerState(params: try canon.flatten(ckpt), adam: AdamW(layout: canon, config: AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)), step: 0)
        let r = try XCTUnwrap(try exp.replay(InProcessTraining(config: ckpt.config), from: state, reference: grads))
        XCTAssertLessThan(r.worstGradient.relative, 1e-4, "worst gradient: \(r.worstGradient)")
        XCTAssertLessThan(r.worstLoss, 1e-4, "losses \(r.losses) vs \(exp.losses)")
        XCTAssertLessThan(exp.losses.last!, exp.losses.first!)
        print("\(model) first-step gradients: worst relative error \(r.worstGradient.relative) (\(r.worstGradient.name)); 20 losses worst relative error \(r.worstLoss)")
    }
}
