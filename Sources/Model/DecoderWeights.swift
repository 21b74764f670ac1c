// DecoderWeights: the immutable, compute-ready weights of one rank's shard of a decoder (the whole
// model at TP 1 x PP 1), cut once from a `CanonicalCheckpoint` for a `ShardSpec`, or built from the
// rank's tensors a loader already cut.
//
// Owns: the split for the engine's own layout. Column-parallel (QKV by heads and groups, FC1 / gate /
// up by rows) and row-parallel (out projection, FC2 by columns; their biases are added once, after
// the reduce); vocab-parallel embedding and head (vocabulary padded with zero rows to a multiple of
// TP, padded logits dropped after the gather). Never mutated; per-sequence state lives in `KVCache`.

import TensorCore

public struct LayerWeights: Sendable {
    public let norm1W: [Float], norm1B: [Float]?          // [C]
    public let qkvW: WeightMatrix, qkvB: [Float]?         // [(H+2G)/tp*D, C] rows [Q | K | V] of local heads
    public let outW: WeightMatrix, outB: [Float]?         // [C, H/tp*D], [C] (added after the reduce)
    public let norm2W: [Float], norm2B: [Float]?          // [C]
    public let fc1W: WeightMatrix, fc1B: [Float]?         // GeLU: [F/tp, C]; SwiGLU: [2F/tp, C] rows [gate | up]
    public let fc2W: WeightMatrix, fc2B: [Float]?         // [C, F/tp], [C] (added after the reduce)
}

public struct DecoderWeights: Sendable {
    public let config: ModelConfig
    public let shard: ShardSpec
    public let localHeads: Int, localGroups: Int, localFFN: Int
    public let paddedVocab: Int, localVocab: Int           // Vp (multiple of tp), Vp/tp
    public let dtype: ComputeDType                         // of the matrices; norms, biases, positions stay f32
    public let wordEmbedding: WeightMatrix?                // [Vp/tp, C]  first stage (and last, when tied)
    public let positionEmbedding: [Float]?                 // [P, C]      first stage
    public let layers: [LayerWeights]                      // this stage's layers
    public let finalNormW: [Float]?, finalNormB: [Float]?  // [C]         last stage
    public let lmHead: WeightMatrix?                       // [Vp/tp, C]  last stage
    public let rotary: RotaryTable?

    public init(_ ckpt: CanonicalCheckpoint, dtype: ComputeDType = .float32) throws {
        try self.init(ckpt, shard: .single(layers: ckpt.config.numLayers), dtype: dtype)
    }

    public init(_ ckpt: CanonicalCheckpoint, shard: ShardSpec, dtype: ComputeDType = .float32) throws {
        try ckpt.validate()
        // the engine pads the vocabulary only to a multiple of TP (divisibleBy 1); padded logits are dropped
        let t = try ckpt.shard(tp: shard.tp, rank: shard.tpRank, divisibleBy: 1, layers: shard.layers)
        try self.init(config: ckpt.config, rankTensors: t, shard: shard, dtype: dtype)
    }

