// MegatronMerge: the part of Megatron loading shared by the legacy and DeepSpeed layouts.
//
// Owns: (1) naming — legacy (`language_model.{embedding,encoder|transformer,output_layer}`,
// `attention.`/`self_attention.`, `input_layernorm`/`input_norm`, ...) and megatron-core flat names
// (`embedding.*`, `decoder.layers.N.*.linear_qkv`, fused `layer_norm_weight`) normalised to short
// shard names (`word`, `position`, `output`, `head_copy`, `final.weight`, `layers.N.qkv.weight`, ...);
// (2) pipeline renumbering (local -> global layers from the layer counts actually found);
// (3) TP reassembly into canonical tensors: column-parallel concat on dim 0, row-parallel on dim 1,
// replicated from rank 0 (shapes checked across ranks), fused QKV fixed per rank for checkpoint_version
// 0 ([3,np,hn]), 1.0 ([np,hn,3]) and >= 2.0 ([np,3,hn]; GQA [ng][np/ng+2][hn]) before concatenation,
// SwiGLU [W;V] halves per rank, vocabulary rows trimmed.
// Does not own: directory layouts (the adapters) or args parsing (MegatronArgs).

import Foundation
import TensorCore
import Model

/// A tensor reference and the file it came from (for error messages).
public struct ShardTensor {
    public let ref: TensorRef
    public let file: String
    public let original: String
    func load() throws -> Tensor { try ref.materialize(name: original) }
}

/// One TP rank's (or one stage's) tensors under normalised names.
public typealias ShardDict = [String: ShardTensor]

enum MegatronNames {
    static let modules: [(String, String)] = [
        ("self_attention.linear_qkv.layer_norm_", "norm1."), ("mlp.linear_fc1.layer_norm_", "norm2."),
        ("input_layernorm.", "norm1."), ("input_norm.", "norm1."),
        ("self_attention.query_key_value.", "qkv."), ("attention.query_key_value.", "qkv."), ("self_attention.linear_qkv.", "qkv."),
        ("self_attention.dense.", "proj."), ("attention.dense.", "proj."), ("self_attention.linear_proj.", "proj."),
        ("post_attention_layernorm.", "norm2."), ("post_attention_norm.", "norm2."), ("pre_mlp_layernorm.", "norm2."),
        ("mlp.dense_h_to_4h.", "fc1."), ("mlp.linear_fc1.", "fc1."),
        ("mlp.dense_4h_to_h.", "fc2."), ("mlp.linear_fc2.", "fc2."),
    ]

    /// Normalised name, "" to skip (extra state), nil if unknown.
    static func normalize(_ key: String) -> String? {
        var k = key
        while k.hasPrefix("module.") { k.removeFirst("module.".count) }   // Float16Module / DDP wrappers
        if k.hasPrefix("language_model.") { k.removeFirst("language_model.".count) }
        if k.hasSuffix("_extra_state") { return "" }
        switch k {
        case "embedding.word_embeddings.weight": return "word"
        case "embedding.position_embeddings.weight": return "position"
        case "word_embeddings_for_head.weight": return "head_copy"
        case "output_layer.weight": return "output"
        default: break
        }
        for stack in ["encoder.", "transformer.", "decoder."] where k.hasPrefix(stack) {
            let rest = String(k.dropFirst(stack.count))
            for fin in ["final_layernorm.", "final_norm."] where rest.hasPrefix(fin) {
                let p = String(rest.dropFirst(fin.count)); return p == "weight" || p == "bias" ? "final." + p : nil
            }
            guard rest.hasPrefix("layers.") else { return nil }
            let parts = rest.dropFirst("layers.".count).split(separator: ".", maxSplits: 1)
            guard parts.count == 2, let i = Int(parts[0]) else { return nil }
            let tail = String(parts[1])
            for (m, n) in modules where tail.hasPrefix(m) {
                let p = String(tail.dropFirst(m.count))
                guard p == "weight" || p == "bias" else { return nil }
                return "layers.\(i).\(n)\(p)"
            }
            return nil
        }
        return nil
    }

    /// Normalise a flat list of (key, tensor) from one file; unknown keys are an error listing them all.
    static func normalize(_ flat: [(String, TensorRef)], file: String) throws -> ShardDict {
        var out: ShardDict = [:]; var unknown: [String] = []
        for (k, t) in flat {
            guard let n = normalize(k) else { unknown.append(k); continue }
            if n.isEmpty { continue }
            out[n] = ShardTensor(ref: t, file: file, original: k)
        }
        if !unknown.isEmpty { throw CheckpointError.unexpectedTensors(file: file, unknown) }
        return out
    }

