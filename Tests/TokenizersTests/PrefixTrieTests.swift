// PrefixTrie against a brute-force prefix search: random keys over a small alphabet (so they share prefixes, repeat,
// and include the empty key), random queries; every reported (length, id) and its order must match.

import XCTest
@testable import Tokenizers

final class PrefixTrieTests: XCTestCase {
    /// Every stored key that prefixes `q`, shortest first, with the first id stored for it.
    static func bruteForce(_ keys: [[UInt8]], _ q: [UInt8]) -> [[Int]] {
        var out: [[Int]] = []
        for l in 1...max(1, q.count) where l <= q.count {
            if let i = keys.firstIndex(of: Array(q[..<l])) { out.append([l, i]) }
        }
        return out
    }

    func testMatchesBruteForceOnRandomKeys() throws {
        var state: UInt64 = 12345
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        for round in 0..<20 {
            let alphabet: [UInt8] = round % 2 == 0 ? [0, 1, 0x61, 0xE2, 0xFF] : (0...255).map(UInt8.init)
            let count = 1 + Int(next() % 400)
            let keys: [[UInt8]] = (0..<count).map { _ in (0..<Int(next() % 7)).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] } }
            let trie = try PrefixTrie(keys: keys, ids: keys.indices.map { Int32($0) })
            for _ in 0..<300 {
                let q: [UInt8] = (0..<Int(next() % 9)).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
                var got: [[Int]] = []
                q.withUnsafeBufferPointer { b in
                    if let p = b.baseAddress { trie.prefixes(p, b.count) { got.append([$0, $1]) } }
                }
                XCTAssertEqual(got, Self.bruteForce(keys, q), "round \(round), query \(q)")
            }
        }
    }

    func testLargeVocabularyBuildsAndFinds() throws {
        var state: UInt64 = 7
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        let keys: [[UInt8]] = (0..<100_000).map { _ in (0..<(1 + Int(next() % 12))).map { _ in UInt8(next() % 256) } }
        let trie = try PrefixTrie(keys: keys, ids: keys.indices.map { Int32($0) })
        for i in stride(from: 0, to: keys.count, by: 997) {
            var last: (Int, Int)?
            keys[i].withUnsafeBufferPointer { b in trie.prefixes(b.baseAddress!, b.count) { last = ($0, $1) } }
            XCTAssertEqual(last?.0, keys[i].count)
            XCTAssertEqual(last?.1, keys.firstIndex(of: keys[i]))
        }
    }
}
