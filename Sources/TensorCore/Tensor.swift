// Tensor: a contiguous, row-major f32 array with a shape. The only tensor type the compute path sees.
//
// Owns: shape bookkeeping, element access, reshape/slice/concat along one axis (used by the
// checkpoint boundary to split and reassemble shards). Does not own: storage dtypes on disk
// (see `StorageDType`, converted once at load), kernels (Kernels*.swift).
//
// Shape legend used across Turing: B batch, T time, C hidden, V vocab, L layers, H heads,
// G query groups (KV heads), D head dim, F FFN size, P max positions; "/tp" marks a sharded dim.

public struct Tensor: Equatable, Sendable {
    public private(set) var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "Tensor: shape \(shape) does not hold \(data.count) elements")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    /// Rows [start, start+n) along axis 0 of a tensor viewed as [shape[0], rest].
    public func rows(_ start: Int, _ n: Int) -> Tensor {
        let inner = shape.dropFirst().reduce(1, *)
        var s = shape; s[0] = n
        return Tensor(shape: s, data: Array(data[(start * inner)..<((start + n) * inner)]))
    }

    /// Slice [start, start+n) along `axis`.
    public func slice(axis: Int, start: Int, count n: Int) -> Tensor {
        precondition(axis < rank && start >= 0 && start + n <= shape[axis])
        let outer = shape[..<axis].reduce(1, *)
        let dim = shape[axis]
        let inner = shape[(axis + 1)...].reduce(1, *)
        var out = [Float](); out.reserveCapacity(outer * n * inner)
        for o in 0..<outer {
            let base = (o * dim + start) * inner
            out.append(contentsOf: data[base..<(base + n * inner)])
        }
        var s = shape; s[axis] = n
        return Tensor(shape: s, data: out)
    }

    /// Split into `parts` equal pieces along `axis`.
    public func split(axis: Int, parts: Int) -> [Tensor] {
        precondition(shape[axis] % parts == 0, "Tensor.split: dim \(shape[axis]) not divisible by \(parts)")
        let n = shape[axis] / parts
        return (0..<parts).map { slice(axis: axis, start: $0 * n, count: n) }
    }

    /// Concatenate along `axis`; all other dims must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty)
        let first = parts[0].shape
        let outer = first[..<axis].reduce(1, *)
        let inner = first[(axis + 1)...].reduce(1, *)
        var total = 0
        for p in parts {
            precondition(p.rank == first.count)
            for d in 0..<first.count where d != axis { precondition(p.shape[d] == first[d], "Tensor.concat: shapes \(p.shape) vs \(first)") }
            total += p.shape[axis]
        }
        var out = [Float](); out.reserveCapacity(outer * total * inner)
        for o in 0..<outer {
            for p in parts {
                let n = p.shape[axis] * inner
                out.append(contentsOf: p.data[(o * n)..<((o + 1) * n)])
            }
        }
        var s = first; s[axis] = total
        return Tensor(shape: s, data: out)
    }

    /// 2-D transpose: [a, b] -> [b, a].
    public func transposed() -> Tensor {
        precondition(rank == 2)
        let a = shape[0], b = shape[1]
        var out = [Float](repeating: 0, count: a * b)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                // 32 x 32 tiles: both the reads and the strided writes stay in cache
                let t = 32
                for i0 in stride(from: 0, to: a, by: t) { for j0 in stride(from: 0, to: b, by: t) {
                    for i in i0..<min(i0 + t, a) { for j in j0..<min(j0 + t, b) { dst[j * a + i] = src[i * b + j] } }
                } }
            }
        }
        return Tensor(shape: [b, a], data: out)
    }
}
