// StageTraining: one training rank's share of the decoder, forward with saved activations and
// backward, as a thin driver over the layers inference runs (Model/Layers: VocabParallelEmbedding,
// DecoderLayer, Norm, VocabParallelHead), for the whole family: LayerNorm or RMSNorm, learned or
// rotary positions, GeLU (tanh / erf) or SwiGLU, multi-head or grouped-query attention, biases or
// none, tied or untied head. The layers cross TP ranks only through the region operations.
//
// The rank holds its `RankPlace`'s share (TP shard `tpRank` of stage `stage`'s layers) as a flat buffer
// (`ParameterLayout`); `prepare` packs it into `DecoderWeights` (with transposes for the backward)
// once per optimizer step. Gradients go to the flat gradient buffer by name.
// Stages pass [N, C] activations forward and their gradients back; the caller moves them.
//
// Shapes: B batch, T time, N = B*T rows, C hidden, local Hl = H/TP heads, Gl = G/TP groups,
// D head dim, HDl = Hl*D, GDl = Gl*D, Fl = F/TP, Vl = ceil(V/TP) vocabulary rows.
// Gradients ACCUMULATE into the caller's buffer (micro-batches add up); the loss of a micro-batch
// is the mean cross-entropy over its masked positions, and its gradient is scaled by `lossScale`.

import Foundation
import TensorCore
import Collectives
import Model

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public struct TrainingBatch: Sendable {
    public var inputs: [[Int]]      // [B][T]
    public var targets: [[Int]]     // [B][T]
    public var mask: [[Bool]]       // [B][T]: positions that count in the loss
    public init(inputs: [[Int]], targets: [[Int]], mask: [[Bool]]? = nil) {
        self.inputs = inputs; self.targets = targets
        self.mask = mask ?? inputs.map { $0.map { _ in true } }
    }
}

/// What one micro-batch leaves on a rank for its backward.
final class StageActivations {
    var input: [Float]                   // the stage's input [N, C] (empty on stage 0: tokens come from the batch)
    var layers: [LayerActivations] = []  // every layer's activations (empty when recomputing)
    var layerInputs: [[Float]] = []      // recomputing: only each layer's input [N, C] (Megatron's full, uniform, 1 layer)
    var finalX: [Float] = []             // last stage: the final norm's input [N, C] and output
    var finalH: [Float] = []
    var finalNorm = NormSaved()
    var dlogits: [Float] = []            // last stage: [N, Vl], already scaled
    var loss: Double = 0                 // last stage: mean cross-entropy of this micro-batch
    init(input: [Float]) { self.input = input }

    /// Floats held (for the recomputation's memory accounting).
    var floats: Int {
        input.count + layers.reduce(0) { $0 + $1.floats } + layerInputs.reduce(0) { $0 + $1.count }
            + finalX.count + finalH.count + finalNorm.mean.count + finalNorm.rstd.count + dlogits.count
    }
}

public final class StageTraining {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// Where this rank sits; its layers are `place.layers`.
    public let place: RankPlace
    var layers: Range<Int> { place.layers }
    var stage: Int { place.stage }
    /// This step's weights, packed from the flat parameters by `prepare` (once per optimizer step).
    var model: DecoderModel?
    let pool = PackedStoragePool()
    /// Last stage: [N, Vl] logit buffers of finished micro-batches, reused by the next ones (a fresh
    /// one is ~100 MB at GPT-2's vocabulary: mapped and zeroed page by page on every micro-batch).
    var spareLogits: [[Float]] = []

    public var isFirst: Bool { place.isFirstStage }
    public var isLast: Bool { place.isLastStage }

    /// `place` nil: the whole model on one rank.
    public init(config: ModelConfig, place: RankPlace? = nil) throws {
        try config.validate()
        let place = place ?? .single(layers: config.numLayers)
        try ParallelLayout.checkTensorParallel(config, tp: place.tp)
        self.config = config; self.place = place
        layout = ParameterLayout(config: config, place: place)
    }

    /// Packs this step's weights (and their transposes for the backward) from the flat parameters P0.
    public func prepare(_ P0: UnsafePointer<Float>) throws {
        for m in model?.weights.matrices ?? [] { pool.give(m) }
        model = nil                               // the pool now holds the last step's storage alone
        model = DecoderModel(weights: try DecoderWeights(config: config, shard: place, pool: pool, parameter: { P0 + self.layout.offset($0) }))
    }

    /// Checks a batch before any communication, so every rank throws the same error.
    public func check(_ batch: TrainingBatch) throws -> (B: Int, T: Int, count: Int) {
        let c = config
        let B = batch.inputs.count
        guard B > 0, let T = batch.inputs.first?.count, T > 0 else { throw TrainingError("empty batch") }
        guard batch.inputs.allSatisfy({ $0.count == T }), batch.targets.allSatisfy({ $0.count == T }), batch.mask.allSatisfy({ $0.count == T }),
              batch.targets.count == B, batch.mask.count == B else {
            throw TrainingError("every sequence of a batch must have \(T) tokens, targets and mask entries")
        }
        guard T <= c.maxPositions else { throw TrainingError("sequence length \(T) exceeds the model's \(c.maxPositions) positions") }
        for row in batch.inputs + batch.targets { for t in row where t < 0 || t >= c.vocabSize { throw TrainingError("token id \(t) outside the vocabulary [0, \(c.vocabSize))") } }
        let d = dims(batch)
        guard d.count > 0 else { throw TrainingError("no position of the batch counts in the loss (empty mask)") }
        return d
    }

