// Partition: Megatron's tensor-parallel split of a canonical checkpoint, the one rule shared by the
// engine's shards (`DecoderWeights`) and by anything that wants per-rank tensors (`split(_:)`, `shard(_:)`).
//
//   column-parallel (rows split, dim 0): attn.q/k/v weight+bias (by heads / query groups: rank r gets
//       heads [r·H/tp, (r+1)·H/tp) and groups [r·G/tp, (r+1)·G/tp)), mlp.fc1/gate/up weight+bias;
//   row-parallel (columns split, dim 1): attn.out.weight, mlp.fc2.weight (their biases replicated);
//   vocab-parallel: embedding.word.weight and lm_head.weight, first padded with ZERO rows as the
//       layout's `VocabPadding` says (a multiple of tp, or of Megatron's make_vocab_size_divisible_by
//       x tp), then split by rows;
//       logits of padding rows must be dropped by the caller;
//   replicated: norms, position table, row-parallel biases.
// Format-specific layouts (Megatron's fused QKV, SwiGLU [W;V]) belong to the checkpoint writers.

import TensorCore

/// How one canonical tensor is cut over tensor-parallel ranks (the rule above, in one place).
public enum TPSplit: Sendable {
    case vocab        // rows, after zero-padding the vocabulary
    case rows         // column-parallel layers: output features (dim 0)
    case columns      // row-parallel layers: input features (dim 1)
    case replicated

    public static func of(_ name: String) -> TPSplit {
        if name == "embedding.word.weight" || name == "lm_head.weight" { return .vocab }
        if name.hasSuffix("attn.out.weight") || name.hasSuffix("mlp.fc2.weight") { return .columns }
        if ["attn.q.", "attn.k.", "attn.v.", "mlp.fc1.", "mlp.gate.", "mlp.up."].contains(where: { name.contains($0) }) { return .rows }
        return .replicated
    }

    /// A tensor's shape on one of `tp` ranks (`paddedVocab`: the padded vocabulary rows in total).
    public func localShape(_ shape: [Int], tp: Int, paddedVocab: Int) -> [Int] {
        switch self {
        case .vocab: return [paddedVocab / tp, shape[1]]
        case .rows: return [shape[0] / tp] + shape.dropFirst()
        case .columns: return [shape[0], shape[1] / tp]
        case .replicated: return shape
        }
    }
}

/// How the vocabulary is padded with zero rows before the vocab-parallel split (a named policy
/// carried by `ParallelLayout`, instead of a bare `divisibleBy` literal).
public enum VocabPadding: Sendable, Equatable {
    /// To a multiple of TP only: what the engine and the trainer hold (padded logits are dropped).
    case tensorParallel
    /// To a multiple of `divisibleBy` x TP: Megatron's make_vocab_size_divisible_by (128 by default),
    /// what Megatron saves hold.
    case megatron(divisibleBy: Int)

    public static let megatronDefault = VocabPadding.megatron(divisibleBy: 128)

    /// Megatron's make_vocab_size_divisible_by for this policy (1 for `.tensorParallel`).
    public var divisibleBy: Int { if case .megatron(let d) = self { return d }; return 1 }

    /// Padded vocabulary rows of a vocabulary of `v` for `tp` ranks.
    public func paddedVocab(_ v: Int, tp: Int) -> Int {
        let m = max(1, divisibleBy) * tp
        return (v + m - 1) / m * m
    }
}

extension CanonicalCheckpoint {
    /// The tensors of `place`'s TP piece under canonical names, vocabulary padded by its layout's
    /// policy: its stage's layers only, every other tensor (embeddings, final norm, head) whatever the stage.
    public func shard(_ place: RankPlace) throws -> [String: Tensor] {
        try shard(tp: place.tp, rank: place.tpRank, vocab: place.layout.vocab, layers: place.layers)
    }

    /// Every TP rank's tensors of every layer (`[t]`: TP rank t's; the stages of a TP rank share them),
    /// vocabulary padded by `layout.vocab`.
    public func split(_ layout: ParallelLayout) throws -> [[String: Tensor]] {
        try (0..<layout.tp).map { try shard(tp: layout.tp, rank: $0, vocab: layout.vocab, layers: nil) }
    }

    /// Rank `rank`'s tensors under canonical names; only layers in `layers` (all when nil).
    func shard(tp: Int, rank: Int, vocab: VocabPadding, layers: Range<Int>?) throws -> [String: Tensor] {
        let c = config
        try ParallelLayout.checkTensorParallel(c, tp: tp)
        guard rank >= 0 && rank < tp else { throw LayoutError("rank \(rank) is outside TP \(tp)") }
        let Vp = vocab.paddedVocab(c.vocabSize, tp: tp)
        var out: [String: Tensor] = [:]
        for (name, shape) in CanonicalSchema.shapes(for: c) {
            if let layers, name.hasPrefix("layers."), let i = Int(name.split(separator: ".")[1]), !layers.contains(i) { continue }
            guard let t = tensors[name] else { throw ModelError.missingTensor(name) }
            guard t.shape == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, found: t.shape) }
            switch TPSplit.of(name) {
            case _ where tp == 1 && (TPSplit.of(name) != .vocab || Vp == c.vocabSize):
                out[name] = t   // the whole tensor: shared, not copied
            case .vocab:
                let rows = Vp / tp, lo = rank * rows, hi = min(c.vocabSize, lo + rows)
                var data = [Float](repeating: 0, count: rows * c.hiddenSize)
                if hi > lo { data.replaceSubrange(0..<((hi - lo) * c.hiddenSize), with: t.data[(lo * c.hiddenSize)..<(hi * c.hiddenSize)]) }
                out[name] = Tensor(shape: [rows, c.hiddenSize], data: data)
            case .columns:
                out[name] = t.slice(axis: 1, start: rank * shape[1] / tp, count: shape[1] / tp)
            case .rows:
                out[name] = t.slice(axis: 0, start: rank * shape[0] / tp, count: shape[0] / tp)   // heads/groups are contiguous row blocks
            case .replicated:
                out[name] = t
            }
        }
        return out
    }
}
