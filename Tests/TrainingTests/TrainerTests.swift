import XCTest
import TestSupport
import Foundation
@testable import Training
@testable import Checkpoints
import Model
import TensorCore

final class TrainerTests: XCTestCase {
    static let config = ModelConfig(vocabSize: 50, hiddenSize: 16, numLayers: 2, numHeads: 2, maxPositions: 16, activation: .geluTanh)

    func rows(_ n: Int, seed: UInt64) -> [TrainingRow] {
        var rng = SplitMix64(seed: seed)
        // a learnable pattern: t, t+1, t+2, ... mod 50
        return (0..<n).map { _ in
            let s = Int(rng.next() % 50)
            return TrainingRow(tokens: (0..<9).map { (s + $0) % 50 }, mask: [Bool](repeating: true, count: 8))
        }
    }

    func makeTrainer(steps: Int, exitAfter: Int? = nil) throws -> (Trainer, TrainerState) {
        let layout = ParameterLayout(config: Self.config)
        var cfg = TrainerConfig(microBatch: 2, globalBatch: 4, steps: steps, schedule: LRSchedule(lr: 1e-2, warmup: 2, decaySteps: steps), seed: 9)
        cfg.exitAfter = exitAfter
        let t = try Trainer(executor: InProcessTraining(config: Self.config), rows: rows(24, seed: 1), config: cfg)
        let params = try layout.flatten(.random(config: Self.config, seed: 5, std: 0.1))
        return (t, TrainerState(params: params, adam: AdamW(layout: layout), step: 0))
    }

    /// A run interrupted at step 6 and resumed from its saved state gives the same losses and weights.
    func testResumeIsExact() throws {
        var (full, s1) = try makeTrainer(steps: 12)
        var lossesA: [Float] = []
        try full.run(&s1, onStep: { lossesA.append($0.loss) }, save: { _ in })
        var (first, s2) = try makeTrainer(steps: 12, exitAfter: 6)
        var saved: TrainerState?
        var lossesB: [Float] = []
        try first.run(&s2, onStep: { lossesB.append($0.loss) }, save: { saved = $0 })
        XCTAssertEqual(saved?.step, 6)
        // resume through the checkpoint format, as `finetune` does
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("turing-resume-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let layout = ParameterLayout(config: Self.config)
        let ck = CanonicalCheckpoint(config: Self.config, tensors: layout.tensors(saved!.params), format: "turing")
        try TuringFormat.save(ck, optimizer: ["adam_m": Tensor(shape: [saved!.adam.m.count], data: saved!.adam.m), "adam_v": Tensor(shape: [saved!.adam.v.count], data: saved!.adam.v)],
                              trainer: ["step": 6], to: dir, iteration: 6)
        let back = try TuringFormat.load(dir)
        var s3 = TrainerState(params: try layout.flatten(back.checkpoint),
                              adam: AdamW(layout: layout, config: .init(), m: back.optimizer!["adam_m"]!.data, v: back.optimizer!["adam_v"]!.data, step: back.trainer!["step"] as! Int), step: 6)
        var (second, _) = try makeTrainer(steps: 12)
        try second.run(&s3, onStep: { lossesB.append($0.loss) }, save: { _ in })
        XCTAssertEqual(lossesA, lossesB)
        XCTAssertEqual(s1.params, s3.params)
        XCTAssertLessThan(lossesA.last!, lossesA.first! * 0.9, "the pattern is learnable: \(lossesA)")
    }

    func testEvaluateRunsEveryIntervalWithThatStepsWeights() throws {
        var (t, s) = try makeTrainer(steps: 7)
        var cfg = t.config
        cfg.evalInterval = 3
        t = try Trainer(executor: t.executor, rows: t.rows, config: cfg)
        var seen: [(Int, Float)] = []
        try t.run(&s, onStep: { _ in }, save: { _ in }, evaluate: { st in seen.append((st.step, st.params[0])) })
        XCTAssertEqual(seen.map(\.0), [3, 6])
        XCTAssertNotEqual(seen[0].1, seen[1].1, "the weights evaluated are the ones trained so far")
    }

    func testDivergenceStopsNamingTheStep() throws {
        let layout = ParameterLayout(config: Self.config)
        let t = try Trainer(executor: InProcessTraining(config: Self.config), rows: rows(8, seed: 2),
                            config: TrainerConfig(microBatch: 2, globalBatch: 2, steps: 5, schedule: LRSchedule(lr: 1e-2, decaySteps: 5)))
        var params = try layout.flatten(.random(config: Self.config, seed: 5))
        params[0] = .nan
        var s = TrainerState(params: params, adam: AdamW(layout: layout), step: 0)
        var saves = 0
        XCTAssertThrowsError(try t.run(&s, onStep: { _ in }, save: { _ in saves += 1 })) { e in XCTAssertTrue("\(e)".contains("step 1"), "\(e)") }
        XCTAssertEqual(saves, 0)
    }

    func testScheduleAndClipping() {
        let s = LRSchedule(lr: 1, minLR: 0.1, warmup: 10, decaySteps: 110, style: .cosine)
        XCTAssertEqual(s.at(5), 0.5, accuracy: 1e-6)
        XCTAssertEqual(s.at(10), 1, accuracy: 1e-6)
        XCTAssertEqual(s.at(60), 0.55, accuracy: 1e-5)     // half way: min + 0.5 (max - min)
        XCTAssertEqual(s.at(110), 0.1, accuracy: 1e-6)
        XCTAssertEqual(LRSchedule(lr: 1, warmup: 0, decaySteps: 10, style: .linear).at(5), 0.5, accuracy: 1e-6)
        var g: [Float] = [3, 4]
        XCTAssertEqual(clipGlobalNorm(&g, maxNorm: 1), 5, accuracy: 1e-6)
        XCTAssertEqual(g[0], 0.6, accuracy: 1e-5); XCTAssertEqual(g[1], 0.8, accuracy: 1e-5)
    }
}

final class DatasetTests: XCTestCase {
    func write(_ s: String) throws -> String {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("turing-data-\(UUID().uuidString).jsonl")
        try s.write(to: u, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: u) }
        return u.path
    }
    let enc: (String) -> [Int] = { $0.unicodeScalars.map { Int($0.value) % 100 + 1 } }

