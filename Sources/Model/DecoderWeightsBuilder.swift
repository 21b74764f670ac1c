// DecoderWeightsBuilder: `DecoderWeights` built from tensors handed over one at a time, in any order
// (a loader visiting a checkpoint, `LoadOptions.visit`), for a model too large to hold in f32.
//
// Contract: tensors as `DecoderWeights(config:rankTensors:shard:dtype:)` takes them (this shard's local
// shapes; names the shard does not use are ignored). Each matrix (QKV and gate|up fused, as the shared
// assembly in DecoderWeights.swift groups them; it is asked, not repeated here) is packed (narrowed to
// bf16 with `.bfloat16`) as soon as all of its tensors have arrived, and their f32 copies are let go:
// building holds the packed weights plus the f32 tensors of the matrices not yet complete (for a loader
// that visits layer by layer, under one layer's). `finish()` gives the same weights, bit for bit, as
// the whole-model initialiser given the same tensors (same packing code, same order of values).

import TensorCore

public final class DecoderWeightsBuilder {
    public let config: ModelConfig
    public let shard: RankPlace
    public let dtype: ComputeDType
    private let shapes: [String: [Int]]
    private var groupOf: [String: [String]] = [:]        // tensor -> the names of the matrix it is part of
    private var pending: [String: Tensor] = [:]          // tensors of matrices still incomplete (f32)
    private var packed: [[String]: WeightMatrix] = [:]
    private var arrays: [String: [Float]] = [:]          // norms, biases, positions (kept f32)
    private var arrived: Set<String> = []

    public init(config c: ModelConfig, shard: RankPlace, dtype: ComputeDType = .float32) throws {
        try c.validate()
        try ParallelLayout.checkTensorParallel(c, tp: shard.tp)
        config = c; self.shard = shard; self.dtype = dtype
        shapes = Dictionary(uniqueKeysWithValues: DecoderWeights.localShapes(c, shard: shard))
        // Which tensors form which matrix: a dry run of the shared assembly (1 x 1 placeholders, no values).
        var groups: [[String]] = []
        _ = DecoderWeights(c, shard: shard, dtype: .float32, array: { _ in [] }, matrix: { names in
            groups.append(names); return WeightMatrix([0], rows: 1, cols: 1)
        }, transposed: nil)
        for g in groups { for n in g { groupOf[n] = g } }
    }

    /// Tensors placed so far, of the ones this shard takes.
    public var progress: (placed: Int, of: Int) { (arrived.count, shapes.count) }

    /// The whole model at TP 1 x PP 1.
    public convenience init(config c: ModelConfig, dtype: ComputeDType = .float32) throws {
        try self.init(config: c, shard: .single(layers: c.numLayers), dtype: dtype)
    }

    /// Hand over tensor `name` ([local shape], f32). Throws `ModelError.shapeMismatch` for a wrong shape,
    /// `ModelError.unexpectedTensors` for a tensor given twice.
    public func add(_ name: String, _ tensor: consuming Tensor) throws {
        guard let want = shapes[name] else { return }
        let t = consume tensor
        guard t.shape == want else { throw ModelError.shapeMismatch(tensor: name, expected: want, found: t.shape) }
        guard arrived.insert(name).inserted else { throw ModelError.unexpectedTensors([name + " (given twice)"]) }
        guard let g = groupOf[name] else { arrays[name] = t.data; return }
        pending[name] = t
        guard g.allSatisfy({ pending[$0] != nil }) else { return }
        // as DecoderWeights(config:rankTensors:...) packs: the named tensors stacked by rows
        let parts = g.map { pending.removeValue(forKey: $0)! }
        let rows = parts.reduce(0) { $0 + $1.shape[0] }, cols = parts[0].count / max(1, parts[0].shape[0])
        if parts.contains(where: { $0.data.isEmpty }) {   // a part without rows has no address to pack from
            packed[g] = WeightMatrix(parts.flatMap(\.data), rows: rows, cols: cols, dtype: dtype)
        } else {   // packed from the parts where they lie: no stacked copy (a 7B's gate|up is 360 MB of f32 a layer)
            let dtype = dtype
            packed[g] = withBases(parts.map(\.data)[...]) { bases in
                WeightMatrix(rowsOf: zip(bases, parts).map { ($0, $1.shape[0]) }, cols: cols, dtype: dtype)
            }
        }
    }

    /// body(the arrays' base addresses), each valid for the call.
    private func withBases<R>(_ arrays: ArraySlice<[Float]>, _ bases: [UnsafePointer<Float>] = [], _ body: ([UnsafePointer<Float>]) -> R) -> R {
        guard let first = arrays.first else { return body(bases) }
        return first.withUnsafeBufferPointer { withBases(arrays.dropFirst(), bases + [$0.baseAddress!], body) }
    }

    /// The names this shard still waits for, in canonical order.
    public var missing: [String] { DecoderWeights.localShapes(config, shard: shard).map(\.0).filter { !arrived.contains($0) } }

    /// The weights; throws `ModelError.missingTensor` naming the first tensor that never arrived.
    public func finish() throws -> DecoderWeights {
        if let m = missing.first { throw ModelError.missingTensor(m) }
        let (a, p) = (arrays, packed)
        arrays = [:]; packed = [:]
        return DecoderWeights(config, shard: shard, dtype: dtype, array: { a[$0] }, matrix: { p[$0]! }, transposed: nil)
    }
}
