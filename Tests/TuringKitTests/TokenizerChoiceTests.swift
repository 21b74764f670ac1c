// ModelSource.findTokenizer on a Megatron save: the saved args (read from one pickle, with --megatron-arg overrides)
// name the tokenizer and win over a tokenizer.json beside the checkpoint; args that leave the file empty, or name one
// found nowhere (a warning), leave the folder's files to decide.

import Foundation
import XCTest
import TestSupport
import Engine
import Tokenizers
@testable import TuringKit

final class TokenizerChoiceTests: XCTestCase {
    func testSavedArgsWinOverAStrayTokenizerJSON() throws {
        let src = Paths.sharedCheckpoints.appendingPathComponent("megatron-legacy-tp1-pp1")
        guard FileManager.default.fileExists(atPath: src.path) else { throw XCTSkip("checkpoint fixture not found at \(src.path)") }
        let kinds = Paths.packageRoot.appendingPathComponent("Tests/Fixtures/tokenizers/kinds")
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("turing-tokchoice-\(getpid())")
        try? FileManager.default.removeItem(at: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let ckpt = tmp.appendingPathComponent("ckpt")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: src, to: ckpt)
        try FileManager.default.copyItem(at: kinds.appendingPathComponent("hf_llama2/tokenizer.json"), to: ckpt.appendingPathComponent("tokenizer.json"))
        try FileManager.default.copyItem(at: kinds.appendingPathComponent("sp_bpe/tokenizer.model"), to: tmp.appendingPathComponent("spm.model"))
        func find(_ overrides: [String]) throws -> Tokenizer? {
            try ModelSource.findTokenizer(tokenizer: nil, vocabFile: nil, mergeFile: nil, besideCheckpoint: ckpt.path, argOverrides: overrides)
        }
        // saved: GPT2BPETokenizer with no vocab_file: the folder's tokenizer.json
        XCTAssertTrue(try find([]) is HFTokenizer)
        // the args name a SentencePiece model (found by name one folder up): it wins over tokenizer.json
        let sp = try XCTUnwrap(try find(["tokenizer_type=SentencePieceTokenizer", "tokenizer_model=/train/spm.model", "vocab_extra_ids=3"])
                               as? MegatronSentencePieceTokenizer)
        XCTAssertEqual(sp.vocabSize, 1200 + 5 + 3)
        XCTAssertEqual(sp.eosToken, sp.eod)
        XCTAssertTrue(try find(["tokenizer_type=Llama2Tokenizer", "tokenizer_model=/train/spm.model"]) is SentencePieceTokenizer)
        // a named file found nowhere: the folder's file, with a warning
        var warnings: [String] = []
        let saved = EngineWarnings.handler
        EngineWarnings.handler = { warnings.append($0) }
        defer { EngineWarnings.handler = saved }
        XCTAssertTrue(try find(["tokenizer_type=SentencePieceTokenizer", "tokenizer_model=/train/gone.model"]) is HFTokenizer)
        XCTAssertTrue(warnings.contains { $0.contains("gone.model") }, "\(warnings)")
    }
}
