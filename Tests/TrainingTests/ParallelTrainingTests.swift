import XCTest
import Foundation
@testable import Training
@testable import Checkpoints
import Model
import TensorCore

/// Training at TP x PP x DP layouts (in-process ranks) against PyTorch (scripts/fixtures_training.py, `micro_`
/// fixtures: two micro-batches of one sequence, Megatron's per-micro-batch mean, clipping at global norm 1.0):
/// first-step gradients within 1e-4 relative, the gradient norm and 20 losses within 1e-4 relative.
final class ParallelTrainingTests: XCTestCase {
    static let fixtures = DecoderTrainingTests.fixtures

    func load(_ model: String, _ prefix: String) throws -> (CanonicalCheckpoint, TrainingReference, [String: [Float]]) {
        let exp = try TrainingReference.load(Self.fixtures.appendingPathComponent("training/\(prefix)micro_expected.json"))
        let ckpt = try HFAdapter.load(Self.fixtures.appendingPathComponent("models/\(model)"))
        let ref = try SafetensorsFile(url: Self.fixtures.appendingPathComponent("training/\(prefix)micro_first_step_grads.safetensors"))
        var grads: [String: [Float]] = [:]
        for e in ParameterLayout(config: ckpt.config).entries { grads[e.name] = try ref.tensor(e.name).data }
        return (ckpt, exp, grads)
    }

    func micro(_ exp: TrainingReference, step: Int) -> [TrainingBatch] { exp.microBatches(step: step) }

