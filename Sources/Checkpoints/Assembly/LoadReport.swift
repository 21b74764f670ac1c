// LoadReport: what a format adapter returns besides the canonical checkpoint: layout facts
// (format, iteration, TP, PP, checkpoint_version, files read) and non-fatal problems.
// Also owns `assembleMegatron`, the step shared by the Megatron-legacy and DeepSpeed adapters:
// args + normalised per-TP-rank shards -> config -> merged canonical tensors.

import Foundation
import TensorCore
import Model

public struct LoadReport {
    public var checkpoint: CanonicalCheckpoint
    public var format: String
    public var iteration: Int?
    public var tensorParallel: Int
    public var pipelineParallel: Int
    public var checkpointVersion: Double?
    public var files: [URL]
    /// Storage dtypes seen in the shards.
    public var dtypes: Set<StorageDType>
    /// Non-fatal findings (padded vocab kept, drifted copies, disagreeing metadata, ...).
    public var problems: [String]
    /// With `LoadOptions.target` `.split`: TP rank r's tensors (as `CanonicalCheckpoint.split` cuts them),
    /// and `checkpoint.tensors` is empty; with `LoadOptions.rank` as well, one element: that rank's
    /// tensors only. Nil for `.canonical`.
    public var shards: [[String: Tensor]]? = nil
    /// The saved training args (Megatron saves), as decoded; `inspect --args` lists them.
    public var args: PickleValue? = nil
    /// What was read past on purpose, not a problem (Transformer Engine `_extra_state` entries,
    /// optimizer state, ...).
    public var notes: [String] = []
}

/// Number of entries under `v` (nested dicts) whose key ends in `_extra_state`, whatever they hold
/// (Transformer Engine writes a BytesIO in older releases, a uint8 tensor in newer ones).
func extraStateCount(_ v: PickleValue) -> Int {
    guard case .dict(let d) = v else { return 0 }
    var n = 0
    for (k, x) in d.items {
        if case .string(let s) = k, s.hasSuffix("_extra_state") { n += 1 } else { n += extraStateCount(x) }
    }
    return n
}

/// Options every adapter understands.
public struct LoadOptions: Sendable {
    /// Real vocabulary size, when the checkpoint does not record it (Megatron args rarely do).
    public var vocabSize: Int?
    /// Megatron args given by the user, over the saved ones (e.g. "ffn_hidden_size": .int(3072)).
    public var argOverrides: [String: PickleValue]
    /// The layout to produce; Megatron and DeepSpeed loads write it directly (no canonical copy first),
    /// other formats split the canonical checkpoint (`CheckpointLoader.loadSplit`).
    public var target: MergeTarget = .canonical
    /// Megatron-LM legacy saves: read this AdamW moment ("exp_avg" or "exp_avg_sq") from each rank's
    /// `optimizer` state in place of the weights (same cuts, fusions and padding, so the same merge).
    public var optimizerMoment: String? = nil
    /// With a `.split` target, load only what world rank `rank` of the target's layout needs (its
    /// `RankPlace`, placed once the save's layer count is known: its TP piece of its stage's layers, the
    /// embeddings on the first stage, the final norm and head on the last): a process of an MPI job
    /// reads its own shard, never the whole model. Megatron-LM and DeepSpeed saves are read for it
    /// alone, other formats loaded and cut.
    public var rank: Int? = nil
    /// Megatron-LM, DeepSpeed and torch_dist saves, `.canonical` target: instead of returning the
    /// tensors, hand every canonical tensor to `visit` in name order, one layer's tensors read at a
    /// time (the files parsed once; the returned checkpoint holds the config only): a large model
    /// visited without holding it.
    public var visit: (@Sendable (_ name: String, _ tensor: Tensor) throws -> Void)? = nil
    /// With `visit`: called once with the model's config before the first tensor is visited (a
    /// consumer that builds from the tensors, e.g. `DecoderWeightsBuilder`, needs the shapes first).
    /// HF folders are visited too (one tensor decoded at a time, in layer order).
    public var visitConfig: (@Sendable (_ config: ModelConfig) throws -> Void)? = nil
    public init(vocabSize: Int? = nil, argOverrides: [String: PickleValue] = [:], target: MergeTarget = .canonical) {
        self.vocabSize = vocabSize; self.argOverrides = argOverrides; self.target = target
    }
}

let supportedCheckpointVersions: Set<Double> = [0, 1, 2, 3]

