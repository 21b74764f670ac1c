// Bad task definitions and data: each is a TaskError naming the file (and line or field), never a trap.

import XCTest
import TestSupport
import Foundation
@testable import Tasks

final class BadInputTests: XCTestCase {
    let good = """
    task: t
    output_type: multiple_choice
    data:
      validation: {file: t.jsonl}
    validation_split: validation
    doc_to_text: "Q: {{q}}"
    doc_to_target: label
    doc_to_choice: ["no", "yes"]
    metrics: [acc]
    """

    func testGoodSpecParses() throws {
        let s = try TaskSpec.parse(yaml: good, file: "t.yaml")
        XCTAssertEqual(s.evalSplit, "validation")
        XCTAssertEqual(s.fewshotPoolSplit, "validation")
        XCTAssertTrue(s.excludesSelfFromShots)
        XCTAssertEqual(s.targetDelimiter, " ")
        XCTAssertEqual(s.fewshotDelimiter, "\n\n")
    }

    func testUnknownFieldNamed() {
        expectError({ _ = try TaskSpec.parse(yaml: good + "\ndoc_to_txt: x\n", file: "t.yaml") }, contains: ["t.yaml:10", "doc_to_txt"])
        expectError({ _ = try TaskSpec.parse(yaml: good.replacingOccurrences(of: "{file: t.jsonl}", with: "{file: t.jsonl, fromat: jsonl}"), file: "t.yaml") },
                    contains: ["data.validation.fromat"])
        expectError({ _ = try TaskSpec.parse(yaml: good.replacingOccurrences(of: "[acc]", with: "[accuracy]"), file: "t.yaml") },
                    contains: ["unknown metric", "accuracy"])
    }

    func testMissingTemplateField() throws {
        let dir = try tmpDir(["t.jsonl": #"{"question": "x", "label": 1}"# + "\n"])
        let task = try LoadedTask(spec: TaskSpec.parse(yaml: good, file: "t.yaml"), dataDir: dir)
        var b = PromptBuilder(spec: task.spec, pool: [], seed: 1234)
        expectError({ _ = try b.build(task.evalDocs[0], docID: 0, k: 0) }, contains: ["t.yaml", "missing field \"q\"", "t.jsonl:1"])
    }

    func testMalformedLineNamesFileAndLine() throws {
        let dir = try tmpDir(["t.jsonl": #"{"q": "a", "label": 0}"# + "\n\n" + #"{"q": "b", "label": 1"# + "\n"])
        expectError({ _ = try LoadedTask(spec: TaskSpec.parse(yaml: good, file: "t.yaml"), dataDir: dir) }, contains: ["t.jsonl:3", "not valid JSON"])
    }

    func testLabelOutOfRange() throws {
        let dir = try tmpDir(["t.jsonl": #"{"q": "a", "label": 2}"# + "\n"])
        let task = try LoadedTask(spec: TaskSpec.parse(yaml: good, file: "t.yaml"), dataDir: dir)
        var b = PromptBuilder(spec: task.spec, pool: [], seed: 1234)
        expectError({ _ = try b.build(task.evalDocs[0], docID: 0, k: 0) }, contains: ["label 2 out of range", "t.jsonl:1"])
    }

    func testLabelsFileMustMatch() throws {
        let yaml = good.replacingOccurrences(of: "{file: t.jsonl}", with: "{file: t.jsonl, labels: t.lst}")
        let dir = try tmpDir(["t.jsonl": #"{"q": "a"}"# + "\n" + #"{"q": "b"}"# + "\n", "t.lst": "0\n"])
        expectError({ _ = try LoadedTask(spec: TaskSpec.parse(yaml: yaml, file: "t.yaml"), dataDir: dir) }, contains: ["t.lst", "1 labels for 2 documents"])
        let dir2 = try tmpDir(["t.jsonl": #"{"q": "a"}"# + "\n", "t.lst": "x\n"])
        expectError({ _ = try LoadedTask(spec: TaskSpec.parse(yaml: yaml, file: "t.yaml"), dataDir: dir2) }, contains: ["t.lst:1", "not an integer"])
    }

    func testMissingDataFile() throws {
        expectError({ _ = try LoadedTask(spec: TaskSpec.parse(yaml: good, file: "t.yaml"), dataDir: "/nonexistent") }, contains: ["/nonexistent/t.jsonl", "not found"])
    }

    func testTemplateAndShots() throws {
        let lines = (0..<10).map { #"{"q": "q\#($0)", "label": \#($0 % 2)}"# }.joined(separator: "\n")
        let dir = try tmpDir(["t.jsonl": lines])
        let task = try LoadedTask(spec: TaskSpec.parse(yaml: good, file: "t.yaml"), dataDir: dir)
        var b = PromptBuilder(spec: task.spec, pool: try task.fewshotPool(), seed: 1234)
        let r = try b.build(task.evalDocs[0], docID: 0, k: 2)
        XCTAssertEqual(r.requests.map(\.continuation), [" no", " yes"])
        XCTAssertEqual(r.gold, 0)
        // random.Random(1234).sample(range(10), 3) == [7, 1, 0]; doc 0 is excluded, keeping [7, 1]
        XCTAssertEqual(r.requests[0].context, "Q: q7 yes\n\nQ: q1 yes\n\nQ: q0")
    }

    func testShippedTasksParse() throws {
        let dir = Paths.packageRoot.appendingPathComponent("tasks")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(names.count, 5)
        for n in names { XCTAssertNoThrow(try TaskSpec.load(named: String(n.dropLast(5)), in: dir.path), n) }
    }
}

final class TemplateTests: XCTestCase {
    func testRenderKeepsTrailingNewlineAndNamesMissingField() throws {
        let d = Document(fields: ["a": .string("x"), "n": .int(3), "b": .bool(true)], origin: "f.jsonl:7")
        XCTAssertEqual(try Template.render("{{a}} {{ n }} {{b}}\n\n", d, task: "t.yaml"), "x 3 True\n\n")
        XCTAssertEqual(try Template.resolve("n", d, task: "t.yaml", isChoiceTask: true), .index(3))
        XCTAssertEqual(try Template.resolve("{{n}}", d, task: "t.yaml", isChoiceTask: true), .index(3))
        XCTAssertEqual(try Template.resolve("{{n}}", d, task: "t.yaml", isChoiceTask: false), .text("3"))
        XCTAssertThrowsError(try Template.render("{{zz}}", d, task: "t.yaml")) { e in
            XCTAssertTrue("\(e)".contains("zz") && "\(e)".contains("f.jsonl:7"), "\(e)")
        }
        XCTAssertEqual(try TaskFunctions.call("lambada_context", Document(fields: ["text": .string("a  b c")], origin: ""), task: "t"), .text("a  b"))
        XCTAssertEqual(try TaskFunctions.call("lambada_target", Document(fields: ["text": .string("a  b c")], origin: ""), task: "t"), .text(" c"))
    }
}
