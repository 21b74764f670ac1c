// MergeTarget: where the Megatron merger writes each canonical tensor: one full f32 buffer (the
// canonical checkpoint), or straight into the TP pieces of `Partition`'s rule for a layout asked for
// up front, so a load that re-splits never builds a canonical tensor only to copy it again.
//
// Owns: piece allocation (fresh memory, 2 MiB huge pages advised: one fault per 2 MiB instead of per
// 4 KiB page, which was most of the load time), `PieceWriter` (canonical [row, column] blocks -> the
// pieces holding them), and `ShardTensor.withFloats` (a source part's floats viewed in the mapped
// file when stored f32 contiguous, decoded otherwise). Does not own: what goes where in a Megatron
// shard (MegatronMerge) or the partition rule itself (Model/Partition).

import Foundation
import TensorCore
import Model

/// The layout a Megatron load produces.
public enum MergeTarget: Sendable, Equatable {
    /// Full tensors (`CanonicalCheckpoint`).
    case canonical
    /// Rank r's tensors for TP `tp`, exactly as `CanonicalCheckpoint.split(tp:divisibleBy:)` cuts them.
    case split(tp: Int, divisibleBy: Int)
}

/// Writes one canonical tensor [rows, cols] (1-D: [n, 1]) into its pieces.
struct PieceWriter {
    let rows: Int, cols: Int
    /// `.replicated` means one piece holding the whole tensor.
    let axis: TPSplit
    let pieceRows: Int, pieceCols: Int
    let pieces: [UnsafeMutableBufferPointer<Float>]

    /// Canonical rows [r0, r0+n) x columns [c0, c0+w) from `src`, whose rows are `stride` floats apart.
    func write(row r0: Int, rows n: Int, col c0: Int = 0, width w: Int? = nil, from src: UnsafePointer<Float>, stride: Int? = nil) {
        let w = w ?? cols, stride = stride ?? w
        precondition(r0 >= 0 && r0 + n <= rows && c0 >= 0 && c0 + w <= cols)
        if axis != .columns && w == cols && stride == cols {   // whole rows: one copy per piece touched
            var r = r0
            while r < r0 + n {
                let p = axis == .replicated ? 0 : r / pieceRows, pr = axis == .replicated ? r : r % pieceRows
                let k = axis == .replicated ? r0 + n - r : min(pieceRows - pr, r0 + n - r)
                (pieces[p].baseAddress! + pr * cols).update(from: src + (r - r0) * cols, count: k * cols)
                r += k
            }
            return
        }
        for i in 0..<n {
            let r = r0 + i, s = src + i * stride
            switch axis {
            case .columns:
                var c = c0
                while c < c0 + w {
                    let p = c / pieceCols, pc = c % pieceCols, k = min(pieceCols - pc, c0 + w - c)
                    (pieces[p].baseAddress! + r * pieceCols + pc).update(from: s + (c - c0), count: k)
                    c += k
                }
            case .rows, .vocab:
                (pieces[r / pieceRows].baseAddress! + (r % pieceRows) * cols + c0).update(from: s, count: w)
            case .replicated:
                (pieces[0].baseAddress! + r * cols + c0).update(from: s, count: w)
            }
        }
    }
}

extension PieceWriter {
    /// Where canonical rows [r0, r0+n) (whole rows) land: contiguous runs, one per piece touched; nil
    /// for column splits (a row spans pieces).
    func rowRuns(row r0: Int, rows n: Int) -> [(row: Int, count: Int, dst: UnsafeMutablePointer<Float>)]? {
        if axis == .columns { return nil }
        if axis == .replicated { return [(r0, n, pieces[0].baseAddress! + r0 * cols)] }
        var out: [(row: Int, count: Int, dst: UnsafeMutablePointer<Float>)] = []
        var r = r0
        while r < r0 + n {
            let k = min(pieceRows - r % pieceRows, r0 + n - r)
            out.append((r, k, pieces[r / pieceRows].baseAddress! + (r % pieceRows) * cols))
            r += k
        }
        return out
    }

