// TokenizerLoader (folder/file discovery, Megatron args), refusals naming the field, the protobuf reader on hostile
// bytes, and the hand-written split matchers against ICU's regex engine on the mixed corpus.

import Foundation
import XCTest
@testable import Tokenizers

final class TokenizerLoaderTests: XCTestCase {
    var kinds: String { KindsFixtureTests.kindsDir() }
    func kind(_ k: String) -> String { (kinds as NSString).appendingPathComponent(k) }

    func testFolderAndFileGiveTheSameTokenizerKind() throws {
        let cases: [(String, String, Tokenizer.Type)] = [
            ("sp_bpe", "tokenizer.model", SentencePieceTokenizer.self), ("sp_unigram", "tokenizer.model", SentencePieceTokenizer.self),
            ("hf_llama2", "tokenizer.json", HFTokenizer.self), ("hf_llama3", "tokenizer.json", HFTokenizer.self),
            ("hf_wordpiece", "tokenizer.json", HFTokenizer.self), ("tiktoken", "tokenizer.tiktoken", TiktokenTokenizer.self)]
        for (k, file, type) in cases {
            let a = try TokenizerLoader.load(path: kind(k)), b = try TokenizerLoader.load(path: (kind(k) as NSString).appendingPathComponent(file))
            XCTAssertTrue(Swift.type(of: a.tokenizer) == type, "\(k): \(a.description)")
            XCTAssertEqual(a.tokenizer.encode("Hello <s> world 123"), b.tokenizer.encode("Hello <s> world 123"), k)
        }
    }

    func testHFLlamaFolderAddsBOSAndKnowsItsSpecialTokens() throws {
        let t = try TokenizerLoader.load(path: kind("hf_llama2")).tokenizer
        XCTAssertEqual(t.bosToken, 1)
        XCTAssertEqual(t.eosToken, 2)
        XCTAssertEqual(t.encode("Hi", addSpecialTokens: true).first, 1)
        XCTAssertNotEqual(t.encode("Hi", addSpecialTokens: false).first, 1)
    }

    func testMegatronArgsChooseTheTokenizer() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("turing-tokargs-\(getpid())")
        let ckpt = tmp.appendingPathComponent("ckpt")
        try FileManager.default.createDirectory(at: ckpt, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        // the saved path is from the training machine; the file sits beside the checkpoint
        try FileManager.default.copyItem(atPath: (kind("sp_bpe") as NSString).appendingPathComponent("tokenizer.model"),
                                         toPath: tmp.appendingPathComponent("llama.model").path)
        let args = MegatronTokenizerArgs(fields: [("tokenizer_type", "Llama2Tokenizer"), ("tokenizer_model", "/train/data/llama.model")])
        let found = try XCTUnwrap(TokenizerLoader.find(besideCheckpoint: ckpt.path, megatronArgs: args))
        let sp = try XCTUnwrap(found.tokenizer as? SentencePieceTokenizer)
        XCTAssertTrue(sp.addBOS, "Megatron's Llama2Tokenizer adds BOS")
        XCTAssertTrue(found.description.contains("Llama2Tokenizer"), found.description)
        let gpt = MegatronTokenizerArgs(tokenizerType: "GPTSentencePieceTokenizer", tokenizerModel: "/x/llama.model")
        XCTAssertFalse(try XCTUnwrap(TokenizerLoader.find(besideCheckpoint: ckpt.path, megatronArgs: gpt)?.tokenizer as? SentencePieceTokenizer).addBOS)
        let missing = MegatronTokenizerArgs(tokenizerType: "SentencePieceTokenizer", tokenizerModel: "/nowhere/other.model")
        XCTAssertThrowsError(try TokenizerLoader.find(besideCheckpoint: ckpt.path, megatronArgs: missing)) { e in
            XCTAssertTrue("\(e)".contains("tokenizer_model /nowhere/other.model"), "\(e)")
        }
        // args that name the type but leave the file empty: the folder is searched as without args
        try FileManager.default.copyItem(atPath: (kind("hf_llama2") as NSString).appendingPathComponent("tokenizer.json"), toPath: ckpt.appendingPathComponent("tokenizer.json").path)
        let empty = MegatronTokenizerArgs(tokenizerType: "GPT2BPETokenizer")
        XCTAssertTrue(try TokenizerLoader.find(besideCheckpoint: ckpt.path, megatronArgs: empty)?.tokenizer is HFTokenizer)
        XCTAssertThrowsError(try TokenizerLoader.find(besideCheckpoint: ckpt.path, megatronArgs: MegatronTokenizerArgs(tokenizerType: "BertWordPieceCase"))) { e in
            XCTAssertTrue("\(e)".contains("BertWordPieceCase"), "\(e)")
        }
    }

