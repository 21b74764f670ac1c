// GPT-2 ids vs HF GPT2TokenizerFast (fixture from scripts/fixtures_tokenizers.py): full vocab loaded from
// vocab.json/merges.txt and from a tokenizer.json written at runtime; Megatron tiny vocab loaded from its
// vocab/merges files, from HF's saved tokenizer.json (array merges) and from a "a b"-string-merges variant.

import Foundation
import XCTest
@testable import Tokenizers

final class GPT2HFFixtureTests: XCTestCase {
    private func fixtureCases(_ key: String) throws -> [(String, [Int])] {
        let root = try TestData.json(try TestData.fixture("gpt2_hf_ids.json")) as? [String: Any]
        let c = TestData.cases(root?[key])
        XCTAssertGreaterThan(c.count, 60, "fixture \(key) too small")
        return c
    }

    private func check(_ tok: GPT2Tokenizer, _ cases: [(String, [Int])], label: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        var bad = 0
        for (text, ids) in cases {
            let got = tok.encode(text)
            if got != ids {
                bad += 1
                XCTFail("\(label): \(text.prefix(80).debugDescription): got \(got.prefix(40)) want \(ids.prefix(40))", file: file, line: line)
            }
            let back = tok.decode(got)
            XCTAssertEqual(Array(back.utf8), Array(text.utf8), "\(label) round trip: \(text.prefix(80).debugDescription)", file: file, line: line)
        }
        XCTAssertEqual(bad, 0, "\(label): \(bad)/\(cases.count) mismatches", file: file, line: line)
    }

    func testFullVocabMatchesHF() throws {
        let cases = try fixtureCases("gpt2")
        let tok = try TestData.gpt2()
        check(tok, cases, label: "gpt2 cold")
        check(tok, cases, label: "gpt2 cached")   // second pass exercises the word cache
        // The shakespeare chunk is the last case; make sure it is long enough to matter.
        XCTAssertGreaterThan(cases.last?.1.count ?? 0, 1000)
    }

    func testSeededFuzzMatchesHF() throws {
        // 300 random strings mixing ASCII, contractions, <|endoftext|>, 15 kinds of whitespace and ~10k
        // code points from many scripts/categories (those whose category is stable since Unicode 3.2).
        let cases = try fixtureCases("gpt2_fuzz")
        XCTAssertEqual(cases.count, 300)
        check(try TestData.gpt2(), cases, label: "gpt2 fuzz")
    }

    func testFullVocabFromTokenizerJSONWrittenAtRuntime() throws {
        let cases = try fixtureCases("gpt2")
        let vocabPath = try TestData.shared("gpt2_tokenizer/gpt2-vocab.json")
        let mergesPath = try TestData.shared("gpt2_tokenizer/gpt2-merges.txt")
        let vocab = try TestData.json(vocabPath)
        let merges = try GPT2Tokenizer.parseMergesTxt(Data(contentsOf: URL(fileURLWithPath: mergesPath)), source: mergesPath)
        let root: [String: Any] = [
            "version": "1.0", "normalizer": NSNull(),
            "added_tokens": [["id": 50256, "content": "<|endoftext|>", "special": true, "lstrip": false, "rstrip": false]],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "decoder": ["type": "ByteLevel"],
            "model": ["type": "BPE", "dropout": NSNull(), "vocab": vocab, "merges": merges.map { [$0.0, $0.1] }],
        ]
        let data = try JSONSerialization.data(withJSONObject: root)
        let tok = try GPT2Tokenizer(tokenizerJSONData: data)
        XCTAssertEqual(tok.vocabSize, 50257)
        XCTAssertEqual(tok.eosToken, 50256)
        check(tok, cases, label: "gpt2 tokenizer.json")
    }

    func testTinyVocabFilesMatchHF() throws {
        let cases = try fixtureCases("gpt2_tiny")
        let tok = try GPT2Tokenizer(vocabFile: try TestData.shared("megatron_indexed/gpt2-tiny-vocab.json"),
                                    mergesFile: try TestData.shared("megatron_indexed/gpt2-tiny-merges.txt"))
        XCTAssertEqual(tok.vocabSize, 5000)
        XCTAssertEqual(tok.eosToken, 4999)
        check(tok, cases, label: "tiny files")
    }

    func testTinyTokenizerJSONMatchesHF() throws {
        let cases = try fixtureCases("gpt2_tiny")
        let path = try TestData.fixture("gpt2-tiny-tokenizer.json")
        let tok = try GPT2Tokenizer(tokenizerJSON: path)
        XCTAssertEqual(tok.vocabSize, 5000)
        XCTAssertEqual(tok.eosToken, 4999)
        XCTAssertEqual(tok.addedTokens.map(\.content), ["<|endoftext|>"])
        check(tok, cases, label: "tiny tokenizer.json")

        // Same file with merges rewritten as "a b" strings (the older tokenizer.json format).
        var root = try XCTUnwrap(try TestData.json(path) as? [String: Any])
        var model = try XCTUnwrap(root["model"] as? [String: Any])
        let arrays = try XCTUnwrap(model["merges"] as? [[String]])
        XCTAssertEqual(arrays.count, 4743)
        model["merges"] = arrays.map { $0.joined(separator: " ") }
        root["model"] = model
        let tok2 = try GPT2Tokenizer(tokenizerJSONData: JSONSerialization.data(withJSONObject: root))
        XCTAssertEqual(tok2.mergeCount, 4743)
        check(tok2, cases, label: "tiny tokenizer.json string merges")
    }

    func testAddPrefixSpaceOption() throws {
        let path = try TestData.fixture("gpt2-tiny-tokenizer.json")
        var root = try XCTUnwrap(try TestData.json(path) as? [String: Any])
        root["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": true, "use_regex": true]
        let withPrefix = try GPT2Tokenizer(tokenizerJSONData: JSONSerialization.data(withJSONObject: root))
        let plain = try GPT2Tokenizer(tokenizerJSON: path)
        XCTAssertTrue(withPrefix.addPrefixSpace)
        XCTAssertEqual(withPrefix.encode("the cat"), plain.encode(" the cat"))
        XCTAssertEqual(withPrefix.encode(" the cat"), plain.encode(" the cat"))
        XCTAssertNotEqual(plain.encode("the cat"), plain.encode(" the cat"))
    }
}
