// Storage dtypes as they appear on disk, and their conversion to f32 (done once, at load).
// Owns: f16 / bf16 / f32 / f64 / integer decoding from little-endian bytes, and f32 -> bf16/f16 encoding
// for writers. Does not own: file formats (Checkpoints).

public enum StorageDType: String, Codable, Sendable, CaseIterable {
    case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool

    public var byteSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    public var isFloatingPoint: Bool { self == .float32 || self == .float16 || self == .bfloat16 || self == .float64 }
}

@inline(__always) public func bf16ToFloat(_ h: UInt16) -> Float {
    Float(bitPattern: UInt32(h) << 16)
}

/// Round-to-nearest-even f32 -> bf16 (NaN stays NaN).
@inline(__always) public func floatToBF16(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    if f.isNaN { return UInt16(bits >> 16) | 0x40 }
    let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
    return UInt16((bits &+ rounding) >> 16)
}

@inline(__always) public func f16ToFloat(_ h: UInt16) -> Float {
    Float(Float16(bitPattern: h))
}

/// Decode `count` elements of `dtype` starting at `base` (little-endian, unaligned allowed) into f32.
/// Large tensors are decoded in chunks on the kernels' threads.
public func decodeToFloat(_ base: UnsafeRawPointer, dtype: StorageDType, count: Int) -> [Float] {
    uninitializedArray(count: count) { (out: UnsafeMutablePointer<Float>) in
        _ = Compute.mapChunks(count) { r in decodeChunk(base + r.lowerBound * dtype.byteSize, dtype: dtype, count: r.count, into: out + r.lowerBound) }
    }
}

private func decodeChunk(_ base: UnsafeRawPointer, dtype: StorageDType, count: Int, into dst: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .float32:
        for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
    case .float16:
        for i in 0..<count { dst[i] = f16ToFloat(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
    case .bfloat16:
        for i in 0..<count { dst[i] = bf16ToFloat(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
    case .float64:
        for i in 0..<count { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
    case .int64:
        for i in 0..<count { dst[i] = Float(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
    case .int32:
        for i in 0..<count { dst[i] = Float(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
    case .int16:
        for i in 0..<count { dst[i] = Float(Int16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
    case .int8:
        for i in 0..<count { dst[i] = Float(base.load(fromByteOffset: i, as: Int8.self)) }
    case .uint8, .bool:
        for i in 0..<count { dst[i] = Float(base.load(fromByteOffset: i, as: UInt8.self)) }
    }
}
