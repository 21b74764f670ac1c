// megatron-core torch_dist (PyTorch Distributed Checkpoint) loading, on the fixture that
// scripts/fixtures_torch_dist.py had megatron-core 0.16 write from gpt2-tiny at TP 2 x PP 2 (four gloo
// ranks, eight .distcp files, layer tensors stacked on a leading axis with one chunk per layer and TP
// rank): weights bitwise equal to the HF reference, layout facts, direct TP splits, and hostile trees
// (missing or truncated data file, another sharded backend, a data path leaving the directory).

import Foundation
import XCTest
import TestSupport
import TensorCore
import Model
@testable import Checkpoints

final class TorchDistTests: XCTestCase {
    static let fixture = Paths.fixture("torch_dist/mcore-tp2-pp2")
    static let iter = fixture.appendingPathComponent("iter_0000007")

    func testDetectedAndLaidOutAsSaved() throws {
        XCTAssertEqual(try CheckpointLoader.detect(Self.fixture), .torchDist)
        let r = try CheckpointLoader.loadReport(Self.fixture, options: LoadOptions(vocabSize: 1000))
        XCTAssertEqual(r.format, "megatron-core-torch-dist")
        XCTAssertEqual(r.tensorParallel, 2); XCTAssertEqual(r.pipelineParallel, 2)
        XCTAssertEqual(r.iteration, 7); XCTAssertEqual(r.checkpointVersion, 3)
        XCTAssertEqual(r.files.filter { $0.pathExtension == "distcp" }.count, 8)
        XCTAssertTrue(r.problems.isEmpty, "\(r.problems)")
        XCTAssertEqual(r.checkpoint.config.numLayers, 4); XCTAssertEqual(r.checkpoint.config.activation, .geluTanh)
        // The fixture really is chunked: a stacked layer tensor spread over several files.
        let meta = try DCPMetadata(url: Self.iter.appendingPathComponent(".metadata"))
        let qkv = try XCTUnwrap(meta.tensors["decoder.layers.self_attention.linear_qkv.weight"])
        XCTAssertEqual(qkv.size, [4, 192, 64]); XCTAssertEqual(qkv.chunks.count, 8)
        let files = Set(qkv.chunks.map { meta.storage[.init(fqn: "decoder.layers.self_attention.linear_qkv.weight", offsets: $0.offsets)]!.path })
        XCTAssertGreaterThan(files.count, 1, "\(files)")   // 7 of the 8 files here
        let ins = CheckpointLoader.inspect(Self.fixture, options: LoadOptions(vocabSize: 1000))
        XCTAssertEqual(ins.format, .torchDist); XCTAssertEqual(ins.tensorParallel, 2); XCTAssertEqual(ins.problems, [])
    }

    func testWeightsEqualTheHFReference() throws {
        let ref = try Fixtures.reference()
        let ck = try CheckpointLoader.load(Self.fixture, options: LoadOptions(vocabSize: 1000))
        var want = ref.config; want.bosToken = nil; want.eosToken = nil
        XCTAssertEqual(ck.config, want)
        assertBitwiseEqual(ck, ref)
    }

    func testDirectSplitEqualsCanonicalSplit() throws {
        let ck = try CheckpointLoader.load(Self.fixture, options: LoadOptions(vocabSize: 1000))
        for tp in [1, 2, 4] {
            let r = try CheckpointLoader.loadSplit(Self.fixture, layout: ParallelLayout(tp: tp, vocab: .megatronDefault), options: LoadOptions(vocabSize: 1000))
            assertSameShards(r.shards!, try ck.split(ParallelLayout(tp: tp, vocab: .megatronDefault)), "torch_dist at TP \(tp)")
        }
    }

    func copyFixture() throws -> URL {
        let dst = try tempDir().appendingPathComponent("mcore-tp2-pp2")
        try FileManager.default.copyItem(at: Self.fixture, to: dst)
        return dst
    }

    func testMissingDataFileIsNamed() throws {
        let dir = try copyFixture(); defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("iter_0000007/__2_1.distcp"))
        XCTAssertThrowsError(try CheckpointLoader.load(dir)) { e in
            guard case .io(let f, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertTrue(f.hasSuffix("__2_1.distcp"), f)
        }
    }

