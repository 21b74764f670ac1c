// Saves made with `--use-distributed-optimizer`: Megatron-LM writes the optimizer state sharded over
// data-parallel ranks in `distrib_optim.pt` beside each `model_optim_rng.pt` (whose `optimizer` entry
// then holds no per-parameter state). The model loads, the optimizer state is skipped with a note, and
// asking for an Adam moment is a typed error naming the reason. (megatron-core's DistributedOptimizer
// needs CUDA tensors, so the layout is built here from a real Megatron-LM save of the version matrix.)

import Foundation
import XCTest
@testable import Checkpoints

final class DistributedOptimizerTests: XCTestCase {
    func testModelLoadsAndOptimizerStateIsSkippedWithANote() throws {
        let src = MegatronMatrixTests.dir.appendingPathComponent("core_v0.19.0-torch-tp2-pp2")
        let tmp = try tempDir(); defer { try? FileManager.default.removeItem(at: tmp) }
        let dst = tmp.appendingPathComponent("ckpt")
        try FileManager.default.copyItem(at: src, to: dst)
        let it = dst.appendingPathComponent("iter_0000007")
        let ranks = try FileManager.default.contentsOfDirectory(atPath: it.path).filter { $0.hasPrefix("mp_rank_") }.sorted()
        XCTAssertEqual(ranks.count, 4)
        for r in ranks {
            // distrib_optim.pt as DistributedOptimizer.save_parameter_state writes it: {buffer index: {dtype: {param, exp_avg, exp_avg_sq}}}
            try TestTorchWriter.save(.dict([("per_bucket_numel", .int(128)), ("0", .dict([("param", .tensor(.init(shape: [4], data: [1, 2, 3, 4]))),
                                                                                          ("exp_avg", .tensor(.init(shape: [4], data: [0, 0, 0, 0])))]))]),
                                     to: it.appendingPathComponent(r).appendingPathComponent("distrib_optim.pt"), prefix: "distrib_optim")
        }
        let ref = try CheckpointLoader.loadReport(src)
        let r = try CheckpointLoader.loadReport(dst)
        assertBitwiseEqual(r.checkpoint, ref.checkpoint)
        XCTAssertEqual(r.notes.last, "optimizer state skipped: distributed optimizer (distrib_optim.pt in 4 rank directories)")
        let ins = CheckpointLoader.inspect(dst)
        XCTAssertEqual(ins.problems, [])
        XCTAssertTrue("\(ins)".contains("note: optimizer state skipped: distributed optimizer"))
        var o = LoadOptions(); o.optimizerMoment = "exp_avg"
        XCTAssertThrowsError(try CheckpointLoader.loadReport(dst, options: o)) { e in
            guard case .badConfig(let f, let m)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, it.path)
            XCTAssertTrue(m.contains("distributed optimizer (distrib_optim.pt)"), m)
        }
    }
}
