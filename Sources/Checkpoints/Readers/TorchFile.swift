// TorchFile: `torch.save` zip archives (torch >= 1.6) decoded to a `PickleValue` tree whose tensor
// references resolve lazily against the archive's `<prefix>/data/<key>` records.
//
// Owns: container detection (zip vs legacy stream), the record prefix (text before the first '/'
// of the first entry), and storage lookup. Does not own: the pickle VM, checkpoint semantics.
// The legacy non-zip stream (torch < 1.6) is read by `LegacyTorchFile`; `TorchFile.load` picks either.
// Memory: a file opened by URL is memory-mapped (read-only, private). Loaders copy f32 records
// straight out of the mapping (`mappedStorage`) and then release the pages they read (`releaseMapped`,
// madvise DONTNEED: the page cache keeps them, this process stops counting them), so decoded shards
// never keep mapped file pages resident (peak RSS stays near the f32 tensors, not tensors + files).
// Other reads use pread(2) into a buffer the caller drops after decoding.
// Integrity: every record is checked against the CRC-32 the zip records, once, before its first
// read (`data.pkl` before it is decoded; `ZipArchive.verifyChecksums = false` skips it).

import Foundation

public final class TorchFile: StorageSource, @unchecked Sendable {
    public let archive: ZipArchive
    public let prefix: String
    public var path: String { archive.path }
    /// Files opened by URL are read with pread; the descriptor is opened per read, so checkpoints with
    /// thousands of shard files never hold thousands of descriptors.
    private var readsFromFile = false
    /// The whole file, when opened by URL.
    private var mapping: MappedFile?
    /// Records whose CRC-32 has been checked.
    private var verified: Set<String> = []
    private let lock = NSLock()

    /// Check `e`'s CRC-32 the first time it is read. `release`: drop the mapped pages the sum read
    /// (reads by pread); false when the caller copies from the mapping next and releases it itself.
    private func verify(_ e: ZipEntry, release: Bool = true) throws {
        guard ZipArchive.verifyChecksums else { return }
        lock.lock(); let done = verified.contains(e.name); lock.unlock()
        if done { return }
        try archive.verifyChecksum(e)
        if release, let m = mapping, let b = m.base {   // the pages read for the sum are not kept resident
            let r = try archive.payloadRange(of: e)
            m.release(UnsafeRawBufferPointer(start: b + r.lowerBound, count: r.count))
        }
        lock.lock(); verified.insert(e.name); lock.unlock()
    }

    public convenience init(url: URL) throws {
        let m = try MappedFile(url: url)
        try self.init(data: m.data, path: url.path)
        readsFromFile = true
        mapping = m
    }

    /// Bytes [byteOffset, byteOffset+count) of storage `key`, viewed in the mapping (bounds checked);
    /// nil when the file is not mapped. Valid while this TorchFile lives.
    public func mappedStorage(key: String, byteOffset: Int, count: Int) throws -> UnsafeRawBufferPointer? {
        guard let m = mapping, let base = m.base else { return nil }
        let name = prefix + "/data/" + key
        guard let e = archive.entry(named: name) else { throw CheckpointError.missingRecord(file: path, record: name) }
        let r = try archive.payloadRange(of: e)
        try verify(e, release: false)   // the caller copies these pages next, then releases them
        guard byteOffset >= 0, count >= 0, byteOffset <= r.count, count <= r.count - byteOffset else {
            throw CheckpointError.truncated(file: path, "record '\(name)' has \(r.count) bytes, the tensor needs \(byteOffset)+\(count)")
        }
        return UnsafeRawBufferPointer(start: base + r.lowerBound + byteOffset, count: count)
    }

    public func releaseMapped(_ view: UnsafeRawBufferPointer) { mapping?.release(view) }

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
        try readStorage(key: key, runs: [StorageRun(byteOffset: byteOffset, count: count, dst: dst)])
    }

    /// pread each run straight into its destination, the file opened once; every run bounds checked
    /// against the record before any is read.
    public func readStorage(key: String, runs: [StorageRun]) throws -> Bool {
        guard readsFromFile else { return false }
        let name = prefix + "/data/" + key
        guard let e = archive.entry(named: name) else { throw CheckpointError.missingRecord(file: path, record: name) }
        let r = try archive.payloadRange(of: e)
        try verify(e)
        for run in runs where !(run.byteOffset >= 0 && run.count >= 0 && run.byteOffset <= r.count && run.count <= r.count - run.byteOffset) {
            throw CheckpointError.truncated(file: path, "record '\(name)' has \(r.count) bytes, the tensor needs \(run.byteOffset)+\(run.count)")
        }
        let fd = try openForRead()
        defer { close(fd) }
        for run in runs {
            var done = 0
            while done < run.count {
                let n = pread(fd, run.dst + done, run.count - done, off_t(r.lowerBound + run.byteOffset + done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { throw CheckpointError.io(file: path, "cannot read record '\(name)' (errno \(errno))") }
                done += n
            }
        }
        return true
    }

    public func storageBytes(key: String) throws -> Data {
        let name = prefix + "/data/" + key
        guard let e = archive.entry(named: name) else { throw CheckpointError.missingRecord(file: path, record: name) }
        try verify(e)
        guard readsFromFile else { return try archive.payload(name) }
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
        guard let e = archive.entry(named: prefix + "/data.pkl") else { throw CheckpointError.missingRecord(file: path, record: prefix + "/data.pkl") }
        try verify(e)
        let pkl = try archive.payload(prefix + "/data.pkl")
        return try Pickle.load(data: pkl, file: path, source: self)
    }

    /// Open and decode either container (zip, or the legacy stream).
    public static func load(_ url: URL) throws -> PickleValue {
        do { return try TorchFile(url: url).root() }
        catch CheckpointError.unsupportedLegacyFormat { return try LegacyTorchFile(url: url).root }
    }
}

/// A read-only private mapping of a whole file, unmapped when released.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer?
    let count: Int

    init(url: URL) throws {
        let fd = open(url.path, O_RDONLY)
        if fd < 0 { throw CheckpointError.io(file: url.path, "cannot open (errno \(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CheckpointError.io(file: url.path, "cannot stat (errno \(errno))") }
        count = Int(st.st_size)
        if count == 0 { base = nil; return }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw CheckpointError.io(file: url.path, "cannot map \(count) bytes (errno \(errno))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit { if let b = base { munmap(UnsafeMutableRawPointer(mutating: b), count) } }

    /// The mapping as `Data` (no copy; valid while this object lives).
    var data: Data {
        guard let b = base else { return Data() }
        return Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: b), count: count, deallocator: .none)
    }

    /// Drop this process's mapping of the whole pages inside `view` (they stay in the page cache).
    func release(_ view: UnsafeRawBufferPointer) {
        guard let b = base, let v = view.baseAddress, v >= b, v + view.count <= b + count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (Int(bitPattern: v) + page - 1) / page * page, hi = (Int(bitPattern: v) + view.count) / page * page
        if hi > lo { _ = madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, Int32(MADV_DONTNEED)) }
    }
}
