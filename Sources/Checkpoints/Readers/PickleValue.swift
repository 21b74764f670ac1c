// PickleValue: the inert tree a pickle decodes to, and the tensor references inside it.
//
// Owns: the value enum, PyTorch storage/tensor references (dtype, key, offset, shape, stride), and
// materialising a reference to a contiguous f32 `Tensor` on request (any stride, storage offset,
// shared storages; f16/bf16/f64/int storages are converted). Does not own: decoding the pickle
// (Pickle.swift) or locating storage bytes in a file (TorchFile.swift provides a `StorageSource`).

import Foundation
import TensorCore

/// Supplies the raw little-endian bytes of a storage record (e.g. `<prefix>/data/<key>` in a zip).
public protocol StorageSource: AnyObject, Sendable {
    var path: String { get }
    func storageBytes(key: String) throws -> Data
    /// Copy `count` bytes of storage `key` starting at `byteOffset` straight into `dst`; false when the
    /// source cannot (the caller then falls back to `storageBytes`). Lets loads skip intermediate buffers.
    func readStorage(key: String, byteOffset: Int, count: Int, into dst: UnsafeMutableRawPointer) throws -> Bool
    /// `readStorage` for several byte ranges of one storage (a file source opens its file once).
    func readStorage(key: String, runs: [StorageRun]) throws -> Bool
    /// Bytes [byteOffset, byteOffset+count) of storage `key` as a view of a memory-mapped file (valid
    /// while the source lives), or nil when the source has no mapping.
    func mappedStorage(key: String, byteOffset: Int, count: Int) throws -> UnsafeRawBufferPointer?
    /// Stop holding the mapped pages of a view returned by `mappedStorage` (a hint).
    func releaseMapped(_ view: UnsafeRawBufferPointer)
}

/// Bytes [byteOffset, byteOffset+count) of a storage, to be copied to `dst`.
public struct StorageRun {
    public let byteOffset: Int, count: Int, dst: UnsafeMutableRawPointer
    public init(byteOffset: Int, count: Int, dst: UnsafeMutableRawPointer) { self.byteOffset = byteOffset; self.count = count; self.dst = dst }
}

extension StorageSource {
    public func readStorage(key: String, byteOffset: Int, count: Int, into dst: UnsafeMutableRawPointer) throws -> Bool { false }
    public func readStorage(key: String, runs: [StorageRun]) throws -> Bool {
        for r in runs { guard try readStorage(key: key, byteOffset: r.byteOffset, count: r.count, into: r.dst) else { return false } }
        return true
    }
    public func mappedStorage(key: String, byteOffset: Int, count: Int) throws -> UnsafeRawBufferPointer? { nil }
    public func releaseMapped(_ view: UnsafeRawBufferPointer) {}
}

public struct StorageRef: Sendable {
    public let dtype: StorageDType
    public let key: String
    public let location: String
    /// Elements of the typed storage.
    public let numel: Int
    public let source: StorageSource?
}

public struct TensorRef: Sendable {
    public let storage: StorageRef
    public let offset: Int
    public let shape: [Int]
    public let stride: [Int]
    public var dtype: StorageDType { storage.dtype }
    public var count: Int { checkedProduct(shape) ?? Int.max }

    public var isContiguous: Bool {
        var expect = 1
        for d in stride.indices.reversed() {
            if shape[d] != 1 && stride[d] != expect { return false }
            let (m, o) = expect.multipliedReportingOverflow(by: shape[d])
            if o { return false }
            expect = m
        }
        return true
    }

    /// Read the view into `dst` (exactly `count` floats), row-major. Contiguous float32 views from a
    /// source that supports it are read straight into `dst` (no intermediate buffer); others decode.
    public func read(into dst: UnsafeMutableBufferPointer<Float>, name: String = "?") throws {
        precondition(dst.count == count)
        if dtype == .float32, isContiguous, let src = storage.source, count > 0,
           offset >= 0, offset + count <= storage.numel,
           try src.readStorage(key: storage.key, byteOffset: offset * 4, count: count * 4, into: UnsafeMutableRawPointer(dst.baseAddress!)) {
            return
        }
        let t = try materialize(name: name)
        _ = t.data.withUnsafeBufferPointer { memcpy(dst.baseAddress!, $0.baseAddress!, t.count * 4) }
    }

