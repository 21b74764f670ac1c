// DecoderWeights: the immutable, compute-ready weights of one decoder (one rank's shard; the whole
// model at TP 1), built once from a `CanonicalCheckpoint`.
//
// Owns: the fused QKV matrix (rows [Q (H*D) | K (G*D) | V (G*D)]), per-layer views, the LM head
// (tied or not), rotary tables. Never mutated after init; per-sequence state lives in `KVCache`.

import TensorCore

public struct LayerWeights: Sendable {
    public let norm1W: [Float], norm1B: [Float]?          // [C]
    public let qkvW: [Float], qkvB: [Float]?              // [(H+2G)*D, C], [(H+2G)*D]
    public let outW: [Float], outB: [Float]?              // [C, H*D], [C]
    public let norm2W: [Float], norm2B: [Float]?          // [C]
    public let fc1W: [Float], fc1B: [Float]?              // GeLU: [F, C]; SwiGLU: [2F, C] rows [gate | up]
    public let fc2W: [Float], fc2B: [Float]?              // [C, F], [C]
}

public struct DecoderWeights: Sendable {
    public let config: ModelConfig
    public let wordEmbedding: [Float]                      // [V, C]
    public let positionEmbedding: [Float]?                 // [P, C]
    public let layers: [LayerWeights]
    public let finalNormW: [Float], finalNormB: [Float]?   // [C]
    public let lmHead: [Float]?                            // [V, C] when untied; nil means use wordEmbedding
    public let rotary: RotaryTable?

    public init(_ ckpt: CanonicalCheckpoint) throws {
        try ckpt.validate()
        let c = ckpt.config
        config = c
        let t = ckpt.tensors
        func w(_ n: String) -> [Float] { t[n]!.data }
        func opt(_ n: String) -> [Float]? { t[n]?.data }
        wordEmbedding = w("embedding.word.weight")
        positionEmbedding = opt("embedding.position.weight")
        var ls: [LayerWeights] = []
        for i in 0..<c.numLayers {
            let p = "layers.\(i)."
            let qkvW = w(p + "attn.q.weight") + w(p + "attn.k.weight") + w(p + "attn.v.weight")
            var qkvB: [Float]? = nil
            if c.linearBias { qkvB = w(p + "attn.q.bias") + w(p + "attn.k.bias") + w(p + "attn.v.bias") }
            let fc1W: [Float], fc1B: [Float]?
            if c.activation == .swiglu {
                fc1W = w(p + "mlp.gate.weight") + w(p + "mlp.up.weight")
                fc1B = c.linearBias ? w(p + "mlp.gate.bias") + w(p + "mlp.up.bias") : nil
            } else {
                fc1W = w(p + "mlp.fc1.weight"); fc1B = opt(p + "mlp.fc1.bias")
            }
            ls.append(LayerWeights(norm1W: w(p + "norm1.weight"), norm1B: opt(p + "norm1.bias"),
                                   qkvW: qkvW, qkvB: qkvB,
                                   outW: w(p + "attn.out.weight"), outB: opt(p + "attn.out.bias"),
                                   norm2W: w(p + "norm2.weight"), norm2B: opt(p + "norm2.bias"),
                                   fc1W: fc1W, fc1B: fc1B,
                                   fc2W: w(p + "mlp.fc2.weight"), fc2B: opt(p + "mlp.fc2.bias")))
        }
        layers = ls
        finalNormW = w("final_norm.weight"); finalNormB = opt("final_norm.bias")
        lmHead = c.tiedEmbeddings ? nil : w("lm_head.weight")
        rotary = c.positions == .rope ? RotaryTable(headDim: c.headDim, maxPositions: c.maxPositions, theta: c.ropeTheta) : nil
    }

    public var parameterCount: Int {
        var n = wordEmbedding.count + (positionEmbedding?.count ?? 0) + finalNormW.count + (finalNormB?.count ?? 0) + (lmHead?.count ?? 0)
        for l in layers {
            n += l.norm1W.count + (l.norm1B?.count ?? 0) + l.qkvW.count + (l.qkvB?.count ?? 0) + l.outW.count + (l.outB?.count ?? 0)
            n += l.norm2W.count + (l.norm2B?.count ?? 0) + l.fc1W.count + (l.fc1B?.count ?? 0) + l.fc2W.count + (l.fc2B?.count ?? 0)
        }
        return n
    }
}