    /// Batch size, length and counted positions of a batch that passed `check` (callers check every
    /// micro-batch once, before any communication).
    func dims(_ batch: TrainingBatch) -> (B: Int, T: Int, count: Int) {
        (batch.inputs.count, batch.inputs[0].count, batch.mask.reduce(0) { $0 + $1.filter { $0 }.count })
    }

    /// The batch's sequences as stacked rows (B sequences of T rows, each from position 0) and each row's position.
    func rows(B: Int, T: Int) -> ([SequenceRows], [Int]) {
        ((0..<B).map { SequenceRows(row: $0 * T, count: T, start: 0) }, (0..<(B * T)).map { $0 % T })
    }

    var prepared: DecoderModel {
        guard let model else { preconditionFailure("StageTraining: prepare(_:) packs the step's weights before forward and backward") }
        return model
    }

    // MARK: forward

    /// Runs this stage on one micro-batch (checked by the caller). `input` is the previous stage's output [N, C] (nil on
    /// stage 0). Returns this stage's output [N, C] (empty on the last stage, whose loss is in the
    /// activations) and what backward needs; with `keep == false` only each layer's input (and the
    /// final norm's) is kept, and backward recomputes one layer at a time (activation recomputation).
    func forward(batch: TrainingBatch, input: [Float]?, lossScale: Float, keep: Bool, tpc: Collective) throws -> ([Float], StageActivations) {
        let m = prepared
        let (B, T, count) = dims(batch)
        let N = B * T, C = config.hiddenSize
        let (seqs, positions) = rows(B: B, T: T)
        let saved = StageActivations(input: isFirst ? [] : input!)
        var x: [Float]
        if isFirst {
            x = [Float](repeating: 0, count: N * C)
            try x.withUnsafeMutableBufferPointer { try m.embedding!.forward($0, tokens: batch.inputs.flatMap { $0 }, positions: positions, tp: tpc) }
        } else {
            guard input!.count == N * C else { throw TrainingError("stage \(stage): received \(input!.count) activations, expected \(N) x \(C)") }
            x = input!
        }
        for i in 0..<layers.count {
            var a = LayerActivations()
            if !keep { saved.layerInputs.append(x) }
            try m.layer(i).forward(&x, &a, sequences: seqs, positions: positions, keys: .batch, training: true, tp: tpc)
            if keep { saved.layers.append(a) }
        }
        if isLast {
            try headForward(m, x, saved, batch: batch, count: count, lossScale: lossScale, tpc: tpc)
            if !keep { saved.finalH = []; saved.finalNorm = .init(); spareLogits.append(saved.dlogits); saved.dlogits = [] }
            return ([], saved)
        }
        return (x, saved)
    }

    var headName: String { config.tiedEmbeddings ? "embedding.word.weight" : "lm_head.weight" }

    /// Final norm, vocab-parallel logits and cross-entropy; leaves the scaled dlogits in `s`.
    func headForward(_ m: DecoderModel, _ x: [Float], _ s: StageActivations, batch: TrainingBatch, count: Int, lossScale: Float, tpc: Collective) throws {
        let N = x.count / config.hiddenSize, W = m.weights, head = m.head!
        s.finalX = x
        s.finalH = [Float](repeating: 0, count: x.count)
        s.finalNorm = s.finalH.withUnsafeMutableBufferPointer { hb in x.withUnsafeBufferPointer {
            m.finalNorm.forward(hb.baseAddress!, $0.baseAddress!, gamma: W.finalNormW!, beta: W.finalNormB, rows: N, keep: true) } }
        var logits = spareLogits.popLast() ?? []
        if logits.count != N * head.localVocab { logits = [Float](repeating: 0, count: N * head.localVocab) }   // every entry is written below
        try logits.withUnsafeMutableBufferPointer { lb in try s.finalH.withUnsafeMutableBufferPointer { try head.localLogits(lb.baseAddress!, $0, rows: N, tp: tpc) } }
        let loss = try logits.withUnsafeMutableBufferPointer {
            try head.crossEntropy($0.baseAddress!, targets: batch.targets.flatMap { $0 }, counts: batch.mask.flatMap { $0 },
                                  weight: lossScale / Float(count), tp: tpc)
        }
        s.dlogits = logits
        s.loss = loss / Double(count)
    }

    // MARK: backward

