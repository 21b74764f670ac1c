// The evaluator over a dummy LanguageModel: what it asks (the three verbs, the requests' text and
// labels, chunking) and how it turns answers into lm-eval's metrics, with no model or tokenizer at all.

import XCTest
import Foundation
import TestSupport
import Tasks
@testable import Evaluation

/// Answers from fixed rules on the text: log-probability = -(length of the continuation in code points),
/// greedy when the continuation has an even length; rolling log-likelihood = -(bytes of the text);
/// generation = the context reversed.
final class DummyModel: LanguageModel {
    var calls: [String] = []
    var pairs: [TextPair] = []
    private(set) var tokensProcessed = 0

    func loglikelihood(_ requests: [TextPair]) throws -> [LoglikelihoodScore] {
        calls.append("loglikelihood \(requests.count)"); pairs += requests; tokensProcessed += requests.count
        return requests.map { LoglikelihoodScore(logprob: -Double($0.continuation.unicodeScalars.count), isGreedy: $0.continuation.unicodeScalars.count % 2 == 0) }
    }
    func loglikelihoodRolling(_ texts: [String]) throws -> [Double] {
        calls.append("rolling \(texts.count)"); tokensProcessed += texts.count
        return texts.map { -Double($0.utf8.count) }
    }
    func generateUntil(_ requests: [GenerationTask]) throws -> [String] {
        calls.append("generate \(requests.count)"); tokensProcessed += requests.count
        return requests.map { String($0.context.reversed()) }
    }
}

final class EvaluatorTests: XCTestCase {
    func task(_ yaml: String, data: String) throws -> LoadedTask {
        let d = try makeTempDirectory("evaluator")
        try yaml.write(to: d.appendingPathComponent("t.yaml"), atomically: true, encoding: .utf8)
        try data.write(to: d.appendingPathComponent("t.jsonl"), atomically: true, encoding: .utf8)
        return try LoadedTask(spec: TaskSpec.load(named: "t", in: d.path), dataDir: d.path)
    }

    func testMultipleChoiceMetricsFromTheModelsAnswers() throws {
        // choices " ab" (3 scalars, -3) and " abcd" (5, -5): acc picks the first; acc_norm divides by the
        // choice's length: -3/2 = -1.5 vs -5/4 = -1.25, so it picks the second
        let rows = (0..<5).map { i in #"{"q": "question \#(i)", "choices": ["ab", "abcd"], "gold": \#(i % 2)}"# }
        let t = try task("""
            task: t
            output_type: multiple_choice
            data:
              test: {file: t.jsonl}
            test_split: test
            doc_to_text: "{{q}}"
            doc_to_target: gold
            doc_to_choice: choices
            metrics: [acc, acc_norm]
            """, data: rows.joined(separator: "\n") + "\n")
        let m = DummyModel()
        var ev = Evaluator(model: m)
        ev.docsPerChunk = 2
        let r = try ev.evaluate(t, numFewshot: 0, limit: nil)
        XCTAssertEqual(m.calls, ["loglikelihood 4", "loglikelihood 4", "loglikelihood 2"])   // 2 documents x 2 choices per chunk
        XCTAssertEqual(m.pairs.map(\.label).prefix(2), ["t document 0 request 0", "t document 0 request 1"])
        XCTAssertEqual(m.pairs[0].context, "question 0")
        XCTAssertEqual(m.pairs[0].continuation, " ab")
        XCTAssertEqual(r.docs.map(\.prediction), [0, 0, 0, 0, 0])
        XCTAssertEqual(r.docs.map { $0.metrics[.acc] }, [1, 0, 1, 0, 1])
        XCTAssertEqual(r.docs.map { $0.metrics[.accNorm] }, [0, 1, 0, 1, 0])
        XCTAssertEqual(r.metrics.map(\.metric), [.acc, .accNorm])
        XCTAssertEqual(r.metrics[0].value, 0.6, accuracy: 1e-12)
        XCTAssertEqual(r.metrics[1].value, 0.4, accuracy: 1e-12)
        XCTAssertEqual(r.metrics[0].stderr!, (0.6 * 0.4 * 5 / 4 / 5).squareRoot(), accuracy: 1e-12)   // sample stderr of the mean
        XCTAssertEqual(r.tokens, 10)
    }

    func testRollingAndGenerationGoThroughTheirVerbs() throws {
        let texts = ["one two three", "four five"]
        let rolling = try task("""
            task: t
            output_type: loglikelihood_rolling
            data:
              test: {file: t.jsonl}
            test_split: test
            doc_to_text: ""
            doc_to_target: "{{text}}"
            metrics: [word_perplexity, byte_perplexity, bits_per_byte]
            """, data: texts.map { #"{"text": "\#($0)"}"# }.joined(separator: "\n") + "\n")
        let m = DummyModel()
        let r = try Evaluator(model: m).evaluate(rolling, numFewshot: 0, limit: nil)
        XCTAssertEqual(m.calls, ["rolling 2"])
        let ll = -Double(13 + 9), words = 5.0, bytes = 22.0
        let got = Dictionary(uniqueKeysWithValues: r.metrics.map { ($0.metric, $0.value) })
        XCTAssertEqual(got[.wordPerplexity]!, exp(-ll / words), accuracy: 1e-9)
        XCTAssertEqual(got[.bytePerplexity]!, exp(-ll / bytes), accuracy: 1e-9)
        XCTAssertEqual(got[.bitsPerByte]!, -ll / bytes / log(2.0), accuracy: 1e-9)

        let gen = try task("""
            task: t
            output_type: generate_until
            data:
              test: {file: t.jsonl}
            test_split: test
            doc_to_text: "{{q}}"
            doc_to_target: "{{a}}"
            generation_kwargs:
              until: ["\\n"]
              max_gen_toks: 4
            metrics: [exact_match]
            """, data: #"{"q": "abc", "a": "cba"}"# + "\n" + #"{"q": "xy", "a": "no"}"# + "\n")
        let g = DummyModel()
        let rg = try Evaluator(model: g).evaluate(gen, numFewshot: 0, limit: nil)
        XCTAssertEqual(g.calls, ["generate 2"])
        XCTAssertEqual(rg.docs.map(\.generated), ["cba", "yx"])
        XCTAssertEqual(rg.docs.map { $0.metrics[.exactMatch] }, [1, 0])
    }
}