    func testTruncatedDataFileIsATypedError() throws {
        let dir = try copyFixture(); defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let f = dir.appendingPathComponent("iter_0000007/__0_0.distcp")
        let d = try Data(contentsOf: f)
        try d.prefix(d.count / 2).write(to: f)
        XCTAssertThrowsError(try CheckpointLoader.load(dir)) { e in
            guard case .truncated(let file, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertTrue(file.contains("__0_0.distcp"), file)
        }
    }

    func testOtherShardedBackendIsRefusedByName() throws {
        let dir = try copyFixture(); defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        try Data(#"{"sharded_backend": "zarr", "sharded_backend_version": 1}"#.utf8).write(to: dir.appendingPathComponent("iter_0000007/metadata.json"))
        XCTAssertThrowsError(try CheckpointLoader.load(dir)) { e in
            guard case .unknownFormat(_, let why)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertTrue(why.contains("zarr"), why)
        }
    }

    func testDataPathOutsideTheDirectoryIsRefused() throws {
        // Rewrite one _StorageInfo.relative_path ('__0_0.distcp' -> '../_0_0.dist', same length) in the pickle.
        let dir = try copyFixture(); defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let f = dir.appendingPathComponent("iter_0000007/.metadata")
        var bytes = [UInt8](try Data(contentsOf: f))
        let needle = Array("__0_0.distcp".utf8)
        guard let at = (0...(bytes.count - needle.count)).first(where: { Array(bytes[$0..<($0 + needle.count)]) == needle }) else { return XCTFail("no path in the pickle") }
        bytes.replaceSubrange(at..<(at + needle.count), with: Array("../_0_0.dist".utf8))
        try Data(bytes).write(to: f)
        XCTAssertThrowsError(try CheckpointLoader.load(dir)) { e in
            guard case .badConfig(_, let why)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertTrue(why.contains("outside"), why)
        }
    }

    func testOnlyTheLayoutHelperOfTorchSerializationIsAllowed() throws {
        // protocol 2: GLOBAL 'torch.serialization _get_layout' ('torch.strided',) REDUCE STOP
        func pickle(_ name: String) -> [UInt8] {
            [0x80, 0x02] + Array("ctorch.serialization\n\(name)\n".utf8) + [0x58] + withUnsafeBytes(of: UInt32(13).littleEndian, Array.init) +
                Array("torch.strided".utf8) + [0x85, 0x52, 0x2E]
        }
        XCTAssertNoThrow(try Pickle.load(pickle("_get_layout"), file: "ok"))
        XCTAssertThrowsError(try Pickle.load(pickle("load"), file: "bad")) { e in
            guard case .forbiddenGlobal? = e as? CheckpointError else { return XCTFail("\(e)") }
        }
    }

    func testChunksMustTileTheTensorExactlyOnce() {
        let ok: [(offsets: [Int], sizes: [Int])] = [([0, 0], [2, 3]), ([2, 0], [2, 3])]
        XCTAssertNil(TorchDistAdapter.coverageProblem(ok, size: [4, 3]))
        // Same element count, but one block twice and a gap: refused.
        XCTAssertNotNil(TorchDistAdapter.coverageProblem([([0, 0], [2, 3]), ([0, 0], [2, 3])], size: [4, 3]))
        XCTAssertNotNil(TorchDistAdapter.coverageProblem([([0, 0], [2, 3])], size: [4, 3]))          // a gap
        XCTAssertNotNil(TorchDistAdapter.coverageProblem([([3, 0], [2, 3]), ([0, 0], [2, 3])], size: [4, 3]))   // out of bounds
        XCTAssertNotNil(TorchDistAdapter.coverageProblem([([0, 0], [2, 3])], size: [4]))              // wrong rank
    }

    func testTruncatedMetadataIsATypedError() throws {
        let dir = try copyFixture(); defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let f = dir.appendingPathComponent("iter_0000007/.metadata")
        let d = try Data(contentsOf: f)
        for cut in [1, d.count / 3, d.count - 1] {
            try d.prefix(cut).write(to: f)
            XCTAssertThrowsError(try CheckpointLoader.load(dir)) { e in XCTAssertTrue(e is CheckpointError, "\(e)") }
        }
    }
}
