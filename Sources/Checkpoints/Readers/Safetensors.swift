// Safetensors: reader (memory-mapped, header validated) and atomic writer.
//
// Owns: the 8-byte little-endian header length, the JSON header (dtype, shape, data_offsets,
// __metadata__), bounds checks of every tensor against the file, decoding to f32; writing f32/f16/bf16
// tensors to a temporary file in the same directory, then renaming it into place.
// Does not own: tensor naming conventions (HFAdapter).

import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TensorCore

public struct SafetensorsInfo: Sendable {
    public let name: String
    public let dtype: StorageDType
    public let shape: [Int]
    /// Absolute byte range in the file.
    public let range: Range<Int>
}

public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let data: Data
    /// Whether `data` is a mapping of the file itself (then decoded pages may be dropped from the RSS).
    let fileMapped: Bool
    public let tensors: [String: SafetensorsInfo]
    public let metadata: [String: String]
    public var names: [String] { tensors.keys.sorted() }

    static func dtype(_ s: String) -> StorageDType? {
        switch s {
        case "F32": return .float32; case "F16": return .float16; case "BF16": return .bfloat16
        case "F64": return .float64; case "I64": return .int64; case "I32": return .int32
        case "I16": return .int16; case "I8": return .int8; case "U8": return .uint8; case "BOOL": return .bool
        default: return nil
        }
    }
    static func token(_ d: StorageDType) -> String {
        switch d {
        case .float32: return "F32"; case .float16: return "F16"; case .bfloat16: return "BF16"
        case .float64: return "F64"; case .int64: return "I64"; case .int32: return "I32"
        case .int16: return "I16"; case .int8: return "I8"; case .uint8: return "U8"; case .bool: return "BOOL"
        }
    }

    public init(url: URL) throws {
        path = url.path
        do { data = try Data(contentsOf: url, options: .alwaysMapped) }
        catch { throw CheckpointError.io(file: url.path, error.localizedDescription) }
        fileMapped = data.withUnsafeBytes { Self.isFileMapping($0.baseAddress, path: url.resolvingSymlinksInPath().path) }
        guard data.count >= 8 else { throw CheckpointError.truncated(file: path, "only \(data.count) bytes, no header length") }
        let n64 = data.le64(0)
        guard n64 <= 100_000_000 else { throw CheckpointError.badSafetensors(file: path, "header length \(n64) exceeds 100 MB") }
        let n = Int(n64)
        guard 8 + n <= data.count else { throw CheckpointError.truncated(file: path, "header needs \(n) bytes, file has \(data.count - 8)") }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) }
        catch { throw CheckpointError.badSafetensors(file: path, "header is not JSON: \(error.localizedDescription)") }
        guard let obj = json as? [String: Any] else { throw CheckpointError.badSafetensors(file: path, "header is not a JSON object") }
        let base = 8 + n, bufferSize = data.count - base
        var infos: [String: SafetensorsInfo] = [:]
        var meta: [String: String] = [:]
        for (name, v) in obj {
            if name == "__metadata__" {
                for (k, x) in (v as? [String: Any]) ?? [:] { meta[k] = x as? String ?? "\(x)" }
                continue
            }
            guard let d = v as? [String: Any], let ds = d["dtype"] as? String,
                  let shape = (d["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offs = (d["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }), offs.count == 2 else {
                throw CheckpointError.badSafetensors(file: path, "entry '\(name)' lacks dtype/shape/data_offsets")
            }
            guard let dt = SafetensorsFile.dtype(ds) else { throw CheckpointError.unsupportedDType(file: path, tensor: name, ds) }
            guard shape.allSatisfy({ $0 >= 0 }), offs[0] >= 0, offs[0] <= offs[1] else {
                throw CheckpointError.badSafetensors(file: path, "entry '\(name)' has invalid shape \(shape) or offsets \(offs)")
            }
            guard offs[1] <= bufferSize else {
                throw CheckpointError.truncated(file: path, "tensor '\(name)' ends at \(offs[1]), data buffer has \(bufferSize) bytes")
            }
            guard let elems = checkedProduct(shape), elems <= bufferSize, offs[1] - offs[0] == elems * dt.byteSize else {
                let need = checkedProduct(shape).map { $0 <= bufferSize ? "\($0 * dt.byteSize)" : "more than \(bufferSize)" } ?? "an overflowing number of"
                throw CheckpointError.badSafetensors(file: path, "tensor '\(name)' \(ds)\(shape) needs \(need) bytes, offsets give \(offs[1] - offs[0])")
            }
            infos[name] = SafetensorsInfo(name: name, dtype: dt, shape: shape, range: (base + offs[0])..<(base + offs[1]))
        }
        // The data buffer must be covered exactly, tensors back to back (as the reference library checks).
        var expectStart = 0
        for i in infos.values.sorted(by: { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }) {
            guard i.range.lowerBound - base == expectStart else {
                throw CheckpointError.badSafetensors(file: path, "tensor '\(i.name)' starts at \(i.range.lowerBound - base), expected \(expectStart) (gap or overlap)")
            }
            expectStart = i.range.upperBound - base
        }
        if expectStart != bufferSize {
            throw CheckpointError.badSafetensors(file: path, "tensors cover \(expectStart) of the \(bufferSize)-byte data buffer")
        }
        tensors = infos; metadata = meta
    }

    public func tensor(_ name: String) throws -> Tensor {
        guard let i = tensors[name] else { throw CheckpointError.missingTensor(file: path, tensor: name) }
        let n = i.shape.reduce(1, *)
        if n == 0 { return Tensor(shape: i.shape, data: []) }
        let vals: [Float] = data.withUnsafeBytes { raw in
            let v = decodeToFloat(raw.baseAddress! + i.range.lowerBound, dtype: i.dtype, count: n)
            if fileMapped { Self.dropMappedPages(raw, i.range) }
            return v
        }
        return Tensor(shape: i.shape, data: vals)
    }

    /// Whether `p` lies in a mapping of the file at `path` (/proc/self/maps); false when unsure.
    static func isFileMapping(_ p: UnsafeRawPointer?, path: String) -> Bool {
        guard let p, let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return false }
        let a = UInt(bitPattern: Int(bitPattern: p))
        for line in maps.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 6, let dash = f[0].firstIndex(of: "-"),
                  let lo = UInt(f[0][..<dash], radix: 16), let hi = UInt(f[0][f[0].index(after: dash)...], radix: 16) else { continue }
            if a >= lo && a < hi { return f[5...].joined(separator: " ") == path }
        }
        return false
    }

    /// The file's pages under `range` leave this process's resident set once decoded (a read-only
    /// file mapping: touching them again reads them back), so a load peaks near the decoded
    /// tensors' size, not twice it.
    static func dropMappedPages(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) {
        #if canImport(Glibc)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let base = Int(bitPattern: raw.baseAddress!)
        let lo = (base + range.lowerBound) / page * page, hi = (base + range.upperBound + page - 1) / page * page
        guard lo >= base / page * page, hi > lo else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, MADV_DONTNEED)
        #endif
    }
}