/// Config from args and shapes, then TP merge. `ranks[t]` holds TP rank t's tensors (global layers).
func assembleMegatron(ranks: [ShardDict], args: MegatronArgs, version: Double, tp: Int, layers: Int,
                      options: LoadOptions, format: String, problems: inout [String]) throws -> (CanonicalCheckpoint, [[String: Tensor]]?) {
    let shapes = shardShapes(ranks, layers: layers, tp: tp)
    guard ranks[0]["word"] != nil else { throw CheckpointError.missingTensor(file: args.file, tensor: "word_embeddings.weight (stage 0)") }
    if let pv = args.int("padded_vocab_size"), pv != shapes.paddedVocab {
        throw CheckpointError.shapeMismatch(file: ranks[0]["word"]!.file, tensor: ranks[0]["word"]!.original,
                                            expected: [pv / tp, shapes.hidden ?? 0], found: ranks[0]["word"]!.ref.shape)
    }
    var V = shapes.paddedVocab
    // The size the save records wins over the tokenizer's (HF saves of the same weights keep every
    // recorded row too, so both score alike); the tokenizer's fills in when nothing is recorded.
    let recorded = args.trueVocabSize
    if let v = recorded ?? options.vocabSize {
        guard v <= shapes.paddedVocab else {
            throw CheckpointError.badConfig(file: args.file, "vocabulary size \(v) exceeds the \(shapes.paddedVocab) embedding rows")
        }
        V = v
        if let r = recorded, let t = options.vocabSize, t != r {
            problems.append("the tokenizer has \(t) tokens, the checkpoint records a vocabulary of \(r): all \(r) rows are kept (as for an HF save of the same weights)")
        }
    } else {
        problems.append("vocabulary kept padded to \(V) rows: args record no real vocabulary size (pass --vocab-size, or a tokenizer)")
    }
    let config = try args.config(shapes, vocabSize: V)
    let dtype = ranks[0]["word"]!.ref.dtype
    func merger() -> MegatronMerger {
        var m = MegatronMerger(config: config, tp: tp, checkpointVersion: version, layernorm1p: args.bool("apply_layernorm_1p") ?? false)
        m.target = options.target
        return m
    }
    if let visit = options.visit, options.target == .canonical {
        try options.visitConfig?(config)
        // Canonical names in order, grouped: one layer's tensors (consecutive in name order), or one other.
        let names = CanonicalSchema.shapes(for: config).map(\.0).sorted()
        func group(_ n: String) -> String { n.hasPrefix("layers.") ? n.split(separator: ".").prefix(2).joined(separator: ".") : n }
        var i = 0
        while i < names.count {
            var j = i + 1
            while j < names.count && group(names[j]) == group(names[i]) { j += 1 }
            var m = merger()
            m.names = Set(names[i..<j])
            try m.mergePieces(ranks, vocabRows: V)
            for p in m.problems where !problems.contains(p) { problems.append(p) }
            for n in names[i..<j] { try visit(n, m.pieces.removeValue(forKey: n)![0]) }   // each let go once visited
            i = j
        }
        return (CanonicalCheckpoint(config: config, tensors: [:], format: format, sourceDType: dtype), nil)
    }
    var merger = merger()
    if case .split(let layout) = options.target {
        try ParallelLayout.checkTensorParallel(config, tp: layout.tp)
        if let g = options.rank { merger.only = try layout.place(ofRank: g, numLayers: config.numLayers) }
    }
    try merger.mergePieces(ranks, vocabRows: V)
    problems.append(contentsOf: merger.problems)
    guard case .split(let layout) = options.target else {
        return (CanonicalCheckpoint(config: config, tensors: merger.pieces.mapValues { $0[0] }, format: format, sourceDType: dtype), nil)
    }
    let shards = merger.only != nil ? [merger.pieces.mapValues { $0[0] }] : (0..<layout.tp).map { r in merger.pieces.mapValues { $0[r] } }
    return (CanonicalCheckpoint(config: config, tensors: [:], format: format, sourceDType: dtype), shards)
}

func dtypes(of ranks: [ShardDict]) -> Set<StorageDType> { Set(ranks.flatMap { $0.values.map { $0.ref.dtype } }) }

func readText(_ url: URL) throws -> String {
    do { return try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) }
    catch { throw CheckpointError.io(file: url.path, error.localizedDescription) }
}

func checkpointVersion(_ root: PickleValue, file: String) throws -> Double {
    guard let raw = root["checkpoint_version"], !raw.isNone else { return 0 }
    guard let v = raw.doubleValue else { throw CheckpointError.badConfig(file: file, "checkpoint_version is not a number") }
    guard supportedCheckpointVersions.contains(v) else { throw CheckpointError.unsupportedCheckpointVersion(file: file, v) }
    return v
}
