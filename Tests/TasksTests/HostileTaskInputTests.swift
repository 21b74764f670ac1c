// Hostile task files: data names that try to leave their folder (class 5), YAML that nests or
// aliases without bound (class 2), stop strings that change the meaning (class 6). Each variant has
// its exact outcome (21 variants).

import XCTest
import Foundation
@testable import Tasks

final class HostileTaskInputTests: XCTestCase {
    func tmp() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("turing-tasks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u.appendingPathComponent("data"), withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: u) }
        return u
    }

    func testDataNamesStayInsideTheirRoots() throws {
        let root = try tmp()
        let data = root.appendingPathComponent("data"), task = root.appendingPathComponent("tasks/t.yaml").path
        try FileManager.default.createDirectory(at: root.appendingPathComponent("tasks"), withIntermediateDirectories: true)
        try Data("{}\n".utf8).write(to: data.appendingPathComponent("ok.jsonl"))
        try Data("secret\n".utf8).write(to: root.appendingPathComponent("outside.txt"))
        let loc = DataLocator(dataDir: data.path)
        XCTAssertEqual(try loc.locate(DataFile(path: "ok.jsonl"), task: task), data.appendingPathComponent("ok.jsonl").path)
        let escapes = ["../outside.txt", "../../../../etc/passwd", "/etc/passwd", "sub/../../outside.txt", "..", "", "a/\u{1B}[2J/../../x"]
        for p in escapes {
            XCTAssertThrowsError(try loc.locate(DataFile(path: p), task: task), p) { e in
                let m = "\(e)"
                XCTAssertEqual(m, "\(task): data file \"\(escapedForMessage(p))\" must be a relative name inside the data folder (no leading /, no ..)")
                XCTAssertFalse(m.contains("\u{1B}"))
            }
        }
        // a symbolic link inside the data folder that leads out of it
        try FileManager.default.createSymbolicLink(at: data.appendingPathComponent("link.txt"), withDestinationURL: root.appendingPathComponent("outside.txt"))
        XCTAssertThrowsError(try loc.locate(DataFile(path: "link.txt"), task: task)) { e in
            XCTAssertEqual("\(e)", "\(task): data file \(data.appendingPathComponent("link.txt").path) resolves outside \(data.path) (a symbolic link leads out of the data folder)")
        }
        XCTAssertEqual(escapes.count + 1, 8)
    }

    static let valid = """
        task: t
        output_type: loglikelihood
        data:
          test: {file: data/t.jsonl}
        test_split: test
        doc_to_text: "{{q}}"
        doc_to_target: "{{a}}"
        metrics: [acc]
        """

    func testYAMLNestingAndAliasesAreBounded() throws {
        XCTAssertNoThrow(try TaskSpec.parse(yaml: Self.valid, file: "t.yaml"))
        let deep = YAMLBounds.maxDepth + 1
        let cases: [(String, String)] = [
            (Self.valid + "\nx: " + String(repeating: "[", count: deep) + String(repeating: "]", count: deep), "collections nest deeper than 64 levels"),
            (Self.valid + "\nx: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000), "collections nest deeper than 64 levels"),
            (Self.valid + "\nx: " + String(repeating: "{a: ", count: deep) + "1" + String(repeating: "}", count: deep), "collections nest deeper than 64 levels"),
            (Self.valid + "\nx: " + String(repeating: "[", count: 100_000), "collections nest deeper than 64 levels"),   // unterminated too
            (Self.valid + "\nx:\n" + (1...deep).map { String(repeating: "  ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1", "collections nest deeper than 64 levels"),
            (Self.valid + "\nx:\n" + String(repeating: "- ", count: deep) + "1", "collections nest deeper than 64 levels"),
            (Self.valid + "\na: &a [1]\nb: [" + Array(repeating: "*a", count: 300).joined(separator: ", ") + "]", "more than 256 alias references"),
        ]
        for (i, (yaml, why)) in cases.enumerated() {
            XCTAssertThrowsError(try TaskSpec.parse(yaml: yaml, file: "t.yaml"), "case \(i)") { e in
                XCTAssertTrue("\(e)".hasPrefix("t.yaml: line ") && "\(e)".hasSuffix(why), "case \(i): \(e)")
            }
        }
        // at the bound: parsed, then refused for what it is (an unknown field), not for its depth
        let atBound = Self.valid + "\nx: " + String(repeating: "[", count: YAMLBounds.maxDepth - 1) + String(repeating: "]", count: YAMLBounds.maxDepth - 1)
        XCTAssertThrowsError(try TaskSpec.parse(yaml: atBound, file: "t.yaml")) { e in XCTAssertTrue("\(e)".contains("unknown field \"x\""), "\(e)") }
        XCTAssertEqual(cases.count + 2, 9)
    }

    func testEmptyStopStringsAreRefused() throws {
        let gen = Self.valid.replacingOccurrences(of: "output_type: loglikelihood", with: "output_type: generate_until")
            .replacingOccurrences(of: "metrics: [acc]", with: "metrics: [exact_match]")
        XCTAssertNoThrow(try TaskSpec.parse(yaml: gen + "\ngeneration_kwargs: {until: [\"\\n\"]}", file: "g.yaml"))
        for (until, i) in [("\"\"", 0), ("[\"\"]", 0), ("[\"a\", \"\"]", 1)] {
            XCTAssertThrowsError(try TaskSpec.parse(yaml: gen + "\ngeneration_kwargs: {until: \(until)}", file: "g.yaml")) { e in
                XCTAssertTrue("\(e)".hasSuffix("generation_kwargs.until entry \(i) is empty; expected non-empty stop strings"), "\(e)")
            }
        }
    }
}

extension HostileTaskInputTests {
    /// A pool that holds the evaluated documents (another split name, same documents): lm-eval may draw
    /// a document into its own context and so does Turing, but the builder counts it for the warning.
    func testDocumentsDrawnIntoTheirOwnShotsAreCounted() throws {
        let yaml = Self.valid.replacingOccurrences(of: "test_split: test", with: "test_split: test\nfewshot_split: train")
            .replacingOccurrences(of: "  test: {file: data/t.jsonl}", with: "  test: {file: data/t.jsonl}\n  train: {file: data/t.jsonl}")
        let spec = try TaskSpec.parse(yaml: yaml, file: "t.yaml")
        XCTAssertFalse(spec.excludesSelfFromShots)
        let docs = (0..<3).map { Document(fields: ["q": .string("q\($0)"), "a": .string("a\($0)")], origin: "t.jsonl:\($0 + 1)") }
        var b = PromptBuilder(spec: spec, pool: docs, seed: 1234)
        for d in docs { _ = try b.shots(for: d, k: 3) }   // k = pool size: every document is in its own context
        XCTAssertEqual(b.selfInContext, 3)
        var other = PromptBuilder(spec: spec, pool: [Document(fields: ["q": .string("x"), "a": .string("y")], origin: "o")], seed: 1234)
        for d in docs { _ = try other.shots(for: d, k: 1) }
        XCTAssertEqual(other.selfInContext, 0)
    }
}
