// Synthetic Megatron trees written with TestTorchWriter: a Llama-style model (GQA, SwiGLU, RMSNorm, RoPE,
// untied head, no biases) sharded TP 2 and saved (a) with megatron-core flat names and a virtual
// pipeline (PP 2 × VP 2, `model0`/`model1`), (b) with legacy nested names (`input_norm`, `final_norm`)
// and uneven stages (3 + 1 layers). Both must load back bitwise; a swapped GQA layout must not.

import Foundation
import XCTest
import TensorCore
import Model
@testable import Checkpoints

final class SyntheticMegatronTests: XCTestCase {
    static let config = ModelConfig(vocabSize: 50, hiddenSize: 16, numLayers: 4, numHeads: 4, numKVHeads: 2, headDim: 4,
                                    ffnSize: 24, maxPositions: 32, norm: .rmsnorm, normEpsilon: 1e-6, activation: .swiglu,
                                    positions: .rope, ropeTheta: 500000, tiedEmbeddings: false, linearBias: false)

    static func randomCheckpoint() -> CanonicalCheckpoint {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float { state = state &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 997 }
        var t: [String: Tensor] = [:]
        for (n, s) in CanonicalSchema.shapes(for: config) { t[n] = Tensor(shape: s, data: (0..<s.reduce(1, *)).map { _ in next() }) }
        return CanonicalCheckpoint(config: config, tensors: t, format: "synthetic")
    }

    /// Megatron per-rank tensors (neutral keys) for TP `tp`: GQA QKV [ng][np/ng+2][hn], SwiGLU [W;V].
    static func shards(_ ck: CanonicalCheckpoint, tp: Int, paddedVocab: Int) -> [[String: Tensor]] {
        let c = ck.config, D = c.headDim, qpg = c.numHeads / c.numKVHeads, ngp = c.numKVHeads / tp
        func pad(_ w: Tensor) -> Tensor { Tensor.concat([w, Tensor(zeros: [paddedVocab - c.vocabSize, c.hiddenSize])], axis: 0) }
        return (0..<tp).map { r in
            var out: [String: Tensor] = [:]
            out["word"] = pad(ck.tensors["embedding.word.weight"]!).split(axis: 0, parts: tp)[r]
            out["output"] = pad(ck.tensors["lm_head.weight"]!).split(axis: 0, parts: tp)[r]
            out["final"] = ck.tensors["final_norm.weight"]!
            for i in 0..<c.numLayers {
                let p = "layers.\(i)."
                let q = ck.tensors[p + "attn.q.weight"]!, k = ck.tensors[p + "attn.k.weight"]!, v = ck.tensors[p + "attn.v.weight"]!
                var rows: [Tensor] = []
                for g in (r * ngp)..<((r + 1) * ngp) {
                    for h in (g * qpg)..<((g + 1) * qpg) { rows.append(q.rows(h * D, D)) }
                    rows.append(k.rows(g * D, D)); rows.append(v.rows(g * D, D))
                }
                out["L\(i).qkv"] = Tensor.concat(rows, axis: 0)
                out["L\(i).proj"] = ck.tensors[p + "attn.out.weight"]!.split(axis: 1, parts: tp)[r]
                out["L\(i).fc1"] = Tensor.concat([ck.tensors[p + "mlp.gate.weight"]!.split(axis: 0, parts: tp)[r],
                                                  ck.tensors[p + "mlp.up.weight"]!.split(axis: 0, parts: tp)[r]], axis: 0)
                out["L\(i).fc2"] = ck.tensors[p + "mlp.fc2.weight"]!.split(axis: 1, parts: tp)[r]
                out["L\(i).norm1"] = ck.tensors[p + "norm1.weight"]!
                out["L\(i).norm2"] = ck.tensors[p + "norm2.weight"]!
            }
            return out
        }
    }

    enum Style { case mcore, legacy }

