// llama.cpp's GPT-2 tokenizer cases (ggml-vocab-gpt-2.gguf.inp/.out): inputs separated by
// "\n__ggml_vocab_test__\n", expected ids space-separated one line per input. Every case must match exactly.

import XCTest
@testable import Tokenizers

final class GPT2LlamaCppCasesTests: XCTestCase {
    func testAllLlamaCppCasesMatch() throws {
        let inp = try TestData.shared("gpt2_tokenizer/ggml-vocab-gpt-2.gguf.inp")
        let outp = try TestData.shared("gpt2_tokenizer/ggml-vocab-gpt-2.gguf.out")
        let tok = try TestData.gpt2()
        let inputs = try String(contentsOfFile: inp, encoding: .utf8).components(separatedBy: "\n__ggml_vocab_test__\n")
        let outputs = try String(contentsOfFile: outp, encoding: .utf8).components(separatedBy: "\n")
        // The input file ends with a separator and the output file with a newline: one trailing empty piece each.
        XCTAssertEqual(inputs.last, ""); XCTAssertEqual(outputs.last, "")
        XCTAssertEqual(inputs.count, outputs.count)
        let n = min(inputs.count, outputs.count) - 1
        XCTAssertEqual(n, 46)
        var failures = 0
        for k in 0..<n {
            let expected = outputs[k].split(separator: " ").compactMap { Int($0) }
            let got = tok.encode(inputs[k])
            if got != expected { failures += 1 }
            XCTAssertEqual(got, expected, "case \(k): \(inputs[k].debugDescription)")
            XCTAssertEqual(Array(tok.decode(got).utf8), Array(inputs[k].utf8), "round trip case \(k)")
        }
        XCTAssertEqual(failures, 0)
    }

    func testSpecialTokenMetadata() throws {
        let tok = try TestData.gpt2()
        XCTAssertEqual(tok.vocabSize, 50257)
        XCTAssertEqual(tok.eosToken, 50256)
        XCTAssertEqual(tok.bosToken, 50256)
        XCTAssertEqual(tok.mergeCount, 50000)
        XCTAssertEqual(tok.tokenString(18435), "ĠHello")
        XCTAssertEqual(tok.tokenID("ĠHello"), 18435)
        XCTAssertEqual(tok.tokenString(50256), "<|endoftext|>")
        XCTAssertEqual(tok.tokenBytes(220), [0x20])
        XCTAssertNil(tok.tokenString(50257))
        XCTAssertEqual(tok.encode("a<|endoftext|>b"), [64, 50256, 65])
        XCTAssertEqual(tok.decode([64, 50256, 65]), "a<|endoftext|>b")
        XCTAssertEqual(tok.decode([15496, -1, 99999, 995]), "Hello world")  // unknown ids are skipped
    }
}