public enum SafetensorsWriter {
    /// Write `tensors` (sorted by name) stored as `dtype` (float32, float16 or bfloat16), atomically.
    public static func write(_ tensors: [String: Tensor], to url: URL, dtype: StorageDType = .float32,
                             metadata: [String: String] = ["format": "pt"]) throws {
        try write(payloads: tensors.mapValues { TensorPayload($0, dtype: dtype) }, to: url, dtype: dtype, metadata: metadata)
    }

    /// Streaming form: each payload is made, encoded and written in name order, then dropped, so at
    /// most one tensor's bytes are held at a time. Temporary file in the same folder, then rename(2).
    public static func write(payloads: [String: TensorPayload], to url: URL, dtype: StorageDType = .float32,
                             metadata: [String: String] = ["format": "pt"]) throws {
        guard [.float32, .float16, .bfloat16].contains(dtype) else {
            throw CheckpointError.unsupportedDType(file: url.path, tensor: "*", dtype.rawValue)
        }
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = payloads.keys.sorted()
        for n in names {
            let shape = payloads[n]!.shape
            let size = shape.reduce(1, *) * dtype.byteSize
            header[n] = ["dtype": SafetensorsFile.token(dtype), "shape": shape, "data_offsets": [offset, offset + size]] as [String: Any]
            offset += size
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var head = [UInt8]()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { head.append(contentsOf: $0) }
        head.append(contentsOf: json)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        do {
            let f = try ZipStreamWriter(path: tmp.path)   // used here as a plain sequential file writer
            try f.write(head)
            for n in names {
                let p = payloads[n]!
                let t = try p.make()
                guard t.shape == p.shape else { throw CheckpointError.shapeMismatch(file: url.path, tensor: n, expected: p.shape, found: t.shape) }
                if dtype == .float32 { try t.data.withUnsafeBytes { try f.write($0) } }   // little-endian host
                else { try TorchWriter.encode(t, dtype).withUnsafeBytes { try f.write($0) } }
            }
            try f.close()
            guard rename(tmp.path, url.path) == 0 else { throw CheckpointError.io(file: url.path, "rename failed (errno \(errno))") }
        } catch {
            unlink(tmp.path)
            if let e = error as? CheckpointError { throw e }
            throw CheckpointError.io(file: url.path, "write failed: \(error.localizedDescription)")
        }
    }
}
