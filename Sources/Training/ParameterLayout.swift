// ParameterLayout: one flat buffer per rank for parameters, and the same layout for gradients and
// both Adam moments (llm.c). The view table is derived once from the canonical schema; nothing
// keeps a hand-written list of offsets.

import TensorCore
import Model

public struct ParameterLayout: Sendable {
    public struct Entry: Sendable {
        public let name: String; public let shape: [Int]; public let offset: Int
        public var count: Int { shape.reduce(1, *) }
        /// The entry's elements in fixed runs of 65536 (the last shorter): the unit of the element-wise passes
        /// over the flat buffers (AdamW, the gradient norm), the same on any thread count.
        public var spans: [Range<Int>] { stride(from: offset, to: offset + count, by: 65536).map { $0..<min(offset + count, $0 + 65536) } }
    }
    public let entries: [Entry]
    public let total: Int
    let index: [String: Int]

    /// The canonical (whole-model) layout.
    public init(config: ModelConfig) { self.init(shapes: CanonicalSchema.shapes(for: config)) }

    init(shapes: [(String, [Int])]) {
        var off = 0
        var es: [Entry] = []
        for (name, shape) in shapes {
            es.append(Entry(name: name, shape: shape, offset: off))
            off += shape.reduce(1, *)
        }
        entries = es; total = off
        index = Dictionary(uniqueKeysWithValues: es.enumerated().map { ($1.name, $0) })
    }

    public func offset(_ name: String) -> Int {
        guard let i = index[name] else { preconditionFailure("ParameterLayout: no tensor '\(name)'") }
        return entries[i].offset
    }

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// Flat parameters from a canonical checkpoint (validated first).
    public func flatten(_ ckpt: CanonicalCheckpoint) throws -> [Float] {
        try ckpt.validate()
        var out = [Float](repeating: 0, count: total)
        for e in entries { out.replaceSubrange(e.offset..<(e.offset + e.count), with: ckpt.tensors[e.name]!.data) }
        return out
    }

    /// Canonical tensors from a flat buffer.
    public func tensors(_ flat: [Float]) -> [String: Tensor] {
        var t: [String: Tensor] = [:]
        for e in entries { t[e.name] = Tensor(shape: e.shape, data: Array(flat[e.offset..<(e.offset + e.count)])) }
        return t
    }
}
