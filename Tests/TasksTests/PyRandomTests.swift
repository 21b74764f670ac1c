// PyRandom against CPython 3.11's random.Random (Tests/Fixtures/lmeval/pyrandom.json, written by
// scripts/fixtures_lmeval.py): the same 32-bit outputs, sample() picks (both the pool and the set branch),
// randrange and random() for several seeds, one generator consumed in sequence.

import XCTest
import TestSupport
import Foundation
@testable import Tasks

final class PyRandomTests: XCTestCase {
    struct Case: Decodable {
        let u32: [UInt32]; let sample_10_3: [Int]; let sample_60_4: [Int]; let sample_1000_8: [Int]
        let sample_5_5: [Int]; let randbelow_7: [Int]; let random: [Double]; let choices_20: [[Int]]
    }

    func testMatchesCPython() throws {
        let url = Paths.fixture("lmeval/pyrandom.json")
        let cases = try JSONDecoder().decode([String: Case].self, from: Data(contentsOf: url))
        XCTAssertEqual(cases.count, 5)
        for (seedText, c) in cases {
            var r = PyRandom(seed: Int(seedText)!)
            XCTAssertEqual((0..<5).map { _ in r.getrandbits(32) }, c.u32, "seed \(seedText)")
            XCTAssertEqual(r.sample(count: 10, k: 3), c.sample_10_3, "seed \(seedText)")
            XCTAssertEqual(r.sample(count: 60, k: 4), c.sample_60_4, "seed \(seedText)")
            XCTAssertEqual(r.sample(count: 1000, k: 8), c.sample_1000_8, "seed \(seedText)")
            XCTAssertEqual(r.sample(count: 5, k: 5), c.sample_5_5, "seed \(seedText)")
            XCTAssertEqual((0..<5).map { _ in r.randbelow(7) }, c.randbelow_7, "seed \(seedText)")
            XCTAssertEqual((0..<3).map { _ in r.random() }, c.random, "seed \(seedText)")
            XCTAssertEqual((0..<6).map { _ in r.choicesIndex(count: 20) }, c.choices_20[0], "seed \(seedText)")
        }
    }
}
