// UnicodeNormalForm (quick check + normalization boundaries) against Foundation's normalization of the whole text,
// on seeded random strings dense in what the quick check must not get wrong: combining marks of different classes
// in any order, Hangul jamo that compose, two-part Indic vowels, composition exclusions, compatibility characters,
// invalid UTF-8; the fixtures compare the same code with the Rust library on the 210 KB corpus.

import Foundation
import XCTest
@testable import Tokenizers

final class UnicodeNormalFormTests: XCTestCase {
    static let pool: [UInt32] = [
        0x61, 0x65, 0x41, 0x20, 0x0A, 0x31,                         // ASCII starters (boundaries)
        0x0300, 0x0301, 0x0308, 0x0323, 0x0327, 0x031B, 0x0345, 0x0338, 0x05B0, 0x0F72, 0x0F74, 0x0F71,  // marks, ccc 1..240
        0x00E9, 0x00C5, 0x212B, 0x1E9B, 0x1EA0, 0x00F1,                // precomposed, singleton (Angstrom), long s + dot
        0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x3131,                  // Hangul L V T, LV, LVT, compatibility jamo
        0x0B47, 0x0B3E, 0x0B57, 0x09C7, 0x09BE, 0x0CC6, 0x0CC2, 0x0CD5, 0x0D46, 0x0D3E, 0x1025, 0x102E,  // two-part vowels
        0x0958, 0x0915, 0x093C, 0x2ADC, 0x0344, 0x0F73,                  // composition exclusions and their parts
        0xFB01, 0x2460, 0xFF21, 0x00BD, 0x2126, 0x3300, 0x1D400, 0x00A0, 0x2000, // compatibility
        0x4E2D, 0x1F469, 0x200D, 0x1F4BB, 0xFE0F, 0x1F1EF,              // CJK, emoji + ZWJ + VS16
        0x0627, 0x0653, 0x0654, 0x0655, 0x3099, 0x304B, 0x309A, 0x30CF,  // Arabic hamza, kana voicing
    ]

    func testQuickCheckEqualsFoundationOnTheWholeText() throws {
        var rng = SplitMix(seed: 20261206)
        let forms: [(UnicodeNormalForm, (String) -> String)] = [
            (.nfc, { $0.precomposedStringWithCanonicalMapping }), (.nfd, { $0.decomposedStringWithCanonicalMapping }),
            (.nfkc, { $0.precomposedStringWithCompatibilityMapping }), (.nfkd, { $0.decomposedStringWithCompatibilityMapping }),
        ]
        var checked = 0, changed = 0
        for i in 0..<4000 {
            var b: [UInt8] = []
            for _ in 0..<(1 + Int(rng.next() % 12)) {
                if i % 10 == 0 && rng.next() % 16 == 0 { b.append(0xC3); continue }   // a truncated sequence
                let v = Self.pool[Int(rng.next() % UInt64(Self.pool.count))]
                b += Array(String(Character(Unicode.Scalar(v)!)).utf8)
            }
            for (f, reference) in forms {
                let got = f.normalize(b)
                let want = Array(reference(String(decoding: b, as: UTF8.self)).utf8)
                if got != b { changed += 1 }
                XCTAssertEqual(got, want, "\(f.form) of \(b.map { String(format: "%02X", $0) }.joined(separator: " "))")
                checked += 1
                if got != want { return }
            }
        }
        XCTAssertEqual(checked, 16000)
        XCTAssertGreaterThan(changed, 5000, "the strings must exercise the slow path too")
    }
}

/// SplitMix64 (explicit seed).
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
