import XCTest
import TestSupport
import Foundation
@testable import Engine
@testable import Checkpoints
import Model
import TensorCore

/// Turing against PyTorch/transformers on the tiny HF fixtures written by scripts/fixtures.py:
/// logits within 1e-4, greedy ids identical, lm-eval loglikelihoods and rolling loglikelihood within 1e-4.
final class ReferenceModelTests: XCTestCase {
    static let fixtures = Paths.fixture("models")

    struct Expected: Decodable {
        struct Prompt: Decodable { let ids: [Int]; let logits_tensor: String }
        struct Greedy: Decodable { let prompt_ids: [Int]; let max_new_tokens: Int; let generated_ids: [Int] }
        struct Pair: Decodable { let context_ids: [Int]; let continuation_ids: [Int]; let logprob: Double; let is_greedy: Bool; let token_logprobs: [Double] }
        struct LL: Decodable { let max_length: Int; let pairs: [Pair] }
        struct Rolling: Decodable { let token_ids: [Int]; let prefix_token: Int; let max_seq_len: Int; let total_logprob: Double }
        let prompts: [Prompt]; let greedy: Greedy; let loglikelihood: LL; let loglikelihood_rolling: Rolling
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = Self.fixtures.appendingPathComponent(name)
        let model = DecoderModel(weights: try DecoderWeights(try HFAdapter.load(dir)))
        let exp = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
        let ref = try SafetensorsFile(url: dir.appendingPathComponent("expected_logits.safetensors"))
        var worst: Float = 0
        for p in exp.prompts {
            let want = try ref.tensor(p.logits_tensor)
            let got = try model.forward(tokens: [p.ids], caches: [KVCache(config: model.config)], logits: .all)
            XCTAssertEqual(got.shape, want.shape, file: file, line: line)
            let err = zip(got.data, want.data).map { abs($0 - $1) }.max()!
            worst = max(worst, err)
        }
        XCTAssertLessThan(worst, 1e-4, "\(name): max |logit - torch| = \(worst)", file: file, line: line)
        print("\(name): max |logit - torch| = \(worst)")
        let gen = try Generator(model: model).generate([GenerationRequest(prompt: exp.greedy.prompt_ids, maxTokens: exp.greedy.max_new_tokens)])[0]
        XCTAssertEqual(gen, exp.greedy.generated_ids, "\(name): greedy ids", file: file, line: line)
        let res = try Scorer(model: model).loglikelihood(exp.loglikelihood.pairs.map { .init(context: $0.context_ids, continuation: $0.continuation_ids) })
        for (r, e) in zip(res, exp.loglikelihood.pairs) {
            XCTAssertEqual(r.logprob, e.logprob, accuracy: 1e-4, "\(name): loglikelihood", file: file, line: line)
            XCTAssertEqual(r.isGreedy, e.is_greedy, file: file, line: line)
            XCTAssertEqual(r.tokens, e.token_logprobs.count, file: file, line: line)
        }
        let rolling = exp.loglikelihood_rolling
        XCTAssertEqual(rolling.max_seq_len, model.config.maxPositions)
        let total = try Scorer(model: model).loglikelihoodRolling(rolling.token_ids, prefixToken: rolling.prefix_token)
        XCTAssertEqual(total, rolling.total_logprob, accuracy: 1e-4, "\(name): rolling", file: file, line: line)
    }

    func testGPT2TiedTanh() throws { try check("gpt2-tiny-rand") }
    func testGPT2UntiedErf() throws { try check("gpt2-tiny-erf-untied") }
    func testLlamaGQA() throws { try check("llama-tiny-rand") }
}
