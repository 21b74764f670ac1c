// The shipped task YAMLs (tasks/*.yaml) over the full files in ../shared/data give, for the first documents,
// the same 0-shot requests lm-eval made in Tests/Fixtures/lmeval (whose subsets are those files' first
// lines), so the shipped definitions are the ones the fidelity tests validate (hellaswag: the same bz2 file;
// tinyshakespeare: the speeches of the subset's 300 lines but its last, which may continue past line 300). Skips when ../shared is absent.

import XCTest
import Foundation
@testable import Evaluation
import Tasks

final class ShippedTaskPromptTests: XCTestCase {
    struct Expected: Decodable {
        struct Req: Decodable { let context: String; let continuation: String }
        struct Doc: Decodable { let requests: [Req] }
        let docs: [Doc]
    }

    func testZeroShotRequestsMatchLMEval() throws {
        let shared = LMEvalFidelityTests.shared
        guard FileManager.default.fileExists(atPath: shared.appendingPathComponent("lambada").path) else { throw XCTSkip("../shared absent") }
        let tasksDir = LMEvalFidelityTests.fixtures.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("tasks").path
        // race: the 16th article of the 60-row subset may continue past row 60 in the full file
        for (task, n) in [("lambada_openai", 20), ("piqa", 20), ("winogrande", 20), ("boolq", 20), ("wic", 20), ("anli_r1", 20), ("race", 15),
                          ("hellaswag", 20), ("lambada_openai_gen", 20), ("tinyshakespeare", 50)] {
            let exp = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: LMEvalFidelityTests.fixtures.appendingPathComponent("lmeval/\(task)_0shot.json")))
            let loaded = try LoadedTask(spec: TaskSpec.load(named: task, in: tasksDir), dataDir: shared.path)
            let got = try Evaluator.prompts(loaded, numFewshot: 0, limit: n, seed: 1234)
            XCTAssertEqual(got.count, n, task)
            for (g, e) in zip(got, exp.docs) {
                XCTAssertEqual(g.requests.map(\.context), e.requests.map(\.context), "\(task) doc \(g.docID)")
                XCTAssertEqual(g.requests.map(\.continuation), e.requests.map(\.continuation), "\(task) doc \(g.docID)")
            }
        }
    }
}
