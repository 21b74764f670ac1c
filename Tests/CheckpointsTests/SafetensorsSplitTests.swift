// Safetensors writer/reader round trips and `split(tp:)` partitioning.

import Foundation
import XCTest
import TensorCore
import Model
@testable import Checkpoints

final class SafetensorsSplitTests: XCTestCase {
    func testWriterRoundTripF32AndBF16() throws {
        let ref = try Fixtures.reference()
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let u = dir.appendingPathComponent("w.safetensors")
        try SafetensorsWriter.write(ref.tensors, to: u)
        try SafetensorsWriter.write(ref.tensors, to: u)   // overwrite goes through the atomic replace
        let f = try SafetensorsFile(url: u)
        XCTAssertEqual(f.metadata["format"], "pt")
        for (n, t) in ref.tensors { XCTAssertEqual(try f.tensor(n), t, n) }
        let b = dir.appendingPathComponent("b.safetensors")
        try SafetensorsWriter.write(ref.tensors, to: b, dtype: .bfloat16)
        let fb = try SafetensorsFile(url: b)
        for (n, t) in ref.tensors { XCTAssertEqual(try fb.tensor(n), bf16Rounded(t), n) }
        XCTAssertEqual((try FileManager.default.contentsOfDirectory(atPath: dir.path)).sorted(), ["b.safetensors", "w.safetensors"], "no temp files left")
    }

    func testCorruptSafetensorsAreTyped() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let u = dir.appendingPathComponent("x.safetensors")
        var b = Bytes(); let h = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        b.u64(h.utf8.count); b.s(h); b.raw([0, 0, 0, 0])   // 12 bytes missing
        try Data(b.b).write(to: u)
        XCTAssertThrowsError(try SafetensorsFile(url: u)) { e in
            guard case .truncated(let f, let m)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, u.path); XCTAssertTrue(m.contains("'a'"))
        }
        var o = Bytes(); let h2 = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        o.u64(h2.utf8.count); o.s(h2); o.raw(Array(repeating: 0, count: 12)); try Data(o.b).write(to: u)
        XCTAssertThrowsError(try SafetensorsFile(url: u)) { e in
            guard case .badSafetensors(_, let m)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("overlap"), m)
        }
        var c = Bytes(); c.u64(1 << 40); try Data(c.b).write(to: u)
        XCTAssertThrowsError(try SafetensorsFile(url: u)) { e in XCTAssertNotNil(e as? CheckpointError) }
    }

    func testSplitMatchesMegatronShards() throws {
        let ref = try Fixtures.reference()
        let ranks = try ref.split(ParallelLayout(tp: 2, vocab: .megatronDefault))
        XCTAssertEqual(ranks.count, 2)
        XCTAssertEqual(ranks[0]["embedding.word.weight"]!.shape, [512, 64])
        XCTAssertEqual(ranks[1]["embedding.word.weight"]!.rows(488, 24), Tensor(zeros: [24, 64]), "zero padding rows")
        XCTAssertEqual(ranks[0]["layers.0.attn.q.weight"]!.shape, [32, 64])
        XCTAssertEqual(ranks[1]["layers.0.attn.out.weight"]!.shape, [64, 32])
        XCTAssertEqual(ranks[1]["layers.0.mlp.fc1.bias"]!.shape, [128])
        XCTAssertEqual(ranks[1]["layers.0.mlp.fc2.bias"], ref.tensors["layers.0.mlp.fc2.bias"])
        // Reassemble and compare.
        for (name, t) in ref.tensors {
            let axis = name.hasSuffix("attn.out.weight") || name.hasSuffix("mlp.fc2.weight") ? 1 : 0
            let replicated = ranks[0][name] == ranks[1][name] && ranks[0][name]!.shape == t.shape
            let back = replicated ? ranks[0][name]! : Tensor.concat([ranks[0][name]!, ranks[1][name]!], axis: axis)
            XCTAssertEqual(name == "embedding.word.weight" ? back.rows(0, 1000) : back, t, name)
        }
        // Rank 1's q rows are the heads 2 and 3 rows of the TP-2 Megatron shard (after the QKV fix).
        let mg = try CheckpointLoader.load(try Fixtures.dir("megatron-legacy-tp2-pp1"))
        XCTAssertEqual(try mg.split(ParallelLayout(tp: 2, vocab: .megatronDefault))[1]["layers.3.attn.q.weight"], ranks[1]["layers.3.attn.q.weight"])
        XCTAssertThrowsError(try ref.split(ParallelLayout(tp: 3, vocab: .megatronDefault)))
    }
}
