// DecoderModel: inference over one rank's stage of a decoder, several sequences at once: a thin
// driver over the layers in Model/Layers (the same code training runs).
//
// Each call appends new tokens to each sequence's caller-owned `KVCache` and returns the logits of
// the rows asked for. Rows of all sequences are stacked so every linear layer is one product:
//   tokens -> VocabParallelEmbedding -> x [N, C] -> DecoderLayer x L -> final Norm -> VocabParallelHead
//   (logits [rows, V], or the scoring variant [rows, 3])
// Pre-LN only (Megatron GPT and Llama).

import Foundation
import TensorCore
import Collectives

public enum LogitRows: Sendable {
    case all          // every new row of every sequence
    case last         // the last new row of each sequence
    case none         // only fill the caches
    /// Every new row scores its target token (`targets[s][i]` for row i of sequence s) with a
    /// vocab-parallel log-softmax: the full vocabulary row never lives on one rank. The result is
    /// [rows, 3]: log-prob as a hi/lo pair of floats (value = Double(hi) + Double(lo)) and 1 when the
    /// target is the (first) argmax, else 0.
    case scores(targets: [[Int]])

    /// Rows the result has, from the inputs alone.
    public func rows(counts: [Int]) -> Int {
        switch self {
        case .all, .scores: return counts.reduce(0, +)
        case .last: return counts.filter { $0 > 0 }.count
        case .none: return 0
        }
    }

    /// The same request for the sequences in `r` (a micro-batch).
    public func restricted(to r: Range<Int>) -> LogitRows {
        if case .scores(let t) = self { return .scores(targets: Array(t[r])) }
        return self
    }

    /// Columns of the result for a vocabulary of `v`.
    public func width(vocab v: Int) -> Int { if case .scores = self { return 3 }; return v }
}

public struct DecoderError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

public enum StageInput {
    case tokens([[Int]])          // first stage: new token ids per sequence
    case hidden([Float])          // later stages: [N, C] from the previous stage
}

public enum StageOutput {
    case hidden([Float])          // [N, C] for the next stage
    case logits(Tensor)           // last stage: [rows, V], gathered over the TP group
}

public struct DecoderModel: Sendable {
    public let weights: DecoderWeights
    public var config: ModelConfig { weights.config }
    /// New rows per group of sequences that the layers take at once (a sequence longer than this is a group
    /// alone; llama.cpp's n_ubatch, whose default is 512). 256 rows keep every product at full speed (batch-8
    /// prefill and scoring measured level with 512 and with the whole batch) at half the activations.
    public var microBatchTokens = 256

    public init(weights: DecoderWeights) { self.weights = weights }

    /// A cache for this rank's layers and heads: f32, or float16 for a bf16 model (`KVCache`).
    public func makeCache(capacity: Int? = nil) throws -> KVCache {
        try KVCache(layers: weights.layers.count, groups: weights.localGroups, headDim: config.headDim,
                    capacity: min(capacity ?? config.maxPositions, config.maxPositions), storage: weights.dtype == .bfloat16 ? .float16 : .float32)
    }

    /// Layer `i` of this stage (0-based within the stage).
    public func layer(_ i: Int) -> DecoderLayer { DecoderLayer(weights.layers[i], of: weights) }
    /// The vocab-parallel embedding (first stage).
    public var embedding: VocabParallelEmbedding? {
        weights.wordEmbedding.map { VocabParallelEmbedding(words: $0, positions: weights.positionEmbedding, first: weights.shard.tpRank * weights.localVocab) }
    }
    /// The final norm (last stage).
    public var finalNorm: Norm { Norm(config) }
    /// The vocab-parallel head (last stage).
    public var head: VocabParallelHead? {
        weights.head.map { VocabParallelHead(weight: $0, vocab: config.vocabSize, first: weights.shard.tpRank * weights.localVocab) }
    }

    /// Whole model on one rank: appends `tokens[s]` to `caches[s]`; returns logits [rows, V].
    public func forward(tokens: [[Int]], caches: [KVCache], logits: LogitRows = .last) throws -> Tensor {
        precondition(weights.shard.tp == 1 && weights.shard.pp == 1, "forward(tokens:) runs a TP 1 x PP 1 model; use ShardedEngine")
        guard case .logits(let t) = try forwardStage(.tokens(tokens), counts: tokens.map(\.count), caches: caches, logits: logits, tp: SingleRank()) else {
            preconditionFailure("last stage returns logits")
        }
        return t
    }