    /// Canonical rows [r0, r0+n) from the first n rows of part `s`: read(2) straight into the pieces when
    /// the part is contiguous f32 in a file (no mapping faults, one kernel copy), else copied from its floats.
    func writeRows(row r0: Int, rows n: Int, from s: ShardTensor) throws {
        let ref = s.ref
        if ref.dtype == .float32, ref.isContiguous, let src = ref.storage.source, ref.offset >= 0, ref.offset <= ref.storage.numel - ref.count,
           n * cols <= ref.count, let runs = rowRuns(row: r0, rows: n) {
            var ok = true
            for run in runs where ok {
                ok = try src.readStorage(key: ref.storage.key, byteOffset: (ref.offset + (run.row - r0) * cols) * 4, count: run.count * cols * 4,
                                         into: UnsafeMutableRawPointer(run.dst))
            }
            if ok { return }
        }
        try s.withFloats { write(row: r0, rows: n, from: $0.baseAddress!) }
    }
}

/// Allocate the pieces of canonical tensor `name` (shape `shape`) for `target`, let `fill` write every
/// canonical element, and return one tensor per TP rank (one for `.canonical`). Vocabulary padding
/// rows are zero; replicated tensors share one buffer across ranks.
func makePieces(_ name: String, shape: [Int], target: MergeTarget, fill: (PieceWriter) throws -> Void) throws -> [Tensor] {
    let rows = shape.first ?? 1, cols = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
    var axis = TPSplit.replicated, tp = 1, pieceRows = rows, pieceCols = cols, paddedRows = rows
    if case .split(let t, let d) = target {
        tp = t; axis = TPSplit.of(name)
        switch axis {
        case .vocab: paddedRows = CanonicalCheckpoint.paddedVocab(rows, tp: tp, divisibleBy: d); pieceRows = paddedRows / tp
        case .rows: pieceRows = rows / tp
        case .columns: pieceCols = cols / tp
        case .replicated: break
        }
    }
    let count = axis == .replicated ? 1 : tp
    let arrays = try withFreshArrays(Array(repeating: pieceRows * pieceCols, count: count)[...], []) { bufs in
        try fill(PieceWriter(rows: rows, cols: cols, axis: axis, pieceRows: pieceRows, pieceCols: pieceCols, pieces: bufs))
        if axis == .vocab {   // zero the padding rows [rows, paddedRows)
            for p in 0..<tp {
                let lo = max(0, min(pieceRows, rows - p * pieceRows))
                if lo < pieceRows { (bufs[p].baseAddress! + lo * cols).update(repeating: 0, count: (pieceRows - lo) * cols) }
            }
        }
    }
    var pieceShape = shape
    switch axis {
    case .vocab, .rows: pieceShape[0] = pieceRows
    case .columns: pieceShape[1] = pieceCols
    case .replicated: return Array(repeating: Tensor(shape: shape, data: arrays[0]), count: tp)
    }
    return arrays.map { Tensor(shape: pieceShape, data: $0) }
}

/// Fresh uninitialised arrays of the given sizes, all alive while `fill` writes every element.
private func withFreshArrays(_ sizes: ArraySlice<Int>, _ bufs: [UnsafeMutableBufferPointer<Float>],
                             _ fill: ([UnsafeMutableBufferPointer<Float>]) throws -> Void) throws -> [[Float]] {
    guard let n = sizes.first else { try fill(bufs); return [] }
    var rest: [[Float]] = []
    let a = try [Float](unsafeUninitializedCapacity: n) { buf, filled in
        adviseHugePages(UnsafeMutableRawBufferPointer(buf))
        rest = try withFreshArrays(sizes.dropFirst(), bufs + [buf], fill)
        filled = n
    }
    return [a] + rest
}

