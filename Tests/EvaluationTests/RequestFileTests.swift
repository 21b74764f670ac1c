// `turing score` input: each bad line is named with its file:line and said in plain words (no
// Foundation error dumps); blank lines are skipped; invalid UTF-8 is refused (7 variants).

import XCTest
import Foundation
@testable import Evaluation

final class RequestFileTests: XCTestCase {
    func testBadLinesAreNamedInPlainWords() throws {
        let ok = try RequestFile.pairs(Data("{\"context\": \"a\", \"continuation\": \" b\"}\n\n  \n{\"context\": \"\", \"continuation\": \"c\"}\n".utf8), file: "r.jsonl")
        XCTAssertEqual(ok.map(\.line), [1, 4]); XCTAssertEqual(ok.map(\.pair.continuation), [" b", "c"])
        let cases: [(String, String)] = [
            ("{\"context\": \"a\"}", "r.jsonl:1: missing field \"continuation\""),
            ("{\"context\": 3, \"continuation\": \"b\"}", "r.jsonl:1: field \"context\": expected a string"),
            ("{\"context\": null, \"continuation\": \"b\"}", "r.jsonl:1: field \"context\": expected a string, found null"),
            ("[1, 2]", "r.jsonl:1: expected an object"),
            ("{\"context\": \"a\", \"continuation", "r.jsonl:1: not valid JSON"),
            (String(repeating: "[", count: 600), "r.jsonl:1: not valid JSON"),
        ]
        for (line, want) in cases {
            XCTAssertThrowsError(try RequestFile.pairs(Data(line.utf8), file: "r.jsonl"), line) { e in
                XCTAssertTrue("\(e)".hasPrefix(want), "\(line): \(e)"); XCTAssertFalse("\(e)".contains("Domain="), "\(e)")
            }
        }
        XCTAssertThrowsError(try RequestFile.pairs(Data([0x7B, 0xFF, 0x7D]), file: "r.jsonl")) { e in XCTAssertEqual("\(e)", "r.jsonl is not UTF-8 text") }
    }
}
