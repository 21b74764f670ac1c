// Every tokenizer kind against the libraries that made it (scripts/fixtures_tokenizers_kinds.py): sentencepiece
// BPE and unigram, HF tokenizer.json (Llama-2 in both spellings, Llama-3, Unigram + normalizer Sequence,
// WordPiece) and tiktoken, on a 210 KB mixed corpus: ids identical line by line and for the whole file, and decode
// byte-identical to the library's own decode.

import Foundation
import XCTest
import Tasks
@testable import Tokenizers

final class KindsFixtureTests: XCTestCase {
    struct Expected {
        var lineIds: [[Int]]
        var wholeIds: [Int]
        var lineDecodes: [[UInt8]]
        var wholeDecode: [UInt8]
    }

    static func kindsDir() -> String { (TestData.fixturesDir as NSString).appendingPathComponent("kinds") }

    static func bz2(_ name: String) throws -> Data {
        let p = (kindsDir() as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: p) else {
            XCTFail("fixture missing: \(p) (run scripts/fixtures_tokenizers_kinds.py)")
            throw XCTSkip("fixture missing: \(p)")
        }
        return try BZip2.decompress(Data(contentsOf: URL(fileURLWithPath: p)), file: p)
    }

    static func corpus() throws -> (lines: [String], whole: String) {
        let data = try bz2("corpus.txt.bz2")
        // split on the byte (a Swift Character "\r\n" is one grapheme, not a "\n")
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        return (lines, String(decoding: data, as: UTF8.self))
    }

    static func expected(_ kind: String, lines: Int) throws -> Expected {
        let b = [UInt8](try bz2(kind + ".expected.bz2"))
        var pos = 0
        func varint() throws -> Int {
            var v = 0, shift = 0
            while true {
                guard pos < b.count, shift < 63 else { throw TokenizerError.invalidFormat("\(kind).expected: truncated varint at \(pos)") }
                let x = b[pos]; pos += 1
                v |= Int(x & 0x7F) << shift
                if x & 0x80 == 0 { return v }
                shift += 7
            }
        }
        func ids() throws -> [Int] { let n = try varint(); return try (0..<n).map { _ in try varint() } }
        func bytes() throws -> [UInt8] {
            let n = try varint()
            guard n <= b.count - pos else { throw TokenizerError.invalidFormat("\(kind).expected: truncated text at \(pos)") }
            defer { pos += n }
            return Array(b[pos..<(pos + n)])
        }
        let li = try (0..<lines).map { _ in try ids() }
        let w = try ids()
        let ld = try (0..<lines).map { _ in try bytes() }
        let wd = try bytes()
        XCTAssertEqual(pos, b.count, "\(kind).expected: trailing bytes")
        return Expected(lineIds: li, wholeIds: w, lineDecodes: ld, wholeDecode: wd)
    }

    static func load(_ kind: String) throws -> Tokenizer {
        let d = (kindsDir() as NSString).appendingPathComponent(kind)
        return try TokenizerLoader.load(path: d).tokenizer
    }

    func check(_ kind: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (lines, whole) = try KindsFixtureTests.corpus()
        let exp = try KindsFixtureTests.expected(kind, lines: lines.count)
        let tok = try KindsFixtureTests.load(kind)
        var bad = 0, badDecode = 0
        for (i, text) in lines.enumerated() {
            let ids = tok.encode(text, addSpecialTokens: true)
            if ids != exp.lineIds[i] {
                bad += 1
                if bad <= 3 {
                    let k = zip(ids, exp.lineIds[i]).prefix { $0 == $1 }.count
                    XCTFail("\(kind) line \(i + 1): ids differ from token \(k): got \(Array(ids[k...].prefix(8))), expected \(Array(exp.lineIds[i][k...].prefix(8))) in \(text.debugDescription.prefix(200))", file: file, line: line)
                }
            }
            let d = Array(tok.decode(exp.lineIds[i]).utf8)
            if d != exp.lineDecodes[i] {
                badDecode += 1
                if badDecode <= 3 {
                    XCTFail("\(kind) line \(i + 1): decode differs: got \(String(decoding: d, as: UTF8.self).debugDescription.prefix(200)), expected \(String(decoding: exp.lineDecodes[i], as: UTF8.self).debugDescription.prefix(200))", file: file, line: line)
                }
            }
        }
        XCTAssertEqual(bad, 0, "\(kind): \(bad) of \(lines.count) lines differ", file: file, line: line)
        XCTAssertEqual(badDecode, 0, "\(kind): \(badDecode) of \(lines.count) decodes differ", file: file, line: line)
        let w = tok.encode(whole, addSpecialTokens: false)
        if w != exp.wholeIds {
            let k = zip(w, exp.wholeIds).prefix { $0 == $1 }.count
            XCTFail("\(kind) whole file: \(w.count) ids, expected \(exp.wholeIds.count); first difference at token \(k)", file: file, line: line)
        }
        XCTAssertEqual(Array(tok.decode(exp.wholeIds).utf8), exp.wholeDecode, "\(kind) whole-file decode", file: file, line: line)
    }

    func testSentencePieceBPE() throws { try check("sp_bpe") }
    func testSentencePieceUnigramNFKC() throws { try check("sp_unigram") }
    func testHFLlama2Metaspace() throws { try check("hf_llama2") }
    func testHFLlama2PrependReplace() throws { try check("hf_llama2_legacy") }
    func testHFLlama3SplitByteLevel() throws { try check("hf_llama3") }
    func testHFUnigramNormalizerSequence() throws { try check("hf_unigram_seq") }
    func testHFWordPiece() throws { try check("hf_wordpiece") }
    func testHFPrecompiledUnigram() throws { try check("hf_precompiled") }
    func testTiktoken() throws { try check("tiktoken") }
}
