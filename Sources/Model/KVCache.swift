// KVCache: the keys and values of one sequence, owned by the caller and filled by `DecoderModel.forward`.
// Under tensor parallelism each rank keeps only its own stage's layers and its own groups.
// Layout per tensor: [L][G][capacity][D], so one group's keys are a contiguous [len, D] matrix.
//
// Storage is f32, or float16 for a bf16 model (half the memory, as llama.cpp's default f16 cache): each
// key and value is rounded once, when it is appended (nearest even), and attention reads it widened
// exactly, on the decode path and the product path alike, so a split prefill still has a whole one's
// bits. A value beyond float16's range (65504) is refused when appended (`Attention.forward` throws),
// never stored as infinite. The buffers come zeroed from calloc: pages past the positions written are
// never touched, so a cache's memory follows its length, not its capacity. A cache whose size overflows
// or that the system refuses is a thrown `DecoderError` (a server answers that request with an error).

import Foundation
import CKernels

public enum KVStorage: String, Sendable {
    case float32, float16
    var bytes: Int { self == .float32 ? 4 : 2 }
}

public final class KVCache {
    public let layers: Int, groups: Int, headDim: Int, capacity: Int
    public let storage: KVStorage
    public internal(set) var length: Int = 0
    let k: UnsafeMutableRawPointer, v: UnsafeMutableRawPointer

    /// A cache for the whole model on one rank (TP 1 x PP 1).
    public convenience init(config: ModelConfig, capacity: Int? = nil, storage: KVStorage = .float32) throws {
        try self.init(layers: config.numLayers, groups: config.numKVHeads, headDim: config.headDim,
                  capacity: min(capacity ?? config.maxPositions, config.maxPositions), storage: storage)
    }

    /// A cache for `layers` layers and `groups` KV heads (one rank's shard).
    public init(layers: Int, groups: Int, headDim: Int, capacity: Int, storage: KVStorage = .float32) throws {
        self.layers = layers; self.groups = groups; self.headDim = headDim; self.capacity = capacity; self.storage = storage
        let what = "a KV cache of \(layers) layers x \(groups) groups x \(capacity) positions x \(headDim) (\(storage.rawValue))"
        var n = 1   // values per tensor; with the bytes of keys and values, checked before any arithmetic trusts it
        for f in [layers, groups, capacity, headDim] {
            let (p, overflow) = n.multipliedReportingOverflow(by: max(0, f))
            guard !overflow, !p.multipliedReportingOverflow(by: 2 * storage.bytes).overflow else {
                throw DecoderError(description: "\(what): its size overflows")
            }
            n = p
        }
        n = max(1, n)
        guard let k = calloc(n, storage.bytes) else { throw DecoderError(description: "\(what): no memory for \(n * storage.bytes) bytes of keys") }
        guard let v = calloc(n, storage.bytes) else {
            free(k)
            throw DecoderError(description: "\(what): no memory for \(n * storage.bytes) bytes of values")
        }
        self.k = k; self.v = v
    }

    deinit { free(k); free(v) }

    /// Bytes the keys and values take at full capacity.
    public var bytes: Int { 2 * layers * groups * capacity * headDim * storage.bytes }

    /// Forget everything after `n` tokens (rewind to a shared prefix).
    public func truncate(to n: Int) { precondition(n <= length); length = n }

    /// Copy of the first `n` positions, for branching several continuations from one context.
    public func fork(keeping n: Int? = nil, capacity newCap: Int? = nil) throws -> KVCache {
        let keep = n ?? length, cap = newCap ?? capacity
        precondition(keep <= length && keep <= cap, "fork keeps \(keep) of \(length) positions into a capacity of \(cap)")
        let c = try KVCache(layers: layers, groups: groups, headDim: headDim, capacity: cap, storage: storage)
        let row = headDim * storage.bytes
        for lg in 0..<(layers * groups) {
            c.k.advanced(by: lg * cap * row).copyMemory(from: k.advanced(by: lg * capacity * row), byteCount: keep * row)
            c.v.advanced(by: lg * cap * row).copyMemory(from: v.advanced(by: lg * capacity * row), byteCount: keep * row)
        }
        c.length = keep
        return c
    }

    /// Element offset of (layer, group)'s first position.
    @inline(__always) func offset(layer: Int, group: Int) -> Int { (layer * groups + group) * capacity * headDim }

    /// Every stored key then every value, widened, [L][G][length][D] each (tests compare caches with it).
    func contents() -> [Float] {
        var out: [Float] = []
        for base in [k, v] {
            for lg in 0..<(layers * groups) {
                var rows = [Float](repeating: 0, count: length * headDim)
                let at = lg * capacity * headDim
                rows.withUnsafeMutableBufferPointer { r in
                    switch storage {
                    case .float32: r.baseAddress!.update(from: base.assumingMemoryBound(to: Float.self) + at, count: r.count)
                    case .float16: tk_f16_to_f32(r.baseAddress!, base.assumingMemoryBound(to: UInt16.self) + at, r.count)
                    }
                }
                out += rows
            }
        }
        return out
    }
}
