// KVCache: the keys and values of one sequence, owned by the caller and filled by `DecoderModel.forward`.
// Under tensor parallelism each rank keeps only its own stage's layers and its own groups.
// Layout per tensor: [L][G][capacity][D], so one group's keys are a contiguous [len, D] matrix.

public final class KVCache {
    public let layers: Int, groups: Int, headDim: Int, capacity: Int
    public internal(set) var length: Int = 0
    var k: [Float]
    var v: [Float]

    /// A cache for the whole model on one rank (TP 1 x PP 1).
    public convenience init(config: ModelConfig, capacity: Int? = nil) {
        self.init(layers: config.numLayers, groups: config.numKVHeads, headDim: config.headDim,
                  capacity: min(capacity ?? config.maxPositions, config.maxPositions))
    }

    /// Forget everything after `n` tokens (rewind to a shared prefix).
    public func truncate(to n: Int) { precondition(n <= length); length = n }

    /// Copy of the first `n` positions, for branching several continuations from one context.
    public func fork(keeping n: Int? = nil, capacity newCap: Int? = nil) -> KVCache {
        let keep = n ?? length
        let cap = newCap ?? capacity
        let c = KVCache(layers: layers, groups: groups, headDim: headDim, capacity: cap)
        for lg in 0..<(layers * groups) {
            let src = lg * capacity * headDim, dst = lg * cap * headDim
            c.k.withUnsafeMutableBufferPointer { d in k.withUnsafeBufferPointer { s in
                (d.baseAddress! + dst).update(from: s.baseAddress! + src, count: keep * headDim) } }
            c.v.withUnsafeMutableBufferPointer { d in v.withUnsafeBufferPointer { s in
                (d.baseAddress! + dst).update(from: s.baseAddress! + src, count: keep * headDim) } }
        }
        c.length = keep
        return c
    }

    /// A cache for `layers` layers and `groups` KV heads (one rank's shard).
    public init(layers: Int, groups: Int, headDim: Int, capacity: Int) {
        self.layers = layers; self.groups = groups; self.headDim = headDim; self.capacity = capacity
        k = [Float](repeating: 0, count: layers * groups * capacity * headDim)
        v = k
    }

    @inline(__always) func offset(layer: Int, group: Int) -> Int { (layer * groups + group) * capacity * headDim }
}
