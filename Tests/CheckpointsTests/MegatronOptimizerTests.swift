// The optimizer state of a Megatron-LM legacy save: every rank's AdamW moments are cut, fused and padded
// exactly like the weights they belong to, indexed in Megatron's parameter-group order. Written with
// moments derived from the weights (exp_avg = 2 w, exp_avg_sq = w * w), read back with our own reader,
// and checked element for element. scripts/check_megatron_optimizer.py checks a finetune save with
// torch.optim.AdamW.load_state_dict.

import XCTest
import Foundation
@testable import Checkpoints
import Model
import TensorCore

final class MegatronOptimizerTests: XCTestCase {
    func check(_ config: ModelConfig, tp: Int, pp: Int) throws {
        let ck = CanonicalCheckpoint.random(config: config, seed: 11, std: 0.5)
        let twice = ck.tensors.mapValues { Tensor(shape: $0.shape, data: $0.data.map { 2 * $0 }) }
        let square = ck.tensors.mapValues { Tensor(shape: $0.shape, data: $0.data.map { $0 * $0 }) }
        let tr = MegatronTrainingState(expAvg: twice, expAvgSq: square, step: 7, lr: 3e-4, currentLR: 2e-4, minLR: 0, beta1: 0.9, beta2: 0.95,
                                       eps: 1e-8, weightDecay: 0.1, clipGrad: 1, warmupIters: 2, decayIters: 10, trainIters: 10,
                                       decayStyle: "cosine", globalBatch: 8, microBatch: 2)
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("meg")
        try CheckpointWriter.write(ck, to: out, target: .megatron, options: WriteOptions(layout: ParallelLayout(tp: tp, pp: pp, vocab: .megatronDefault), iteration: 7, training: tr))
        var files = 0
        for p in 0..<pp { for r in 0..<tp {
            let name = pp == 1 ? String(format: "mp_rank_%02d", r) : String(format: "mp_rank_%02d_%03d", r, p)
            let root = try TorchFile(url: out.appendingPathComponent("iter_0000007/\(name)/model_optim_rng.pt")).root()
            let params = root["model"]!.flattenTensors()
            XCTAssertFalse(params.isEmpty)
            // Megatron's groups: weight decay unless a bias or 1-D, in first-appearance order
            var groups: [(Bool, [Int])] = []
            for (i, (n, t)) in params.enumerated() {
                let decay = !(n.hasSuffix(".bias") || t.shape.count == 1)
                if let g = groups.firstIndex(where: { $0.0 == decay }) { groups[g].1.append(i) } else { groups.append((decay, [i])) }
            }
            let order = groups.flatMap(\.1)
            guard case .list(let pg)? = root["optimizer"]?["param_groups"], case .dict(let state)? = root["optimizer"]?["state"] else {
                return XCTFail("\(name): no optimizer state")
            }
            XCTAssertEqual(pg.count, groups.count, name)
            for (gi, g) in pg.enumerated() {
                guard case .list(let ids)? = g["params"], case .float(let wd)? = g["weight_decay"] else { return XCTFail("\(name): group \(gi)") }
                XCTAssertEqual(ids.count, groups[gi].1.count, "\(name) group \(gi) size")
                XCTAssertEqual(wd, groups[gi].0 ? 0.1 : 0, "\(name) group \(gi) weight decay")
            }
            XCTAssertEqual(state.items.count, params.count, name)
            for (k, v) in state.items {
                guard case .int(let idx) = k, case .tensor(let m)? = v["exp_avg"], case .tensor(let s)? = v["exp_avg_sq"], case .tensor(let st)? = v["step"] else {
                    return XCTFail("\(name): state entry \(k)")
                }
                let (pname, pref) = params[order[idx]]
                let w = try pref.materialize().data
                XCTAssertEqual(m.shape, pref.shape, "\(name) \(pname)")
                XCTAssertEqual(try m.materialize().data, w.map { 2 * $0 }, "\(name) \(pname): exp_avg is not cut like its weight")
                XCTAssertEqual(try s.materialize().data, w.map { $0 * $0 }, "\(name) \(pname): exp_avg_sq is not cut like its weight")
                XCTAssertEqual(try st.materialize().data, [7])
            }
            XCTAssertEqual(MegatronArgs(root["args"], file: name).int("consumed_train_samples"), 56)
            if case .int(let n)? = root["opt_param_scheduler"]?["num_steps"] { XCTAssertEqual(n, 56) } else { XCTFail("\(name): scheduler") }
            files += 1
        } }
        XCTAssertEqual(files, tp * pp)
        // the model itself still reads back bitwise
        let back = try CheckpointLoader.load(out)
        for (n, t) in ck.tensors { XCTAssertEqual(back.tensors[n]?.data, t.data, n) }
        // and the moments read back through the same merge (what finetune resumes from)
        for (moment, want) in [("exp_avg", twice), ("exp_avg_sq", square)] {
            var o = LoadOptions(); o.optimizerMoment = moment
            let got = try CheckpointLoader.load(out, options: o)
            for (n, t) in want { XCTAssertEqual(got.tensors[n]?.data, t.data, "\(moment) of \(n)") }
        }
    }

    /// GPT-2 style: tied embeddings (the last stage's word_embeddings_for_head has its own state), biases, LayerNorm.
    func testGPT2MomentsFollowTheirWeights() throws {
        try check(ModelConfig(vocabSize: 300, hiddenSize: 32, numLayers: 4, numHeads: 4, maxPositions: 32, activation: .geluTanh), tp: 2, pp: 2)
    }

    /// Llama style: fused grouped-query QKV, SwiGLU [W; V], untied head, RMSNorm, no biases.
    func testLlamaMomentsFollowTheirWeights() throws {
        let c = ModelConfig(vocabSize: 300, hiddenSize: 32, numLayers: 2, numHeads: 4, numKVHeads: 2, ffnSize: 48, maxPositions: 32,
                            norm: .rmsnorm, activation: .swiglu, positions: .rope, tiedEmbeddings: false, linearBias: false)
        try check(c, tp: 2, pp: 2)
    }
}