    func testTextIsPackedWithEndOfText() throws {
        let rows = try Datasets.jsonl(try write("{\"text\": \"abc\"}\n\n{\"text\": \"de\"}\n"), encode: enc, eos: 0, seqLength: 3)
        // enc: a b c d e -> 98 99 100 1 2; stream 98 99 100 0 1 2 0 -> rows of T+1 = 4 at stride T = 3
        XCTAssertEqual(rows.map(\.tokens), [[98, 99, 100, 0], [0, 1, 2, 0]])
        XCTAssertTrue(rows.allSatisfy { $0.mask == [true, true, true] })
    }

    func testPromptCompletionMasksThePrompt() throws {
        let rows = try Datasets.jsonl(try write("{\"prompt\": \"ab\", \"completion\": \"c\"}\n"), encode: enc, eos: 0, seqLength: 5)
        XCTAssertEqual(rows[0].tokens, [98, 99, 100, 0, 0, 0])
        // position t predicts tokens[t+1]: c (t=1) and eos (t=2) count; padding does not
        XCTAssertEqual(rows[0].mask, [false, true, true, false, false])
    }

    func testBadDataNamesFileAndLine() throws {
        let p = try write("{\"text\": \"ok\"}\n{\"text\": 3}\n")
        XCTAssertThrowsError(try Datasets.jsonl(p, encode: enc, eos: 0, seqLength: 4)) { e in
            XCTAssertEqual(e as? DatasetError, .malformed(file: p, line: 2, reason: "missing string field \"text\""))
        }
        let q = try write("{\"text\": \"\"}\n")
        XCTAssertThrowsError(try Datasets.jsonl(q, encode: enc, eos: 0, seqLength: 4)) { e in XCTAssertEqual(e as? DatasetError, .emptyDocument(file: q, line: 1)) }
        let r = try write("{\"prompt\": \"abcdef\", \"completion\": \"g\"}\n")
        XCTAssertThrowsError(try Datasets.jsonl(r, encode: enc, eos: 0, seqLength: 4)) { e in XCTAssertEqual(e as? DatasetError, .tooLong(file: r, line: 1, tokens: 8, limit: 4)) }
    }

    /// ../shared/data/megatron_indexed, checked against numpy (np.frombuffer on .idx, np.memmap uint16 on .bin).
    func testMegatronIndexedDataset() throws {
        let shared = Paths.sharedData
        let prefix = shared.appendingPathComponent("megatron_indexed/meg-gpt2-openwebtext_text_document").path
        guard FileManager.default.fileExists(atPath: prefix + ".idx") else { throw XCTSkip("shared data not found: \(prefix).idx") }
        let docs = try Datasets.megatronIndexed(prefix: prefix)
        XCTAssertEqual(docs.count, 1000)
        XCTAssertEqual(docs.reduce(0) { $0 + $1.count }, 1361845)
        XCTAssertEqual(Array(docs[0].prefix(8)), [32, 2153, 4994, 802, 1732, 351, 281, 2939])
        XCTAssertEqual(Array(docs[999].suffix(5)), [198, 37, 667, 4481, 4999])
    }

    /// Counts in a hostile .idx header are bounded by the file before any arithmetic: the libFuzzer `idx`
    /// target's heap-buffer-overflow reproducer, and a sequence that runs past the .bin, are errors naming the file.
    func testHostileMegatronIndexIsRefused() throws {
        let d = try makeTempDirectory("idx")
        let prefix = d.appendingPathComponent("corpus").path
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0) }).write(to: URL(fileURLWithPath: prefix + ".bin"))
        let crash: [UInt8] = [0x4d, 0x4d, 0x49, 0x44, 0x49, 0x44, 0x58, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0,
                              0x00, 0x08, 0x03, 0, 0, 0, 0, 0, 0, 0, 0xba, 0, 0, 0, 0, 0,
                              0x00, 0x37, 0x03, 0, 0, 0, 0x05, 0, 0, 0, 0x00, 0x03, 0, 0, 0, 0, 0x20, 0, 0]
        try Data(crash).write(to: URL(fileURLWithPath: prefix + ".idx"))
        XCTAssertThrowsError(try Datasets.megatronIndexed(prefix: prefix)) { XCTAssertTrue("\($0)".contains("corpus.idx"), "\($0)") }
        // one sequence of 5000 int32 tokens at byte 0: 20000 bytes, past the 4096-byte .bin
        var idx = Array("MMIDIDX\0\0".utf8) + [1, 0, 0, 0, 0, 0, 0, 0] + [4]
        idx += [1, 0, 0, 0, 0, 0, 0, 0] + [2, 0, 0, 0, 0, 0, 0, 0]            // 1 sequence, 2 document offsets
        idx += [0x88, 0x13, 0, 0] + [UInt8](repeating: 0, count: 8) + [UInt8](repeating: 0, count: 16)
        try Data(idx).write(to: URL(fileURLWithPath: prefix + ".idx"))
        XCTAssertThrowsError(try Datasets.megatronIndexed(prefix: prefix)) { XCTAssertTrue("\($0)".contains("runs past"), "\($0)") }
    }
}