    static func layerCount(_ d: ShardDict) -> Int {
        var m = -1
        for k in d.keys where k.hasPrefix("layers.") {
            if let i = Int(k.split(separator: ".")[1]) { m = max(m, i) }
        }
        return m + 1
    }

    /// Shift local layer numbers by `offset`.
    static func renumber(_ d: ShardDict, offset: Int) -> ShardDict {
        var out: ShardDict = [:]
        for (k, v) in d {
            if k.hasPrefix("layers.") {
                let p = k.split(separator: ".", maxSplits: 2)
                out["layers.\(Int(p[1])! + offset).\(p[2])"] = v
            } else { out[k] = v }
        }
        return out
    }
}

/// TP reassembly of normalised shard dictionaries (one per TP rank, global layer numbers), written
/// straight into the pieces `target` asks for (MergeTarget): every element is copied once, from the
/// mapped shard file (or a decoded temporary for non-f32 parts) to its final place.
struct MegatronMerger {
    let config: ModelConfig
    let tp: Int
    let checkpointVersion: Double
    let layernorm1p: Bool
    var target: MergeTarget = .canonical
    /// With a `.split` target: write only this engine rank's tensors (`pieces` then hold one tensor
    /// each, that rank's), and read only the shard data they need.
    var only: RankPlace? = nil
    /// Write only these canonical tensors (`LoadOptions.visit` reads a layer at a time).
    var names: Set<String>? = nil
    /// Source name for every canonical tensor, for messages.
    var sources: [String: String] = [:]
    var problems: [String] = []
    /// Canonical name -> one tensor per target rank (one for `.canonical`).
    var pieces: [String: [Tensor]] = [:]
    /// Tensors checked and waiting to be written (`writePieces`, at the end of `mergePieces`).
    private var pending: [PendingTensor] = []
    private let schema: [String: [Int]]

    init(config: ModelConfig, tp: Int, checkpointVersion: Double, layernorm1p: Bool = false) {
        self.config = config; self.tp = tp; self.checkpointVersion = checkpointVersion; self.layernorm1p = layernorm1p
        schema = Dictionary(CanonicalSchema.shapes(for: config), uniquingKeysWith: { a, _ in a })
    }

    func parts(_ ranks: [ShardDict], _ name: String) throws -> [ShardTensor] {
        try ranks.enumerated().map { (r, d) in
            guard let t = d[name] else {
                throw CheckpointError.missingTensor(file: ranks[0][name]?.file ?? "tp rank \(r)", tensor: "\(name) (tp rank \(r))")
            }
            return t
        }
    }

    func sameShapes(_ ps: [ShardTensor]) throws {
        for p in ps.dropFirst() where p.ref.shape != ps[0].ref.shape {
            throw CheckpointError.shapeMismatch(file: p.file, tensor: p.original, expected: ps[0].ref.shape, found: p.ref.shape)
        }
    }

    /// Check canonical `name`'s shape against the schema, then queue its pieces to be written by `fill`.
    mutating func emit(_ name: String, shape: [Int], from s: ShardTensor, fill: @escaping (PieceWriter) throws -> Void) throws {
        sources[name] = s.file + ": " + s.original
        guard let want = schema[name] else { throw CheckpointError.unexpectedTensors(file: s.file, [s.original]) }
        guard want == shape else { throw CheckpointError.shapeMismatch(file: s.file, tensor: name, expected: want, found: shape) }
        if wanted(name) { pending.append(PendingTensor(name: name, shape: shape, fill: fill)) }
    }

    /// Whether canonical `name` (or, for a name ending in ".", any tensor under it) is written: always,
    /// unless `only` names a rank that does not use it or `names` leaves it out.
    func wanted(_ name: String) -> Bool {
        if let names, !(name.hasSuffix(".") ? names.contains { $0.hasPrefix(name) } : names.contains(name)) { return false }
        guard let r = only else { return true }
        if name.hasPrefix("layers."), let i = Int(name.split(separator: ".")[1]) { return r.layers.contains(i) }
        switch name {
        case "embedding.word.weight": return r.isFirstStage || (r.isLastStage && config.tiedEmbeddings)
        case "embedding.position.weight": return r.isFirstStage
        default: return r.isLastStage   // final norm, untied head
        }
    }