extension ShardTensor {
    /// The part's elements, row-major f32: a view of the mapped file when stored as contiguous f32
    /// (its pages released afterwards), else decoded into a temporary.
    func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        let r = ref
        if r.dtype == .float32, r.isContiguous, r.count > 0, r.offset >= 0, r.offset <= r.storage.numel - r.count,
           let src = r.storage.source,
           let view = try src.mappedStorage(key: r.storage.key, byteOffset: r.offset * 4, count: r.count * 4),
           Int(bitPattern: view.baseAddress) % MemoryLayout<Float>.alignment == 0 {
            defer { src.releaseMapped(view) }
            return try body(UnsafeBufferPointer(start: view.baseAddress!.assumingMemoryBound(to: Float.self), count: r.count))
        }
        let t = try load()
        return try t.data.withUnsafeBufferPointer(body)
    }
}

/// Ask for transparent huge pages on the 2 MiB-aligned interior of a large fresh buffer: a few
/// hundred faults instead of one per 4 KiB page while it is first written (a hint; errors are ignored).
func adviseHugePages(_ b: UnsafeMutableRawBufferPointer) {
    guard let base = b.baseAddress, b.count >= 2 << 20 else { return }
    let huge = 2 << 20
    let start = (Int(bitPattern: base) + huge - 1) / huge * huge
    let end = (Int(bitPattern: base) + b.count) / huge * huge
    if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, 14) }   // MADV_HUGEPAGE
}

/// Run `body(0..<n)` on up to two threads (the machine's cores; the parts of one tensor write
/// disjoint pieces); the first error is rethrown.
func forEachPart(_ n: Int, _ body: (Int) throws -> Void) throws {
    if n < 2 || ProcessInfo.processInfo.activeProcessorCount < 2 { for i in 0..<n { try body(i) }; return }
    let lock = NSLock()
    var failure: Error?
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: n) { i in
            do { try body(i) } catch { lock.lock(); if failure == nil { failure = error }; lock.unlock() }
        }
    }
    if let e = failure { throw e }
}

/// Make glibc malloc serve the next ~`bytes` of allocations from main-heap memory advised for
/// transparent huge pages: a 2 MiB fault instead of 512 small ones, which was most of the load time.
/// Grows the heap by `bytes` in 16 MiB steps, advises it and frees it back (kept: trim threshold
/// raised); a free heap top serves any size, so the large buffers land there too.
/// Process-wide malloc tuning, a performance hint only; a no-op where mallopt is missing.
func reserveHugePageHeap(bytes: Int) {
    guard bytes > 0, let sym = dlsym(dlopen(nil, RTLD_NOW), "mallopt") else { return }   // malloc.h is not in the Glibc module
    let mallopt = unsafeBitCast(sym, to: (@convention(c) (Int32, Int32) -> Int32).self)
    _ = mallopt(-1, Int32.max)        // M_TRIM_THRESHOLD: keep freed heap top
    _ = mallopt(-3, 32 << 20)         // M_MMAP_THRESHOLD: glibc's maximum; below it, the heap
    let step = 16 << 20
    var blocks: [UnsafeMutableRawPointer] = []
    for _ in 0..<((bytes + step - 1) / step) {
        guard let p = malloc(step - 64) else { break }
        blocks.append(p)
    }
    // The blocks are normally consecutive on the heap: advise their whole span at once (no gaps).
    if let lo = blocks.min(), let hi = blocks.max(), hi - lo < blocks.count * step {
        adviseHugePages(UnsafeMutableRawBufferPointer(start: lo, count: hi - lo + step - 64))
    } else {
        for p in blocks { adviseHugePages(UnsafeMutableRawBufferPointer(start: p, count: step - 64)) }
    }
    for p in blocks.reversed() { free(p) }
}

/// Back to glibc's default thresholds once the pieces are written (freed memory is returned again).
func endHugePageHeap() {
    guard let sym = dlsym(dlopen(nil, RTLD_NOW), "mallopt") else { return }
    let mallopt = unsafeBitCast(sym, to: (@convention(c) (Int32, Int32) -> Int32).self)
    _ = mallopt(-1, 128 << 10); _ = mallopt(-3, 128 << 10)   // M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
}
