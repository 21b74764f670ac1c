// HF folders whose weights are pytorch_model.bin (one file, or shards with pytorch_model.bin.index.json),
// as transformers 4.46 save_pretrained(safe_serialization=False) wrote gpt2-tiny (scripts/fixtures_hf_bin.py):
// the same tensors, bit for bit, as the safetensors original; the pickle policy is that of every .pt.

import Foundation
import XCTest
import TestSupport
@testable import Checkpoints

final class HFBinTests: XCTestCase {
    static let dir = Paths.fixture("hf_bin")

    func testSingleAndShardedBinEqualTheSafetensorsOriginal() throws {
        let ref = try Fixtures.reference()
        for name in ["gpt2-tiny-bin", "gpt2-tiny-bin-sharded"] {
            let url = Self.dir.appendingPathComponent(name)
            XCTAssertEqual(try CheckpointLoader.detect(url), .hf, name)
            let r = try CheckpointLoader.loadReport(url)
            XCTAssertEqual(r.checkpoint.config, ref.config, name)
            assertBitwiseEqual(r.checkpoint, ref)
            XCTAssertEqual(r.files.map(\.lastPathComponent).allSatisfy { $0.hasPrefix("pytorch_model") && $0.hasSuffix(".bin") }, true, name)
            XCTAssertEqual(r.files.count, name.hasSuffix("sharded") ? 3 : 1, name)
            let ins = CheckpointLoader.inspect(url)
            XCTAssertEqual(ins.problems, [], name)
        }
    }

    /// A shard listed in the index but absent, and a .bin holding a forbidden global, are typed errors.
    func testMissingShardAndHostileBin() throws {
        let tmp = try tempDir(); defer { try? FileManager.default.removeItem(at: tmp) }
        let src = Self.dir.appendingPathComponent("gpt2-tiny-bin-sharded")
        let dst = tmp.appendingPathComponent("m")
        try FileManager.default.copyItem(at: src, to: dst)
        try FileManager.default.removeItem(at: dst.appendingPathComponent("pytorch_model-00002-of-00003.bin"))
        XCTAssertThrowsError(try HFAdapter.load(dst)) { e in
            guard case .missingShard(let f, let m)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertTrue(f.hasSuffix("pytorch_model.bin.index.json") && m.contains("pytorch_model-00002-of-00003.bin"), "\(e)")
        }
        let evil = tmp.appendingPathComponent("evil")
        try FileManager.default.createDirectory(at: evil, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: src.appendingPathComponent("config.json"), to: evil.appendingPathComponent("config.json"))
        try Data(buildZip([("archive/data.pkl", Array("cos\nsystem\n(S'true'\ntR.".utf8)), ("archive/version", Array("3\n".utf8))]))
            .write(to: evil.appendingPathComponent("pytorch_model.bin"))
        XCTAssertThrowsError(try HFAdapter.load(evil)) { e in
            XCTAssertEqual(e as? CheckpointError, .forbiddenGlobal(file: evil.appendingPathComponent("pytorch_model.bin").path, "os.system"))
        }
    }
}
