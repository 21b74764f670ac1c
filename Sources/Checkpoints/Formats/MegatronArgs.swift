// MegatronArgs: typed access to the `args` saved in Megatron / Megatron-DeepSpeed checkpoints
// (argparse.Namespace, types.SimpleNamespace, or a plain dict), and the ModelConfig they describe.
//
// Owns: field-name drift (model_parallel_size vs tensor_model_parallel_size, layernorm_epsilon vs
// norm_epsilon, ...), defaults, and the activation rule: openai_gelu or bias_gelu_fusion -> tanh GeLU,
// otherwise exact GeLU (code predating bias_gelu_fusion used F.gelu). Does not own: tensor merging.

import Model

public struct MegatronArgs {
    public let value: PickleValue?
    public let file: String
    /// Values given by the user (`--megatron-arg key=value`); they win over the saved args, and fill
    /// in what older or stripped checkpoints do not record.
    public let overrides: [String: PickleValue]

    public init(_ value: PickleValue?, file: String, overrides: [String: PickleValue] = [:]) {
        self.value = value; self.file = file; self.overrides = overrides
    }

    public func raw(_ k: String) -> PickleValue? {
        if let o = overrides[k] { return o }
        guard let v = value?[k], !v.isNone else { return nil }
        return v
    }

    /// Parse `key=value` overrides: integers, floats, true/false, none, else strings.
    public static func parseOverrides(_ items: [String]) throws -> [String: PickleValue] {
        var out: [String: PickleValue] = [:]
        for item in items {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw CheckpointError.badConfig(file: "--megatron-arg", "expected key=value, found '\(item)'")
            }
            let k = String(item[..<eq]), v = String(item[item.index(after: eq)...])
            if let i = Int(v) { out[k] = .int(i) }
            else if let d = Double(v) { out[k] = .float(d) }
            else if v.lowercased() == "true" || v.lowercased() == "false" { out[k] = .bool(v.lowercased() == "true") }
            else if v.lowercased() == "none" { out[k] = PickleValue.none }
            else { out[k] = .string(v) }
        }
        return out
    }
    public func int(_ k: String) -> Int? { raw(k)?.intValue }

    /// Args that every rank of one save records alike (they describe the model and the layout).
    static let sharedKeys = layoutKeys + sizeKeys + ["normalization", "swiglu", "position_embedding_type", "layernorm_epsilon",
                                                     "norm_epsilon", "untie_embeddings_and_output_weights", "add_bias_linear",
                                                     "group_query_attention", "apply_layernorm_1p", "rotary_base"]

    /// A saved value as a person reads it: 16, 1e-05, 'abc', True, None.
    static func readable(_ v: PickleValue) -> String {
        switch v {
        case .int(let i): return "\(i)"
        case .float(let d): return "\(d)"
        case .bool(let b): return b ? "True" : "False"
        case .string(let s): return "'\(s)'"
        case .none: return "None"
        default: return "\(v)"
        }
    }

    /// The first shared arg on which two ranks' saved args differ, as "key: a vs b"; nil when they agree.
    static func disagreement(_ a: PickleValue?, _ b: PickleValue?) -> String? {
        for k in sharedKeys {
            let x = a?[k].map(readable) ?? "absent", y = b?[k].map(readable) ?? "absent"
            if x != y { return "'\(k)' is \(x) in one and \(y) in the other" }
        }
        return nil
    }

    /// Layout sizes that become ranges and loop bounds.
    static let layoutKeys = ["tensor_model_parallel_size", "model_parallel_size", "pipeline_model_parallel_size",
                             "virtual_pipeline_model_parallel_size"]
    /// Model sizes that become shapes, products and allocations.
    static let sizeKeys = ["num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_query_groups",
                           "kv_channels", "max_position_embeddings", "seq_length", "vocab_size", "orig_vocab_size",
                           "padded_vocab_size", "make_vocab_size_divisible_by"]

    /// Every integer the loaders compute with, checked before any arithmetic: layout sizes in
    /// 1...4096, model sizes in 1...2^26 (saved args and `--megatron-arg` alike). Names the field,
    /// the file (or --megatron-arg) and the value found.
    public func validate() throws {
        for (keys, hi) in [(Self.layoutKeys, 4096), (Self.sizeKeys, 1 << 26)] {
            for k in keys {
                guard let v = raw(k), !v.isNone else { continue }
                let from = overrides[k] != nil ? "--megatron-arg \(k)" : file
                guard let i = v.intValue else {
                    throw CheckpointError.badConfig(file: from, "'\(k)' must be an integer, found \(Self.readable(v))")
                }
                guard (1...hi).contains(i) else {
                    throw CheckpointError.badConfig(file: from, "'\(k)' must be in 1...\(hi), found \(i)")
                }
            }
        }
        for k in ["layernorm_epsilon", "norm_epsilon", "rotary_base"] {
            if let d = double(k), !(d.isFinite && d > 0) {
                throw CheckpointError.badConfig(file: overrides[k] != nil ? "--megatron-arg \(k)" : file, "'\(k)' must be a positive finite number, found \(d)")
            }
        }
    }
    public func bool(_ k: String) -> Bool? { raw(k)?.boolValue }
    public func double(_ k: String) -> Double? { raw(k)?.doubleValue }
    public func string(_ k: String) -> String? { raw(k)?.stringValue }
    public var isPresent: Bool { value != nil && !(value!.isNone) }

    public var tensorParallel: Int? { int("tensor_model_parallel_size") ?? int("model_parallel_size") }
    public var pipelineParallel: Int? { int("pipeline_model_parallel_size") ?? (int("model_parallel_size") != nil ? 1 : nil) }
    public var virtualPipeline: Int? { int("virtual_pipeline_model_parallel_size") }

    /// The real vocabulary size when the args record it (HF's tool writes `orig_vocab_size`). Megatron-LM's
    /// NullTokenizer up to core_v0.17 adds an end-of-document token after `--vocab-size` ids (its
    /// vocab_size is that + 1); from core_v0.18, whose args carry `null_tokenizer_eod_id`, the end of
    /// document is the last of `--vocab-size` tokens.
    public var trueVocabSize: Int? {
        if let v = int("orig_vocab_size") { return v }
        guard let v = int("vocab_size") else { return nil }
        guard string("tokenizer_type") == "NullTokenizer", overrides["vocab_size"] == nil else { return v }
        return value?["null_tokenizer_eod_id"] == nil ? v + 1 : v
    }

    /// Model description; fields not in args come from the tensors (`shapes`) or Megatron defaults.
    struct Shapes { var paddedVocab: Int; var hidden: Int?; var ffnRows: Int?; var positions: Int?; var layers: Int; var tp: Int; var hasPosition: Bool; var hasOutput: Bool }

    func config(_ s: Shapes, vocabSize: Int) throws -> ModelConfig {
        func need(_ k: String, _ fallback: Int?) throws -> Int {
            if let v = int(k) ?? fallback { return v }
            throw CheckpointError.badConfig(file: file, "args lack '\(k)'")
        }
        let C = try need("hidden_size", s.hidden)
        let H = try need("num_attention_heads", nil)
        if int("kv_channels") == nil && C % H != 0 {
            throw CheckpointError.badConfig(file: file, "hidden_size \(C) is not divisible by num_attention_heads \(H) (and no kv_channels is given)")
        }
        let L = try need("num_layers", s.layers)
        if L != s.layers {
            throw CheckpointError.badConfig(file: file, "args say num_layers \(L), the shards hold \(s.layers) layers")
        }
        let G = (bool("group_query_attention") ?? false) ? (int("num_query_groups") ?? H) : H
        let swiglu = bool("swiglu") ?? false
        let F = int("ffn_hidden_size") ?? s.ffnRows.map { $0 * s.tp / (swiglu ? 2 : 1) } ?? 4 * C
        let rope = string("position_embedding_type") == "rope" || (bool("use_rotary_position_embeddings") ?? false)
        if rope {
            if bool("rotary_interleaved") == true { throw CheckpointError.badConfig(file: file, "rotary_interleaved is not supported") }
            if let p = double("rotary_percent"), p != 1 { throw CheckpointError.badConfig(file: file, "rotary_percent \(p) is not supported") }
        } else if !s.hasPosition {
            throw CheckpointError.badConfig(file: file, "no position embedding table and position_embedding_type is not rope")
        }
        if bool("apply_residual_connection_post_layernorm") == true {
            throw CheckpointError.badConfig(file: file, "apply_residual_connection_post_layernorm is not supported")
        }
        let act: Activation = swiglu ? .swiglu :
            ((bool("openai_gelu") ?? false) || (bool("bias_gelu_fusion") ?? false) ? .geluTanh : .gelu)
        let bias = bool("add_bias_linear") ?? true
        if !bias && (bool("add_qkv_bias") ?? false) { throw CheckpointError.badConfig(file: file, "add_qkv_bias without add_bias_linear is not supported") }
        let untied = bool("untie_embeddings_and_output_weights") ?? s.hasOutput
        let c = ModelConfig(vocabSize: vocabSize, hiddenSize: C, numLayers: L, numHeads: H, numKVHeads: G,
                            headDim: int("kv_channels") ?? C / max(H, 1), ffnSize: F,
                            maxPositions: int("max_position_embeddings") ?? s.positions ?? int("seq_length") ?? 0,
                            norm: string("normalization") == "RMSNorm" ? .rmsnorm : .layernorm,
                            normEpsilon: Float(double("layernorm_epsilon") ?? double("norm_epsilon") ?? 1e-5),
                            activation: act, positions: rope ? .rope : .learned,
                            ropeTheta: Float(double("rotary_base") ?? 10000), tiedEmbeddings: !untied, linearBias: bias)
        do { try c.validate() } catch { throw CheckpointError.badConfig(file: file, "\(error)") }
        return c
    }
}
