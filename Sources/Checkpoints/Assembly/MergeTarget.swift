// MergeTarget: where the Megatron merger writes each canonical tensor: one full f32 buffer (the
// canonical checkpoint), or straight into the TP pieces of `Partition`'s rule for a layout asked for
// up front, so a load that re-splits never builds a canonical tensor only to copy it again.
//
// Owns: piece allocation and writing (`writePieces`: one job per piece on both cores, each job
// allocating the piece it fills, so the zeroing of fresh pages, most of a load's time, is spread over
// the cores; 2 MiB huge pages advised: one fault per 2 MiB instead of per 4 KiB page), `PieceWriter`
// (canonical [row, column] blocks -> the pieces holding them, read(2) straight from the shard file
// where the bytes are contiguous f32), and `ShardTensor.withFloats` (a source part's floats viewed in
// the mapped file when stored f32 contiguous, decoded otherwise). Does not own: what goes where in a
// Megatron shard (MegatronMerge) or the partition rule itself (Model/Partition).

import Foundation
import TensorCore
import Model

/// The layout a Megatron load produces.
public enum MergeTarget: Sendable, Equatable {
    /// Full tensors (`CanonicalCheckpoint`).
    case canonical
    /// Rank r's tensors for the layout's TP and vocabulary padding, exactly as
    /// `CanonicalCheckpoint.split(layout)` cuts them.
    case split(ParallelLayout)
}

/// Writes one canonical tensor [rows, cols] (1-D: [n, 1]) into its pieces. A writer may hold only
/// some of the pieces (the others empty buffers): writes that land in an absent piece are dropped, so
/// one fill routine serves a job that writes a single piece.
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
                pieces[p].baseAddress.map { ($0 + pr * cols).update(from: src + (r - r0) * cols, count: k * cols) }
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
                    pieces[p].baseAddress.map { ($0 + r * pieceCols + pc).update(from: s + (c - c0), count: k) }
                    c += k
                }
            case .rows, .vocab:
                pieces[r / pieceRows].baseAddress.map { ($0 + (r % pieceRows) * cols + c0).update(from: s, count: w) }
            case .replicated:
                pieces[0].baseAddress.map { ($0 + r * cols + c0).update(from: s, count: w) }
            }
        }
    }

    /// Whether canonical columns [c0, c0+w) land in a piece this writer holds.
    func holdsColumns(_ c0: Int, _ w: Int) -> Bool {
        guard axis == .columns, w > 0 else { return pieces.contains { $0.baseAddress != nil } }
        return (c0 / pieceCols...(c0 + w - 1) / pieceCols).contains { pieces[$0].baseAddress != nil }
    }
}

extension PieceWriter {
    /// Where canonical rows [r0, r0+n) (whole rows) land: contiguous runs, one per piece touched; nil
    /// for column splits (a row spans pieces).
    func rowRuns(row r0: Int, rows n: Int) -> [(row: Int, count: Int, dst: UnsafeMutablePointer<Float>)]? {
        if axis == .columns { return nil }
        if axis == .replicated { return pieces[0].baseAddress.map { [(r0, n, $0 + r0 * cols)] } ?? [] }
        var out: [(row: Int, count: Int, dst: UnsafeMutablePointer<Float>)] = []
        var r = r0
        while r < r0 + n {
            let k = min(pieceRows - r % pieceRows, r0 + n - r)
            if let b = pieces[r / pieceRows].baseAddress { out.append((r, k, b + (r % pieceRows) * cols)) }
            r += k
        }
        return out
    }

    /// Canonical rows [r0, r0+n) from the first n rows of part `s`.
    func writeRows(row r0: Int, rows n: Int, from s: ShardTensor) throws {
        try writeRowBlocks([(r0, n, 0)], from: s)
    }

    /// For each block, canonical rows [row, row+rows) from rows [sourceRow, sourceRow+rows) of part `s`
    /// (whole rows of `cols` floats): read(2) straight into the pieces when the part is contiguous f32
    /// in a file (the file opened once, no mapping faults, one kernel copy), else copied from its floats.
    func writeRowBlocks(_ blocks: [(row: Int, rows: Int, sourceRow: Int)], from s: ShardTensor) throws {
        let ref = s.ref
        for b in blocks where !(b.sourceRow >= 0 && b.rows >= 0 && (b.sourceRow + b.rows) * cols <= ref.count) {
            throw CheckpointError.shapeMismatch(file: s.file, tensor: s.original, expected: [b.sourceRow + b.rows, cols], found: ref.shape)
        }
        if ref.dtype == .float32, ref.isContiguous, let src = ref.storage.source, ref.offset >= 0, ref.offset <= ref.storage.numel - ref.count,
           axis != .columns {
            var runs: [StorageRun] = []
            for b in blocks {
                for run in rowRuns(row: b.row, rows: b.rows) ?? [] {
                    runs.append(StorageRun(byteOffset: (ref.offset + (b.sourceRow + run.row - b.row) * cols) * 4, count: run.count * cols * 4,
                                           dst: UnsafeMutableRawPointer(run.dst)))
                }
            }
            if runs.isEmpty { return }   // every block lands in pieces this writer does not hold
            if try src.readStorage(key: ref.storage.key, runs: runs) { return }
        }
        try s.withFloats { t in for b in blocks { write(row: b.row, rows: b.rows, from: t.baseAddress! + b.sourceRow * cols) } }
    }