    /// This rank's weights from its tensors cut as `CanonicalCheckpoint.shard(tp:rank:divisibleBy: 1)`
    /// cuts them (straight from a loader, e.g. `CheckpointLoader.loadSplit(url, tp:, divisibleBy: 1)`,
    /// with no canonical copy): every tensor the shard uses (its layers; the embeddings on the first
    /// stage; the final norm, and the head or the tied embedding, on the last) must be there with its
    /// local shape; others may be present and are not used.
    /// The matrices are packed (and with `dtype` .bfloat16 narrowed, round to nearest even) one at a time;
    /// a tensor is let go once packed, so a caller that hands over the only reference (`consume`) never
    /// holds the whole model twice.
    public init(config c: ModelConfig, rankTensors source: consuming [String: Tensor], shard: ShardSpec, dtype: ComputeDType = .float32) throws {
        var t = consume source
        try c.validate()
        let tp = shard.tp
        try ShardSpec.checkTensorParallel(c, tp: tp)
        let vp = CanonicalCheckpoint.paddedVocab(c.vocabSize, tp: tp, divisibleBy: 1)
        for (name, shape) in CanonicalSchema.shapes(for: c) {
            if name.hasPrefix("layers."), let i = Int(name.split(separator: ".")[1]) {
                if !shard.layers.contains(i) { continue }
            } else if name.hasPrefix("embedding.") {
                if !(shard.isFirstStage || (name == "embedding.word.weight" && shard.isLastStage && c.tiedEmbeddings)) { continue }
            } else if !shard.isLastStage { continue }   // final norm, head
            guard let x = t[name] else { throw ModelError.missingTensor(name) }
            let want = TPSplit.of(name).localShape(shape, tp: tp, paddedVocab: vp)
            guard x.shape == want else { throw ModelError.shapeMismatch(tensor: name, expected: want, found: x.shape) }
        }
        config = c; self.shard = shard
        localHeads = c.numHeads / tp; localGroups = c.numKVHeads / tp; localFFN = c.ffnSize / tp
        paddedVocab = CanonicalCheckpoint.paddedVocab(c.vocabSize, tp: tp, divisibleBy: 1)
        localVocab = paddedVocab / tp
        func w(_ n: String) -> [Float] { t.removeValue(forKey: n)!.data }
        func opt(_ n: String) -> [Float]? { t.removeValue(forKey: n)?.data }
        /// The matrix made of the named tensors stacked by rows ([rows, cols] each), taken out of `t`.
        func m(_ names: String...) -> WeightMatrix {
            let parts = names.map { t.removeValue(forKey: $0)! }
            let rows = parts.reduce(0) { $0 + $1.shape[0] }, cols = parts[0].count / max(1, parts[0].shape[0])
            return WeightMatrix(parts.count == 1 ? parts[0].data : parts.flatMap(\.data), rows: rows, cols: cols, dtype: dtype)
        }
        self.dtype = dtype
        let needsWordEmbedding = shard.isFirstStage || (shard.isLastStage && c.tiedEmbeddings)
        wordEmbedding = needsWordEmbedding ? m("embedding.word.weight") : nil
        positionEmbedding = shard.isFirstStage ? opt("embedding.position.weight") : nil
        layers = shard.layers.map { i in
            let p = "layers.\(i)."
            let swiglu = c.activation == .swiglu
            return LayerWeights(norm1W: w(p + "norm1.weight"), norm1B: opt(p + "norm1.bias"),
                                qkvW: m(p + "attn.q.weight", p + "attn.k.weight", p + "attn.v.weight"),
                                qkvB: c.linearBias ? w(p + "attn.q.bias") + w(p + "attn.k.bias") + w(p + "attn.v.bias") : nil,
                                outW: m(p + "attn.out.weight"), outB: opt(p + "attn.out.bias"),
                                norm2W: w(p + "norm2.weight"), norm2B: opt(p + "norm2.bias"),
                                fc1W: swiglu ? m(p + "mlp.gate.weight", p + "mlp.up.weight") : m(p + "mlp.fc1.weight"),
                                fc1B: c.linearBias ? (swiglu ? w(p + "mlp.gate.bias") + w(p + "mlp.up.bias") : w(p + "mlp.fc1.bias")) : nil,
                                fc2W: m(p + "mlp.fc2.weight"), fc2B: opt(p + "mlp.fc2.bias"))
        }
        finalNormW = shard.isLastStage ? w("final_norm.weight") : nil
        finalNormB = shard.isLastStage ? opt("final_norm.bias") : nil
        lmHead = shard.isLastStage && !c.tiedEmbeddings ? m("lm_head.weight") : nil
        rotary = c.positions == .rope ? RotaryTable(headDim: c.headDim, maxPositions: c.maxPositions, theta: c.ropeTheta) : nil
    }

    /// Parameters held by this shard (padding rows included).
    public var parameterCount: Int {
        var n = (wordEmbedding?.count ?? 0) + (positionEmbedding?.count ?? 0) + (finalNormW?.count ?? 0) + (finalNormB?.count ?? 0) + (lmHead?.count ?? 0)
        for l in layers {
            n += l.norm1W.count + (l.norm1B?.count ?? 0) + l.qkvW.count + (l.qkvB?.count ?? 0) + l.outW.count + (l.outB?.count ?? 0)
            n += l.norm2W.count + (l.norm2B?.count ?? 0) + l.fc1W.count + (l.fc1B?.count ?? 0) + l.fc2W.count + (l.fc2B?.count ?? 0)
        }
        return n
    }
}
