// Loader error paths (typed errors, no traps), round trips on adversarial strings, UTF8StreamDecoder.

import Foundation
import XCTest
@testable import Tokenizers

final class TokenizerMiscTests: XCTestCase {
    func testLoaderErrors() throws {
        XCTAssertThrowsError(try GPT2Tokenizer(vocabFile: "/nonexistent/v.json", mergesFile: "/nonexistent/m.txt")) {
            XCTAssertEqual($0 as? TokenizerError, .fileNotFound("/nonexistent/v.json"))
        }
        XCTAssertThrowsError(try GPT2Tokenizer(vocab: ["a": 0, "b": 1], merges: [("a", "b")])) {
            XCTAssertEqual($0 as? TokenizerError, .tokenNotInVocab("ab"))
        }
        XCTAssertThrowsError(try GPT2Tokenizer(tokenizerJSONData: Data("{".utf8))) {
            guard case .invalidJSON = $0 as? TokenizerError else { return XCTFail("\($0)") }
        }
        let wordPiece = #"{"model":{"type":"WordPiece","vocab":{}},"pre_tokenizer":{"type":"ByteLevel"}}"#
        XCTAssertThrowsError(try GPT2Tokenizer(tokenizerJSONData: Data(wordPiece.utf8))) {
            guard case .unsupported = $0 as? TokenizerError else { return XCTFail("\($0)") }
        }
        let badMerge = #"{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b c"]},"pre_tokenizer":{"type":"ByteLevel"}}"#
        XCTAssertThrowsError(try GPT2Tokenizer(tokenizerJSONData: Data(badMerge.utf8))) {
            guard case .invalidFormat = $0 as? TokenizerError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try GPT2Tokenizer.parseMergesTxt(Data("#version: 0.2\na b c\n".utf8), source: "m")) {
            guard case .invalidFormat = $0 as? TokenizerError else { return XCTFail("\($0)") }
        }
    }

    func testToyVocabMergeOrder() throws {
        // Ranks decide: "b c" (rank 0) beats "a b" (rank 1), so "abc" -> a, bc.
        var vocab: [String: Int] = [:]
        for (i, c) in ["a", "b", "c", "ab", "bc"].enumerated() { vocab[c] = i }
        let tok = try GPT2Tokenizer(vocab: vocab, merges: [("b", "c"), ("a", "b")])
        XCTAssertEqual(tok.encode("abc"), [0, 4])
        XCTAssertEqual(tok.encode("abab"), [3, 3])
        XCTAssertEqual(tok.encode("ax"), [0])          // bytes missing from the vocab are dropped, as in HF
        XCTAssertEqual(tok.vocabSize, 5)
        XCTAssertNil(tok.eosToken)
    }

    func testRoundTripAdversarialStrings() throws {
        let tok = try TestData.gpt2()
        var strings = ["", "\u{0}", "\r\n\r\n", String(repeating: " ", count: 1000), String(repeating: "ab", count: 2000),
                       "👩‍👩‍👧‍👦🏳️‍🌈", "\u{212B}\u{00C5}A\u{030A}", "\u{10FFFF}\u{E000}", "<|endoftext|><|endoftext"]
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("ab 'sé日😀\n\t\u{301}1.<|endoftext|>".unicodeScalars)
        for _ in 0..<200 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0..<40, using: &rng) { s.append(alphabet.randomElement(using: &rng)!) }
            strings.append(String(s))
        }
        for s in strings {
            let ids = tok.encode(s)
            XCTAssertEqual(Array(tok.decode(ids).utf8), Array(s.utf8), s.debugDescription)
            XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < tok.vocabSize })
        }
        // Canonically equivalent strings stay distinct (the word cache compares bytes, not Strings).
        XCTAssertNotEqual(tok.encode("\u{212B}"), tok.encode("\u{00C5}"))
        XCTAssertEqual(tok.decodeBytes(tok.encode("\u{212B}")), Array("\u{212B}".utf8))
    }

    func testConcurrentEncodesAgree() throws {
        let tok = try TestData.gpt2()
        let texts = (0..<16).map { "thread \($0): Once upon a time 日本 🦙 \(String(repeating: "x", count: $0 * 7)) <|endoftext|>" }
        let expected = texts.map { tok.encode($0) }
        tok.clearCache()
        var results = [[Int]](repeating: [], count: texts.count * 8)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: results.count) { i in
            let ids = tok.encode(texts[i % texts.count])
            lock.lock(); results[i] = ids; lock.unlock()
        }
        for (i, r) in results.enumerated() { XCTAssertEqual(r, expected[i % texts.count]) }
    }

    func testStreamDecoderNeverSplitsCharacters() throws {
        let tok = try TestData.gpt2()
        let text = "Cửa Việt 🦙 日本語 ok"
        var dec = UTF8StreamDecoder()
        var out = ""
        var sawPartial = false
        for id in tok.encode(text) {
            let piece = dec.push(tok.decodeBytes([id]))
            if piece.isEmpty { sawPartial = true }
            XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"))
            out += piece
        }
        out += dec.finish()
        XCTAssertEqual(out, text)
        XCTAssertTrue(sawPartial, "expected some tokens to end mid-character")
        var d2 = UTF8StreamDecoder()
        XCTAssertEqual(d2.push([0xE6, 0x97]), "")
        XCTAssertEqual(d2.finish(), "\u{FFFD}")
    }
}
