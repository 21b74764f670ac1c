// The canonical checkpoint: the one contract between every checkpoint format and the model.
//
// Full (unsplit) f32 tensors under canonical names, with the model config. Every format adapter
// (HF, llama2.c, Megatron legacy, megatron-core, DeepSpeed) produces this; `split(_:)` and the
// engine consume it. Canonical names and shapes (PyTorch Linear layout: [out, in]):
//
//   embedding.word.weight            [V, C]
//   embedding.position.weight        [P, C]            (learned positions only)
//   layers.{i}.norm1.weight / .bias  [C]               (bias: layernorm only)
//   layers.{i}.attn.q.weight / .bias [H*D, C] / [H*D]  (heads in order; bias when linear_bias)
//   layers.{i}.attn.k.weight / .bias [G*D, C] / [G*D]
//   layers.{i}.attn.v.weight / .bias [G*D, C] / [G*D]
//   layers.{i}.attn.out.weight/.bias [C, H*D] / [C]
//   layers.{i}.norm2.weight / .bias  [C]
//   layers.{i}.mlp.fc1.weight/.bias  [F, C] / [F]      (GeLU)
//   layers.{i}.mlp.gate.weight       [F, C]            (SwiGLU: silu(gate x) * up x)
//   layers.{i}.mlp.up.weight         [F, C]
//   layers.{i}.mlp.fc2.weight/.bias  [C, F] / [C]
//   final_norm.weight / .bias        [C]
//   lm_head.weight                   [V, C]            (untied only)
//
// Rotary embeddings use the rotate-half convention (HF Llama, megatron-core default): dimension j
// pairs with j + D/2. Adapters for interleaved formats (llama2.c) permute q/k rows at the boundary.

import TensorCore

public struct CanonicalCheckpoint: Sendable {
    public var config: ModelConfig
    public var tensors: [String: Tensor]
    /// Where it came from, for reports ("hf", "megatron-legacy", "deepspeed", "llama2c", ...).
    public var format: String
    /// The dtype the weights were stored in on disk, before conversion to f32.
    public var sourceDType: StorageDType

    public init(config: ModelConfig, tensors: [String: Tensor], format: String, sourceDType: StorageDType = .float32) {
        self.config = config; self.tensors = tensors; self.format = format; self.sourceDType = sourceDType
    }

    /// Check presence and shape of every tensor the config requires; report all problems at once.
    public func validate() throws {
        try config.validate()
        let expected = CanonicalSchema.shapes(for: config)
        var problems: [String] = []
        for (name, shape) in expected {
            guard let t = tensors[name] else { problems.append("tensor '\(name)' is missing (expected shape \(shape))"); continue }
            if t.shape != shape { problems.append("tensor '\(name)' has shape \(t.shape), expected \(shape)") }
        }
        let extra = Set(tensors.keys).subtracting(expected.map(\.0))
        for name in extra.sorted() { problems.append("tensor '\(name)' is not part of this architecture") }
        if !problems.isEmpty { throw ModelError.inconsistentConfig(problems) }
    }
}

public enum CanonicalSchema {
    /// Every canonical tensor for `config`, in canonical order, with its shape.
    public static func shapes(for c: ModelConfig) -> [(String, [Int])] {
        let C = c.hiddenSize, V = c.vocabSize, HD = c.numHeads * c.headDim, GD = c.numKVHeads * c.headDim, F = c.ffnSize
        let ln = c.norm == .layernorm
        var out: [(String, [Int])] = [("embedding.word.weight", [V, C])]
        if c.positions == .learned { out.append(("embedding.position.weight", [c.maxPositions, C])) }
        for i in 0..<c.numLayers {
            let p = "layers.\(i)."
            out.append((p + "norm1.weight", [C])); if ln { out.append((p + "norm1.bias", [C])) }
            out.append((p + "attn.q.weight", [HD, C])); if c.linearBias { out.append((p + "attn.q.bias", [HD])) }
            out.append((p + "attn.k.weight", [GD, C])); if c.linearBias { out.append((p + "attn.k.bias", [GD])) }
            out.append((p + "attn.v.weight", [GD, C])); if c.linearBias { out.append((p + "attn.v.bias", [GD])) }
            out.append((p + "attn.out.weight", [C, HD])); if c.linearBias { out.append((p + "attn.out.bias", [C])) }
            out.append((p + "norm2.weight", [C])); if ln { out.append((p + "norm2.bias", [C])) }
            if c.activation == .swiglu {
                out.append((p + "mlp.gate.weight", [F, C])); out.append((p + "mlp.up.weight", [F, C]))
                if c.linearBias { out.append((p + "mlp.gate.bias", [F])); out.append((p + "mlp.up.bias", [F])) }
            } else {
                out.append((p + "mlp.fc1.weight", [F, C])); if c.linearBias { out.append((p + "mlp.fc1.bias", [F])) }
            }
            out.append((p + "mlp.fc2.weight", [C, F])); if c.linearBias { out.append((p + "mlp.fc2.bias", [C])) }
        }
        out.append(("final_norm.weight", [C])); if ln { out.append(("final_norm.bias", [C])) }
        if !c.tiedEmbeddings { out.append(("lm_head.weight", [V, C])) }
        return out
    }
}
