// GPT2PreTokenizer unit tests: the pieces of the GPT-2 regex split, spelled out (independent of any vocab).

import XCTest
@testable import Tokenizers

final class GPT2PreTokenizerTests: XCTestCase {
    private func pieces(_ s: String) -> [String] {
        var pre = GPT2PreTokenizer()
        var ranges: [Int] = []
        let bytes = Array(s.utf8)
        bytes.withUnsafeBufferPointer { b in
            if let base = b.baseAddress { pre.split(base, from: 0, to: b.count, into: &ranges) }
        }
        return stride(from: 0, to: ranges.count, by: 2).map {
            String(decoding: bytes[ranges[$0]..<ranges[$0 + 1]], as: UTF8.self)
        }
    }

    func testWhitespaceGivesBackLastCharacter() {
        XCTAssertEqual(pieces("a   b"), ["a", "  ", " b"])
        XCTAssertEqual(pieces("a\t\tb"), ["a", "\t", "\t", "b"])
        XCTAssertEqual(pieces("x\n\n\n"), ["x", "\n\n\n"])
        XCTAssertEqual(pieces("    Hello\n    Hello"), ["   ", " Hello", "\n   ", " Hello"])
        XCTAssertEqual(pieces(" "), [" "])
        XCTAssertEqual(pieces("a \n b"), ["a", " \n", " b"])
        XCTAssertEqual(pieces("\u{3000}x"), ["\u{3000}", "x"])
    }

    func testContractionsAndClasses() {
        XCTAssertEqual(pieces("I'm they'll we'd"), ["I", "'m", " they", "'ll", " we", "'d"])
        XCTAssertEqual(pieces("I'M"), ["I", "'", "M"])
        XCTAssertEqual(pieces("''s"), ["''", "s"])
        XCTAssertEqual(pieces("abc123 !!?x"), ["abc", "123", " !!?", "x"])
        XCTAssertEqual(pieces("Ⅻ²½"), ["Ⅻ²½"])                       // Nl, No, No are all \p{N}
        XCTAssertEqual(pieces("e\u{301}x"), ["e", "\u{301}", "x"])      // combining mark is not \p{L}
        XCTAssertEqual(pieces("日本 語"), ["日本", " 語"])
        XCTAssertEqual(pieces("fs\u{1C}x"), ["fs", "\u{1C}", "x"])     // U+001C is not White_Space
    }

    func testPiecesTileInput() {
        let s = "Hello,  world!\n\n  I'm 42 🦙🦙 ok\t"
        XCTAssertEqual(pieces(s).joined(), s)
    }
}
