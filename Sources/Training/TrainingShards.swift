// TrainingShards: what every training rank of a `ParallelLayout` holds, and the cuts between the
// ranks' flat buffers and canonical ones.
//
// Ranks sit in the layout's (Megatron's) order, world rank g = (p * DP + d) * TP + t (`RankPlace`).
// Rank (t, p, d) holds stage p's layers, TP shard t of them, cut by the engine's rule (`TPSplit`,
// Model/Partition.swift) with the vocabulary padded only to a multiple of TP (`VocabPadding
// .tensorParallel`, which `checkTrainingLayout` requires: padding rows train nothing). Stage 0 holds the
// embeddings, the last stage the final norm and the head; with tied embeddings and PP > 1 the last
// stage keeps its own copy of the word embedding (Megatron's word_embeddings_for_head) whose gradient
// is summed with stage 0's after every step, so both copies stay equal.
//
// `scatter` cuts canonical flat buffers (parameters, or an Adam moment: same shapes) into a
// rank's flat buffer; `gather` puts the ranks' buffers of one replica back together.

import TensorCore
import Model

/// Throws a `TrainingError` saying why unless `grid` can train `c` (TP divides it, every stage has a
/// layer, DP >= 1, vocabulary padded to a multiple of TP only).
func checkTrainingLayout(_ grid: ParallelLayout, _ c: ModelConfig) throws {
    guard grid.vocab == .tensorParallel else {
        throw TrainingError("training holds the vocabulary padded to a multiple of TP only (VocabPadding.tensorParallel), got \(grid.vocab)")
    }
    do { try grid.check(c) } catch let e as LayoutError { throw TrainingError(e.description) }
}

extension ParameterLayout {
    /// The flat layout of one training rank: its stage's tensors, at their TP-local shapes
    /// (vocabulary padded by the place's layout, as `DecoderWeights` views them).
    public init(config c: ModelConfig, place: RankPlace) {
        let Vp = place.layout.vocab.paddedVocab(c.vocabSize, tp: place.tp)
        var shapes: [(String, [Int])] = []
        for (name, shape) in CanonicalSchema.shapes(for: c) where Self.holds(name, config: c, stage: place.stage, pp: place.pp, layers: place.layers) {
            shapes.append((name, TPSplit.of(name).localShape(shape, tp: place.tp, paddedVocab: Vp)))
        }
        self.init(shapes: shapes)
    }

    static func holds(_ name: String, config c: ModelConfig, stage p: Int, pp: Int, layers: Range<Int>) -> Bool {
        if name.hasPrefix("layers.") { return layers.contains(Int(name.split(separator: ".")[1])!) }
        if name == "embedding.word.weight" { return p == 0 || (p == pp - 1 && c.tiedEmbeddings) }
        if name.hasPrefix("embedding.") { return p == 0 }
        return p == pp - 1          // final_norm.*, lm_head.weight
    }

    /// True for the tensors this rank counts in the global gradient norm: TP-replicated tensors on
    /// TP rank 0 only, and the last stage's copy of a tied embedding not at all (Megatron's rule).
    func countsInNorm(_ e: Entry, tpRank: Int, stage: Int) -> Bool {
        if e.name == "embedding.word.weight" && stage != 0 { return false }
        return TPSplit.of(e.name) != .replicated || tpRank == 0
    }
}

extension ParallelLayout {
    /// A rank's flat buffer cut from a canonical flat buffer in `canonical`'s layout.
    public func scatter(_ flat: [Float], canonical: ParameterLayout, config c: ModelConfig, into local: ParameterLayout, t: Int) -> [Float] {
        if tp == 1 && pp == 1 { return flat }        // the same layout: share the buffer (copy on write)
        let Vl = local.entry("embedding.word.weight")?.shape[0] ?? local.entry("lm_head.weight")?.shape[0] ?? 0
        var out = [Float](repeating: 0, count: local.total)
        for e in local.entries {
            let src = canonical.entry(e.name)!
            let cs = src.shape
            switch TPSplit.of(e.name) {
            case .vocab:
                let lo = t * Vl, hi = min(c.vocabSize, lo + Vl), C = cs[1]
                if hi > lo { for i in 0..<((hi - lo) * C) { out[e.offset + i] = flat[src.offset + lo * C + i] } }
            case .rows:
                let n = e.count
                for i in 0..<n { out[e.offset + i] = flat[src.offset + t * n + i] }
            case .columns:
                let R = cs[0], Cl = e.shape[1]
                for r in 0..<R { for k in 0..<Cl { out[e.offset + r * Cl + k] = flat[src.offset + r * cs[1] + t * Cl + k] } }
            case .replicated:
                for i in 0..<e.count { out[e.offset + i] = flat[src.offset + i] }
            }
        }
        return out
    }

    /// One replica's rank buffers (`ranks[p * TP + t]`, in `layouts[p]`) put back into a canonical flat buffer.
    public func gather(_ ranks: [[Float]], layouts: [ParameterLayout], canonical: ParameterLayout, config c: ModelConfig) -> [Float] {
        if tp == 1 && pp == 1 { return ranks[0] }
        var out = [Float](repeating: 0, count: canonical.total)
        for e in canonical.entries {
            let p = (0..<pp).first { layouts[$0].entry(e.name) != nil }!    // stage 0 first: a tied head copy is never read
            let local = layouts[p].entry(e.name)!
            for t in 0..<tp {
                let src = ranks[p * tp + t]
                switch TPSplit.of(e.name) {
                case .vocab:
                    let Vl = local.shape[0], C = e.shape[1], lo = t * Vl, hi = min(c.vocabSize, lo + Vl)
                    if hi > lo { for i in 0..<((hi - lo) * C) { out[e.offset + lo * C + i] = src[local.offset + i] } }
                case .rows:
                    let n = local.count
                    for i in 0..<n { out[e.offset + t * n + i] = src[local.offset + i] }
                case .columns:
                    let R = e.shape[0], Cl = local.shape[1]
                    for r in 0..<R { for k in 0..<Cl { out[e.offset + r * e.shape[1] + t * Cl + k] = src[local.offset + r * Cl + k] } }
                case .replicated:
                    if t == 0 { for i in 0..<e.count { out[e.offset + i] = src[local.offset + i] } }
                }
            }
        }
        return out
    }
}
