// LegacyTorchFile: the pre-1.6 `torch.save` stream (not a zip), docs/formats.md#legacy-stream.
//
// Layout: five pickles back to back — magic number 0x1950a86a20f9469cfc6c, protocol version 1001,
// sys_info (byte order, type sizes), the object (storages as persistent ids
// ('storage', type, root_key, location, numel, view_metadata)), the sorted list of storage keys —
// then, per key in that order, an 8-byte little-endian element count and the raw little-endian
// bytes. Owns: walking that layout and serving storage bytes (views as "<root>#<offset>").
// Does not own: the older tar-based container (refused with `unsupportedLegacyFormat`).

import Foundation
import TensorCore

public final class LegacyTorchFile: StorageSource, @unchecked Sendable {
    public let path: String
    public private(set) var root: PickleValue = .none
    private let data: Data
    private var records: [String: (start: Int, count: Int, dtype: StorageDType)] = [:]

    static let magic: [UInt8] = [0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    static func hasMagic(_ d: Data) -> Bool {
        let head = [UInt8](d.prefix(16))
        guard head.count >= magic.count + 2 else { return false }
        return (0...(head.count - magic.count)).contains { Array(head[$0..<($0 + magic.count)]) == magic }
    }

    public init(url: URL) throws {
        path = url.path
        do { data = try Data(contentsOf: url, options: .alwaysMapped) }
        catch { throw CheckpointError.io(file: url.path, error.localizedDescription) }
        guard LegacyTorchFile.hasMagic(data) else { throw CheckpointError.unsupportedLegacyFormat(file: path) }
        let bytes = data   // mapped, zero-based: the pickles are decoded in place
        var pos = try Pickle.decode(bytes, from: 0, file: path, source: nil).end
        let proto = try Pickle.decode(bytes, from: pos, file: path, source: nil)
        guard proto.value.intValue == 1001 else { throw CheckpointError.badPickle(file: path, "legacy protocol version is not 1001") }
        let sys = try Pickle.decode(bytes, from: proto.end, file: path, source: nil)
        if let le = sys.value["little_endian"]?.boolValue, !le {
            throw CheckpointError.badConfig(file: path, "big-endian legacy checkpoints are not supported")
        }
        let obj = try Pickle.decode(bytes, from: sys.end, file: path, source: self)
        let keys = try Pickle.decode(bytes, from: obj.end, file: path, source: nil)
        guard case .list(let keyList) = keys.value else { throw CheckpointError.badPickle(file: path, "legacy storage key list is not a list") }
        pos = keys.end
        for k in keyList {
            guard let key = k.stringValue else { throw CheckpointError.badPickle(file: path, "legacy storage key is not a string") }
            guard let dt = obj.storages[key] else { throw CheckpointError.badPickle(file: path, "storage '\(key)' is listed but never referenced") }
            guard pos + 8 <= data.count else { throw CheckpointError.truncated(file: path, "storage '\(key)' header at \(pos) is past the end") }
            let n64 = data.le64(pos); pos += 8
            guard n64 <= UInt64((data.count - pos) / dt.byteSize) else {
                throw CheckpointError.truncated(file: path, "storage '\(key)' needs \(n64) elements of \(dt.byteSize) bytes at \(pos), file has \(data.count) bytes")
            }
            let n = Int(n64)
            records[key] = (pos, n, dt)
            pos += n * dt.byteSize
        }
        root = obj.value
    }

    public func storageBytes(key: String) throws -> Data {
        let parts = key.split(separator: "#", maxSplits: 1).map(String.init)
        guard let r = records[parts[0]] else { throw CheckpointError.missingRecord(file: path, record: "storage \(parts[0])") }
        let off = parts.count == 2 ? (Int(parts[1]) ?? 0) : 0
        guard off <= r.count else { throw CheckpointError.outOfBounds(file: path, tensor: "storage \(key)", "view offset \(off) > \(r.count) elements") }
        return data[(r.start + off * r.dtype.byteSize)..<(r.start + r.count * r.dtype.byteSize)]   // slice of the mapping
    }
}