    /// Whether canonical rows [r0, r0+n), where they land in pieces this writer holds, equal the n
    /// rows at `src`.
    func rowsEqual(row r0: Int, rows n: Int, to src: UnsafePointer<Float>) -> Bool {
        guard let runs = rowRuns(row: r0, rows: n) else { return false }
        return runs.allSatisfy { memcmp($0.dst, src + ($0.row - r0) * cols, $0.count * cols * 4) == 0 }
    }

    /// Part `s` ([rows, w]) as canonical columns [c0, c0+w) of every row: a contiguous f32 part in a
    /// file is read a few rows at a time into a small cache-resident buffer and scattered from there
    /// (no mapping faults); others are copied from their floats.
    func writeColumns(col c0: Int, width w: Int, from s: ShardTensor) throws {
        let ref = s.ref
        guard rows * w == ref.count else {
            throw CheckpointError.shapeMismatch(file: s.file, tensor: s.original, expected: [rows, w], found: ref.shape)
        }
        guard holdsColumns(c0, w) else { return }
        if ref.dtype == .float32, ref.isContiguous, let src = ref.storage.source, ref.offset >= 0, ref.offset <= ref.storage.numel - ref.count,
           w > 0 {
            let chunk = max(1, (256 << 10) / (w * 4))
            var ok = true
            try withUnsafeTemporaryAllocation(of: Float.self, capacity: min(rows, chunk) * w) { buf in
                var r = 0
                while r < rows && ok {
                    let k = min(chunk, rows - r)
                    ok = try src.readStorage(key: ref.storage.key, runs: [StorageRun(byteOffset: (ref.offset + r * w) * 4, count: k * w * 4,
                                                                                     dst: UnsafeMutableRawPointer(buf.baseAddress!))])
                    if ok { write(row: r, rows: k, col: c0, width: w, from: buf.baseAddress!, stride: w) }
                    r += k
                }
            }
            if ok { return }
        }
        try s.withFloats { write(row: 0, rows: rows, col: c0, width: w, from: $0.baseAddress!, stride: w) }
    }
}

/// How canonical tensor `name` is cut for a target: its axis and piece sizes.
struct PieceGeometry {
    let rows: Int, cols: Int, axis: TPSplit, tp: Int, pieceRows: Int, pieceCols: Int
    let shape: [Int], pieceShape: [Int]
    /// Distinct buffers: one for a replicated tensor (shared by every rank), else one per rank.
    var count: Int { axis == .replicated ? 1 : tp }
    var pieceElements: Int { pieceRows * pieceCols }

    init(_ name: String, shape: [Int], target: MergeTarget) {
        self.shape = shape
        rows = shape.first ?? 1; cols = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
        var axis = TPSplit.replicated, tp = 1, pieceRows = rows, pieceCols = cols
        if case .split(let layout) = target {
            tp = layout.tp; axis = TPSplit.of(name)
            switch axis {
            case .vocab: pieceRows = layout.vocab.paddedVocab(rows, tp: tp) / tp
            case .rows: pieceRows = rows / tp
            case .columns: pieceCols = cols / tp
            case .replicated: break
            }
        }
        self.axis = axis; self.tp = tp; self.pieceRows = pieceRows; self.pieceCols = pieceCols
        var ps = shape
        switch axis {
        case .vocab, .rows: ps[0] = pieceRows
        case .columns: ps[1] = pieceCols
        case .replicated: break
        }
        pieceShape = ps
    }

    /// A writer holding piece `p` only.
    func writer(piece p: Int, _ buf: UnsafeMutableBufferPointer<Float>) -> PieceWriter {
        var bufs = Array(repeating: UnsafeMutableBufferPointer<Float>(start: nil, count: 0), count: count)
        bufs[p] = buf
        return PieceWriter(rows: rows, cols: cols, axis: axis, pieceRows: pieceRows, pieceCols: pieceCols, pieces: bufs)
    }

    /// Zero piece `p`'s vocabulary padding rows (canonical rows >= `rows`).
    func zeroPadding(piece p: Int, _ buf: UnsafeMutableBufferPointer<Float>) {
        guard axis == .vocab else { return }
        let lo = max(0, min(pieceRows, rows - p * pieceRows))
        if lo < pieceRows { (buf.baseAddress! + lo * cols).update(repeating: 0, count: (pieceRows - lo) * cols) }
    }

    /// One tensor per TP rank (one for `.canonical`) from the distinct buffers.
    func tensors(_ arrays: [[Float]]) -> [Tensor] {
        axis == .replicated ? Array(repeating: Tensor(shape: shape, data: arrays[0]), count: tp)
                            : arrays.map { Tensor(shape: pieceShape, data: $0) }
    }
}

