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

/// TP reassembly of normalised shard dictionaries (one per TP rank, global layer numbers).
struct MegatronMerger {
    let config: ModelConfig
    let tp: Int
    let checkpointVersion: Double
    let layernorm1p: Bool
    /// Source name for every canonical tensor, for messages.
    var sources: [String: String] = [:]
    var problems: [String] = []

    init(config: ModelConfig, tp: Int, checkpointVersion: Double, layernorm1p: Bool = false) {
        self.config = config; self.tp = tp; self.checkpointVersion = checkpointVersion; self.layernorm1p = layernorm1p
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

    /// Rank 0's copy; copies that drifted on other ranks are reported (BLOOM-style drift), not averaged.
    mutating func replicated(_ ranks: [ShardDict], _ name: String) throws -> Tensor {
        let ps = try parts(ranks, name); try sameShapes(ps)
        sources[name] = ps[0].file + ": " + ps[0].original
        let t0 = try ps[0].load()
        for p in ps.dropFirst() {
            let t = try p.load()
            if t != t0 {
                let d = zip(t.data, t0.data).map { abs($0 - $1) }.max() ?? 0
                problems.append("replicated tensor '\(p.original)' differs across TP ranks (max |Δ| \(d) in \(p.file)); rank 0's copy is used")
            }
        }
        return t0
    }

    mutating func concat(_ ranks: [ShardDict], _ name: String, axis: Int) throws -> Tensor {
        let ps = try parts(ranks, name); try sameShapes(ps)
        guard ps[0].ref.shape.count > axis else {
            throw CheckpointError.shapeMismatch(file: ps[0].file, tensor: ps[0].original, expected: [-1, -1], found: ps[0].ref.shape)
        }
        sources[name] = ps[0].file + ": " + ps[0].original
        if axis == 0 {   // each part is one contiguous block of the result: read it in place, one allocation
            let n = ps[0].ref.count
            var shape = ps[0].ref.shape; shape[0] *= ps.count
            let data = try [Float](unsafeUninitializedCapacity: n * ps.count) { buf, filled in
                adviseHugePages(UnsafeMutableRawBufferPointer(buf))
                for (i, p) in ps.enumerated() {
                    try p.ref.read(into: UnsafeMutableBufferPointer(rebasing: buf[(i * n)..<((i + 1) * n)]), name: p.original)
                }
                filled = n * ps.count
            }
            return Tensor(shape: shape, data: data)
        }
        return Tensor.concat(try ps.map { try $0.load() }, axis: axis)
    }

    /// Fused QKV of one rank -> (q, k, v) rows, honouring checkpoint_version and GQA.
    func splitQKV(_ t: Tensor, _ s: ShardTensor) throws -> (Tensor, Tensor, Tensor) {
        let H = config.numHeads, G = config.numKVHeads, hn = config.headDim
        let npp = H / tp, ngp = G / tp, qpg = H / G
        let rows = ngp * (qpg + 2) * hn
        guard H % tp == 0, G % tp == 0, t.shape.first == rows else {
            throw CheckpointError.shapeMismatch(file: s.file, tensor: s.original, expected: [rows] + t.shape.dropFirst(), found: t.shape)
        }
        if checkpointVersion < 2 && G != H {
            throw CheckpointError.badConfig(file: s.file, "grouped-query attention with checkpoint_version \(checkpointVersion)")
        }
        let inner = t.count / rows
        /// Source row of (group g, slot j in 0..<qpg+2, dim d).
        func src(_ g: Int, _ j: Int, _ d: Int) -> Int {
            if checkpointVersion >= 2 { return (g * (qpg + 2) + j) * hn + d }
            if checkpointVersion >= 1 { return (g * hn + d) * 3 + j }      // [np, hn, 3]
            return (j * npp + g) * hn + d                                     // [3, np, hn]
        }
        func gather(_ slots: [(Int, Int)]) -> Tensor {   // (group, slot) in output order
            var out = [Float](); out.reserveCapacity(slots.count * hn * inner)
            for (g, j) in slots { for d in 0..<hn { let r = src(g, j, d); out.append(contentsOf: t.data[(r * inner)..<((r + 1) * inner)]) } }
            var shape = t.shape; shape[0] = slots.count * hn
            return Tensor(shape: shape, data: out)
        }
        let qs = (0..<ngp).flatMap { g in (0..<qpg).map { (g, $0) } }
        return (gather(qs), gather((0..<ngp).map { ($0, qpg) }), gather((0..<ngp).map { ($0, qpg + 1) }))
    }

    mutating func merge(_ ranks: [ShardDict], vocabRows V: Int) throws -> [String: Tensor] {
        precondition(ranks.count == tp)
        var out: [String: Tensor] = [:]
        func trim(_ t: consuming Tensor, _ name: String) throws -> Tensor {
            guard t.shape[0] >= V else {
                throw CheckpointError.shapeMismatch(file: sources[name] ?? "?", tensor: name, expected: [V, t.shape[1]], found: t.shape)
            }
            if t.shape[0] == V { return t }
            var d: [Float] = []
            swap(&d, &t.data)                       // sole owner: drop the padding rows in place, no copy
            d.removeLast((t.shape[0] - V) * t.shape[1])
            return Tensor(shape: [V, t.shape[1]], data: d)
        }
        func onePlus(_ t: Tensor) -> Tensor { layernorm1p ? Tensor(shape: t.shape, data: t.data.map { $0 + 1 }) : t }

        let word = try concat(ranks, "word", axis: 0)
        if ranks[0]["head_copy"] != nil {   // compare rank by rank against the merged rows, no second full copy
            let hs = try parts(ranks, "head_copy")
            var same = true
            var offset = 0
            for h in hs where same {
                let n = h.ref.count
                guard offset + n <= word.count else { same = false; break }
                let part = try h.load()
                same = part.data.withUnsafeBufferPointer { a in word.data.withUnsafeBufferPointer { b in
                    memcmp(a.baseAddress!, b.baseAddress! + offset, n * 4) == 0 } }
                offset += n
            }
            if !same || offset != word.count { problems.append("word_embeddings_for_head differs from the stage-0 word embedding; the stage-0 copy is used") }
        }
        out["embedding.word.weight"] = try trim(consume word, "word")
        if config.positions == .learned { out["embedding.position.weight"] = try replicated(ranks, "position") }
        if !config.tiedEmbeddings { out["lm_head.weight"] = try trim(try concat(ranks, "output", axis: 0), "output") }
        let ln = config.norm == .layernorm, bias = config.linearBias
        for i in 0..<config.numLayers {
            let s = "layers.\(i).", o = "layers.\(i)."
            out[o + "norm1.weight"] = onePlus(try replicated(ranks, s + "norm1.weight"))
            if ln { out[o + "norm1.bias"] = try replicated(ranks, s + "norm1.bias") }
            out[o + "norm2.weight"] = onePlus(try replicated(ranks, s + "norm2.weight"))
            if ln { out[o + "norm2.bias"] = try replicated(ranks, s + "norm2.bias") }
            for p in bias ? ["weight", "bias"] : ["weight"] {
                let ps = try parts(ranks, s + "qkv." + p); try sameShapes(ps)
                var q: [Tensor] = [], k: [Tensor] = [], v: [Tensor] = []
                for sh in ps { let (a, b, c) = try splitQKV(try sh.load(), sh); q.append(a); k.append(b); v.append(c) }
                out[o + "attn.q." + p] = Tensor.concat(q, axis: 0)
                out[o + "attn.k." + p] = Tensor.concat(k, axis: 0)
                out[o + "attn.v." + p] = Tensor.concat(v, axis: 0)
                for n in ["q", "k", "v"] { sources[o + "attn.\(n)." + p] = ps[0].file + ": " + ps[0].original }
            }
            out[o + "attn.out.weight"] = try concat(ranks, s + "proj.weight", axis: 1)
            if bias { out[o + "attn.out.bias"] = try replicated(ranks, s + "proj.bias") }
            if config.activation == .swiglu {
                for p in bias ? ["weight", "bias"] : ["weight"] {
                    let ps = try parts(ranks, s + "fc1." + p); try sameShapes(ps)
                    var g: [Tensor] = [], u: [Tensor] = []
                    for sh in ps {
                        let t = try sh.load()
                        guard t.shape[0] % 2 == 0 else { throw CheckpointError.shapeMismatch(file: sh.file, tensor: sh.original, expected: [t.shape[0] + 1], found: t.shape) }
                        let halves = t.split(axis: 0, parts: 2); g.append(halves[0]); u.append(halves[1])
                    }
                    out[o + "mlp.gate." + p] = Tensor.concat(g, axis: 0); out[o + "mlp.up." + p] = Tensor.concat(u, axis: 0)
                    sources[o + "mlp.gate." + p] = ps[0].file + ": " + ps[0].original
                    sources[o + "mlp.up." + p] = ps[0].file + ": " + ps[0].original
                }
            } else {
                out[o + "mlp.fc1.weight"] = try concat(ranks, s + "fc1.weight", axis: 0)
                if bias { out[o + "mlp.fc1.bias"] = try concat(ranks, s + "fc1.bias", axis: 0) }
            }
            out[o + "mlp.fc2.weight"] = try concat(ranks, s + "fc2.weight", axis: 1)
            if bias { out[o + "mlp.fc2.bias"] = try replicated(ranks, s + "fc2.bias") }
        }
        out["final_norm.weight"] = onePlus(try replicated(ranks, "final.weight"))
        if ln { out["final_norm.bias"] = try replicated(ranks, "final.bias") }
        // Every canonical tensor present with its schema shape; name the source on mismatch.
        for (name, shape) in CanonicalSchema.shapes(for: config) {
            guard let t = out[name] else { throw CheckpointError.missingTensor(file: "merged shards", tensor: name) }
            if t.shape != shape { throw CheckpointError.shapeMismatch(file: sources[name] ?? "merged shards", tensor: name, expected: shape, found: t.shape) }
        }
        return out
    }
}

/// Shape facts read from the shards before the config is known.
func shardShapes(_ ranks: [ShardDict], layers: Int, tp: Int) -> MegatronArgs.Shapes {
    let r0 = ranks[0]
    return MegatronArgs.Shapes(paddedVocab: (r0["word"]?.ref.shape.first ?? 0) * tp, hidden: r0["word"]?.ref.shape.last,
                               ffnRows: r0["layers.0.fc1.weight"]?.ref.shape.first, positions: r0["position"]?.ref.shape.first,
                               layers: layers, tp: tp, hasPosition: r0["position"] != nil, hasOutput: r0["output"] != nil)
}

/// Ask for transparent huge pages on the 2 MiB-aligned interior of a large fresh buffer: a few
/// hundred faults instead of one per 4 KiB page while it is first written (a hint; errors are ignored).
func adviseHugePages(_ b: UnsafeMutableRawBufferPointer) {
    guard let base = b.baseAddress, b.count >= 4 << 20 else { return }
    let huge = 2 << 20
    let start = (Int(bitPattern: base) + huge - 1) / huge * huge
    let end = (Int(bitPattern: base) + b.count) / huge * huge
    if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, 14) }   // MADV_HUGEPAGE
}