    /// Backward of one micro-batch: adds this rank's gradients into `G0` and returns the gradient
    /// of the stage's input [N, C] (empty on stage 0). `dOutput` is the next stage's input gradient
    /// (nil on the last stage).
    func backward(_ G0: UnsafeMutablePointer<Float>, _ saved: StageActivations, batch: TrainingBatch, dOutput: [Float]?,
                  lossScale: Float, tpc: Collective) throws -> [Float] {
        let s = saved, m = prepared
        let (B, T, count) = dims(batch)
        let N = B * T, C = config.hiddenSize
        let (seqs, positions) = rows(B: B, T: T)
        let recomputing = s.layers.count != layers.count
        func g(_ n: String) -> UnsafeMutablePointer<Float> { grad(G0, n) }
        func gOpt(_ n: String) -> UnsafeMutablePointer<Float>? { gradIfPresent(G0, n) }
        var dx: [Float]
        if isLast {
            if recomputing { try headForward(m, s.finalX, s, batch: batch, count: count, lossScale: lossScale, tpc: tpc) }
            var dh = [Float](repeating: 0, count: N * C)
            try dh.withUnsafeMutableBufferPointer { d in try s.dlogits.withUnsafeBufferPointer { dy in try s.finalH.withUnsafeBufferPointer {
                try m.head!.backward(dh: d, dlogits: dy.baseAddress!, h: $0.baseAddress!, transposed: m.weights.headBackward!, dW: g(headName), rows: N, tp: tpc) } } }
            dx = [Float](repeating: 0, count: N * C)
            dx.withUnsafeMutableBufferPointer { d in dh.withUnsafeBufferPointer { dy in s.finalX.withUnsafeBufferPointer {
                m.finalNorm.backward(dx: d.baseAddress!, dgamma: g("final_norm.weight"), dbeta: gOpt("final_norm.bias"), dout: dy.baseAddress!,
                                     x: $0.baseAddress!, gamma: m.weights.finalNormW!, saved: s.finalNorm, rows: N) } } }
        } else {
            guard let d = dOutput, d.count == N * C else { throw TrainingError("stage \(stage): received \(dOutput?.count ?? 0) output gradients, expected \(N) x \(C)") }
            dx = d
        }
        for (i, l) in layers.enumerated().reversed() {
            let layer = m.layer(i)
            var a = LayerActivations()
            if recomputing {
                var xi = s.layerInputs[i]
                try layer.forward(&xi, &a, sequences: seqs, positions: positions, keys: .batch, training: true, tp: tpc)
            } else { a = s.layers[i] }
            dx = try layer.backward(dx, a, grads: layerGrads(G0, l), sequences: seqs, positions: positions, tp: tpc)
            if recomputing { s.layerInputs[i] = [] }
            else { s.layers[i] = .init() }          // free as we go
        }
        if isLast { spareLogits.append(s.dlogits); s.dlogits = []; s.finalX = []; s.finalH = []; s.finalNorm = .init() }
        if isFirst {
            try dx.withUnsafeMutableBufferPointer {
                try m.embedding!.backward(dWords: g("embedding.word.weight"), dPositions: gOpt("embedding.position.weight"), dx: $0,
                                          tokens: batch.inputs.flatMap { $0 }, positions: positions, tp: tpc)
            }
            return []
        }
        return dx
    }

    /// Tensor `name`'s gradient in the flat buffer at G0 (and nil for a tensor this model has not).
    func grad(_ G0: UnsafeMutablePointer<Float>, _ name: String) -> UnsafeMutablePointer<Float> { G0 + layout.offset(name) }
    func gradIfPresent(_ G0: UnsafeMutablePointer<Float>, _ name: String) -> UnsafeMutablePointer<Float>? { layout.entry(name).map { G0 + $0.offset } }

    /// Where layer `l`'s gradients go in the flat buffer at G0 (fused QKV and gate|up in segments).
    func layerGrads(_ G0: UnsafeMutablePointer<Float>, _ l: Int) -> LayerGrads {
        let pf = "layers.\(l)."
        func g(_ n: String) -> UnsafeMutablePointer<Float> { grad(G0, n) }
        func gOpt(_ n: String) -> UnsafeMutablePointer<Float>? { gradIfPresent(G0, n) }
        func seg(_ n: String) -> LinearGrad.Segment { .init(rows: layout.entry(pf + n + ".weight")!.shape[0], dW: g(pf + n + ".weight"), db: gOpt(pf + n + ".bias")) }
        let fc1 = config.activation == .swiglu ? [seg("mlp.gate"), seg("mlp.up")] : [seg("mlp.fc1")]
        return LayerGrads(norm1W: g(pf + "norm1.weight"), norm1B: gOpt(pf + "norm1.bias"),
                          qkv: LinearGrad([seg("attn.q"), seg("attn.k"), seg("attn.v")]), out: LinearGrad([seg("attn.out")]),
                          norm2W: g(pf + "norm2.weight"), norm2B: gOpt(pf + "norm2.bias"),
                          fc1: LinearGrad(fc1), fc2: LinearGrad([seg("mlp.fc2")]))
    }
}
