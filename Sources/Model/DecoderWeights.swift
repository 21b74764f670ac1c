// DecoderWeights: the immutable, compute-ready weights of one rank's shard of a decoder (the whole
// model at TP 1 x PP 1), cut once from a `CanonicalCheckpoint` for a `RankPlace`, built from the
// rank's tensors a loader already cut, or (training) viewed in a rank's flat parameters once per
// optimizer step, with the matrices also packed transposed for the backward pass.
//
// Owns: the split for the engine's own layout. Column-parallel (QKV by heads and groups, FC1 / gate /
// up by rows) and row-parallel (out projection, FC2 by columns; their biases are added once, after
// the reduce); vocab-parallel embedding and head (vocabulary padded with zero rows as the shard's
// layout says, for the engines a multiple of TP; padded logits dropped after the gather). Never mutated; per-sequence state lives in `KVCache`.

import TensorCore

public struct LayerWeights: Sendable {
    public let norm1W: [Float], norm1B: [Float]?          // [C]
    public let qkvW: WeightMatrix, qkvB: [Float]?         // [(H+2G)/tp*D, C] rows [Q | K | V] of local heads
    public let outW: WeightMatrix, outB: [Float]?         // [C, H/tp*D], [C] (added after the reduce)
    public let norm2W: [Float], norm2B: [Float]?          // [C]
    public let fc1W: WeightMatrix, fc1B: [Float]?         // GeLU: [F/tp, C]; SwiGLU: [2F/tp, C] rows [gate | up]
    public let fc2W: WeightMatrix, fc2B: [Float]?         // [C, F/tp], [C] (added after the reduce)
    /// Training only: the same matrices transposed ([in, out]), for the input gradients dx = dy W.
    public let backward: TransposedLayer?
}

/// A layer's matrices transposed, packed once per optimizer step for the backward pass.
public struct TransposedLayer: Sendable {
    public let qkv: WeightMatrix, out: WeightMatrix, fc1: WeightMatrix, fc2: WeightMatrix
}

public struct DecoderWeights: Sendable {
    public let config: ModelConfig
    public let shard: RankPlace
    public let localHeads: Int, localGroups: Int, localFFN: Int
    public let paddedVocab: Int, localVocab: Int           // Vp (padded by the shard's layout: the engines' a multiple of tp), Vp/tp
    public let dtype: ComputeDType                         // of the matrices; norms, biases, positions stay f32
    public let wordEmbedding: WeightMatrix?                // [Vp/tp, C]  first stage (and last, when tied)
    public let positionEmbedding: [Float]?                 // [P, C]      first stage
    public let layers: [LayerWeights]                      // this stage's layers
    public let finalNormW: [Float]?, finalNormB: [Float]?  // [C]         last stage
    public let lmHead: WeightMatrix?                       // [Vp/tp, C]  last stage
    public let headBackward: WeightMatrix?                 // [C, Vp/tp]  last stage, training only: the head transposed
    public let rotary: RotaryTable?

    /// The head: its own matrix, or the tied word embedding.
    public var head: WeightMatrix? { lmHead ?? (shard.isLastStage ? wordEmbedding : nil) }

    public init(_ ckpt: CanonicalCheckpoint, dtype: ComputeDType = .float32) throws {
        try self.init(ckpt, shard: .single(layers: ckpt.config.numLayers), dtype: dtype)
    }

    public init(_ ckpt: CanonicalCheckpoint, shard: RankPlace, dtype: ComputeDType = .float32) throws {
        try ckpt.validate()
        // the vocabulary padded as the shard's layout says (the engines: a multiple of TP); padded logits are dropped
        let t = try ckpt.shard(shard)
        try self.init(config: ckpt.config, rankTensors: t, shard: shard, dtype: dtype)
    }

    /// The tensors this shard uses, with their local shapes (vocabulary padded by the shard's layout).
    static func localShapes(_ c: ModelConfig, shard: RankPlace) -> [(String, [Int])] {
        let vp = shard.layout.vocab.paddedVocab(c.vocabSize, tp: shard.tp)
        var out: [(String, [Int])] = []
        for (name, shape) in CanonicalSchema.shapes(for: c) {
            if name.hasPrefix("layers."), let i = Int(name.split(separator: ".")[1]) {
                if !shard.layers.contains(i) { continue }
            } else if name.hasPrefix("embedding.") {
                if !(shard.isFirstStage || (name == "embedding.word.weight" && shard.isLastStage && c.tiedEmbeddings)) { continue }
            } else if !shard.isLastStage { continue }   // final norm, head
            out.append((name, TPSplit.of(name).localShape(shape, tp: shard.tp, paddedVocab: vp)))
        }
        return out
    }

    /// This rank's weights from its tensors cut as `CanonicalCheckpoint.shard(shard)` cuts them
    /// (straight from a loader at the same layout, e.g. `CheckpointLoader.loadSplit(url, layout:)`,
    /// with no canonical copy): every tensor the shard uses (its layers; the embeddings on the first
    /// stage; the final norm, and the head or the tied embedding, on the last) must be there with its
    /// local shape; others may be present and are not used.
    /// The matrices are packed (and with `dtype` .bfloat16 narrowed, round to nearest even) one at a time;
    /// a tensor is let go once packed, so a caller that hands over the only reference (`consume`) never
    /// holds the whole model twice.
    public init(config c: ModelConfig, rankTensors source: consuming [String: Tensor], shard: RankPlace, dtype: ComputeDType = .float32) throws {
        var t = consume source
        try c.validate()
        try ParallelLayout.checkTensorParallel(c, tp: shard.tp)
        for (name, want) in Self.localShapes(c, shard: shard) {
            guard let x = t[name] else { throw ModelError.missingTensor(name) }
            guard x.shape == want else { throw ModelError.shapeMismatch(tensor: name, expected: want, found: x.shape) }
        }
        self.init(c, shard: shard, dtype: dtype, array: { t.removeValue(forKey: $0)?.data }, matrix: { names in
            /// The matrix made of the named tensors stacked by rows ([rows, cols] each), taken out of `t`.
            let parts = names.map { t.removeValue(forKey: $0)! }
            let rows = parts.reduce(0) { $0 + $1.shape[0] }, cols = parts[0].count / max(1, parts[0].shape[0])
            return WeightMatrix(parts.count == 1 ? parts[0].data : parts.flatMap(\.data), rows: rows, cols: cols, dtype: dtype)
        }, transposed: nil)
    }

