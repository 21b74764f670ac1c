// WeightsHash: one fingerprint of a model's weights, whatever holds them: FNV-1a (64-bit) over the
// canonical tensors in name order, each name's UTF-8 bytes, then its f32 bit patterns in canonical
// row-major order. Identical weights in any format or layout give the same hash, computed from the
// canonical checkpoint or from the TP ranks' tensors a loader cut (padding rows skipped, row-parallel
// pieces read row by row), or a few tensors at a time (`WeightsHasher`), so no canonical copy is
// needed for it.

import TensorCore

private struct FNV1a {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ s: String) { for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 } }
    mutating func add(_ xs: UnsafeBufferPointer<Float>) { for x in xs { h = (h ^ UInt64(x.bitPattern)) &* 0x100_0000_01b3 } }
    var text: String {
        let hex = String(h, radix: 16)
        return "fnv1a64:" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// The same fingerprint fed one whole tensor at a time, in name order (a model visited in parts).
public struct WeightsHasher {
    private var f = FNV1a()
    public init() {}
    public mutating func add(_ name: String, _ t: Tensor) {
        f.add(name)
        t.data.withUnsafeBufferPointer { f.add($0) }
    }
    public var value: String { f.text }
}

extension CanonicalCheckpoint {
    /// The weights' fingerprint ("fnv1a64:" and 16 hex digits).
    public var weightsHash: String {
        var h = WeightsHasher()
        for name in tensors.keys.sorted() { h.add(name, tensors[name]!) }
        return h.value
    }

    /// The same fingerprint from TP rank tensors (`rankTensors[t]`, as `split(_:)` cuts
    /// them, any vocabulary padding): equal to `weightsHash` of the checkpoint they were cut from.
    public static func weightsHash(config: ModelConfig, rankTensors: [[String: Tensor]]) throws -> String {
        var f = FNV1a()
        let tp = rankTensors.count
        for (name, shape) in CanonicalSchema.shapes(for: config).sorted(by: { $0.0 < $1.0 }) {
            let pieces = try rankTensors.map { r -> Tensor in
                guard let t = r[name] else { throw ModelError.missingTensor(name) }
                return t
            }
            let rows = shape[0], cols = shape.dropFirst().reduce(1, *)
            f.add(name)
            switch TPSplit.of(name) {
            case .replicated:
                pieces[0].data.withUnsafeBufferPointer { f.add($0) }
            case .vocab, .rows:   // rows in piece order; the vocabulary's padding rows (past `rows`) skipped
                let pieceRows = pieces[0].shape[0]
                for p in 0..<tp {
                    let n = max(0, min(pieceRows, rows - p * pieceRows))
                    pieces[p].data.withUnsafeBufferPointer { f.add(UnsafeBufferPointer(rebasing: $0[0..<(n * cols)])) }
                }
            case .columns:        // each row across the pieces
                let w = cols / tp
                let bufs = pieces.map { $0.data }
                for r in 0..<rows {
                    for p in 0..<tp { bufs[p].withUnsafeBufferPointer { f.add(UnsafeBufferPointer(rebasing: $0[(r * w)..<((r + 1) * w)])) } }
                }
            }
        }
        return f.text
    }
}
