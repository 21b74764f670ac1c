// The Megatron-LM version matrix (Tests/Fixtures/megatron_matrix, scripts/fixtures_megatron_matrix.py):
// gpt2-micro saved at TP 2 x PP 2 by Megatron-LM's own save_checkpoint with the args its own
// parse_args/validate_args produced, for core_v0.4.0 (Dec 2023, legacy only: torch_dist did not exist),
// core_v0.9.0 (Oct 2024), core_v0.16.1 and core_v0.19.0 (current; common state inside the DCP files),
// legacy and torch_dist, plus the legacy save rewritten to the Transformer Engine spec's names and a
// torch_dist save holding megatron-core's optimizer state.
// Every one reads to the HF original's tensors bit for bit, inspect lists no problem, and the args
// show readably (exit_signal: SIGTERM from core_v0.16 on).

import Foundation
import XCTest
import TestSupport
@testable import Checkpoints

final class MegatronMatrixTests: XCTestCase {
    static let dir = Paths.fixture("megatron_matrix")

    func testEveryReleaseReadsToTheHFTensors() throws {
        let ref = try HFAdapter.load(Self.dir.appendingPathComponent("gpt2-micro"))
        var config = ref.config; config.bosToken = nil; config.eosToken = nil   // Megatron args do not record them
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.dir.path).filter { $0.hasPrefix("core_") }.sorted()
        XCTAssertEqual(names, ["core_v0.16.1-torch-tp2-pp2", "core_v0.16.1-torch_dist-tp2-pp2", "core_v0.19.0-torch-te-names-tp2-pp2",
                               "core_v0.19.0-torch-tp2-pp2", "core_v0.19.0-torch_dist-optim-tp2-pp2", "core_v0.19.0-torch_dist-tp2-pp2", "core_v0.4.0-torch-tp2-pp2",
                               "core_v0.9.0-torch-tp2-pp2", "core_v0.9.0-torch_dist-tp2-pp2"])
        for n in names {
            let url = Self.dir.appendingPathComponent(n)
            let r = try CheckpointLoader.loadReport(url)
            XCTAssertEqual(r.format, n.contains("torch_dist") ? "megatron-core-torch-dist" : "megatron-legacy", n)
            XCTAssertEqual([r.tensorParallel, r.pipelineParallel], [2, 2], n)
            XCTAssertEqual(r.iteration, 7, n)
            XCTAssertEqual(r.checkpoint.config, config, n)
            assertBitwiseEqual(r.checkpoint, ref)
            var ins = CheckpointLoader.inspect(url)
            XCTAssertEqual(ins.problems, [], n)
            ins.showArgs = true
            let text = "\(ins)"
            XCTAssertTrue(text.contains("    model_type: encoder_or_decoder"), n)
            if !n.contains("v0.4.0") && !n.contains("v0.9.0") {
                XCTAssertTrue(text.contains("\n    exit_signal: SIGTERM\n"), n)
                guard case .enumMember(let e)? = r.args?["exit_signal"] else { XCTFail("\(n): exit_signal"); continue }
                XCTAssertEqual([e.className, e.name], ["signal.Signals", "SIGTERM"])
            }
            if !n.contains("v0.4.0") { XCTAssertTrue(ins.notes.contains { $0.contains("_extra_state entries skipped") }, "\(n): \(ins.notes)") }
            // Saved with megatron-core's optimizer (Adam moments of every parameter, in the DCP files): skipped with a note.
            XCTAssertEqual(ins.notes.contains("optimizer state skipped (32 entries)"), n.contains("-optim-"), "\(n): \(ins.notes)")
        }
    }

    /// TE names: fused `linear_qkv.layer_norm_*` / `linear_fc1.layer_norm_*`, `_extra_state` as BytesIO (stage 0)
    /// and uint8 tensors (stage 1), `core_attention._extra_state`: all counted, none read as weights.
    func testTransformerEngineNamesAndExtraState() throws {
        let te = try CheckpointLoader.loadReport(Self.dir.appendingPathComponent("core_v0.19.0-torch-te-names-tp2-pp2"))
        let local = try CheckpointLoader.loadReport(Self.dir.appendingPathComponent("core_v0.19.0-torch-tp2-pp2"))
        assertBitwiseEqual(te.checkpoint, local.checkpoint)
        // 4 ranks x 2 layers x 5 modules (linear_qkv, linear_proj, core_attention, linear_fc1, linear_fc2), + 2 output_layer
        XCTAssertEqual(te.notes.first, "42 _extra_state entries skipped (module extra state, e.g. Transformer Engine FP8 metadata; not weights)")
        let f = Self.dir.appendingPathComponent("core_v0.19.0-torch-te-names-tp2-pp2/iter_0000007/mp_rank_00_000/model_optim_rng.pt")
        let root = try TorchFile.load(f)
        guard case .bytes(let b)? = root["model"]?["decoder.layers.0.self_attention.linear_qkv._extra_state"] else { return XCTFail("BytesIO extra state") }
        XCTAssertGreaterThan(b.count, 0)
    }

    /// megatron-core 0.19 keeps the common state (args) in the DCP files: a file cut short before it is a
    /// typed error naming the file, not a crash.
    func testCommonStateInsideTheDCPFilesCutShort() throws {
        let tmp = try tempDir(); defer { try? FileManager.default.removeItem(at: tmp) }
        let dst = tmp.appendingPathComponent("ckpt")
        try FileManager.default.copyItem(at: Self.dir.appendingPathComponent("core_v0.19.0-torch_dist-tp2-pp2"), to: dst)
        let f = dst.appendingPathComponent("iter_0000007/__0_0.distcp")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dst.appendingPathComponent("iter_0000007/common.pt").path))
        try Data(try Data(contentsOf: f).prefix(12000)).write(to: f)
        XCTAssertThrowsError(try CheckpointLoader.loadReport(dst)) { e in
            guard case .truncated(let file, let m)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(file, f.path); XCTAssertTrue(m.contains("common_state"), m)
        }
    }
}