/// A canonical tensor to write: `fill` writes every element through the writer it is given (and must
/// not assume the writer holds every piece).
struct PendingTensor {
    let name: String
    let shape: [Int]
    let fill: (PieceWriter) throws -> Void
}

/// Write every pending tensor's pieces: one job per distinct piece, the jobs split between two
/// threads by size; each thread first reserves a huge-page heap for its share in its own malloc arena
/// (no lock shared with the other thread), then each job allocates its piece and fills it, so fresh
/// pages are faulted in (zeroed) by the thread that writes them, on both cores. Vocabulary padding
/// rows are zero; replicated tensors share one buffer across ranks. Returns canonical name -> one
/// tensor per TP rank (one for `.canonical`; with `rank`, only that rank's piece is written and returned).
func writePieces(_ pending: [PendingTensor], target: MergeTarget, rank: Int? = nil) throws -> [String: [Tensor]] {
    let geometry = pending.map { PieceGeometry($0.name, shape: $0.shape, target: target) }
    var jobs: [(tensor: Int, piece: Int)] = []
    for (i, g) in geometry.enumerated() {
        if let r = rank { jobs.append((i, g.count == 1 ? 0 : r)); continue }   // one rank: its piece (or the shared one)
        for p in 0..<g.count { jobs.append((i, p)) }
    }
    let results = try partitionedMap(costs: jobs.map { geometry[$0.tensor].pieceElements * 4 + 64 },
                                     prepare: { _, bytes in reserveHugePageHeap(bytes: bytes) }) { j in
        let (i, p) = jobs[j], g = geometry[i]
        return try [Float](unsafeUninitializedCapacity: g.pieceElements) { buf, filled in
            adviseHugePages(UnsafeMutableRawBufferPointer(buf))
            try pending[i].fill(g.writer(piece: p, buf))
            g.zeroPadding(piece: p, buf)
            filled = g.pieceElements
        }
    }
    endHugePageHeap()
    var out: [String: [Tensor]] = [:]
    if rank != nil {   // one tensor per name: that rank's piece
        for (j, job) in jobs.enumerated() { out[pending[job.tensor].name] = [Tensor(shape: geometry[job.tensor].pieceShape, data: results[j])] }
        return out
    }
    var arrays = geometry.map { Array(repeating: [Float](), count: $0.count) }
    for (j, job) in jobs.enumerated() { arrays[job.tensor][job.piece] = results[j] }
    for (i, t) in pending.enumerated() { out[t.name] = geometry[i].tensors(arrays[i]) }
    return out
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
            prefault(view)
            defer { src.releaseMapped(view) }
            return try body(UnsafeBufferPointer(start: view.baseAddress!.assumingMemoryBound(to: Float.self), count: r.count))
        }
        let t = try load()
        return try t.data.withUnsafeBufferPointer(body)
    }
}

/// Map the file pages behind a view in one call (MADV_POPULATE_READ, Linux 5.14) rather than a fault
/// per 16 pages as it is read; a hint, ignored where unsupported.
func prefault(_ view: UnsafeRawBufferPointer) {
    guard let v = view.baseAddress, view.count >= 1 << 16 else { return }
    let page = 4096, lo = Int(bitPattern: v) / page * page, hi = Int(bitPattern: v) + view.count
    _ = madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, 22)   // MADV_POPULATE_READ
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

/// Make glibc malloc serve the calling thread's next ~`bytes` of allocations from heap memory (its
/// arena's) advised for transparent huge pages: a 2 MiB fault instead of 512 small ones, which was
/// most of the load time. Grows the heap by `bytes` in 16 MiB steps, advises it and frees it back
/// (kept: trim threshold raised); a free heap top serves large requests too.
/// Process-wide malloc thresholds, a performance hint only; a no-op where mallopt is missing.
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
    // malloc wrote a chunk header at every block boundary before the advice: those 2 MiB regions
    // already hold a small page and would stay in small pages (a fault per 4 KiB, an eighth of the
    // heap); collapse them into huge pages now (MADV_COLLAPSE, Linux 6.1; a hint).
    let huge = 2 << 20
    var regions = Set<Int>()
    for p in blocks { for a in [Int(bitPattern: p) - 16, Int(bitPattern: p) + step - 64] { regions.insert(a / huge * huge) } }
    for r in regions.sorted() { _ = madvise(UnsafeMutableRawPointer(bitPattern: r), huge, 25) }   // MADV_COLLAPSE
    for p in blocks.reversed() { free(p) }
}

/// Back to glibc's default thresholds once the pieces are written (freed memory is returned again).
func endHugePageHeap() {
    guard let sym = dlsym(dlopen(nil, RTLD_NOW), "mallopt") else { return }
    let mallopt = unsafeBitCast(sym, to: (@convention(c) (Int32, Int32) -> Int32).self)
    _ = mallopt(-1, 128 << 10); _ = mallopt(-3, 128 << 10)   // M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
}
