// WeightMatrix: an immutable [rows, cols] weight matrix (PyTorch Linear layout: out x in) as the
// compute path holds it: packed once into the kernels' panels of 32 rows (ckernels.h), in f32 or
// bf16 (`ComputeDType`). bf16 weights stay bf16 in memory and are widened in registers by the
// kernels (f32 accumulation); an f32 source is narrowed once, round to nearest even.
//
// Owns: the packed storage and its dtype, row lookup (embeddings), raw access for the kernels.

import CKernels

/// The dtype weights are held in for inference.
public enum ComputeDType: String, Sendable, CaseIterable, Codable {
    case float32, bfloat16
}

public struct WeightMatrix: Sendable {
    /// Packed panels (tk_pack_rows), tk_packed_count(rows, cols) values.
    public enum Storage: Sendable { case f32([Float]), bf16([UInt16]) }
    public let rows: Int, cols: Int
    public let storage: Storage

    /// `data` holds rows * cols values, row-major; narrowed to bf16 when `dtype` is `.bfloat16`.
    public init(_ data: [Float], rows: Int, cols: Int, dtype: ComputeDType = .float32) {
        precondition(data.count == rows * cols, "WeightMatrix: \(data.count) values for [\(rows), \(cols)]")
        self.rows = rows; self.cols = cols
        let n = tk_packed_count(rows, cols)
        storage = data.withUnsafeBufferPointer { src in
            switch dtype {
            case .float32:
                return .f32(uninitializedArray(count: n) { Self.packRows(UnsafeMutableRawPointer($0), Int32(TK_F32), size: 4, from: src.baseAddress!, rows: rows, cols: cols) })
            case .bfloat16:
                return .bf16(uninitializedArray(count: n) { Self.packRows(UnsafeMutableRawPointer($0), Int32(TK_BF16), size: 2, from: src.baseAddress!, rows: rows, cols: cols) })
            }
        }
    }

    /// The matrix stacking `parts` by rows (each `rows` x cols f32 values, row-major: views into a
    /// training rank's flat parameters, e.g. Q, K and V of a fused QKV, or a load's decoded tensors),
    /// packed in place from the parts (no stacked copy), narrowed to bf16 when `dtype` is `.bfloat16`
    /// (the bits `init(_:rows:cols:dtype:)` gives the stacked rows); f32 storage comes from `pool` when it has some.
    public init(rowsOf parts: [(data: UnsafePointer<Float>, rows: Int)], cols: Int, dtype: ComputeDType = .float32,
                pool: PackedStoragePool? = nil) {
        let rows = parts.reduce(0) { $0 + $1.rows }, n = tk_packed_count(rows, cols)
        self.rows = rows; self.cols = cols
        let list = Self.rowList(parts, cols: cols)
        func pack(_ dst: UnsafeMutableRawPointer, _ t: Int32, size: Int) {
            list.withUnsafeBufferPointer { l in
                Self.byPanels(rows) { q0, q1 in tk_pack_row_list(dst + q0 * 32 * cols * size, t, l.baseAddress! + q0 * 32, min(rows, q1 * 32) - q0 * 32, cols) }
            }
        }
        switch dtype {
        case .float32: storage = .f32(Self.filled(n, pool) { pack(UnsafeMutableRawPointer($0), Int32(TK_F32), size: 4) })
        case .bfloat16: storage = .bf16(uninitializedArray(count: n) { (d: UnsafeMutablePointer<UInt16>) in pack(UnsafeMutableRawPointer(d), Int32(TK_BF16), size: 2) })
        }
    }

    /// The transpose of the matrix stacking `parts` by rows (w[outRows, inCols], outRows the sum of the
    /// parts' rows): a [inCols, outRows] matrix, so that `linear(dx, dy, WeightMatrix(transposing: ...))`
    /// is dx[N, in] = dy[N, out] w, the input gradient of `linear` with the same per-element FMA chains
    /// as a general product.
    public init(transposing parts: [(data: UnsafePointer<Float>, rows: Int)], cols inCols: Int, pool: PackedStoragePool? = nil) {
        let outRows = parts.reduce(0) { $0 + $1.rows }
        self.rows = inCols; self.cols = outRows
        let list = Self.rowList(parts, cols: inCols)
        storage = .f32(Self.filled(tk_packed_count(inCols, outRows), pool) { dst in
            list.withUnsafeBufferPointer { l in
                Self.byPanels(inCols) { q0, q1 in tk_pack_cols_list(dst + q0 * 32 * outRows, l.baseAddress!, q0 * 32, outRows, min(inCols, q1 * 32) - q0 * 32) }
            }
        })
    }

