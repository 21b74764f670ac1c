// The TasksTests' shared helpers: the one check for bad input (`body` throws, and the error's text names
// every part) and a fresh directory holding given files.

import XCTest
import Foundation

extension XCTestCase {
    func expectError(_ body: () throws -> Void, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        do { try body(); XCTFail("expected an error", file: file, line: line) } catch {
            for p in parts { XCTAssertTrue("\(error)".contains(p), "\"\(error)\" lacks \"\(p)\"", file: file, line: line) }
        }
    }

    /// A new temporary directory holding `files` (name -> text); its path.
    func tmpDir(_ files: [String: String]) throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("turing-tasks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        for (n, t) in files { try t.write(to: d.appendingPathComponent(n), atomically: true, encoding: .utf8) }
        return d.path
    }
}