    func initialState(_ ckpt: CanonicalCheckpoint) throws -> TrainerState {
        let canon = ParameterLayout(config: ckpt.config)
        return TrainerState(params: try canon.flatten(ckpt), adam: AdamW(layout: canon, config: AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)), step: 0)
    }

    func checkLayouts(_ model: String, _ prefix: String, _ grids: [ParallelLayout]) throws {
        let (ckpt, exp, ref) = try load(model, prefix)
        XCTAssertEqual(exp.micro_batch, 1)
        XCTAssertEqual(exp.microBatches(step: 0).count, 2)
        for grid in grids {
            let ex = try InProcessTraining(config: ckpt.config, grid: grid)
            let r = try XCTUnwrap(try exp.replay(ex, from: try initialState(ckpt), reference: ref))
            XCTAssertLessThan(r.worstGradient.relative, 1e-4, "\(model) \(grid): worst gradient \(r.worstGradient)")
            XCTAssertEqual(Double(r.firstNorm.got), r.firstNorm.want, accuracy: 1e-4 * r.firstNorm.want, "\(model) \(grid) gradient norm")
            XCTAssertLessThan(r.worstLoss, 1e-4, "\(model) \(grid) losses \(r.losses) vs \(exp.losses)")
            print("\(model) \(grid): first-step gradients worst relative error \(r.worstGradient.relative) (\(r.worstGradient.name)); 20 losses worst relative error \(r.worstLoss)")
        }
    }

    func testGPT2AtParallelLayoutsMatchesPyTorch() throws {
        try checkLayouts("gpt2-tiny-rand", "", [ParallelLayout(), ParallelLayout(tp: 2, pp: 2), ParallelLayout(tp: 4), ParallelLayout(pp: 2, dp: 2),
                                               ParallelLayout(tp: 2, dp: 2)])
    }

    /// RMSNorm, RoPE, SwiGLU, grouped-query attention (2 groups over TP 2), untied head.
    func testLlamaAtParallelLayoutsMatchesPyTorch() throws {
        try checkLayouts("llama-tiny-rand", "llama_", [ParallelLayout(tp: 2, pp: 2), ParallelLayout(dp: 2)])
    }

    /// Recomputing activations in backward changes nothing (bitwise), and holds fewer of them.
    func testRecomputationIsExact() throws {
        let (ckpt, exp, _) = try load("gpt2-tiny-rand", "")
        var runs: [[Float]] = [], held: [[Int]] = []
        for recompute in [false, true] {
            let ex = try InProcessTraining(config: ckpt.config, grid: ParallelLayout(tp: 2, pp: 2), recompute: recompute)
            try ex.load(try initialState(ckpt))
            runs.append(try (0..<4).map { try ex.step(micro: micro(exp, step: $0), lr: 1e-3, clip: 1).loss })
            held.append(ex.ranks.map(\.peakActivationFloats))
            XCTAssertEqual(ex.peakInFlight, [2, 2, 1, 1], "1F1B: stage 0 of 2 holds two micro-batches, the last stage one")
        }
        XCTAssertEqual(runs[0], runs[1])
        for (a, b) in zip(held[0], held[1]) { XCTAssertLessThan(b * 4, a, "activation floats held: \(held[1]) with recomputation, \(held[0]) without") }
    }

    /// Tied embeddings at PP 2: stage 0's word embedding and the last stage's head copy stay equal.
    func testTiedEmbeddingCopiesStayEqual() throws {
        let (ckpt, exp, _) = try load("gpt2-tiny-rand", "")
        let ex = try InProcessTraining(config: ckpt.config, grid: ParallelLayout(pp: 2))
        try ex.load(try initialState(ckpt))
        for s in 0..<3 { _ = try ex.step(micro: micro(exp, step: s), lr: 1e-2, clip: 1) }
        let first = ex.ranks[0], last = ex.ranks[1]
        let a = first.model.layout.entry("embedding.word.weight")!, b = last.model.layout.entry("embedding.word.weight")!
        XCTAssertEqual(Array(first.params[a.offset..<(a.offset + a.count)]), Array(last.params[b.offset..<(b.offset + b.count)]))
    }

    /// 1F1B: stage p holds at most P - p micro-batches, every micro-batch runs forward before backward, and
    /// the stages' orders, executed with their true dependencies, always make progress (no deadlock).
    func testOneFOneBSchedule() {
        for (P, M) in [(1, 3), (2, 1), (2, 4), (4, 3), (4, 8)] {
            let ops = (0..<P).map { PipelineSchedule.oneFOneB(stage: $0, stages: P, microBatches: M) }
            for p in 0..<P {
                XCTAssertEqual(ops[p].count, 2 * M)
                XCTAssertLessThanOrEqual(PipelineSchedule.peakInFlight(ops[p]), min(P - p, M), "stage \(p) of \(P), \(M) micro-batches")
                for m in 0..<M { XCTAssertLessThan(ops[p].firstIndex(of: .forward(m))!, ops[p].firstIndex(of: .backward(m))!) }
            }
            // simulate: F(m) at p needs F(m) done at p-1; B(m) at p needs B(m) done at p+1 (F(m) at the last stage)
            var next = [Int](repeating: 0, count: P)
            var doneF = Set<[Int]>(), doneB = Set<[Int]>()
            var progress = true
            while progress {
                progress = false
                for p in 0..<P where next[p] < ops[p].count {
                    switch ops[p][next[p]] {
                    case .forward(let m) where p == 0 || doneF.contains([p - 1, m]):
                        doneF.insert([p, m]); next[p] += 1; progress = true
                    case .backward(let m) where p == P - 1 || doneB.contains([p + 1, m]):
                        doneB.insert([p, m]); next[p] += 1; progress = true
                    default: break
                    }
                }
            }
            XCTAssertEqual(next, [Int](repeating: 2 * M, count: P), "P \(P), M \(M): stuck at \(next)")
        }
        XCTAssertEqual(PipelineSchedule.oneFOneB(stage: 0, stages: 2, microBatches: 3).map(\.description), ["F0", "F1", "B0", "F2", "B1", "B2"])
    }

    /// A state saved at TP 2 x PP 2 resumes at TP 1 x PP 1 (and the reverse) on the same trajectory.
    func testStateMovesBetweenLayouts() throws {
        let (ckpt, exp, _) = try load("gpt2-tiny-rand", "")
        var state = try initialState(ckpt)
        let a = try InProcessTraining(config: ckpt.config, grid: ParallelLayout(tp: 2, pp: 2))
        try a.load(state)
        for s in 0..<3 { _ = try a.step(micro: micro(exp, step: s), lr: 1e-3, clip: 1) }
        try a.export(into: &state)
        XCTAssertEqual(state.adam.step, 3)
        let b = try InProcessTraining(config: ckpt.config, grid: ParallelLayout())
        try b.load(state)
        for s in 3..<6 {
            let la = try a.step(micro: micro(exp, step: s), lr: 1e-3, clip: 1).loss
            let lb = try b.step(micro: micro(exp, step: s), lr: 1e-3, clip: 1).loss
            XCTAssertEqual(la, lb, accuracy: 1e-5 * la, "step \(s)")
            XCTAssertEqual(Double(la), exp.losses[s], accuracy: 1e-4 * exp.losses[s])
        }
    }

    func testLayoutErrorsAreClear() throws {
        let (ckpt, _, _) = try load("gpt2-tiny-rand", "")
        XCTAssertThrowsError(try InProcessTraining(config: ckpt.config, grid: ParallelLayout(tp: 3))) { XCTAssertTrue("\($0)".contains("does not divide the 4 attention heads"), "\($0)") }
        XCTAssertThrowsError(try InProcessTraining(config: ckpt.config, grid: ParallelLayout(pp: 3))) { XCTAssertTrue("\($0)".contains("larger than the model's 2 layers"), "\($0)") }
        XCTAssertThrowsError(try InProcessTraining(config: ckpt.config, grid: ParallelLayout(tp: 2, vocab: .megatronDefault))) {
            XCTAssertTrue("\($0)".contains("training holds the vocabulary padded to a multiple of TP only"), "\($0)")
        }
        let ex = try InProcessTraining(config: ckpt.config, grid: ParallelLayout(dp: 2))
        XCTAssertThrowsError(try Trainer(executor: ex, rows: [TrainingRow(tokens: [1, 2, 3], mask: [true, true])],
                                         config: TrainerConfig(microBatch: 2, globalBatch: 2, steps: 1, schedule: LRSchedule(lr: 1e-3, decaySteps: 1)))) {
            XCTAssertTrue("\($0)".contains("2 data-parallel replicas"), "\($0)")
        }
    }
}
