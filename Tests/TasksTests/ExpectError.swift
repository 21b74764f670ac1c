// The TasksTests' one check for bad input: `body` throws, and the error's text names every part.

import XCTest

extension XCTestCase {
    func expectError(_ body: () throws -> Void, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        do { try body(); XCTFail("expected an error", file: file, line: line) } catch {
            for p in parts { XCTAssertTrue("\(error)".contains(p), "\"\(error)\" lacks \"\(p)\"", file: file, line: line) }
        }
    }
}
