import XCTest
import TestSupport
import Foundation
@testable import Checkpoints
import Engine
import Model
import TensorCore

/// --dtype bfloat16 against PyTorch (Tests/Fixtures/bf16/expected.json, scripts/fixtures_bf16.py): on
/// every fixture model, Turing-bf16's largest |log-prob - PyTorch-f32's| over every next token is at most
/// 1.5x PyTorch-bf16's (`model.to(torch.bfloat16)`) against the same f32 reference, and the weights
/// really are held in bf16.
final class BF16FidelityTests: XCTestCase {
    struct Expected: Decodable {
        struct Seq: Decodable { let ids: [Int]; let logprobs_f32: [Double] }
        struct Model: Decodable { let sequences: [Seq]; let yardstick: Double }
        let models: [String: Model]
    }

    func testWithinOneAndAHalfTimesPyTorchBF16() throws {
        let exp = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Paths.fixture("bf16/expected.json")))
        XCTAssertGreaterThanOrEqual(exp.models.count, 3)
        for (name, m) in exp.models.sorted(by: { $0.key < $1.key }) {
            let dir: URL
            if name.hasPrefix("shared:") {
                dir = Paths.sharedCheckpoints.appendingPathComponent(String(name.dropFirst(7)))
                guard FileManager.default.fileExists(atPath: dir.path) else { print("\(name): skipped, \(dir.path) absent"); continue }
            } else {
                dir = Paths.fixture("models/" + name)
            }
            let weights = try DecoderWeights(try HFAdapter.load(dir), dtype: .bfloat16)
            XCTAssertEqual(weights.layers[0].fc2W.dtype, .bfloat16)
            let model = DecoderModel(weights: weights)
            var worst = 0.0, worstF32 = 0.0
            let f32 = DecoderModel(weights: try DecoderWeights(try HFAdapter.load(dir)))
            for s in m.sequences {
                for (engine, isBF16) in [(model, true), (f32, false)] {
                    let logits = try engine.forward(tokens: [s.ids], caches: [engine.makeCache()], logits: .all)
                    let V = engine.config.vocabSize
                    for (i, want) in s.logprobs_f32.enumerated() {
                        let got = logits.data.withUnsafeBufferPointer { b -> Double in
                            let row = b.baseAddress! + i * V
                            return Double(row[s.ids[i + 1]]) - logSumExp(row, count: V)
                        }
                        if isBF16 { worst = max(worst, abs(got - want)) } else { worstF32 = max(worstF32, abs(got - want)) }
                    }
                }
            }
            print(String(format: "%@: Turing-bf16 max |d logprob| %.5f, PyTorch-bf16 %.5f (ratio %.2f); Turing-f32 %.2e", name, worst, m.yardstick, worst / m.yardstick, worstF32))
            XCTAssertLessThanOrEqual(worst, 1.5 * m.yardstick, name)
            XCTAssertGreaterThan(worst, 0, "\(name): bf16 weights changed nothing")
            XCTAssertLessThan(worstF32, 1e-4, name)
        }
    }
}
