// DecoderWeights: the immutable, compute-ready weights of one rank's shard of a decoder (the whole
// model at TP 1 x PP 1), cut once from a `CanonicalCheckpoint` for a `ShardSpec`.
//
// Owns: the split for the engine's own layout. Column-parallel (QKV by heads and groups, FC1 / gate /
// up by rows) and row-parallel (out projection, FC2 by columns; their biases are added once, after
// the reduce); vocab-parallel embedding and head (vocabulary padded with zero rows to a multiple of
// TP, padded logits dropped after the gather). Never mutated; per-sequence state lives in `KVCache`.

import TensorCore

public struct LayerWeights: Sendable {
    public let norm1W: [Float], norm1B: [Float]?          // [C]
    public let qkvW: [Float], qkvB: [Float]?              // [(H+2G)/tp*D, C] rows [Q | K | V] of local heads
    public let outW: [Float], outB: [Float]?              // [C, H/tp*D], [C] (added after the reduce)
    public let norm2W: [Float], norm2B: [Float]?          // [C]
    public let fc1W: [Float], fc1B: [Float]?              // GeLU: [F/tp, C]; SwiGLU: [2F/tp, C] rows [gate | up]
    public let fc2W: [Float], fc2B: [Float]?              // [C, F/tp], [C] (added after the reduce)
}

public struct DecoderWeights: Sendable {
    public let config: ModelConfig
    public let shard: ShardSpec
    public let localHeads: Int, localGroups: Int, localFFN: Int
    public let paddedVocab: Int, localVocab: Int           // Vp (multiple of tp), Vp/tp
    public let wordEmbedding: [Float]?                     // [Vp/tp, C]  first stage (and last, when tied)
    public let positionEmbedding: [Float]?                 // [P, C]      first stage
    public let layers: [LayerWeights]                      // this stage's layers
    public let finalNormW: [Float]?, finalNormB: [Float]?  // [C]         last stage
    public let lmHead: [Float]?                            // [Vp/tp, C]  last stage
    public let rotary: RotaryTable?

    public init(_ ckpt: CanonicalCheckpoint) throws {
        try self.init(ckpt, shard: .single(layers: ckpt.config.numLayers))
    }

    public init(_ ckpt: CanonicalCheckpoint, shard: ShardSpec) throws {
        try ckpt.validate()
        let c = ckpt.config
        try ShardSpec.checkTensorParallel(c, tp: shard.tp)
        config = c; self.shard = shard
        let tp = shard.tp, r = shard.tpRank, D = c.headDim
        let lh = c.numHeads / tp, lg = c.numKVHeads / tp, F = c.ffnSize / tp
        let vp = (c.vocabSize + tp - 1) / tp * tp, lv = vp / tp
        localHeads = lh; localGroups = lg; localFFN = F; paddedVocab = vp; localVocab = lv
        let t = ckpt.tensors
        func w(_ n: String) -> Tensor { t[n]! }
        func rows(_ n: String, _ count: Int) -> [Float] { w(n).slice(axis: 0, start: r * count, count: count).data }
        func cols(_ n: String, _ count: Int) -> [Float] { w(n).slice(axis: 1, start: r * count, count: count).data }
        func vocabRows(_ n: String) -> [Float] {
            let full = w(n), C = c.hiddenSize
            var out = [Float](repeating: 0, count: lv * C)
            let lo = r * lv, hi = min(c.vocabSize, lo + lv)
            if hi > lo { out.replaceSubrange(0..<((hi - lo) * C), with: full.data[(lo * C)..<(hi * C)]) }
            return out
        }
        let needsWordEmbedding = shard.isFirstStage || (shard.isLastStage && c.tiedEmbeddings)
        wordEmbedding = needsWordEmbedding ? vocabRows("embedding.word.weight") : nil
        positionEmbedding = shard.isFirstStage ? t["embedding.position.weight"]?.data : nil
        let hq = lh * D, hkv = lg * D
        layers = shard.layers.map { i in
            let p = "layers.\(i)."
            let qkvW = rows(p + "attn.q.weight", hq) + rows(p + "attn.k.weight", hkv) + rows(p + "attn.v.weight", hkv)
            let qkvB = c.linearBias ? rows(p + "attn.q.bias", hq) + rows(p + "attn.k.bias", hkv) + rows(p + "attn.v.bias", hkv) : nil
            let fc1W: [Float], fc1B: [Float]?
            if c.activation == .swiglu {
                fc1W = rows(p + "mlp.gate.weight", F) + rows(p + "mlp.up.weight", F)
                fc1B = c.linearBias ? rows(p + "mlp.gate.bias", F) + rows(p + "mlp.up.bias", F) : nil
            } else {
                fc1W = rows(p + "mlp.fc1.weight", F); fc1B = c.linearBias ? rows(p + "mlp.fc1.bias", F) : nil
            }
            return LayerWeights(norm1W: w(p + "norm1.weight").data, norm1B: t[p + "norm1.bias"]?.data,
                                qkvW: qkvW, qkvB: qkvB,
                                outW: cols(p + "attn.out.weight", hq), outB: t[p + "attn.out.bias"]?.data,
                                norm2W: w(p + "norm2.weight").data, norm2B: t[p + "norm2.bias"]?.data,
                                fc1W: fc1W, fc1B: fc1B,
                                fc2W: cols(p + "mlp.fc2.weight", F), fc2B: t[p + "mlp.fc2.bias"]?.data)
        }
        finalNormW = shard.isLastStage ? w("final_norm.weight").data : nil
        finalNormB = shard.isLastStage ? t["final_norm.bias"]?.data : nil
        lmHead = shard.isLastStage && !c.tiedEmbeddings ? vocabRows("lm_head.weight") : nil
        rotary = c.positions == .rope ? RotaryTable(headDim: D, maxPositions: c.maxPositions, theta: c.ropeTheta) : nil
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
