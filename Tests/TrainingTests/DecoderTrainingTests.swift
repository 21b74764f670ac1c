import XCTest
import Foundation
@testable import Training
@testable import Checkpoints
import Model
import TensorCore

/// Backward and AdamW against PyTorch (scripts/fixtures_training.py), GPT-2 and Llama: first-step gradients of every
/// tensor within 1e-4 relative (max |diff| / max |grad|), 20 losses within 1e-4 relative.
final class DecoderTrainingTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Expected: Decodable { let B: Int; let T: Int; let mask: [[Bool]]; let batches: [[[Int]]]; let losses: [Double] }

    func testGPT2GradientsAndLossesMatchPyTorch() throws { try check(model: "gpt2-tiny-rand", prefix: "") }

    /// RMSNorm, RoPE, SwiGLU, grouped-query attention, untied head.
    func testLlamaGradientsAndLossesMatchPyTorch() throws { try check(model: "llama-tiny-rand", prefix: "llama_") }

    func check(model: String, prefix: String) throws {
        let exp = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("training/\(prefix)expected.json")))
        let ckpt = try HFAdapter.load(Self.fixtures.appendingPathComponent("models/\(model)"))
        let trainer = try DecoderTraining(config: ckpt.config)
        var params = try trainer.layout.flatten(ckpt)
        var grads = [Float](repeating: 0, count: params.count)
        var opt = AdamW(layout: trainer.layout, config: AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1))
        let ref = try SafetensorsFile(url: Self.fixtures.appendingPathComponent("training/\(prefix)first_step_grads.safetensors"))
        for (step, ids) in exp.batches.enumerated() {
            let batch = TrainingBatch(inputs: ids.map { Array($0.dropLast()) }, targets: ids.map { Array($0.dropFirst()) }, mask: exp.mask)
            let loss = try trainer.lossAndGradients(params: params, grads: &grads, batch: batch)
            XCTAssertEqual(Double(loss), exp.losses[step], accuracy: 1e-4 * abs(exp.losses[step]), "loss at step \(step)")
            if step == 0 {
                var worst = ("", Float(0))
                let global = grads.map(abs).max()!
                for e in trainer.layout.entries {
                    let want = try ref.tensor(e.name)
                    let got = Array(grads[e.offset..<(e.offset + e.count)])
                    if e.name.hasSuffix("attn.k.bias") {
                        // analytically zero (a key bias adds the same q.b to every score of a row): both sides are rounding noise
                        XCTAssertLessThan(got.map(abs).max()!, 1e-5 * global, e.name)
                        continue
                    }
                    let scale = want.data.map(abs).max()!
                    let rel = zip(got, want.data).map { abs($0 - $1) }.max()! / max(scale, 1e-12)
                    if rel > worst.1 { worst = (e.name, rel) }
                }
                XCTAssertLessThan(worst.1, 1e-4, "worst gradient: \(worst.0) relative error \(worst.1)")
                print("\(model) first-step gradients: worst relative error \(worst.1) (\(worst.0))")
            }
            opt.update(params: &params, grads: grads, lr: 1e-3)
        }
        XCTAssertLessThan(exp.losses.last!, exp.losses.first!)
    }

}
