// The four region operations: the only way model code crosses tensor-parallel ranks (Megatron's
// mappings.py). Each is forward and backward side by side; tensors are [rows, cols] row-major and
// the "last dim" is cols.
//
//   copy-to      forward: identity               backward: all-reduce
//   reduce-from  forward: all-reduce             backward: identity
//   scatter-to   forward: keep own slice of cols backward: all-gather cols
//   gather-from  forward: all-gather cols        backward: keep own slice of cols

public enum Region {
    // MARK: copy-to
    public static func copyToForward(_ x: UnsafeMutableBufferPointer<Float>, _ g: Collective) throws {}
    public static func copyToBackward(_ dx: UnsafeMutableBufferPointer<Float>, _ g: Collective) throws { try g.allReduce(dx) }

    // MARK: reduce-from
    public static func reduceFromForward(_ x: UnsafeMutableBufferPointer<Float>, _ g: Collective) throws { try g.allReduce(x) }
    public static func reduceFromBackward(_ dx: UnsafeMutableBufferPointer<Float>, _ g: Collective) throws {}

    // MARK: scatter-to: [rows, cols] -> [rows, cols/size]
    public static func scatterToForward(_ x: [Float], rows: Int, cols: Int, _ g: Collective) -> [Float] {
        ownSlice(x, rows: rows, cols: cols, rank: g.rank, size: g.size)
    }
    public static func scatterToBackward(_ dy: [Float], rows: Int, localCols: Int, _ g: Collective) throws -> [Float] {
        try gatherCols(dy, rows: rows, localCols: localCols, g)
    }

    // MARK: gather-from: [rows, cols/size] -> [rows, cols]
    public static func gatherFromForward(_ x: [Float], rows: Int, localCols: Int, _ g: Collective) throws -> [Float] {
        try gatherCols(x, rows: rows, localCols: localCols, g)
    }
    public static func gatherFromBackward(_ dy: [Float], rows: Int, cols: Int, _ g: Collective) -> [Float] {
        ownSlice(dy, rows: rows, cols: cols, rank: g.rank, size: g.size)
    }

    // MARK: helpers
    static func ownSlice(_ x: [Float], rows: Int, cols: Int, rank: Int, size: Int) -> [Float] {
        precondition(cols % size == 0, "scatter: \(cols) columns do not divide over \(size) ranks")
        let lc = cols / size
        var out = [Float](repeating: 0, count: rows * lc)
        for r in 0..<rows { for c in 0..<lc { out[r * lc + c] = x[r * cols + rank * lc + c] } }
        return out
    }

    static func gatherCols(_ x: [Float], rows: Int, localCols lc: Int, _ g: Collective) throws -> [Float] {
        let size = g.size
        if size == 1 { return x }
        var all = [Float](repeating: 0, count: size * rows * lc)   // [size][rows][lc]
        try x.withUnsafeBufferPointer { s in try all.withUnsafeMutableBufferPointer { try g.allGather(s, into: $0) } }
        var out = [Float](repeating: 0, count: rows * size * lc)
        for k in 0..<size { for r in 0..<rows { for c in 0..<lc {
            out[r * size * lc + k * lc + c] = all[(k * rows + r) * lc + c] } } }
        return out
    }
}