    /// A training rank's weights viewed in its flat parameters (`parameter(name)` points at a tensor's
    /// local values, laid out as `localShapes`): packed f32, with each matrix also packed transposed
    /// for the backward pass. Built once per optimizer step.
    public init(config c: ModelConfig, shard: RankPlace, pool: PackedStoragePool? = nil, parameter: @escaping (String) -> UnsafePointer<Float>) throws {
        try c.validate()
        try ParallelLayout.checkTensorParallel(c, tp: shard.tp)
        let shapes = Dictionary(uniqueKeysWithValues: Self.localShapes(c, shard: shard))
        func parts(_ names: [String]) -> (parts: [(data: UnsafePointer<Float>, rows: Int)], cols: Int) {
            (names.map { (parameter($0), shapes[$0]![0]) }, shapes[names[0]]![1])
        }
        self.init(c, shard: shard, dtype: .float32, array: { name in
            shapes[name].map { Array(UnsafeBufferPointer(start: parameter(name), count: $0.reduce(1, *))) }
        }, matrix: { names in
            let (p, k) = parts(names)
            return WeightMatrix(rowsOf: p, cols: k, pool: pool)
        }, transposed: { names in
            let (p, k) = parts(names)
            return WeightMatrix(transposing: p, cols: k, pool: pool)
        })
    }

    /// The one assembly every source shares (also `DecoderWeightsBuilder`): which tensors form which
    /// matrix (QKV and gate|up fused by rows).
    init(_ c: ModelConfig, shard: RankPlace, dtype: ComputeDType,
                 array take: (String) -> [Float]?, matrix m: ([String]) -> WeightMatrix, transposed: (([String]) -> WeightMatrix)?) {
        let tp = shard.tp
        config = c; self.shard = shard
        localHeads = c.numHeads / tp; localGroups = c.numKVHeads / tp; localFFN = c.ffnSize / tp
        paddedVocab = shard.layout.vocab.paddedVocab(c.vocabSize, tp: tp)
        localVocab = paddedVocab / tp
        func req(_ n: String) -> [Float] { take(n)! }
        self.dtype = dtype
        let needsWordEmbedding = shard.isFirstStage || (shard.isLastStage && c.tiedEmbeddings)
        headBackward = shard.isLastStage ? transposed?([c.tiedEmbeddings ? "embedding.word.weight" : "lm_head.weight"]) : nil
        wordEmbedding = needsWordEmbedding ? m(["embedding.word.weight"]) : nil
        positionEmbedding = shard.isFirstStage ? take("embedding.position.weight") : nil
        layers = shard.layers.map { i in
            let p = "layers.\(i)."
            let swiglu = c.activation == .swiglu
            let qkv = [p + "attn.q.weight", p + "attn.k.weight", p + "attn.v.weight"]
            let fc1 = swiglu ? [p + "mlp.gate.weight", p + "mlp.up.weight"] : [p + "mlp.fc1.weight"]
            let back = transposed.map { t in
                TransposedLayer(qkv: t(qkv), out: t([p + "attn.out.weight"]), fc1: t(fc1), fc2: t([p + "mlp.fc2.weight"]))
            }
            return LayerWeights(norm1W: req(p + "norm1.weight"), norm1B: take(p + "norm1.bias"),
                                qkvW: m(qkv),
                                qkvB: c.linearBias ? req(p + "attn.q.bias") + req(p + "attn.k.bias") + req(p + "attn.v.bias") : nil,
                                outW: m([p + "attn.out.weight"]), outB: take(p + "attn.out.bias"),
                                norm2W: req(p + "norm2.weight"), norm2B: take(p + "norm2.bias"),
                                fc1W: m(fc1),
                                fc1B: c.linearBias ? (swiglu ? req(p + "mlp.gate.bias") + req(p + "mlp.up.bias") : req(p + "mlp.fc1.bias")) : nil,
                                fc2W: m([p + "mlp.fc2.weight"]), fc2B: take(p + "mlp.fc2.bias"), backward: back)
        }
        finalNormW = shard.isLastStage ? req("final_norm.weight") : nil
        finalNormB = shard.isLastStage ? take("final_norm.bias") : nil
        lmHead = shard.isLastStage && !c.tiedEmbeddings ? m(["lm_head.weight"]) : nil
        rotary = c.positions == .rope ? RotaryTable(headDim: c.headDim, maxPositions: c.maxPositions, theta: c.ropeTheta) : nil
    }

    /// Every matrix this shard holds (for handing their storage to a `PackedStoragePool`).
    public var matrices: [WeightMatrix] {
        var out = [wordEmbedding, lmHead, headBackward].compactMap { $0 }
        for l in layers {
            out += [l.qkvW, l.outW, l.fc1W, l.fc2W]
            if let b = l.backward { out += [b.qkv, b.out, b.fc1, b.fc2] }
        }
        return out
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
