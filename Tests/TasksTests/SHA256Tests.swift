// SHA256 against FIPS 180-4's examples, Python hashlib on byte patterns around the padding boundaries
// (55/56/64 bytes and their next blocks), and the sha256 column of ../shared/data/SOURCES.md.

import XCTest
import Foundation
@testable import Tasks

final class SHA256Tests: XCTestCase {
    func testFIPSExamples() {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(Data(repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// hashlib.sha256(bytes((i*7+3) % 256 for i in range(n))).hexdigest()
    static let hashlib: [Int: String] = [
        1: "084fed08b978af4d7d196a7446a86b58009e636b611db16211b65a9aadff29c5",
        55: "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b",
        56: "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27",
        63: "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055",
        64: "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241",
        65: "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e",
        119: "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e",
        120: "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5",
        127: "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07",
        128: "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6",
        1000: "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371",
    ]

    func testPaddingBoundariesAndPieces() {
        for (n, want) in Self.hashlib {
            let bytes = Data((0..<n).map { UInt8(($0 * 7 + 3) % 256) })
            XCTAssertEqual(SHA256.hex(bytes), want, "\(n) bytes in one piece")
            for piece in [1, 13, 64, 100] {                     // the same bytes fed in pieces
                var s = SHA256()
                var i = 0
                while i < n { s.update(bytes[i..<min(n, i + piece)]); i += piece }
                XCTAssertEqual(s.finalize().map { String(format: "%02x", $0) }.joined(), want, "\(n) bytes in pieces of \(piece)")
            }
        }
    }

    func testSharedDataFilesMatchSOURCES() throws {
        let shared = DownloaderTests.sharedData
        let pins = [("lambada/lambada_test.jsonl", "4aa8d02cd17c719165fc8a7887fddd641f43fcafa4b1c806ca8abc31fabdb226"),
                    ("piqa/valid.jsonl", "93503cc97c679e459b065c3d13e848282e44b2a25213985bed3e5d458abef72d"),
                    ("piqa/valid-labels.lst", "b4192dc3a2a0363d9d60ccf79800cbbe2f32ebb17726efdde6970e0b8131bceb")]
        guard FileManager.default.fileExists(atPath: shared.appendingPathComponent(pins[0].0).path) else { throw XCTSkip("../shared/data absent") }
        for (f, want) in pins { XCTAssertEqual(try SHA256.hex(file: shared.appendingPathComponent(f).path), want, f) }
    }
}