    /// One chunk's model dict: global layers `layers` saved with local numbers.
    static func chunk(_ s: [String: Tensor], layers: [Int], first: Bool, last: Bool, style: Style) -> TV {
        var items: [(String, TV)] = []
        switch style {
        case .mcore:
            if first { items.append(("embedding.word_embeddings.weight", .tensor(s["word"]!))) }
            for (j, i) in layers.enumerated() {
                let p = "decoder.layers.\(j)."
                items += [(p + "self_attention.linear_qkv.layer_norm_weight", .tensor(s["L\(i).norm1"]!)),
                          (p + "self_attention.linear_qkv.weight", .tensor(s["L\(i).qkv"]!)),
                          (p + "self_attention.linear_proj.weight", .tensor(s["L\(i).proj"]!)),
                          (p + "mlp.linear_fc1.layer_norm_weight", .tensor(s["L\(i).norm2"]!)),
                          (p + "mlp.linear_fc1.weight", .tensor(s["L\(i).fc1"]!)),
                          (p + "mlp.linear_fc2.weight", .tensor(s["L\(i).fc2"]!)),
                          (p + "self_attention.core_attention._extra_state", .none)]
            }
            if last { items += [("decoder.final_layernorm.weight", .tensor(s["final"]!)), ("output_layer.weight", .tensor(s["output"]!))] }
            return .dict(items)
        case .legacy:
            var lm: [(String, TV)] = []
            if first { lm.append(("embedding", .dict([("word_embeddings", .dict([("weight", .tensor(s["word"]!))]))]))) }
            var enc: [(String, TV)] = []
            for (j, i) in layers.enumerated() {
                let p = "layers.\(j)."
                enc += [(p + "input_norm.weight", .tensor(s["L\(i).norm1"]!)), (p + "self_attention.query_key_value.weight", .tensor(s["L\(i).qkv"]!)),
                        (p + "self_attention.dense.weight", .tensor(s["L\(i).proj"]!)), (p + "post_attention_norm.weight", .tensor(s["L\(i).norm2"]!)),
                        (p + "mlp.dense_h_to_4h.weight", .tensor(s["L\(i).fc1"]!)), (p + "mlp.dense_4h_to_h.weight", .tensor(s["L\(i).fc2"]!))]
            }
            if last { enc.append(("final_norm.weight", .tensor(s["final"]!))) }
            lm.append(("encoder", .dict(enc)))
            if last { lm.append(("output_layer", .dict([("weight", .tensor(s["output"]!))]))) }
            return .dict([("language_model", .dict(lm))])
        }
    }

    static func args(tp: Int, pp: Int, vp: Int?) -> TV {
        var a: [(String, TV)] = [
            ("num_layers", .int(4)), ("hidden_size", .int(16)), ("num_attention_heads", .int(4)), ("group_query_attention", .bool(true)),
            ("num_query_groups", .int(2)), ("kv_channels", .int(4)), ("ffn_hidden_size", .int(24)), ("max_position_embeddings", .int(32)),
            ("swiglu", .bool(true)), ("normalization", .string("RMSNorm")), ("norm_epsilon", .float(1e-6)),
            ("position_embedding_type", .string("rope")), ("rotary_base", .int(500000)), ("untie_embeddings_and_output_weights", .bool(true)),
            ("add_bias_linear", .bool(false)), ("tensor_model_parallel_size", .int(tp)), ("pipeline_model_parallel_size", .int(pp)),
            ("padded_vocab_size", .int(64)), ("vocab_size", .int(50)), ("bias_gelu_fusion", .bool(false)), ("openai_gelu", .bool(false)),
        ]
        if let vp = vp { a.append(("virtual_pipeline_model_parallel_size", .int(vp))) }
        return .namespace(a)
    }