    /// Largest difference between TP ranks' copies of a replicated tensor, relative to its largest
    /// magnitude (at least 1), reported as drift; beyond it the ranks disagree and loading stops.
    static let replicatedDrift: Float = 1e-2

    /// Rank 0's copy; copies that drifted on other ranks by bf16 rounding are reported (BLOOM-style
    /// drift), not averaged; larger differences (or NaN) stop the load naming both rank files.
    mutating func replicated(_ ranks: [ShardDict], _ name: String, as canonical: String, onePlus: Bool = false) throws {
        let ps = try parts(ranks, name); try sameShapes(ps)
        let addOne = onePlus && layernorm1p
        try ps[0].withFloats { t0 in
            for p in ps.dropFirst() {
                try p.withFloats { t in
                    if memcmp(t.baseAddress!, t0.baseAddress!, t.count * 4) != 0 {
                        let d = zip(t, t0).map { abs($0 - $1) }.max() ?? 0
                        let scale = max(1, t0.map { abs($0) }.max() ?? 0)
                        // bf16-level drift (BLOOM) is reported; a real disagreement (or NaN) is refused
                        guard d <= Self.replicatedDrift * scale else {
                            throw CheckpointError.rankMismatch(files: [ps[0].file, p.file],
                                "replicated tensor '\(p.original)' differs across TP ranks (max |Δ| \(d), more than \(Self.replicatedDrift) × \(scale)): wrong or swapped rank files")
                        }
                        problems.append("replicated tensor '\(p.original)' differs across TP ranks (max |Δ| \(d) in \(p.file)); rank 0's copy is used")
                    }
                }
            }
        }
        try emit(canonical, shape: ps[0].ref.shape, from: ps[0]) { w in
            try ps[0].withFloats { t0 in
                if addOne {
                    let one = t0.map { $0 + 1 }
                    one.withUnsafeBufferPointer { w.write(row: 0, rows: w.rows, from: $0.baseAddress!) }
                } else {
                    w.write(row: 0, rows: w.rows, from: t0.baseAddress!)
                }
            }
        }
    }

    /// Column-parallel (or vocab-parallel): parts stacked on dim 0; with `keepRows`, rows past it
    /// (vocabulary padding) are dropped.
    /// With `verify` (parts of the same shapes), each part of `verify` is compared with the rows just
    /// written from the matching part, a chunk at a time while they are in cache; `differs` is set on
    /// any difference.
    mutating func concatRows(_ ranks: [ShardDict], _ name: String, as canonical: String, keepRows: Int? = nil,
                             verify: [ShardTensor]? = nil, differs: Flag? = nil) throws {
        let ps = try parts(ranks, name); try sameShapes(ps)
        guard let r = ps[0].ref.shape.first else {
            throw CheckpointError.shapeMismatch(file: ps[0].file, tensor: ps[0].original, expected: [-1], found: ps[0].ref.shape)
        }
        var shape = ps[0].ref.shape; shape[0] = r * tp
        if let k = keepRows {
            guard k <= r * tp else { throw CheckpointError.shapeMismatch(file: ps[0].file, tensor: canonical, expected: [k] + shape.dropFirst(), found: shape) }
            shape[0] = k
        }
        let rows = shape[0]
        try emit(canonical, shape: shape, from: ps[0]) { w in
            for i in ps.indices {
                let lo = i * r, n = min(r, rows - lo)
                guard n > 0 else { continue }
                guard let vs = verify, let flag = differs else { try w.writeRows(row: lo, rows: n, from: ps[i]); continue }
                guard n * w.cols <= vs[i].ref.count else { flag.set(); try w.writeRows(row: lo, rows: n, from: ps[i]); continue }
                let chunk = max(1, (1 << 20) / max(1, w.cols * 4))
                try vs[i].withFloats { other in
                    for c in stride(from: 0, to: n, by: chunk) {
                        let k = min(chunk, n - c)
                        try w.writeRowBlocks([(lo + c, k, c)], from: ps[i])
                        if !w.rowsEqual(row: lo + c, rows: k, to: other.baseAddress! + c * w.cols) { flag.set() }
                    }
                }
            }
        }
    }