    /// Where each row of the stacked parts starts.
    private static func rowList(_ parts: [(data: UnsafePointer<Float>, rows: Int)], cols: Int) -> [UnsafePointer<Float>?] {
        var list: [UnsafePointer<Float>?] = []
        list.reserveCapacity(parts.reduce(0) { $0 + $1.rows })
        for p in parts { for r in 0..<p.rows { list.append(p.data + r * cols) } }
        return list
    }

    /// rows x cols f32 values, row-major at `src`, packed into `dst` as kernel dtype `t` (`size` bytes a value),
    /// panels on the kernels' threads.
    private static func packRows(_ dst: UnsafeMutableRawPointer, _ t: Int32, size: Int, from src: UnsafePointer<Float>, rows: Int, cols: Int) {
        byPanels(rows) { q0, q1 in tk_pack_rows(dst + q0 * 32 * cols * size, t, src + q0 * 32 * cols, cols, min(rows, q1 * 32) - q0 * 32, cols) }
    }

    /// pack(q0, q1) over runs of the ceil(n / 32) panels on the kernels' threads (each panel is
    /// packed alone, so the result is the same however they are split).
    private static func byPanels(_ n: Int, _ pack: (Int, Int) -> Void) {
        let panels = (n + 31) / 32, per = max(1, (panels + 4 * Compute.threads - 1) / (4 * Compute.threads))
        Compute.parallelFor((panels + per - 1) / per) { t in pack(t * per, min(panels, (t + 1) * per)) }
    }

    private static func filled(_ n: Int, _ pool: PackedStoragePool?, _ pack: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        if var a = pool?.take(n) {
            a.withUnsafeMutableBufferPointer { pack($0.baseAddress!) }
            return a
        }
        return [Float](unsafeUninitializedCapacity: n) { b, c in pack(b.baseAddress!); c = n }
    }

    /// From bf16 values [rows, cols] row-major (no conversion).
    public init(bf16 data: [UInt16], rows: Int, cols: Int) {
        precondition(data.count == rows * cols, "WeightMatrix: \(data.count) values for [\(rows), \(cols)]")
        self.rows = rows; self.cols = cols
        let n = tk_packed_count(rows, cols)
        storage = .bf16(uninitializedArray(count: n) { (b: UnsafeMutablePointer<UInt16>) in
            data.withUnsafeBufferPointer { tk_pack_rows_bf16(b, $0.baseAddress, cols, rows, cols) } })
    }

    public var dtype: ComputeDType { if case .f32 = storage { return .float32 }; return .bfloat16 }
    public var count: Int { rows * cols }
    /// Row `r` widened to f32 into `dst` (cols values).
    public func copyRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        withRaw { p, t in tk_packed_row(dst, p, t, cols, r) }
    }

    /// The values as f32, [rows, cols] row-major (a copy).
    public var floats: [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in for r in 0..<rows { copyRow(r, into: o.baseAddress! + r * cols) } }
        return out
    }

    /// The raw pointer and the kernels' dtype code (TK_F32 / TK_BF16).
    @inline(__always)
    public func withRaw<R>(_ body: (UnsafeRawPointer, Int32) -> R) -> R {
        switch storage {
        case .f32(let a): return a.withUnsafeBufferPointer { body(UnsafeRawPointer($0.baseAddress!), Int32(TK_F32)) }
        case .bf16(let h): return h.withUnsafeBufferPointer { body(UnsafeRawPointer($0.baseAddress!), Int32(TK_BF16)) }
        }
    }
}

/// Packed f32 storage let go by one step's matrices, handed to the next step's matrices of the same
/// size (a training rank repacks the same shapes every optimizer step): no fresh pages per step.
public final class PackedStoragePool: @unchecked Sendable {
    private var free: [Int: [[Float]]] = [:]
    public init() {}
    /// Keeps `m`'s storage; it is reused once every other reference to it is gone.
    public func give(_ m: WeightMatrix) { if case .f32(let a) = m.storage { free[a.count, default: []].append(a) } }
    func take(_ n: Int) -> [Float]? { free[n]?.popLast() }
}
