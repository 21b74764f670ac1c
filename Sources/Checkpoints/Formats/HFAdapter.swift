// HFAdapter: a Hugging Face model folder (config.json + model.safetensors, or sharded with
// model.safetensors.index.json; or the older pytorch_model.bin / pytorch_model.bin.index.json
// shards that `save_pretrained(safe_serialization=False)` and transformers' Megatron converter write,
// read through TorchFile with the same pickle policy as every `.pt`) to a `CanonicalCheckpoint`.
// Safetensors win when a folder holds both.
//
// Owns: GPT-2 (`transformer.*` or unprefixed; Conv1D weights are [in, out] and are transposed;
// fused c_attn is split into q, k, v) and Llama/Mistral names (`model.*`, `lm_head`), config field
// mapping, and shape checks naming tensor, expected and found shape. Does not own: file decoding.

import Foundation
import TensorCore
import Model

public enum HFAdapter {
    static let weightFiles = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]

    public static func isHFFolder(_ dir: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: dir.appendingPathComponent("config.json").path) &&
            weightFiles.contains { fm.fileExists(atPath: dir.appendingPathComponent($0).path) }
    }

    /// The weight files a folder's model is read from (for reports).
    public static func weightFileURLs(_ dir: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        let st = names.filter { $0.hasSuffix(".safetensors") }
        return (st.isEmpty ? names.filter { $0.hasPrefix("pytorch_model") && $0.hasSuffix(".bin") } : st).sorted().map { dir.appendingPathComponent($0) }
    }

    /// The checkpoint; with `visitor`, each canonical tensor is handed to it as soon as it is decoded
    /// (in layer order, after `begin` got the config) instead, and the result holds the config only.
    public static func load(_ dir: URL, _ visitor: Visitor? = nil) throws -> CanonicalCheckpoint {
        let cfgURL = dir.appendingPathComponent("config.json")
        let cfg = try readJSON(cfgURL)
        let files = try openWeights(dir)
        let type = cfg["model_type"] as? String ?? "<missing>"
        switch type {
        case "gpt2": return try gpt2(cfg, files, cfgURL.path, visitor)
        case "llama", "mistral": return try llama(cfg, files, cfgURL.path, visitor)
        default: throw CheckpointError.unknownModelType(file: cfgURL.path, "'\(type)' (supported: gpt2, llama, mistral)")
        }
    }

    // MARK: - Files

    static func readJSON(_ url: URL) throws -> [String: Any] {
        let d: Data
        do { d = try Data(contentsOf: url) } catch { throw CheckpointError.io(file: url.path, error.localizedDescription) }
        guard let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
            throw CheckpointError.badConfig(file: url.path, "not a JSON object")
        }
        return o
    }

    /// Tensor name -> where it is (a safetensors file, or a tensor reference inside a torch.save file).
    final class Weights {
        enum Entry {
            case safetensors(SafetensorsFile)
            case torch(TensorRef, file: String)
            var path: String { switch self { case .safetensors(let f): return f.path; case .torch(_, let f): return f } }
        }
        let byName: [String: Entry]
        private(set) var used: Set<String> = []
        init(byName: [String: Entry]) { self.byName = byName }
        func has(_ n: String) -> Bool { byName[n] != nil }
        func get(_ n: String, _ shape: [Int]) throws -> Tensor {
            guard let e = byName[n] else { throw CheckpointError.missingTensor(file: "model weights", tensor: n) }
            used.insert(n)
            switch e {
            case .safetensors(let f):
                let info = f.tensors[n]!
                guard info.shape == shape else { throw CheckpointError.shapeMismatch(file: f.path, tensor: n, expected: shape, found: info.shape) }
                return try f.tensor(n)
            case .torch(let t, let file):
                guard t.shape == shape else { throw CheckpointError.shapeMismatch(file: file, tensor: n, expected: shape, found: t.shape) }
                return try t.materialize(name: n)
            }
        }
        var dtype: StorageDType {
            switch byName.values.first {
            case .safetensors(let f)?: return f.tensors.values.first?.dtype ?? .float32
            case .torch(let t, _)?: return t.dtype
            case nil: return .float32
            }
        }

        /// Tensors the config did not account for (e.g. more layers than n_layer); buffers are ignored.
        func checkAllUsed(ignoring suffixes: [String]) throws {
            let extra = Set(byName.keys).subtracting(used).filter { n in !suffixes.contains { n.hasSuffix($0) } }
            if !extra.isEmpty { throw CheckpointError.unexpectedTensors(file: byName[extra.sorted()[0]]!.path, extra.sorted()) }
        }
    }

    static func openWeights(_ dir: URL) throws -> Weights {
        let fm = FileManager.default
        var byName: [String: Weights.Entry] = [:]
        let single = dir.appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: single.path) {
            let f = try SafetensorsFile(url: single)
            for n in f.tensors.keys { byName[n] = .safetensors(f) }
            return Weights(byName: byName)
        }
        if fm.fileExists(atPath: dir.appendingPathComponent("model.safetensors.index.json").path) {
            return Weights(byName: try indexed(dir, "model.safetensors.index.json") { u in
                let f = try SafetensorsFile(url: u)
                return Dictionary(uniqueKeysWithValues: f.tensors.keys.map { ($0, Weights.Entry.safetensors(f)) })
            })
        }
        let bin = dir.appendingPathComponent("pytorch_model.bin")
        if fm.fileExists(atPath: bin.path) { return Weights(byName: try torchTensors(bin)) }
        return Weights(byName: try indexed(dir, "pytorch_model.bin.index.json", open: torchTensors))
    }

    /// Every tensor of a `torch.save`d state dict (a flat dict of name -> tensor).
    static func torchTensors(_ url: URL) throws -> [String: Weights.Entry] {
        var out: [String: Weights.Entry] = [:]
        for (n, t) in try TorchFile.load(url).flattenTensors() { out[n] = .torch(t, file: url.path) }
        return out
    }

    /// A sharded folder: the index's `weight_map` (tensor -> shard file), each shard opened once and
    /// checked to hold the tensors the index puts in it.
    static func indexed(_ dir: URL, _ index: String, open: (URL) throws -> [String: Weights.Entry]) throws -> [String: Weights.Entry] {
        let idxURL = dir.appendingPathComponent(index)
        let idx = try readJSON(idxURL)
        guard let map = idx["weight_map"] as? [String: String] else { throw CheckpointError.badConfig(file: idxURL.path, "no weight_map") }
        var opened: [String: [String: Weights.Entry]] = [:]
        var byName: [String: Weights.Entry] = [:]
        for (name, file) in map.sorted(by: { $0.key < $1.key }) {
            if opened[file] == nil {
                let u = dir.appendingPathComponent(file)
                guard FileManager.default.fileExists(atPath: u.path) else {
                    throw CheckpointError.missingShard(file: idxURL.path, "'\(file)' listed in weight_map does not exist")
                }
                opened[file] = try open(u)
            }
            guard let e = opened[file]![name] else { throw CheckpointError.missingTensor(file: dir.appendingPathComponent(file).path, tensor: name) }
            byName[name] = e
        }
        return byName
    }

    /// A size field: present, an integer, in 1...2^26 (checked before any arithmetic).
    static func int(_ c: [String: Any], _ k: String, _ file: String) throws -> Int {
        guard let v = try optInt(c, k, file) else { throw CheckpointError.badConfig(file: file, "missing integer field '\(k)'") }
        return v
    }
    /// An optional size field (null or absent: nil); a value outside 1...2^26 is refused.
    static func optInt(_ c: [String: Any], _ k: String, _ file: String) throws -> Int? {
        guard let raw = c[k], !(raw is NSNull) else { return nil }
        guard let n = raw as? NSNumber, Double(n.int64Value) == n.doubleValue else {
            throw CheckpointError.badConfig(file: file, "'\(k)' must be an integer, found \(raw)")
        }
        let v = n.int64Value
        guard (1...(1 << 26)).contains(v) else { throw CheckpointError.badConfig(file: file, "'\(k)' must be in 1...\(1 << 26), found \(v)") }
        return Int(v)
    }
    /// C / H, refused when the heads do not divide the hidden size (and head_dim is not given).
    static func headDim(_ c: [String: Any], hidden C: Int, heads H: Int, _ file: String) throws -> Int {
        if let d = try optInt(c, "head_dim", file) { return d }
        guard C % H == 0 else { throw CheckpointError.badConfig(file: file, "hidden size \(C) is not divisible by the \(H) attention heads") }
        return C / H
    }
    static func optDouble(_ c: [String: Any], _ k: String) -> Double? { (c[k] as? NSNumber)?.doubleValue }
    static func firstInt(_ v: Any?) -> Int? { (v as? NSNumber)?.intValue ?? ((v as? [Any])?.first as? NSNumber)?.intValue }

    // MARK: - GPT-2

    static func gpt2(_ c: [String: Any], _ w: Weights, _ file: String, _ visitor: Visitor? = nil) throws -> CanonicalCheckpoint {
        let act: Activation
        switch c["activation_function"] as? String ?? "gelu_new" {
        case "gelu_new", "gelu_fast", "gelu_pytorch_tanh": act = .geluTanh
        case "gelu": act = .gelu
        case let a: throw CheckpointError.badConfig(file: file, "unsupported activation_function '\(a)'")
        }
        if c["scale_attn_by_inverse_layer_idx"] as? Bool == true || c["add_cross_attention"] as? Bool == true {
            throw CheckpointError.badConfig(file: file, "scale_attn_by_inverse_layer_idx / add_cross_attention are not supported")
        }
        let C = try int(c, "n_embd", file), H = try int(c, "n_head", file)
        guard C % H == 0 else { throw CheckpointError.badConfig(file: file, "n_embd \(C) is not divisible by n_head \(H)") }
        let config = ModelConfig(vocabSize: try int(c, "vocab_size", file), hiddenSize: C, numLayers: try int(c, "n_layer", file),
                                 numHeads: H, ffnSize: try optInt(c, "n_inner", file) ?? 4 * C, maxPositions: try int(c, "n_positions", file),
                                 norm: .layernorm, normEpsilon: Float(optDouble(c, "layer_norm_epsilon") ?? 1e-5), activation: act,
                                 positions: .learned, tiedEmbeddings: c["tie_word_embeddings"] as? Bool ?? true, linearBias: true,
                                 bosToken: firstInt(c["bos_token_id"]), eosToken: firstInt(c["eos_token_id"]))
        try config.validate()
        let pre = w.has("transformer.wte.weight") ? "transformer." : ""
        let V = config.vocabSize, P = config.maxPositions, F = config.ffnSize, L = config.numLayers
        var t = try Tensors(visitor, config)
        t["embedding.word.weight"] = try w.get(pre + "wte.weight", [V, C])
        t["embedding.position.weight"] = try w.get(pre + "wpe.weight", [P, C])
        for i in 0..<L {
            let h = pre + "h.\(i).", o = "layers.\(i)."
            t[o + "norm1.weight"] = try w.get(h + "ln_1.weight", [C]); t[o + "norm1.bias"] = try w.get(h + "ln_1.bias", [C])
            let qkv = try w.get(h + "attn.c_attn.weight", [C, 3 * C]).transposed()   // [3C, C]
            let qkvB = try w.get(h + "attn.c_attn.bias", [3 * C])
            for (j, n) in ["q", "k", "v"].enumerated() {
                t[o + "attn.\(n).weight"] = qkv.rows(j * C, C)
                t[o + "attn.\(n).bias"] = qkvB.rows(j * C, C)
            }
            t[o + "attn.out.weight"] = try w.get(h + "attn.c_proj.weight", [C, C]).transposed()
            t[o + "attn.out.bias"] = try w.get(h + "attn.c_proj.bias", [C])
            t[o + "norm2.weight"] = try w.get(h + "ln_2.weight", [C]); t[o + "norm2.bias"] = try w.get(h + "ln_2.bias", [C])
            t[o + "mlp.fc1.weight"] = try w.get(h + "mlp.c_fc.weight", [C, F]).transposed()
            t[o + "mlp.fc1.bias"] = try w.get(h + "mlp.c_fc.bias", [F])
            t[o + "mlp.fc2.weight"] = try w.get(h + "mlp.c_proj.weight", [F, C]).transposed()
            t[o + "mlp.fc2.bias"] = try w.get(h + "mlp.c_proj.bias", [C])
        }
        t["final_norm.weight"] = try w.get(pre + "ln_f.weight", [C]); t["final_norm.bias"] = try w.get(pre + "ln_f.bias", [C])
        if !config.tiedEmbeddings { t["lm_head.weight"] = try w.get("lm_head.weight", [V, C]) }
        // lm_head.weight of a tied model is a duplicate of wte; attention masks are buffers.
        try w.checkAllUsed(ignoring: ["attn.bias", "attn.masked_bias"] + (config.tiedEmbeddings ? ["lm_head.weight"] : []))
        try t.rethrow()
        let ck = CanonicalCheckpoint(config: config, tensors: t.tensors, format: "hf", sourceDType: w.dtype)
        if visitor == nil { try ck.validate() }
        return ck
    }

    // MARK: - Llama

    static func llama(_ c: [String: Any], _ w: Weights, _ file: String, _ visitor: Visitor? = nil) throws -> CanonicalCheckpoint {
        if let rs = c["rope_scaling"], !(rs is NSNull) { throw CheckpointError.badConfig(file: file, "rope_scaling is not supported") }
        if c["attention_bias"] as? Bool == true || c["mlp_bias"] as? Bool == true {
            throw CheckpointError.badConfig(file: file, "attention_bias / mlp_bias are not supported for llama")
        }
        if let a = c["hidden_act"] as? String, a != "silu" { throw CheckpointError.badConfig(file: file, "hidden_act '\(a)' (expected silu)") }
        let C = try int(c, "hidden_size", file), H = try int(c, "num_attention_heads", file)
        let config = ModelConfig(vocabSize: try int(c, "vocab_size", file), hiddenSize: C, numLayers: try int(c, "num_hidden_layers", file),
                                 numHeads: H, numKVHeads: try optInt(c, "num_key_value_heads", file) ?? H, headDim: try headDim(c, hidden: C, heads: H, file),
                                 ffnSize: try int(c, "intermediate_size", file), maxPositions: try int(c, "max_position_embeddings", file),
                                 norm: .rmsnorm, normEpsilon: Float(optDouble(c, "rms_norm_eps") ?? 1e-6), activation: .swiglu,
                                 positions: .rope, ropeTheta: Float(optDouble(c, "rope_theta") ?? 10000),
                                 tiedEmbeddings: c["tie_word_embeddings"] as? Bool ?? false, linearBias: false,
                                 bosToken: firstInt(c["bos_token_id"]), eosToken: firstInt(c["eos_token_id"]))
        try config.validate()
        let V = config.vocabSize, F = config.ffnSize, HD = config.numHeads * config.headDim, GD = config.numKVHeads * config.headDim
        var t = try Tensors(visitor, config)
        t["embedding.word.weight"] = try w.get("model.embed_tokens.weight", [V, C])
        for i in 0..<config.numLayers {
            let h = "model.layers.\(i).", o = "layers.\(i)."
            t[o + "norm1.weight"] = try w.get(h + "input_layernorm.weight", [C])
            t[o + "attn.q.weight"] = try w.get(h + "self_attn.q_proj.weight", [HD, C])
            t[o + "attn.k.weight"] = try w.get(h + "self_attn.k_proj.weight", [GD, C])
            t[o + "attn.v.weight"] = try w.get(h + "self_attn.v_proj.weight", [GD, C])
            t[o + "attn.out.weight"] = try w.get(h + "self_attn.o_proj.weight", [C, HD])
            t[o + "norm2.weight"] = try w.get(h + "post_attention_layernorm.weight", [C])
            t[o + "mlp.gate.weight"] = try w.get(h + "mlp.gate_proj.weight", [F, C])
            t[o + "mlp.up.weight"] = try w.get(h + "mlp.up_proj.weight", [F, C])
            t[o + "mlp.fc2.weight"] = try w.get(h + "mlp.down_proj.weight", [C, F])
        }
        t["final_norm.weight"] = try w.get("model.norm.weight", [C])
        if !config.tiedEmbeddings { t["lm_head.weight"] = try w.get("lm_head.weight", [V, C]) }
        try w.checkAllUsed(ignoring: ["rotary_emb.inv_freq"] + (config.tiedEmbeddings ? ["lm_head.weight"] : []))
        try t.rethrow()
        let ck = CanonicalCheckpoint(config: config, tensors: t.tensors, format: "hf", sourceDType: w.dtype)
        if visitor == nil { try ck.validate() }
        return ck
    }
}
