// What every test target shares: where the committed fixtures and ../shared live (a missing shared file is
// a skip that says why, a missing committed fixture a failure), fresh temporary folders, the one check for
// bad input (an error whose text names every part), and tensor comparisons (max |a - b|, bitwise).

import Foundation
import XCTest
import TensorCore

public enum Paths {
    /// The package root (the folder holding Package.swift).
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `Tests/Fixtures/<relative>`, committed with the repository (written by scripts/fixtures_*.py).
    public static func fixture(_ relative: String = "") -> URL {
        relative.isEmpty ? packageRoot.appendingPathComponent("Tests/Fixtures")
                         : packageRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative)
    }

    /// The shared data folder: $TURING_SHARED_DATA, else ../shared/data beside the package.
    public static var sharedData: URL {
        if let p = ProcessInfo.processInfo.environment["TURING_SHARED_DATA"], !p.isEmpty { return URL(fileURLWithPath: p) }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
    }

    /// The shared checkpoint fixtures: $TURING_SHARED_FIXTURES, else beside the shared data folder.
    public static var sharedCheckpoints: URL {
        let env = ProcessInfo.processInfo.environment
        if let p = env["TURING_SHARED_FIXTURES"], !p.isEmpty { return URL(fileURLWithPath: p) }
        return sharedData.deletingLastPathComponent().appendingPathComponent("fixtures/checkpoints")
    }

    /// A file or folder of the shared data, or a skip naming where it was looked for.
    public static func shared(_ relative: String) throws -> URL {
        let u = sharedData.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: u.path) else { throw XCTSkip("shared data not found: \(u.path) (set TURING_SHARED_DATA)") }
        return u
    }

    /// A committed fixture that must exist: its absence fails the test (run the fixture script).
    public static func requiredFixture(_ relative: String, writtenBy script: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let u = fixture(relative)
        guard FileManager.default.fileExists(atPath: u.path) else {
            XCTFail("fixture missing: \(u.path) (run \(script))", file: file, line: line)
            throw XCTSkip("fixture missing: \(u.path)")
        }
        return u
    }
}

/// A new empty temporary folder, `turing-<prefix>-<uuid>`.
public func makeTempDirectory(_ prefix: String = "test") throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("turing-\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

/// `body` throws, and the error's text contains every one of `parts`.
public func assertThrows(_ body: () throws -> Void, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
    do { try body(); XCTFail("expected an error", file: file, line: line) } catch {
        for p in parts { XCTAssertTrue("\(error)".contains(p), "\"\(error)\" lacks \"\(p)\"", file: file, line: line) }
    }
}

/// Max |a - b| over the elements that differ, and how many differ bitwise (shapes must agree).
public func compare(_ a: Tensor, _ b: Tensor) -> (maxAbs: Float, bitDiffs: Int) {
    precondition(a.shape == b.shape, "compare: shapes \(a.shape) and \(b.shape)")
    return compare(a.data, b.data)
}

public func compare(_ a: [Float], _ b: [Float]) -> (maxAbs: Float, bitDiffs: Int) {
    precondition(a.count == b.count, "compare: \(a.count) and \(b.count) elements")
    var m: Float = 0, n = 0
    for i in a.indices where a[i].bitPattern != b[i].bitPattern { n += 1; m = max(m, abs(a[i] - b[i])) }
    return (m, n)
}

/// Max |a - b| over paired elements.
public func maxAbsDifference<S: Sequence>(_ a: S, _ b: S) -> Double where S.Element: BinaryFloatingPoint {
    zip(a, b).reduce(0.0) { max($0, abs(Double($1.0) - Double($1.1))) }
}
