// The binary under hostile input, on the in-repo demo model (no ../shared): output onto /dev/full is an
// error with a non-zero exit and the device kept (class 1); negative flag values reach their checks,
// bad JSON and out-of-vocabulary ids are said plainly, control characters from files are escaped,
// duplicate shot counts refused (classes 6, 7).

import XCTest
import Foundation

extension CLITests {
    static var demo: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("checkpoints/demo").path
    }

    /// Run with stdout on `/dev/full`.
    func runToFull(_ args: [String]) throws -> (status: Int32, err: String) {
        let p = Process()
        p.executableURL = Self.binary; p.arguments = args
        let e = Pipe()
        p.standardOutput = try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full")); p.standardError = e
        try p.run()
        let err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: err, as: UTF8.self))
    }

    func testOutputsOntoAFullDeviceFailAndKeepTheDevice() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { throw XCTSkip("no /dev/full on this machine") }
        let d = try tmp()
        let reqs = d.appendingPathComponent("r.jsonl")
        try Data("{\"context\": \"the sky is\", \"continuation\": \" blue\"}\n".utf8).write(to: reqs)
        let s = try run(["score", "--checkpoint", Self.demo, "--requests", reqs.path, "--output", "/dev/full"])
        XCTAssertNotEqual(s.status, 0); XCTAssertTrue(s.err.contains("cannot write /dev/full: No space left on device"), s.err)
        var st = stat(); lstat("/dev/full", &st); XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR)
        for args in [["generate", "--checkpoint", Self.demo, "--prompt", "the sky is", "--max-tokens", "3"], ["tokenize", "--tokenizer", Self.demo]] {
            let r = try runToFull(args)
            XCTAssertNotEqual(r.status, 0, "\(args[0])"); XCTAssertTrue(r.err.contains("cannot write standard output: No space left on device"), r.err)
        }
    }

    func testMessagesNameTheValueAndStayPlain() throws {
        let d = try tmp()
        let limit = try run(["eval", "--checkpoint", Self.demo, "--tasks", "demo_facts", "--limit", "-1"])
        XCTAssertNotEqual(limit.status, 0); XCTAssertTrue(limit.err.contains("--limit must be >= 1"), limit.err); XCTAssertFalse(limit.err.contains("Missing value"))
        let tp = try run(["generate", "--checkpoint", Self.demo, "--prompt", "x", "--tp", "-2"])
        XCTAssertTrue(tp.err.contains("--tp must be at least 1, found -2"), tp.err)
        let shots = try run(["eval", "--checkpoint", Self.demo, "--tasks", "demo_facts", "--shots", "0,0"])
        XCTAssertNotEqual(shots.status, 0); XCTAssertTrue(shots.err.contains("--shots lists 0 more than once"), shots.err)
        let reqs = d.appendingPathComponent("bad.jsonl")
        try Data("{\"context\": \"a\", \"continuation\": \" b\"}\n{\"context\": \"a\", \"continuation\n".utf8).write(to: reqs)
        let bad = try run(["score", "--checkpoint", Self.demo, "--requests", reqs.path, "--output", d.appendingPathComponent("o.jsonl").path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("\(reqs.path):2: not valid JSON"), bad.err); XCTAssertFalse(bad.err.contains("Domain="), bad.err)
        let ids = try run(["tokenize", "--tokenizer", Self.demo, "--decode"], stdin: "[1, 2, 99999]")
        XCTAssertNotEqual(ids.status, 0); XCTAssertTrue(ids.err.contains("id 99999 at position 2 is outside the tokenizer's vocabulary (0..<617)"), ids.err)
        // a file's bytes never reach the terminal as control sequences
        let ds = d.appendingPathComponent("ds")
        try FileManager.default.createDirectory(at: ds.appendingPathComponent("global_step1"), withIntermediateDirectories: true)
        try Data("\u{1B}]0;pwned\u{7}\u{1B}[2J".utf8).write(to: ds.appendingPathComponent("latest"))
        let esc = try run(["generate", "--checkpoint", ds.path, "--prompt", "x", "--tokenizer", Self.demo])
        XCTAssertNotEqual(esc.status, 0); XCTAssertFalse(esc.err.contains("\u{1B}") || esc.err.contains("\u{7}"), esc.err)
        XCTAssertTrue(esc.err.contains("\\u{1b}"), esc.err)
    }
}