    /// Read the view into a contiguous row-major f32 tensor. `name` is used in error messages.
    public func materialize(name: String = "?") throws -> Tensor {
        if dtype == .float32, isContiguous, let src = storage.source, count > 0, offset >= 0, offset + count <= storage.numel {
            var ok = true
            let data = try [Float](unsafeUninitializedCapacity: count) { buf, n in
                ok = try src.readStorage(key: storage.key, byteOffset: offset * 4, count: count * 4, into: UnsafeMutableRawPointer(buf.baseAddress!))
                n = ok ? count : 0
            }
            if ok { return Tensor(shape: shape, data: data) }
        }
        guard let src = storage.source else {
            throw CheckpointError.missingRecord(file: "?", record: "data/\(storage.key) (no storage source)")
        }
        // Overflow-checked extent of the view (hostile files must not trap).
        func bad(_ m: String) -> CheckpointError { .outOfBounds(file: src.path, tensor: name, m) }
        guard shape.count == stride.count, offset >= 0, stride.allSatisfy({ $0 >= 0 }) else {
            throw bad("invalid view: offset \(offset) shape \(shape) stride \(stride)")
        }
        guard let n = checkedProduct(shape) else { throw bad("element count of shape \(shape) overflows") }
        if n == 0 { return Tensor(shape: shape, data: []) }
        var maxIndex = offset
        let minIndex = offset
        for d in shape.indices {
            let (span, o1) = (shape[d] - 1).multipliedReportingOverflow(by: stride[d])
            let (m, o2) = maxIndex.addingReportingOverflow(span)
            guard !o1, !o2 else { throw bad("view extent overflows") }
            maxIndex = m
        }
        guard maxIndex < storage.numel else {
            throw bad("view offset \(offset) shape \(shape) stride \(stride) needs elements \(minIndex)...\(maxIndex), storage has \(storage.numel)")
        }
        let es = dtype.byteSize
        let span = maxIndex - minIndex + 1
        let flat: [Float]
        let (start, o1) = minIndex.multipliedReportingOverflow(by: es), (length, o2) = span.multipliedReportingOverflow(by: es)
        if !o1, !o2, let view = try? src.mappedStorage(key: storage.key, byteOffset: start, count: length), let base = view.baseAddress {
            // a mapped file: decoded straight from its pages, which are then let go (no copy of the storage);
            // any error here (a short record, a bad checksum) is raised by the copying path below instead
            flat = decodeToFloat(base, dtype: dtype, count: span)
            src.releaseMapped(view)
        } else {
            let bytes = try src.storageBytes(key: storage.key)
            guard bytes.count / es > maxIndex else {
                throw CheckpointError.truncated(file: src.path,
                    "storage '\(storage.key)' of tensor '\(name)' has \(bytes.count) bytes, needs \(maxIndex + 1) elements of \(es) bytes")
            }
            flat = bytes.withUnsafeBytes { raw in decodeToFloat(raw.baseAddress! + minIndex * es, dtype: dtype, count: span) }
        }
        if isContiguous { return Tensor(shape: shape, data: n == span ? flat : Array(flat[(offset - minIndex)..<(offset - minIndex + n)])) }
        // General strided gather.
        var out = [Float](repeating: 0, count: n)
        var idx = [Int](repeating: 0, count: shape.count)
        var pos = offset - minIndex
        flat.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<n {
                    o[i] = s[pos]
                    var d = shape.count - 1
                    while d >= 0 {
                        idx[d] += 1; pos += stride[d]
                        if idx[d] < shape[d] { break }
                        pos -= stride[d] * shape[d]; idx[d] = 0; d -= 1
                    }
                }
            }
        }
        return Tensor(shape: shape, data: out)
    }
}

/// Product of non-negative dims, nil on overflow or negative dims.
func checkedProduct(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (m, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = m
    }
    return n
}

/// A dict as pickled: ordered pairs, plus attributes set by BUILD (e.g. OrderedDict `_metadata`).
public struct PickleDict: Sendable {
    public var items: [(PickleValue, PickleValue)] = []
    public var attributes: [(String, PickleValue)] = []
    /// "collections.OrderedDict" or nil for a plain dict.
    public var className: String?

    public subscript(key: String) -> PickleValue? {
        for (k, v) in items { if case .string(let s) = k, s == key { return v } }
        return nil
    }
    public var stringKeys: [String] { items.compactMap { if case .string(let s) = $0.0 { return s }; return nil } }
}

/// An instance of an allowed or placeholder class: `args` from REDUCE/NEWOBJ, `state` from BUILD.
public struct PickleObject: Sendable {
    public var className: String
    public var args: [PickleValue]
    public var state: PickleValue?

    /// Attribute lookup for Namespace-like objects (state dict, or a dict passed as an argument).
    public func attribute(_ name: String) -> PickleValue? {
        if case .dict(let d)? = state, let v = d[name] { return v }
        for a in args { if case .dict(let d) = a, let v = d[name] { return v } }
        return nil
    }
}

public indirect enum PickleValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list([PickleValue])
    case tuple([PickleValue])
    case set([PickleValue])
    case dict(PickleDict)
    case object(PickleObject)
    /// A bare class or attribute reference such as "torch.float32".
    case global(String)
    case storage(StorageRef)
    case tensor(TensorRef)
    /// A member of an enum megatron-core lists as safe (MegatronSafeGlobals), e.g. signal.SIGTERM.
    case enumMember(PickleEnumMember)
    /// Something kept for display only (huge ints, cycles, unsupported values).
    case opaque(String)

    public subscript(key: String) -> PickleValue? {
        switch self {
        case .dict(let d): return d[key]
        case .object(let o): return o.attribute(key)
        default: return nil
        }
    }
    public var intValue: Int? {
        switch self { case .int(let i): return i; case .bool(let b): return b ? 1 : 0; case .float(let f) where f == f.rounded() && abs(f) < 9.0e18: return Int(f); default: return nil }
    }
    public var doubleValue: Double? {
        switch self { case .int(let i): return Double(i); case .float(let f): return f; default: return nil }
    }
    public var boolValue: Bool? {
        switch self { case .bool(let b): return b; case .int(let i): return i != 0; default: return nil }
    }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var isNone: Bool { if case .none = self { return true }; return false }

    /// Every tensor reachable under this value, keyed by the dotted path of string keys.
    public func flattenTensors(prefix: String = "") -> [(String, TensorRef)] {
        var out: [(String, TensorRef)] = []
        func walk(_ v: PickleValue, _ p: String) {
            switch v {
            case .tensor(let t): out.append((p, t))
            case .dict(let d):
                for (k, x) in d.items {
                    let ks: String
                    switch k { case .string(let s): ks = s; case .int(let i): ks = String(i); default: continue }
                    walk(x, p.isEmpty ? ks : p + "." + ks)
                }
            default: break
            }
        }
        walk(self, prefix)
        return out
    }
}
