// The TasksTests' shared helpers: the one check for bad input (`body` throws, and the error's text names
// every part) and a fresh directory holding given files.

import XCTest
import TestSupport
import Foundation

extension XCTestCase {
    func expectError(_ body: () throws -> Void, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        assertThrows(body, contains: parts, file: file, line: line)
    }

    /// A new temporary directory holding `files` (name -> text); its path.
    func tmpDir(_ files: [String: String]) throws -> String {
        let d = try makeTempDirectory("tasks")
        for (n, t) in files { try t.write(to: d.appendingPathComponent(n), atomically: true, encoding: .utf8) }
        return d.path
    }
}
