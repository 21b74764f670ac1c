// The helpers behind hellaswag, generate_until and loglikelihood_rolling against lm-eval 0.4.13's own functions
// on edge cases (Tests/Fixtures/lmeval/functions.json, written by scripts/fixtures_lmeval.py): hellaswag's
// preprocess and process_docs, count_words / count_bytes, exact_match_hf_evaluate with its options,
// postprocess_generated_text's stop-string cut; and libbz2 decompression of concatenated streams and of
// corrupt or truncated input (a TaskError naming the file, no trap). Needs no ../shared.

import XCTest
import Foundation
@testable import Evaluation
@testable import Tasks

final class FunctionFixtureTests: XCTestCase {
    struct Fixture: Decodable {
        struct Pre: Decodable { let `in`: String; let out: String }
        struct HDoc: Decodable {
            struct In: Decodable { let activity_label: String; let ctx_a: String; let ctx_b: String; let endings: [String]; let label: String }
            let `in`: In; let query: String; let choices: [String]; let gold: Int
        }
        struct Words: Decodable { let `in`: String; let words: Int; let bytes: Int }
        struct EM: Decodable {
            struct Opts: Decodable { let regexes_to_ignore: [String]?; let ignore_case: Bool?; let ignore_punctuation: Bool? }
            let prediction: String; let reference: String; let options: Opts; let exact_match: Double
        }
        struct Cut: Decodable { let text: String; let stops: [String]; let result: String }
        let hellaswag_preprocess: [Pre]; let hellaswag_docs: [HDoc]; let count_words: [Words]; let exact_match: [EM]; let generate_cut: [Cut]
    }

    static let dir = LMEvalFidelityTests.fixtures.appendingPathComponent("lmeval")
    func fixture() throws -> Fixture {
        try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: Self.dir.appendingPathComponent("functions.json")))
    }

    func testHellaswagPreprocessMatchesLMEval() throws {
        for c in try fixture().hellaswag_preprocess { XCTAssertEqual(hellaswagPreprocess(c.in), c.out, "preprocess(\(c.in.debugDescription))") }
    }

    func testHellaswagProcessDocsMatchesLMEval() throws {
        let f = try fixture()
        let rows = f.hellaswag_docs.enumerated().map { i, d in
            Document(fields: ["activity_label": .string(d.in.activity_label), "ctx_a": .string(d.in.ctx_a), "ctx_b": .string(d.in.ctx_b),
                              "endings": .list(d.in.endings.map { .string($0) }), "label": .string(d.in.label)], origin: "fixture:\(i)")
        }
        for (got, want) in zip(try DataReader.hellaswagDocs(rows), f.hellaswag_docs) {
            XCTAssertEqual(got["query"], .string(want.query))
            XCTAssertEqual(got["choices"], .list(want.choices.map { .string($0) }))
            XCTAssertEqual(got["gold"], .int(want.gold))
        }
    }

    func testWordAndByteCountsMatchLMEval() throws {
        for c in try fixture().count_words {
            XCTAssertEqual(Metrics.wordCount(c.in), c.words, "count_words(\(c.in.debugDescription))")
            XCTAssertEqual(c.in.utf8.count, c.bytes, "count_bytes(\(c.in.debugDescription))")
        }
    }

    func testExactMatchOptionsMatchLMEval() throws {
        let cases = try fixture().exact_match
        XCTAssertTrue(cases.contains { $0.exact_match == 1 } && cases.contains { $0.exact_match == 0 })
        for c in cases {
            let o = ExactMatchOptions(regexesToIgnore: c.options.regexes_to_ignore ?? [], ignoreCase: c.options.ignore_case ?? false,
                                      ignorePunctuation: c.options.ignore_punctuation ?? false)
            XCTAssertEqual(Metrics.exactMatch(c.prediction, c.reference, o), c.exact_match, "\(c.prediction) vs \(c.reference) \(o)")
        }
    }

    func testStopStringCutMatchesLMEval() throws {
        for c in try fixture().generate_cut {
            var t = c.text
            for s in c.stops { t = prefixBefore(t, s) }
            XCTAssertEqual(t, c.result, "\(c.text.debugDescription) cut at \(c.stops)")
        }
    }

    func testBZip2ConcatenatedStreams() throws {
        let data = try Data(contentsOf: Self.dir.appendingPathComponent("two_streams.txt.bz2"))
        XCTAssertEqual(String(decoding: try BZip2.decompress(data, file: "two_streams.txt.bz2"), as: UTF8.self), "first stream\nsecond é\n")
    }

    func testBZip2CorruptAndTruncatedInputAreErrors() throws {
        let data = try Data(contentsOf: Self.dir.appendingPathComponent("two_streams.txt.bz2"))
        var corrupt = data
        corrupt[20] ^= 0xFF
        XCTAssertThrowsError(try BZip2.decompress(corrupt, file: "c.bz2")) { XCTAssertTrue("\($0)".contains("c.bz2"), "\($0)") }
        XCTAssertThrowsError(try BZip2.decompress(data.prefix(30), file: "t.bz2")) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        XCTAssertThrowsError(try BZip2.decompress(Data("plain text".utf8), file: "p.bz2")) { XCTAssertTrue("\($0)".contains("magic"), "\($0)") }
    }
}