    /// One rank's stage: embeds (first stage) or takes hidden states, runs its layers, and returns
    /// hidden states or (last stage) logits. `counts[s]` new rows of sequence s; caches advance.
    public func forwardStage(_ input: StageInput, counts: [Int], caches: [KVCache], logits: LogitRows, tp: Collective) throws -> StageOutput {
        precondition(counts.count == caches.count)
        let c = config, W = weights, C = c.hiddenSize
        var sequences: [SequenceRows] = [], positions: [Int] = []
        var n = 0
        for (s, k) in counts.enumerated() {
            let cache = caches[s]
            if cache.length + k > cache.capacity {
                throw DecoderError(description: "sequence \(s): \(cache.length + k) positions exceed the cache capacity \(cache.capacity) (model max_positions \(c.maxPositions))")
            }
            guard cache.layers == W.layers.count, cache.groups == W.localGroups, cache.headDim == c.headDim else {
                throw DecoderError(description: "sequence \(s): its cache holds \(cache.layers) layers x \(cache.groups) groups x \(cache.headDim), this rank needs \(W.layers.count) x \(W.localGroups) x \(c.headDim)")
            }
            sequences.append(SequenceRows(row: n, count: k, start: cache.length))
            for i in 0..<k { positions.append(cache.length + i) }
            n += k
        }

        // x [N, C]
        var x: [Float]
        switch input {
        case .hidden(let h):
            precondition(h.count == n * C, "stage input has \(h.count) values, expected \(n) x \(C)")
            x = h
        case .tokens(let tokens):
            guard let emb = embedding else { preconditionFailure("tokens given to a stage without the embedding") }
            for (s, toks) in tokens.enumerated() {
                for t in toks where t < 0 || t >= c.vocabSize {
                    throw DecoderError(description: "sequence \(s): token id \(t) is outside the vocabulary [0, \(c.vocabSize))")
                }
            }
            x = [Float](repeating: 0, count: n * C)
            try x.withUnsafeMutableBufferPointer { try emb.forward($0, tokens: tokens.flatMap { $0 }, positions: positions, tp: tp) }
        }
        if n == 0 {
            for (s, k) in counts.enumerated() { caches[s].length += k }
            return W.shard.isLastStage ? .logits(Tensor(zeros: [0, c.vocabSize])) : .hidden([])
        }

        // Without logits (a prefill that only fills caches), the last stage's last layer is needed only for
        // its K and V: its attention output, projection and MLP feed nothing, so they are skipped.
        var cacheOnly = false
        if case .none = logits, W.shard.isLastStage { cacheOnly = true }
        // The layers run over groups of whole sequences of up to `microBatchTokens` new rows (as llama.cpp's
        // n_ubatch): activations scale with a group, not with the batch. Rows of different sequences never
        // mix and every row of a product is the same FMA chain in any batch, so a group's bits are the batch's.
        for g in Self.microBatches(counts: counts, tokens: microBatchTokens) {
            let r0 = sequences[g.lowerBound].row, r1 = sequences[g.upperBound - 1].row + counts[g.upperBound - 1]
            let seqs = sequences[g].map { SequenceRows(row: $0.row - r0, count: $0.count, start: $0.start) }
            if r0 == 0 && r1 == n {
                try runLayers(&x, sequences: seqs, positions: positions, caches: caches, cacheOnly: cacheOnly, tp: tp)
            } else {
                var xg = Array(x[(r0 * C)..<(r1 * C)])
                try runLayers(&xg, sequences: seqs, positions: Array(positions[r0..<r1]), caches: Array(caches[g]), cacheOnly: cacheOnly, tp: tp)
                x.replaceSubrange((r0 * C)..<(r1 * C), with: xg)
            }
        }
        for (s, k) in counts.enumerated() { caches[s].length += k }
        if !W.shard.isLastStage { return .hidden(x) }

        // Rows that need logits, normed.
        var sel: [Int] = []
        switch logits {
        case .all, .scores: sel = Array(0..<n)
        case .last: for (s, k) in counts.enumerated() where k > 0 { sel.append(sequences[s].row + k - 1) }
        case .none: return .logits(Tensor(zeros: [0, c.vocabSize]))
        }
        var rows = sel.count == n ? x : [Float](repeating: 0, count: sel.count * C)
        if sel.count != n {
            x.withUnsafeBufferPointer { xb in rows.withUnsafeMutableBufferPointer { rb in
                for (i, r) in sel.enumerated() { (rb.baseAddress! + i * C).update(from: xb.baseAddress! + r * C, count: C) } } }
        }
        var hs = [Float](repeating: 0, count: sel.count * C)
        hs.withUnsafeMutableBufferPointer { hb in rows.withUnsafeBufferPointer {
            finalNorm.forward(hb.baseAddress!, $0.baseAddress!, gamma: W.finalNormW!, beta: W.finalNormB, rows: sel.count) } }
        let head = head!
        if case .scores(let targets) = logits {
            return .logits(Tensor(shape: [sel.count, 3], data: try head.scores(&hs, targets: targets.flatMap { $0 }, tp: tp)))
        }
        return .logits(Tensor(shape: [sel.count, c.vocabSize], data: try head.logits(&hs, rows: sel.count, tp: tp)))
    }

    /// Consecutive ranges of sequences, each of at most `tokens` new rows (or one sequence and empty ones).
    static func microBatches(counts: [Int], tokens: Int) -> [Range<Int>] {
        var out: [Range<Int>] = [], start = 0, rows = 0
        for (s, k) in counts.enumerated() {
            if rows > 0 && k > 0 && rows + k > tokens { out.append(start..<s); start = s; rows = 0 }
            rows += k
        }
        out.append(start..<counts.count)
        return out
    }

    /// Every layer of this stage over x [rows, C] of `sequences` (rows from 0).
    func runLayers(_ x: inout [Float], sequences: [SequenceRows], positions: [Int], caches: [KVCache], cacheOnly: Bool, tp: Collective) throws {
        let W = weights
        var a = LayerActivations()
        // attention scores: a [rows, len] slice per (sequence, head), up to 16 MB of them at once (they run in
        // parallel, in waves), and at least the largest one
        let all = W.localHeads * sequences.reduce(0) { $0 + $1.count * $1.length }
        let oneHead = sequences.map { $0.count * $0.length }.max()!
        a.scores = [Float](repeating: 0, count: min(all, max(4 << 20, oneHead)))
        for li in W.layers.indices {
            try layer(li).forward(&x, &a, sequences: sequences, positions: positions, keys: .caches(caches, layer: li),
                                  training: false, kvOnly: cacheOnly && li == W.layers.count - 1, tp: tp)
        }
    }
}
