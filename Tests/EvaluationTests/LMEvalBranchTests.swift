// lm-eval 0.4.13's TemplateLM.loglikelihood and _encode_pair, branch by branch, against what lm-eval
// itself did (Tests/Fixtures/lmeval/branches.json, scripts/fixtures_lmeval_branches.py, the demo model
// as HF GPT-2): the same context and continuation ids, the same log-likelihood (float32 summation
// error) and is_greedy; where lm-eval raised, Turing refuses with a typed error. Needs no ../shared.

import XCTest
import Foundation
@testable import Evaluation
import Engine
import Checkpoints
import Model
import Tokenizers

final class LMEvalBranchTests: XCTestCase {
    struct Case: Decodable {
        let context: String, continuation: String, prefix_token_id: Int
        let context_enc: [Int]?, continuation_enc: [Int]?
        let logprob: Double?, is_greedy: Bool?, error: String?
    }
    struct File: Decodable { let cases: [Case] }

    func testEveryBranchMatchesLMEval() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let fixture = try JSONDecoder().decode(File.self, from: Data(contentsOf: repo.appendingPathComponent("Tests/Fixtures/lmeval/branches.json")))
        let ckpt = repo.appendingPathComponent("checkpoints/demo")
        let tok = try GPT2Tokenizer(vocabFile: ckpt.appendingPathComponent("vocab.json").path, mergesFile: ckpt.appendingPathComponent("merges.txt").path)
        let model = DecoderModel(weights: try DecoderWeights(try TuringFormat.load(ckpt).checkpoint))
        let prefix = try prefixToken(tok, model.config)
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 11)
        var scored = 0, refused = 0
        for c in fixture.cases {
            XCTAssertEqual(prefix, c.prefix_token_id)
            let what = "context \(c.context.debugDescription), continuation \(c.continuation.debugDescription)"
            if c.error != nil {
                XCTAssertThrowsError(try lmEvalEncodePair(tok, c.context, c.continuation, prefix: prefix), what) { e in
                    XCTAssertTrue(e is EvaluationError, "\(what): \(e)")
                }
                refused += 1
                continue
            }
            let (ctx, cont) = try lmEvalEncodePair(tok, c.context, c.continuation, prefix: prefix)
            XCTAssertEqual(ctx, c.context_enc, what); XCTAssertEqual(cont, c.continuation_enc, what)
            let r = try Scorer(model: model).loglikelihood([LoglikelihoodRequest(context: ctx, continuation: cont)])[0]
            XCTAssertEqual(r.logprob, c.logprob!, accuracy: 2e-6 * abs(c.logprob!), what)
            XCTAssertEqual(r.isGreedy, c.is_greedy!, what)
            scored += 1
        }
        XCTAssertEqual(scored, 7); XCTAssertEqual(refused, 4)
    }

    /// Python's str.isspace (what rstrip strips), not Swift's White_Space: U+001C..U+001F move too,
    /// U+200B (zero width space) does not.
    func testTrailingWhitespaceIsPythonsIsspace() throws {
        final class Chars: Tokenizer {   // one id per code point: shows exactly what moved
            var vocabSize: Int { 0x11000 }
            var bosToken: Int? { nil }
            var eosToken: Int? { 0 }
            func encode(_ s: String) -> [Int] { s.unicodeScalars.map { Int($0.value) } }
            func decodeBytes(_ ids: [Int]) -> [UInt8] { [] }
            func tokenString(_ id: Int) -> String? { nil }
            func tokenID(_ token: String) -> Int? { nil }
        }
        let t = Chars()
        XCTAssertEqual(try lmEvalEncodePair(t, "a\u{1C}\u{1F}", "b", prefix: 0).0, [0x61])
        XCTAssertEqual(try lmEvalEncodePair(t, "a\u{200B}", "b", prefix: 0).0, [0x61, 0x200B])
        XCTAssertEqual(try lmEvalEncodePair(t, "a\u{3000} ", "b", prefix: 0).1, [0x3000, 0x20, 0x62])
    }
}
