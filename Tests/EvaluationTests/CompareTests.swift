import XCTest
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Evaluation

final class CompareTests: XCTestCase {
    func results(_ dir: URL, checkpoint: String, acc: [(String, Int, Double)]) throws {
        var res: [String: Any] = [:], nshot: [String: Any] = [:]
        for (t, k, v) in acc { res["\(t)@\(k)shot"] = ["alias": t, "acc,none": v, "acc_stderr,none": 0.01]; nshot["\(t)@\(k)shot"] = k }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: ["results": res, "n-shot": nshot, "config": ["checkpoint": checkpoint]])
            .write(to: dir.appendingPathComponent("results.json"))
    }

    func testTableAndPlotAcrossCheckpointsAndShots() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("turing-compare-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try results(root.appendingPathComponent("a"), checkpoint: "/x/ckptA", acc: [("piqa", 0, 0.61), ("piqa", 3, 0.65)])
        try results(root.appendingPathComponent("b"), checkpoint: "/x/ckptB", acc: [("piqa", 0, 0.55)])
        let runs = try Compare.load([root.appendingPathComponent("a").path, root.appendingPathComponent("b/results.json").path], metric: "acc")
        let table = Compare.table(runs, metric: "acc")
        XCTAssertTrue(table.contains("| task | shots | ckptA | ckptB |"), table)
        XCTAssertTrue(table.contains("| piqa | 0 | 0.6100 ± 0.0100 | 0.5500 ± 0.0100 |"), table)
        XCTAssertTrue(table.contains("| piqa | 3 | 0.6500 ± 0.0100 | - |"), table)
        let svg = Compare.svg(runs, metric: "acc")
        XCTAssertTrue(XMLParser(data: Data(svg.utf8)).parse(), "SVG is well-formed XML")
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 1)   // only ckptA has two points
        XCTAssertThrowsError(try Compare.load([root.path], metric: "acc")) { e in XCTAssertTrue("\(e)".contains("results.json"), "\(e)") }
    }
}