    /// Row-parallel: parts side by side on dim 1.
    mutating func concatColumns(_ ranks: [ShardDict], _ name: String, as canonical: String) throws {
        let ps = try parts(ranks, name); try sameShapes(ps)
        let s0 = ps[0].ref.shape
        guard s0.count == 2 else { throw CheckpointError.shapeMismatch(file: ps[0].file, tensor: ps[0].original, expected: [-1, -1], found: s0) }
        try emit(canonical, shape: [s0[0], s0[1] * tp], from: ps[0]) { w in
            for i in ps.indices { try w.writeColumns(col: i * s0[1], width: s0[1], from: ps[i]) }
        }
    }

    /// The fused QKV rows a rank must hold: `ngp * (qpg + 2) * hn`.
    func checkQKV(_ shape: [Int], _ s: ShardTensor) throws {
        let H = config.numHeads, G = config.numKVHeads, hn = config.headDim
        let rows = G / max(1, tp) * (H / max(1, G) + 2) * hn
        guard H % tp == 0, G % tp == 0, shape.first == rows else {
            throw CheckpointError.shapeMismatch(file: s.file, tensor: s.original, expected: [rows] + shape.dropFirst(), found: shape)
        }
        if checkpointVersion < 2 && G != H {
            throw CheckpointError.badConfig(file: s.file, "grouped-query attention with checkpoint_version \(checkpointVersion)")
        }
    }

    /// Fused QKV of every rank -> canonical q, k, v (rank r holds query groups [r·G/tp, (r+1)·G/tp)),
    /// honouring checkpoint_version and GQA.
    mutating func qkv(_ ranks: [ShardDict], _ name: String, layer o: String, _ p: String) throws {
        let ps = try parts(ranks, name); try sameShapes(ps)
        try checkQKV(ps[0].ref.shape, ps[0])
        let H = config.numHeads, G = config.numKVHeads, hn = config.headDim
        let npp = H / tp, ngp = G / tp, qpg = H / G
        let inner = ps[0].ref.count / ps[0].ref.shape[0]
        let rest = Array(ps[0].ref.shape.dropFirst())
        /// Source row of (group g, slot j in 0..<qpg+2, dim d) within one rank's part.
        let version = checkpointVersion
        func src(_ g: Int, _ j: Int, _ d: Int) -> Int {
            if version >= 2 { return (g * (qpg + 2) + j) * hn + d }
            if version >= 1 { return (g * hn + d) * 3 + j }      // [np, hn, 3]
            return (j * npp + g) * hn + d                                     // [3, np, hn]
        }
        for (n, slots, heads) in [("q", Array(0..<qpg), H), ("k", [qpg], G), ("v", [qpg + 1], G)] {
            try emit(o + "attn.\(n)." + p, shape: [heads * hn] + rest, from: ps[0]) { w in
                for r in ps.indices {
                    var row = r * ngp * slots.count * hn
                    if version >= 1 && version < 2 {   // [np, hn, 3]: every row moves on its own
                        try ps[r].withFloats { t in
                            for g in 0..<ngp { for j in slots { for d in 0..<hn {
                                w.write(row: row, rows: 1, from: t.baseAddress! + src(g, j, d) * inner); row += 1
                            } } }
                        }
                        continue
                    }
                    var blocks: [(row: Int, rows: Int, sourceRow: Int)] = []   // hn consecutive rows per (group, slot)
                    for g in 0..<ngp { for j in slots { blocks.append((row, hn, src(g, j, 0))); row += hn } }
                    try w.writeRowBlocks(blocks, from: ps[r])
                }
            }
        }
    }

    /// SwiGLU: each rank's fc1 part is [W_r; V_r] (gate rows, then up rows).
    mutating func swiglu(_ ranks: [ShardDict], _ name: String, layer o: String, _ p: String) throws {
        let ps = try parts(ranks, name); try sameShapes(ps)
        let sh = ps[0].ref.shape
        guard let r2 = sh.first, r2 % 2 == 0 else { throw CheckpointError.shapeMismatch(file: ps[0].file, tensor: ps[0].original, expected: [(sh.first ?? 0) + 1], found: sh) }
        let half = r2 / 2
        for (n, first) in [("gate", 0), ("up", half)] {
            try emit(o + "mlp.\(n)." + p, shape: [half * tp] + sh.dropFirst(), from: ps[0]) { w in
                for r in ps.indices { try w.writeRowBlocks([(r * half, half, first)], from: ps[r]) }
            }
        }
    }

