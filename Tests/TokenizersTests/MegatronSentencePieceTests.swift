// Megatron-LM's SentencePiece tokenizer types as Turing picks them from saved args, against the ids, special ids and
// detokenize strings of Megatron's own classes (scripts/fixtures_megatron_sp.py: Tests/Fixtures/tokenizers/megatron_sp).

import Foundation
import XCTest
@testable import Tokenizers

final class MegatronSentencePieceTests: XCTestCase {
    func testSavedArgsReproduceMegatronsClasses() throws {
        let cases = try XCTUnwrap(try TestData.json(try TestData.fixture("megatron_sp/expected.json")) as? [[String: Any]])
        XCTAssertEqual(cases.count, 7)
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("turing-megsp-\(getpid())")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        for c in cases {
            let type = try XCTUnwrap(c["tokenizer_type"] as? String), model = try XCTUnwrap(c["model"] as? String)
            let extra = try XCTUnwrap(c["vocab_extra_ids"] as? Int)
            let label = "\(type) \(model) vocab_extra_ids=\(extra)"
            // as the args are saved: a path from the training machine, found by name beside the checkpoint
            let args = MegatronTokenizerArgs(fields: [("tokenizer_type", "'\(type)'"), ("tokenizer_model", "'/train/\(model)'"),
                                                      ("vocab_extra_ids", "\(extra)")])
            let ckpt = tmp.appendingPathComponent(model.replacingOccurrences(of: "/", with: "_"))
            try FileManager.default.createDirectory(at: ckpt, withIntermediateDirectories: true)
            let dst = ckpt.appendingPathComponent((model as NSString).lastPathComponent).path
            if !FileManager.default.fileExists(atPath: dst) { try FileManager.default.copyItem(atPath: try TestData.fixture(model), toPath: dst) }
            let tok = try XCTUnwrap(TokenizerLoader.find(besideCheckpoint: ckpt.path, megatronArgs: args)?.tokenizer, label)
            XCTAssertEqual(tok.vocabSize, c["vocab_size"] as? Int, label)
            XCTAssertEqual(tok.eosToken, c["eod"] as? Int, "\(label): eosToken is Megatron's eod")
            if let m = tok as? MegatronSentencePieceTokenizer {
                XCTAssertEqual(type, "SentencePieceTokenizer")
                XCTAssertEqual([m.cls, m.sep, m.eod, m.mask, m.pad, m.bos, m.eos],
                               ["cls", "sep", "eod", "mask", "pad", "bos", "eos"].map { c[$0] as? Int ?? -2 }, label)
                XCTAssertEqual(m.extraIDs, c["additional_special_tokens_ids"] as? [Int], label)
            } else {
                let sp = try XCTUnwrap(tok as? SentencePieceTokenizer, label)
                XCTAssertNotEqual(type, "SentencePieceTokenizer")
                XCTAssertEqual(sp.bosToken ?? -1, c["bos"] as? Int, label)
                XCTAssertEqual(sp.padToken ?? -1, c["pad"] as? Int, label)
            }
            let texts = try XCTUnwrap(c["texts"] as? [[String: Any]])
            XCTAssertGreaterThan(texts.count, 90)
            var bad = 0
            for (i, t) in texts.enumerated() {
                let text = try XCTUnwrap(t["text"] as? String), ids = try XCTUnwrap(t["ids"] as? [Int])
                let got = tok.encode(text)
                if got != ids { bad += 1; if bad <= 3 { XCTFail("\(label) text \(i) \(text.debugDescription): ids \(got), Megatron \(ids)") } }
                let d = tok.decode(ids)
                if d != t["detokenize"] as? String { bad += 1; if bad <= 3 { XCTFail("\(label) text \(i): decode \(d.debugDescription), Megatron \(String(describing: t["detokenize"]))") } }
            }
            XCTAssertEqual(bad, 0, label)
        }
    }

    func testSpecialStringsSplitAsMegatronDoes() throws {
        let sp = try SentencePieceTokenizer(path: try TestData.fixture("kinds/sp_bpe/tokenizer.model"))
        let t = try MegatronSentencePieceTokenizer(base: sp, vocabExtraIDs: 12)
        XCTAssertEqual(t.vocabSize, sp.vocabSize + 5 + 12)
        XCTAssertEqual(t.encode("<EOD>"), [t.eod])
        XCTAssertEqual(t.encode("a<EOD>b"), sp.encode("a", addSpecialTokens: false) + [t.eod] + sp.encode("b", addSpecialTokens: false))
        XCTAssertEqual(t.encode("<extra_id_10><extra_id_1>"), [t.extraIDs[10], t.extraIDs[1]])
        XCTAssertEqual(t.tokenID("<MASK>"), t.mask)
        XCTAssertEqual(t.tokenString(t.pad), "<PAD>", "no pad piece in the model: Megatron appends <PAD>")
        XCTAssertThrowsError(try MegatronSentencePieceTokenizer(base: sp, vocabExtraIDs: -1)) { e in XCTAssertTrue("\(e)".contains("vocab_extra_ids"), "\(e)") }
    }
}
