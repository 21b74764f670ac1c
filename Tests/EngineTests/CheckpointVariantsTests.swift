import XCTest
import TestSupport
import Foundation
@testable import Engine
@testable import Checkpoints
import Model
import TensorCore

/// Issue 16's fixtures: the Megatron-LM version matrix (Tests/Fixtures/megatron_matrix: gpt2-micro saved
/// by Megatron-LM's own save_checkpoint with its own parse_args/validate_args args, legacy and
/// torch_dist, TP 2 x PP 2, scripts/fixtures_megatron_matrix.py) and the pytorch_model.bin HF folders of
/// gpt2-tiny (Tests/Fixtures/hf_bin): each run at TP 1 and at TP 2 x PP 2 reproduces transformers'
/// logits within 1e-4, with the vocabulary read from the saved args (no --vocab-size), and inspect
/// lists no problem.
final class CheckpointVariantsTests: XCTestCase {
    static let fixtures = Paths.fixture()

    struct Expected: Decodable {
        struct Seq: Decodable { let ids: [Int]; let logits_key: String }
        let sequences: [Seq]
    }

    func folders(_ group: String) throws -> [URL] {
        let d = Self.fixtures.appendingPathComponent(group)
        return try FileManager.default.contentsOfDirectory(atPath: d.path).sorted().compactMap { n in
            var isDir: ObjCBool = false
            let u = d.appendingPathComponent(n)
            return FileManager.default.fileExists(atPath: u.path, isDirectory: &isDir) && isDir.boolValue ? u : nil
        }
    }

    /// Every folder of `dirs` at TP 1 and TP 2 x PP 2 against `ref`'s logits; returns the worst |Δ| per folder.
    func check(_ dirs: [URL], vocab: Int, expected exp: Expected, ref: SafetensorsFile) throws {
        for dir in dirs {
            let name = dir.pathComponents.suffix(2).joined(separator: "/")
            let ins = CheckpointLoader.inspect(dir)
            XCTAssertEqual(ins.problems, [], name)
            let ckpt = try CheckpointLoader.load(dir)
            XCTAssertEqual(ckpt.config.vocabSize, vocab, name)
            for (tp, pp) in [(1, 1), (2, 2)] {
                let engine = try ShardedEngine(ckpt, layout: ParallelLayout(tp: tp, pp: pp))
                let worst = try worstLogitError(engine, exp.sequences.map { ($0.ids, $0.logits_key) }, ref, name)
                XCTAssertLessThan(worst, 1e-4, "\(name) at TP \(tp) x PP \(pp): max |logit - HF| = \(worst)")
                print("\(name) run at TP \(tp) x PP \(pp): max |logit - HF| = \(worst)")
            }
        }
    }

    /// The Megatron-LM version matrix against transformers' logits for gpt2-micro (committed beside it).
    func testMegatronMatrixAtTP1AndTP2PP2() throws {
        let m = Self.fixtures.appendingPathComponent("megatron_matrix")
        let exp = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: m.appendingPathComponent("expected.json")))
        let dirs = try folders("megatron_matrix").filter { $0.lastPathComponent.hasPrefix("core_") }
        XCTAssertGreaterThanOrEqual(dirs.count, 9)
        try check(dirs, vocab: 250, expected: exp, ref: try SafetensorsFile(url: m.appendingPathComponent("expected.safetensors")))
    }

    /// pytorch_model.bin folders of gpt2-tiny against the shared oracle.
    func testHFBinAtTP1AndTP2PP2() throws {
        let root = sharedData().deletingLastPathComponent().appendingPathComponent("fixtures/checkpoints")
        let expURL = root.appendingPathComponent("expected.json")
        guard FileManager.default.fileExists(atPath: expURL.path) else { throw XCTSkip("shared fixtures not found: \(expURL.path)") }
        let exp = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: expURL))
        try check(try folders("hf_bin"), vocab: 1000, expected: exp, ref: try SafetensorsFile(url: root.appendingPathComponent("expected.safetensors")))
    }
}
