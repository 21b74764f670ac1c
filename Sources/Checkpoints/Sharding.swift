// Sharding: `split(tp:)` — a CanonicalCheckpoint to per-TP-rank tensor dictionaries (Megatron's
// tensor-parallel partitioning, canonical names kept).
//
//   column-parallel (rows split, dim 0): attn.q/k/v weight+bias (by heads / query groups: rank r gets
//       heads [r·H/tp, (r+1)·H/tp) and groups [r·G/tp, (r+1)·G/tp)), mlp.fc1/gate/up weight+bias;
//   row-parallel (columns split, dim 1): attn.out.weight, mlp.fc2.weight (their biases replicated);
//   vocab-parallel: embedding.word.weight and lm_head.weight, first padded with ZERO rows to a multiple
//       of `divisibleBy`·tp (Megatron's make_vocab_size_divisible_by, default 128), then split by rows.
//       Padding rows are zero, so callers must still mask logits >= vocabSize;
//   replicated: norms, position table, row-parallel biases.
// Does not own: pipeline splitting or any file writing.

import TensorCore
import Model

extension CanonicalCheckpoint {
    /// Padded vocabulary rows for `tp` ranks.
    public static func paddedVocab(_ v: Int, tp: Int, divisibleBy: Int = 128) -> Int {
        let m = divisibleBy * tp
        return (v + m - 1) / m * m
    }

    public func split(tp: Int, divisibleBy: Int = 128) throws -> [[String: Tensor]] {
        let c = config
        guard tp >= 1, c.numHeads % tp == 0, c.numKVHeads % tp == 0, c.ffnSize % tp == 0 else {
            throw CheckpointError.badConfig(file: format, "cannot split \(c.numHeads) heads / \(c.numKVHeads) groups / ffn \(c.ffnSize) over TP \(tp)")
        }
        var ranks = Array(repeating: [String: Tensor](), count: tp)
        let Vp = CanonicalCheckpoint.paddedVocab(c.vocabSize, tp: tp, divisibleBy: divisibleBy)
        for (name, shape) in CanonicalSchema.shapes(for: c) {
            guard let t = tensors[name] else { throw CheckpointError.missingTensor(file: format, tensor: name) }
            guard t.shape == shape else { throw CheckpointError.shapeMismatch(file: format, tensor: name, expected: shape, found: t.shape) }
            let parts: [Tensor]
            if name == "embedding.word.weight" || name == "lm_head.weight" {
                let padded = Vp == c.vocabSize ? t : Tensor.concat([t, Tensor(zeros: [Vp - c.vocabSize, c.hiddenSize])], axis: 0)
                parts = padded.split(axis: 0, parts: tp)
            } else if name.hasSuffix("attn.out.weight") || name.hasSuffix("mlp.fc2.weight") {
                parts = t.split(axis: 1, parts: tp)
            } else if ["attn.q.", "attn.k.", "attn.v.", "mlp.fc1.", "mlp.gate.", "mlp.up."].contains(where: { name.contains($0) }) {
                parts = t.split(axis: 0, parts: tp)   // heads/groups are contiguous row blocks of D rows
            } else {
                parts = Array(repeating: t, count: tp)
            }
            for r in 0..<tp { ranks[r][name] = parts[r] }
        }
        return ranks
    }
}