    /// Canonical tensors (target `.canonical`); see `mergePieces`.
    mutating func merge(_ ranks: [ShardDict], vocabRows V: Int) throws -> [String: Tensor] {
        try mergePieces(ranks, vocabRows: V)
        return pieces.mapValues { $0[0] }
    }

    /// Fill `pieces` with every canonical tensor, cut for `target`.
    mutating func mergePieces(_ ranks: [ShardDict], vocabRows V: Int) throws {
        precondition(ranks.count == tp)
        pieces = [:]; pending = []
        // The last stage's copy of the word embedding (tied head) is checked against stage 0's as it is read.
        let headDiffers = Flag()
        var head: [ShardTensor]? = nil
        if ranks[0]["head_copy"] != nil {
            let hs = try parts(ranks, "head_copy"), ws = try parts(ranks, "word")
            if zip(hs, ws).allSatisfy({ $0.ref.shape == $1.ref.shape }) { head = hs } else { headDiffers.set() }
        }
        if wanted("embedding.word.weight") {
            try concatRows(ranks, "word", as: "embedding.word.weight", keepRows: V, verify: head, differs: headDiffers)
        }
        if config.positions == .learned && wanted("embedding.position.weight") { try replicated(ranks, "position", as: "embedding.position.weight") }
        if !config.tiedEmbeddings && wanted("lm_head.weight") { try concatRows(ranks, "output", as: "lm_head.weight", keepRows: V) }
        let ln = config.norm == .layernorm, bias = config.linearBias
        for i in 0..<config.numLayers where wanted("layers.\(i).") {
            let s = "layers.\(i).", o = "layers.\(i)."
            try replicated(ranks, s + "norm1.weight", as: o + "norm1.weight", onePlus: true)
            if ln { try replicated(ranks, s + "norm1.bias", as: o + "norm1.bias") }
            try replicated(ranks, s + "norm2.weight", as: o + "norm2.weight", onePlus: true)
            if ln { try replicated(ranks, s + "norm2.bias", as: o + "norm2.bias") }
            for p in bias ? ["weight", "bias"] : ["weight"] { try qkv(ranks, s + "qkv." + p, layer: o, p) }
            try concatColumns(ranks, s + "proj.weight", as: o + "attn.out.weight")
            if bias { try replicated(ranks, s + "proj.bias", as: o + "attn.out.bias") }
            if config.activation == .swiglu {
                for p in bias ? ["weight", "bias"] : ["weight"] { try swiglu(ranks, s + "fc1." + p, layer: o, p) }
            } else {
                try concatRows(ranks, s + "fc1.weight", as: o + "mlp.fc1.weight")
                if bias { try concatRows(ranks, s + "fc1.bias", as: o + "mlp.fc1.bias") }
            }
            try concatColumns(ranks, s + "fc2.weight", as: o + "mlp.fc2.weight")
            if bias { try replicated(ranks, s + "fc2.bias", as: o + "mlp.fc2.bias") }
        }
        if wanted("final_norm.") {
            try replicated(ranks, "final.weight", as: "final_norm.weight", onePlus: true)
            if ln { try replicated(ranks, "final.bias", as: "final_norm.bias") }
        }
        pieces = try writePieces(pending, target: target, rank: only?.tpRank)
        pending = []
        if headDiffers.isSet { problems.append("word_embeddings_for_head differs from the stage-0 word embedding; the stage-0 copy is used") }
        // Every canonical tensor present (shapes were checked as each was written).
        for (name, _) in CanonicalSchema.shapes(for: config) where pieces[name] == nil && wanted(name) {
            throw CheckpointError.missingTensor(file: "merged shards", tensor: name)
        }
    }
}

/// A flag any thread may set.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

/// Shape facts read from the shards before the config is known.
func shardShapes(_ ranks: [ShardDict], layers: Int, tp: Int) -> MegatronArgs.Shapes {
    let r0 = ranks[0]
    return MegatronArgs.Shapes(paddedVocab: (r0["word"]?.ref.shape.first ?? 0) * tp, hidden: r0["word"]?.ref.shape.last,
                               ffnRows: r0["layers.0.fc1.weight"]?.ref.shape.first, positions: r0["position"]?.ref.shape.first,
                               layers: layers, tp: tp, hasPosition: r0["position"] != nil, hasOutput: r0["output"] != nil)
}