    /// Write iter_0000100/mp_rank_TT_PPP files. `chunks[v][p]` = global layers of that chunk.
    static func write(_ dir: URL, _ ck: CanonicalCheckpoint, tp: Int, chunks: [[[Int]]], style: Style,
                      edit: ([[String: Tensor]]) -> [[String: Tensor]] = { $0 }) throws {
        let pp = chunks[0].count, vp = chunks.count
        let s = edit(shards(ck, tp: tp, paddedVocab: 64))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "100\n".write(to: dir.appendingPathComponent("latest_checkpointed_iteration.txt"), atomically: true, encoding: .utf8)
        for p in 0..<pp {
            for t in 0..<tp {
                var top: [(String, TV)] = [("args", args(tp: tp, pp: pp, vp: vp > 1 ? vp : nil)), ("checkpoint_version", .float(3.0)), ("iteration", .int(100))]
                for v in 0..<vp {
                    let m = chunk(s[t], layers: chunks[v][p], first: v == 0 && p == 0, last: v == vp - 1 && p == pp - 1, style: style)
                    top.append((vp > 1 ? "model\(v)" : "model", m))
                }
                let name = pp == 1 ? String(format: "mp_rank_%02d", t) : String(format: "mp_rank_%02d_%03d", t, p)
                try TestTorchWriter.save(.dict(top), to: dir.appendingPathComponent("iter_0000100/\(name)/model_optim_rng.pt"), prefix: "model_optim_rng")
            }
        }
    }

    func testMegatronCoreVirtualPipelineGQASwiGLU() throws {
        let ck = Self.randomCheckpoint()
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try Self.write(dir, ck, tp: 2, chunks: [[[0], [1]], [[2], [3]]], style: .mcore)
        let r = try CheckpointLoader.loadReport(dir)
        XCTAssertEqual(r.checkpoint.config, Self.config)
        XCTAssertEqual(r.iteration, 100); XCTAssertEqual(r.pipelineParallel, 2)
        assertBitwiseEqual(r.checkpoint, ck)
        XCTAssertTrue(r.problems.isEmpty, "\(r.problems)")
    }

    func testDirectSplitEqualsCanonicalSplitGQASwiGLU() throws {
        // Saved at TP 2, loaded straight into TP 1, 2 and 4 pieces (vocabulary padded to 128·tp):
        // every piece bitwise equal to cutting the canonical checkpoint.
        let ck = Self.randomCheckpoint()
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try Self.write(dir, ck, tp: 2, chunks: [[[0], [1]], [[2], [3]]], style: .mcore)
        for tp in [1, 2] {
            let r = try CheckpointLoader.loadSplit(dir, layout: ParallelLayout(tp: tp, vocab: .megatronDefault))
            XCTAssertTrue(r.checkpoint.tensors.isEmpty)
            assertSameShards(r.shards!, try ck.split(ParallelLayout(tp: tp, vocab: .megatronDefault)), "TP \(tp)")
        }
        XCTAssertThrowsError(try CheckpointLoader.loadSplit(dir, layout: ParallelLayout(tp: 4, vocab: .megatronDefault)))   // 2 kv groups cannot be cut 4 ways
    }

    func testLegacyNamesUnevenStages() throws {
        let ck = Self.randomCheckpoint()
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try Self.write(dir, ck, tp: 2, chunks: [[[0, 1, 2], [3]]], style: .legacy)
        let got = try CheckpointLoader.load(dir)
        XCTAssertEqual(got.config, Self.config)
        assertBitwiseEqual(got, ck)
        // Same tree at TP 1 (2 groups on one rank).
        let dir1 = try tempDir(); defer { try? FileManager.default.removeItem(at: dir1) }
        try Self.write(dir1, ck, tp: 1, chunks: [[[0, 1], [2, 3]]], style: .legacy)
        assertBitwiseEqual(try CheckpointLoader.load(dir1), ck)
    }

    func testDeepSpeedWithoutPipelineModules() throws {
        // DeepSpeed engine checkpoint with --no-pipeline-parallel: the model sits under `module` (Float16Module-wrapped).
        let ck = Self.randomCheckpoint()
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try "global_step7".write(to: dir.appendingPathComponent("latest"), atomically: true, encoding: .utf8)
        let s = Self.shards(ck, tp: 2, paddedVocab: 64)
        for t in 0..<2 {
            let m = Self.chunk(s[t], layers: [0, 1, 2, 3], first: true, last: true, style: .legacy)
            let root: TV = .dict([("module", .dict([("module", m)])), ("args", Self.args(tp: 2, pp: 1, vp: nil)),
                                  ("checkpoint_version", .float(3.0)), ("iteration", .int(7)), ("mp_world_size", .int(2))])
            try TestTorchWriter.save(root, to: dir.appendingPathComponent(String(format: "global_step7/mp_rank_%02d_model_states.pt", t)))
        }
        XCTAssertEqual(try CheckpointLoader.detect(dir), .deepspeed)
        let r = try CheckpointLoader.loadReport(dir)
        XCTAssertEqual(r.iteration, 7); XCTAssertEqual(r.tensorParallel, 2)
        assertBitwiseEqual(r.checkpoint, ck)
    }

