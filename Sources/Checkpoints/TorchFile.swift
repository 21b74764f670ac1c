// TorchFile: `torch.save` zip archives (torch >= 1.6) decoded to a `PickleValue` tree whose tensor
// references resolve lazily against the archive's `<prefix>/data/<key>` records.
//
// Owns: container detection (zip vs legacy stream), the record prefix (text before the first '/'
// of the first entry), and storage lookup. Does not own: the pickle VM, checkpoint semantics.
// The legacy non-zip stream (torch < 1.6) is read by `LegacyTorchFile`; `TorchFile.load` picks either.
// Memory: a file opened by URL is mapped for its directory and pickle only; storage records are read
// with pread(2) into a buffer the caller drops after decoding, so decoded shards never keep mapped
// file pages resident (peak RSS stays near the canonical f32 tensors, not tensors + files).

import Foundation

public final class TorchFile: StorageSource, @unchecked Sendable {
    public let archive: ZipArchive
    public let prefix: String
    public var path: String { archive.path }
    /// Files opened by URL are read with pread; the descriptor is opened per read, so checkpoints with
    /// thousands of shard files never hold thousands of descriptors.
    private var readsFromFile = false

    public convenience init(url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) }
        catch { throw CheckpointError.io(file: url.path, error.localizedDescription) }
        try self.init(data: data, path: url.path)
        readsFromFile = true
    }

    private func openForRead() throws -> Int32 {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw CheckpointError.io(file: path, "cannot open (errno \(errno))") }
        return fd
    }

    /// `data` must be zero-based (as `Data(contentsOf:)` is); `path` names it in errors.
    public init(data: Data, path: String) throws {
        let url = URL(fileURLWithPath: path)
        if data.count < 4 { throw CheckpointError.truncated(file: url.path, "only \(data.count) bytes") }
        if data.le32(0) != 0x0403_4b50 {
            if LegacyTorchFile.hasMagic(data) { throw CheckpointError.unsupportedLegacyFormat(file: url.path) }
            throw CheckpointError.badZip(file: url.path, "does not start with a zip local header (PK\\x03\\x04)")
        }
        archive = try ZipArchive(data: data, path: url.path)
        guard let first = archive.entries.first else { throw CheckpointError.badZip(file: url.path, "archive is empty") }
        prefix = first.name.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
    }

    /// pread straight into `dst`; bounds checked against the record.
    public func readStorage(key: String, byteOffset: Int, count: Int, into dst: UnsafeMutableRawPointer) throws -> Bool {
        guard readsFromFile else { return false }
        let name = prefix + "/data/" + key
        guard let e = archive.entry(named: name) else { throw CheckpointError.missingRecord(file: path, record: name) }
        let r = try archive.payloadRange(of: e)
        guard byteOffset >= 0, count >= 0, byteOffset <= r.count, count <= r.count - byteOffset else {
            throw CheckpointError.truncated(file: path, "record '\(name)' has \(r.count) bytes, the tensor needs \(byteOffset)+\(count)")
        }
        let fd = try openForRead()
        defer { close(fd) }
        var done = 0
        while done < count {
            let n = pread(fd, dst + done, count - done, off_t(r.lowerBound + byteOffset + done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw CheckpointError.io(file: path, "cannot read record '\(name)' (errno \(errno))") }
            done += n
        }
        return true
    }

    public func storageBytes(key: String) throws -> Data {
        let name = prefix + "/data/" + key
        guard readsFromFile else { return try archive.payload(name) }
        guard let e = archive.entry(named: name) else { throw CheckpointError.missingRecord(file: path, record: name) }
        let r = try archive.payloadRange(of: e)
        let fd = try openForRead()
        defer { close(fd) }
        var out = Data(count: r.count)
        let ok: Bool = out.withUnsafeMutableBytes { buf in
            var done = 0
            while done < r.count {
                let n = pread(fd, buf.baseAddress! + done, r.count - done, off_t(r.lowerBound + done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
        guard ok else { throw CheckpointError.io(file: path, "cannot read record '\(name)' (errno \(errno))") }
        return out
    }

    /// Decode `data.pkl`.
    public func root() throws -> PickleValue {
        let pkl = try archive.payload(prefix + "/data.pkl")
        return try Pickle.load(data: pkl, file: path, source: self)
    }

    /// Open and decode either container (zip, or the legacy stream).
    public static func load(_ url: URL) throws -> PickleValue {
        do { return try TorchFile(url: url).root() }
        catch CheckpointError.unsupportedLegacyFormat { return try LegacyTorchFile(url: url).root }
    }
}
