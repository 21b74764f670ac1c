// How errors reach a person (class 7): Foundation's errors in plain words, our own as they describe
// themselves, control characters from files escaped (5 variants).

import XCTest
import Foundation
import TensorCore

final class MessagesTests: XCTestCase {
    struct Own: Error, CustomStringConvertible { var description: String { "f.pt: tensor 'x' holds 1 NaN" } }

    func testFoundationErrorsInPlainWords() throws {
        XCTAssertThrowsError(try Data(contentsOf: URL(fileURLWithPath: "/nonexistent/turing-\(UUID())"))) { e in
            XCTAssertEqual(plainReason(e), "no such file"); XCTAssertFalse(plainReason(e).contains("Domain="))
        }
        XCTAssertThrowsError(try JSONEncoder().encode([Double.nan])) { e in
            XCTAssertTrue(plainReason(e).hasPrefix("cannot write nan as JSON"), plainReason(e))
        }
        XCTAssertThrowsError(try JSONSerialization.jsonObject(with: Data("{\"a\":".utf8))) { e in
            XCTAssertTrue(plainReason(e).hasPrefix("not valid JSON"), plainReason(e)); XCTAssertFalse(plainReason(e).contains("Domain="))
        }
        XCTAssertEqual(plainReason(Own()), "f.pt: tensor 'x' holds 1 NaN")
    }

    func testControlCharactersAreEscaped() {
        XCTAssertEqual(escapeControls("a\u{1B}[2Jb\u{7}\u{9B}c\nd\te"), "a\\u{1b}[2Jb\\u{7}\\u{9b}c\nd\te")
    }
}
