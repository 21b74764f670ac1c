// Llama2cTokenizer vs an independent Python re-implementation of llama2.c run.c encode() over tok512.bin
// (fixture llama2c_ids.json); decode round trips; tokenizer.bin format errors.

import Foundation
import XCTest
@testable import Tokenizers

final class Llama2cTokenizerTests: XCTestCase {
    private func tok512() throws -> Llama2cTokenizer {
        try Llama2cTokenizer(path: try TestData.shared("models/stories260K/tok512.bin"))
    }

    func testFileLayout() throws {
        let tok = try tok512()
        XCTAssertEqual(tok.vocabSize, 512)
        XCTAssertEqual(tok.tokenString(0), "<unk>")
        XCTAssertEqual(tok.tokenString(1), "\n<s>\n")
        XCTAssertEqual(tok.tokenString(2), "\n</s>\n")
        XCTAssertEqual(tok.tokenString(3), "<0x00>")
        XCTAssertEqual(tok.tokenString(3 + 0x41), "<0x41>")
        XCTAssertEqual(tok.bosToken, 1); XCTAssertEqual(tok.eosToken, 2)
        // Limiting the count (llama2.c takes vocab_size from the model header) reads only that many tokens.
        let data = try Data(contentsOf: URL(fileURLWithPath: try TestData.shared("models/stories260K/tok512.bin")))
        XCTAssertEqual(try Llama2cTokenizer(data: data, vocabSize: 300).vocabSize, 300)
        XCTAssertThrowsError(try Llama2cTokenizer(data: data, vocabSize: 600))
    }

    func testEncodeMatchesReferenceImplementation() throws {
        let tok = try tok512()
        let root = try XCTUnwrap(try TestData.json(try TestData.fixture("llama2c_ids.json")) as? [String: Any])
        XCTAssertEqual(root["vocab_size"] as? Int, 512)
        let rows = try XCTUnwrap(root["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(rows.count, 10)
        for r in rows {
            let text = try XCTUnwrap(r["text"] as? String)
            let ids = try XCTUnwrap(r["ids"] as? [Int])
            let idsEOS = try XCTUnwrap(r["ids_eos"] as? [Int])
            XCTAssertEqual(tok.encode(text), ids, text.debugDescription)
            XCTAssertEqual(tok.encode(text, bos: true, eos: true), idsEOS, text.debugDescription)
            // llama2.c decode strips the dummy-prefix space after BOS, so the text comes back exactly.
            XCTAssertEqual(Array(tok.decode(ids).utf8), Array(text.utf8), "round trip \(text.debugDescription)")
        }
        XCTAssertEqual(tok.encode("Once upon a time").first, 1)
        XCTAssertEqual(tok.encode("", bos: false, eos: false), [])
    }

    func testByteFallbackAndDecodePieces() throws {
        let tok = try tok512()
        // A character missing from the 512-token vocab falls back to its UTF-8 bytes (id = byte + 3).
        let ids = tok.encode("日", bos: false, eos: false)
        XCTAssertEqual(Array(ids.suffix(3)), [0xE6 + 3, 0x97 + 3, 0xA5 + 3])
        XCTAssertEqual(tok.decodePiece(prev: 5, token: 0xE6 + 3), [0xE6])
        XCTAssertEqual(tok.decodeBytes(Array(ids.suffix(3))), Array("日".utf8))
        // Without BOS the dummy prefix survives decoding, as in llama2.c.
        XCTAssertEqual(tok.decode(tok.encode("Once", bos: false, eos: false)), " Once")
        XCTAssertEqual(Llama2cTokenizer.parseBytePiece(Array("<0x0A>".utf8)[...]), 0x0A)
        XCTAssertNil(Llama2cTokenizer.parseBytePiece(Array("<0xZZ>".utf8)[...]))
    }

    func testHeapMergeEqualsQuadraticLoop() throws {
        let tok = try tok512()
        let shakes = try String(contentsOfFile: try TestData.shared("tinyshakespeare/input.txt"), encoding: .utf8)
        var texts = [String(shakes.prefix(3000)), "aaaaaaaaaaaaaaaa", "  \n\n  x  ", "The the the. THE"]
        let alphabet = Array("abe th\n.,'日😀Lily".unicodeScalars)
        for _ in 0..<100 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0..<60) { s.append(alphabet.randomElement()!) }
            texts.append(String(s))
        }
        for t in texts {
            XCTAssertEqual(tok.encode(t, bos: true, eos: false), tok.encodeQuadratic(t, bos: true, eos: false), t.debugDescription)
            XCTAssertEqual(tok.encode(t, bos: false, eos: true), tok.encodeQuadratic(t, bos: false, eos: true), t.debugDescription)
        }
    }

    func testMalformedFilesThrow() {
        XCTAssertThrowsError(try Llama2cTokenizer(path: "/nonexistent/tok.bin")) { e in
            XCTAssertEqual(e as? TokenizerError, .fileNotFound("/nonexistent/tok.bin"))
        }
        XCTAssertThrowsError(try Llama2cTokenizer(data: Data([1, 0]))) { XCTAssertTrue($0 is TokenizerError) }
        // One token whose declared length runs past the end of the data.
        var d = Data([16, 0, 0, 0]); d.append(contentsOf: [0, 0, 0, 0, 9, 0, 0, 0, 0x41])
        XCTAssertThrowsError(try Llama2cTokenizer(data: d)) { XCTAssertTrue($0 is TokenizerError) }
    }
}
