// HF Llama folder, sharded with model.safetensors.index.json, written from a synthetic canonical
// checkpoint; plus config/weight disagreement and a weight_map naming a missing shard.

import Foundation
import XCTest
import TensorCore
import Model
@testable import Checkpoints

final class HFLlamaTests: XCTestCase {
    static func hfNames(_ ck: CanonicalCheckpoint) -> [String: Tensor] {
        var out: [String: Tensor] = ["model.embed_tokens.weight": ck.tensors["embedding.word.weight"]!,
                                     "model.norm.weight": ck.tensors["final_norm.weight"]!, "lm_head.weight": ck.tensors["lm_head.weight"]!]
        let map = ["norm1.weight": "input_layernorm.weight", "attn.q.weight": "self_attn.q_proj.weight", "attn.k.weight": "self_attn.k_proj.weight",
                   "attn.v.weight": "self_attn.v_proj.weight", "attn.out.weight": "self_attn.o_proj.weight",
                   "norm2.weight": "post_attention_layernorm.weight", "mlp.gate.weight": "mlp.gate_proj.weight",
                   "mlp.up.weight": "mlp.up_proj.weight", "mlp.fc2.weight": "mlp.down_proj.weight"]
        for i in 0..<ck.config.numLayers { for (c, h) in map { out["model.layers.\(i).\(h)"] = ck.tensors["layers.\(i).\(c)"]! } }
        return out
    }

    func writeFolder(_ dir: URL, _ ck: CanonicalCheckpoint, config: [String: Any]) throws {
        let all = Self.hfNames(ck)
        let names = all.keys.sorted()
        let half = names.count / 2
        let shards = [Array(names[..<half]), Array(names[half...])]
        var weightMap: [String: String] = [:]
        for (i, s) in shards.enumerated() {
            let file = "model-0000\(i + 1)-of-00002.safetensors"
            try SafetensorsWriter.write(Dictionary(uniqueKeysWithValues: s.map { ($0, all[$0]!) }), to: dir.appendingPathComponent(file))
            for n in s { weightMap[n] = file }
        }
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": weightMap]).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
    }

    static let llamaConfig: [String: Any] = [
        "model_type": "llama", "vocab_size": 50, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4, "max_position_embeddings": 32, "rms_norm_eps": 1e-6,
        "rope_theta": 500000.0, "tie_word_embeddings": false, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
    ]

    func testShardedLlamaLoadsExactly() throws {
        let ck = SyntheticMegatronTests.randomCheckpoint()
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try writeFolder(dir, ck, config: Self.llamaConfig)
        XCTAssertEqual(try CheckpointLoader.detect(dir), .hf)
        let got = try CheckpointLoader.load(dir)
        var want = SyntheticMegatronTests.config; want.bosToken = 1; want.eosToken = 2
        XCTAssertEqual(got.config, want)
        assertBitwiseEqual(got, ck)
    }

    func testLlamaConfigDisagreeingWithWeights() throws {
        let ck = SyntheticMegatronTests.randomCheckpoint()
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        var cfg = Self.llamaConfig; cfg["num_key_value_heads"] = 4
        try writeFolder(dir, ck, config: cfg)
        XCTAssertThrowsError(try CheckpointLoader.load(dir)) { e in
            guard case .shapeMismatch(_, let t, let exp, let found)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(t, "model.layers.0.self_attn.k_proj.weight"); XCTAssertEqual(exp, [16, 16]); XCTAssertEqual(found, [8, 16])
        }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        XCTAssertThrowsError(try CheckpointLoader.load(dir)) { e in
            guard case .missingShard? = e as? CheckpointError else { return XCTFail("\(e)") }
        }
    }
}