    func testBPEDropoutIsRefusedNamingTheField() throws {
        var j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: (kind("hf_llama2") as NSString).appendingPathComponent("tokenizer.json")))) as! [String: Any]
        var m = j["model"] as! [String: Any]
        m["dropout"] = 0.1
        j["model"] = m
        XCTAssertThrowsError(try HFTokenizer(data: JSONSerialization.data(withJSONObject: j))) { e in
            XCTAssertTrue("\(e)".contains("dropout"), "\(e)")
        }
        j["normalizer"] = ["type": "NoSuchNormalizer"]
        XCTAssertThrowsError(try HFTokenizer(data: JSONSerialization.data(withJSONObject: j))) { e in
            XCTAssertTrue("\(e)".contains("normalizer.type NoSuchNormalizer"), "\(e)")
        }
    }

    func testHostileModelProtoBytesGiveTypedErrors() throws {
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: (kind("sp_bpe") as NSString).appendingPathComponent("tokenizer.model"))))
        _ = try SentencePieceModel(bytes: good, source: "ok")
        for cut in [1, 2, 7, 100, good.count / 2, good.count - 1] {
            XCTAssertThrowsError(try SentencePieceModel(bytes: Array(good.prefix(cut)), source: "cut\(cut)"), "truncated at \(cut)") { e in
                XCTAssertTrue(e is TokenizerError, "\(e)")
            }
        }
        XCTAssertThrowsError(try SentencePieceModel(bytes: [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], source: "huge")) { e in
            XCTAssertTrue("\(e)".contains("runs past the end"), "\(e)")
        }
        XCTAssertThrowsError(try SentencePieceModel(bytes: [0x0B], source: "group")) { e in XCTAssertTrue(e is TokenizerError, "\(e)") }
        // seeded random corruption never traps
        var state: UInt64 = 0x9E3779B97F4A7C15
        for _ in 0..<200 {
            var b = good
            for _ in 0..<8 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                b[Int(state >> 33) % b.count] = UInt8(truncatingIfNeeded: state >> 17)
            }
            if let m = try? SentencePieceModel(bytes: b, source: "fuzz"), let t = try? SentencePieceTokenizer(model: m) {
                _ = t.decode(t.encode("fuzz ▁ test 123 日本"))
            }
        }
    }

    func testHandWrittenSplittersAgreeWithICU() throws {
        let (lines, _) = try KindsFixtureTests.corpus()
        for regex in [SplitPatterns.llama3, SplitPatterns.qwen2, SplitPatterns.gpt2, #"\s+"#, " {2,}"] {
            let fast = try SplitPatterns.make(regex: regex), icu = try SplitPatterns.make(regex: regex, generic: true)
            XCTAssertTrue(icu is ICUPattern)
            XCTAssertFalse(fast is ICUPattern)
            var bad = 0
            for l in lines {
                let b = Array(l.utf8)
                let x = b.withUnsafeBufferPointer { fast.matches($0) }, y = b.withUnsafeBufferPointer { icu.matches($0) }
                if x.map({ [$0.0, $0.1] }) != y.map({ [$0.0, $0.1] }) {
                    bad += 1
                    if bad <= 2 { XCTFail("\(regex.prefix(20))…: \(l.debugDescription.prefix(120)): hand \(x.prefix(12)) vs ICU \(y.prefix(12))") }
                }
            }
            XCTAssertEqual(bad, 0, "\(regex.prefix(30)): \(bad) of \(lines.count) lines split differently")
        }
    }
}