    func testDriftedReplicatedCopyIsReported() throws {
        let ck = Self.randomCheckpoint()
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        // bf16-level drift (BLOOM): reported, rank 0's copy used
        try Self.write(dir, ck, tp: 2, chunks: [[[0, 1], [2, 3]]], style: .legacy) { s in
            var s = s; var t = s[1]["L2.norm2"]!; t.data[3] += 0.004; s[1]["L2.norm2"] = t; return s
        }
        let r = try CheckpointLoader.loadReport(dir)
        assertBitwiseEqual(r.checkpoint, ck)   // rank 0's copy is used
        XCTAssertEqual(r.problems.count, 1); XCTAssertTrue(r.problems[0].contains("layers.0.post_attention_norm.weight"), "\(r.problems)")
        // a real disagreement (0.5) stops the load, naming both rank files
        let far = try tempDir(); defer { try? FileManager.default.removeItem(at: far) }
        try Self.write(far, ck, tp: 2, chunks: [[[0, 1], [2, 3]]], style: .legacy) { s in
            var s = s; var t = s[1]["L2.norm2"]!; t.data[3] += 0.5; s[1]["L2.norm2"] = t; return s
        }
        XCTAssertThrowsError(try CheckpointLoader.loadReport(far)) { e in
            guard case .rankMismatch(let files, let m)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(files.map { URL(fileURLWithPath: $0).deletingLastPathComponent().lastPathComponent }, ["mp_rank_00_001", "mp_rank_01_001"])
            XCTAssertTrue(m.contains("layers.0.post_attention_norm.weight"), m)
        }
        // A shape disagreement across ranks is an error naming the tensor and both shapes.
        let bad = try tempDir(); defer { try? FileManager.default.removeItem(at: bad) }
        try Self.write(bad, ck, tp: 2, chunks: [[[0, 1], [2, 3]]], style: .legacy) { s in
            var s = s; s[1]["L1.norm1"] = Tensor(zeros: [17]); return s
        }
        XCTAssertThrowsError(try CheckpointLoader.load(bad)) { e in
            guard case .shapeMismatch(let f, let t, let exp, let found)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertTrue(f.contains("mp_rank_01_000")); XCTAssertEqual(t, "language_model.encoder.layers.1.input_norm.weight")
            XCTAssertEqual(exp, [16]); XCTAssertEqual(found, [17])
        }
    }

    func testGQALayoutIsNotTheMHALayout() throws {
        // Reading the GQA shard as if it were [np, 3, hn] must fail the shape check (rows differ).
        let ck = Self.randomCheckpoint()
        let s = Self.shards(ck, tp: 2, paddedVocab: 64)
        XCTAssertEqual(s[0]["L0.qkv"]!.shape, [16, 16])   // 1 group × (2 q + k + v) × hn 4
        var mha = Self.config; mha.numKVHeads = 4
        let m = MegatronMerger(config: mha, tp: 2, checkpointVersion: 3)
        let src = ShardTensor(ref: TensorRef(storage: StorageRef(dtype: .float32, key: "0", location: "cpu", numel: 256, source: nil), offset: 0, shape: [16, 16], stride: [16, 1]), file: "f", original: "qkv")
        XCTAssertThrowsError(try m.checkQKV(s[0]["L0.qkv"]!.shape, src)) { e in
            guard case .shapeMismatch(_, _, let exp, let found)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(exp, [24, 16]); XCTAssertEqual(found, [16, 16])
        }
    }
}
