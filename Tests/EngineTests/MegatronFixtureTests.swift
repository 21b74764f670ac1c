import XCTest
import TestSupport
import Foundation
@testable import Engine
@testable import Checkpoints
import Model
import TensorCore

/// The loader's oracle: every Megatron / DeepSpeed folder in ../shared/fixtures/checkpoints, run at a
/// different engine layout than it was saved at, reproduces transformers' logits (expected.safetensors)
/// within 1e-4 and its continuation log-prob sums within 1e-4.
final class MegatronFixtureTests: XCTestCase {
    struct Expected: Decodable {
        struct Cont: Decodable { let context_length: Int; let logprob_sum: Double; let is_greedy: Bool }
        struct Seq: Decodable { let ids: [Int]; let logits_key: String; let logits_bf16_key: String; let continuation: Cont?; let continuation_bf16: Cont? }
        struct Ckpt: Decodable { let tp: Int; let pp: Int; let dtype: String }
        let sequences: [Seq]; let checkpoints: [String: Ckpt]
    }

    /// The shared fixtures' folder, expected.json and expected.safetensors (transformers' logits); skips when absent.
    func oracle() throws -> (root: URL, expected: Expected, logits: SafetensorsFile) {
        let root = sharedData().deletingLastPathComponent().appendingPathComponent("fixtures/checkpoints")
        let expURL = root.appendingPathComponent("expected.json")
        guard FileManager.default.fileExists(atPath: expURL.path) else { throw XCTSkip("shared fixtures not found: \(expURL.path)") }
        return (root, try JSONDecoder().decode(Expected.self, from: Data(contentsOf: expURL)),
                try SafetensorsFile(url: root.appendingPathComponent("expected.safetensors")))
    }

    func testEveryFolderAtAnotherLayout() throws {
        let (root, exp, ref) = try oracle()
        let layouts = [(1, 1), (2, 1), (1, 2), (2, 2), (4, 1), (1, 4), (4, 2)]
        for (k, name) in exp.checkpoints.keys.sorted().enumerated() {
            let info = exp.checkpoints[name]!
            // the fixture model has no tokenizer; its 1000-token vocabulary plays the tokenizer's size
            let ckpt = try CheckpointLoader.load(root.appendingPathComponent(name), options: LoadOptions(vocabSize: 1000))
            XCTAssertEqual(ckpt.config.vocabSize, 1000, name)
            var (tp, pp) = layouts[k % layouts.count]
            if tp == info.tp && pp == info.pp { (tp, pp) = layouts[(k + 1) % layouts.count] }
            let engine = try ShardedEngine(ckpt, layout: ParallelLayout(tp: tp, pp: pp))
            let bf16 = info.dtype == "bfloat16"
            var worst: Float = 0
            for s in exp.sequences {
                let want = try ref.tensor(bf16 ? s.logits_bf16_key : s.logits_key)
                let got = try engine.forward(tokens: [s.ids], caches: [engine.makeSequenceCache(capacity: nil)], logits: .all)
                XCTAssertEqual(got.shape, want.shape, name)
                worst = max(worst, zip(got.data, want.data).map { abs($0 - $1) }.max()!)
                if let c = bf16 ? s.continuation_bf16 : s.continuation {
                    let r = try Scorer(model: engine).loglikelihood([.init(context: Array(s.ids[..<c.context_length]), continuation: Array(s.ids[c.context_length...]))])[0]
                    XCTAssertEqual(r.logprob, c.logprob_sum, accuracy: 1e-4, "\(name): continuation sum")
                    XCTAssertEqual(r.isGreedy, c.is_greedy, "\(name): is_greedy")
                }
            }
            XCTAssertLessThan(worst, 1e-4, "\(name) at TP \(tp) x PP \(pp): max |logit - HF| = \(worst)")
            print("\(name) (saved TP \(info.tp) x PP \(info.pp)) run at TP \(tp) x PP \(pp): max |logit - HF| = \(worst)")
        }
    }

    /// The megatron-core torch_dist fixture (Tests/Fixtures/torch_dist, saved by megatron-core at TP 2 x PP 2)
    /// run at TP 1 and at TP 2 x PP 2 reproduces transformers' logits within 1e-4.
    func testTorchDistAtTP1AndTP2PP2() throws {
        let (_, exp, ref) = try oracle()
        let dir = Paths.fixture("torch_dist/mcore-tp2-pp2")
        let ckpt = try CheckpointLoader.load(dir, options: LoadOptions(vocabSize: 1000))
        for (tp, pp) in [(1, 1), (2, 2)] {
            let engine = try ShardedEngine(ckpt, layout: ParallelLayout(tp: tp, pp: pp))
            let worst = try worstLogitError(engine, exp.sequences.map { ($0.ids, $0.logits_key) }, ref, "torch_dist")
            XCTAssertLessThan(worst, 1e-4, "torch_dist at TP \(tp) x PP \(pp): max |logit - HF| = \(worst)")
            print("torch_dist (saved TP 2 x PP 2) run at TP \(tp) x PP \(pp): max |logit - HF| = \(worst)")
        }
    }
}

/// The largest |logit - reference| of `engine` over sequences (token ids, name of their reference logits
/// in `ref`), each forwarded alone with logits at every position; shapes are asserted to agree.
func worstLogitError(_ engine: CausalLM, _ seqs: [(ids: [Int], key: String)], _ ref: SafetensorsFile, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) throws -> Float {
    var worst: Float = 0
    for s in seqs {
        let want = try ref.tensor(s.key)
        let got = try engine.forward(tokens: [s.ids], caches: [engine.makeSequenceCache(capacity: nil)], logits: .all)
        XCTAssertEqual(got.shape, want.shape, what, file: file, line: line)
        worst = max(worst, zip(got.data, want.data).map { abs($0 - $1) }.max()!)
    }
    return worst
}
