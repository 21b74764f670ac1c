// FinetuneJob, the library call under `turing finetune`: it reports every step, saves, and a second job
// pointed at the same save resumes at the saved step with the losses an uninterrupted run has.

import Foundation
import XCTest
import TestSupport
import Training
@testable import TuringKit

final class FinetuneJobTests: XCTestCase {
    func testJobReportsSavesAndResumesExactly() throws {
        let demo = Paths.packageRoot.appendingPathComponent("checkpoints/demo")
        guard FileManager.default.fileExists(atPath: demo.path) else { throw XCTSkip("checkpoints/demo not found: run scripts/make_demo.sh") }
        let d = try makeTempDirectory("finetune-job")
        let data = d.appendingPathComponent("train.jsonl")
        try String(repeating: "{\"text\": \"the sky is blue. the grass is green. a lemon is sour.\"}\n", count: 20)
            .write(to: data, atomically: true, encoding: .utf8)
        func job(save: String?, exitAfter: Int? = nil) -> FinetuneJob {
            var j = FinetuneJob(checkpoint: demo.path, data: data.path, steps: 4)
            (j.seqLength, j.microBatch, j.globalBatch, j.lr) = (24, 2, 4, 1e-3)
            (j.save, j.saveInterval, j.exitInterval) = (save, save == nil ? 0 : 2, exitAfter)
            return j
        }
        func losses(_ j: FinetuneJob) throws -> [Int: Float] {
            var out: [Int: Float] = [:]
            try j.run(log: { _ in }, onStep: { r, eta in out[r.step] = r.loss; XCTAssertGreaterThanOrEqual(eta, 0) },
                      onEval: { _, _, _ in XCTFail("no evaluation was asked for") })
            return out
        }
        let whole = try losses(job(save: nil))
        XCTAssertEqual(whole.keys.sorted(), [1, 2, 3, 4])
        XCTAssertTrue(whole.values.allSatisfy(\.isFinite))
        let save = d.appendingPathComponent("run").path
        let first = try losses(job(save: save, exitAfter: 2))
        XCTAssertEqual(first.keys.sorted(), [1, 2])
        let second = try losses(job(save: save))
        XCTAssertEqual(second.keys.sorted(), [3, 4], "the second job resumes after the saved step")
        for s in 1...4 { XCTAssertEqual(first[s] ?? second[s], whole[s], "step \(s)") }
    }

    func testJobRefusesAMissingModelOrTokenizer() {
        assertThrows({ try FinetuneJob(data: "x.jsonl", steps: 1).run(log: { _ in }, onStep: { _, _ in }, onEval: { _, _, _ in }) },
                     contains: ["exactly one of a checkpoint and a config"])
    }
}
