// ZipArchive: a read-only, memory-mapped view of a zip file as PyTorch writes it.
//
// Owns: locating the end-of-central-directory record (plain and ZIP64), walking the central
// directory, and computing each entry's payload offset from its LOCAL header (the local extra field
// differs from the central copy: PyTorch pads it to align payloads to 64 bytes). Only stored
// (method 0) entries can be read; `verifyChecksum` compares a payload with the CRC-32 the central
// directory records (TorchFile calls it once per record it reads). Does not own: what the records
// mean (TorchFile).

import Foundation
import CChecksum

public struct ZipEntry: Sendable {
    public let name: String
    public let method: Int
    public let compressedSize: Int
    public let uncompressedSize: Int
    public let localHeaderOffset: Int
    /// The CRC-32 the central directory records for the uncompressed bytes.
    public let crc32: UInt32
}

public final class ZipArchive: @unchecked Sendable {
    public let path: String
    /// The whole file, memory-mapped.
    public let data: Data
    public let entries: [ZipEntry]
    private let index: [String: Int]

    public convenience init(url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) }
        catch { throw CheckpointError.io(file: url.path, error.localizedDescription) }
        try self.init(data: data, path: url.path)
    }

    public init(data: Data, path: String) throws {
        self.path = path
        self.data = data
        self.entries = try ZipArchive.readCentralDirectory(data, path)
        var idx: [String: Int] = [:]
        for (i, e) in entries.enumerated() where idx[e.name] == nil { idx[e.name] = i }
        self.index = idx
    }

    public func entry(named name: String) -> ZipEntry? { index[name].map { entries[$0] } }

    /// Byte range of the entry's payload inside `data`, validated against the file size.
    public func payloadRange(of e: ZipEntry) throws -> Range<Int> {
        guard e.method == 0 else { throw CheckpointError.compressedEntry(file: path, entry: e.name, method: e.method) }
        let lh = e.localHeaderOffset
        guard lh >= 0, lh <= data.count - 30 else {
            throw CheckpointError.truncated(file: path, "local header of '\(e.name)' at \(lh) is past the end (\(data.count) bytes)")
        }
        guard data.le32(lh) == 0x0403_4b50 else { throw CheckpointError.badZip(file: path, "bad local header signature for '\(e.name)'") }
        let start = lh + 30 + Int(data.le16(lh + 26)) + Int(data.le16(lh + 28))
        guard start <= data.count, e.compressedSize <= data.count - start else {
            throw CheckpointError.truncated(file: path, "entry '\(e.name)' needs \(e.compressedSize) bytes at \(start), file has \(data.count)")
        }
        let end = start + e.compressedSize
        return start..<end
    }

    /// Whether CRC-32s are checked (`--no-verify-checksums` turns it off for the process).
    nonisolated(unsafe) public static var verifyChecksums = true

    /// Throws `checksumMismatch` when the stored entry's bytes do not match its recorded CRC-32.
    public func verifyChecksum(_ e: ZipEntry) throws {
        let r = try payloadRange(of: e)
        let crc = data.withUnsafeBytes { raw in turing_crc32(0, raw.baseAddress! + r.lowerBound, r.count) }
        guard crc == e.crc32 else { throw CheckpointError.checksumMismatch(file: path, entry: e.name, expected: e.crc32, found: crc) }
    }

    /// The payload bytes of a stored entry (a slice of the mapping, no copy).
    public func payload(_ name: String) throws -> Data {
        guard let e = entry(named: name) else { throw CheckpointError.missingRecord(file: path, record: name) }
        let r = try payloadRange(of: e)
        return data[r]   // a slice of the mapping; read it with withUnsafeBytes (offsets relative to the slice)
    }

    // MARK: - Central directory

    private static func readCentralDirectory(_ d: Data, _ path: String) throws -> [ZipEntry] {
        let n = d.count
        guard n >= 22 else { throw CheckpointError.badZip(file: path, "file is only \(n) bytes") }
        // Find EOCD scanning backwards (comment up to 65535 bytes).
        var eocd = -1
        var p = n - 22
        let stop = max(0, n - 22 - 65535)
        while p >= stop { if d.le32(p) == 0x0605_4b50 { eocd = p; break }; p -= 1 }
        if eocd < 0 {
            if n >= 4 && d.le32(0) == 0x0403_4b50 {
                throw CheckpointError.truncated(file: path, "zip has no end-of-central-directory record")
            }
            throw CheckpointError.badZip(file: path, "no end-of-central-directory record")
        }
        var count = Int(d.le16(eocd + 10))
        var cdSize = Int(d.le32(eocd + 12))
        var cdOffset = Int(d.le32(eocd + 16))
        // ZIP64 locator sits right before the EOCD.
        if eocd >= 20 && d.le32(eocd - 20) == 0x0706_4b50 {
            let z64raw = d.le64(eocd - 20 + 8)
            guard n >= 56, z64raw <= UInt64(n - 56), d.le32(Int(z64raw)) == 0x0606_4b50 else {
                throw CheckpointError.badZip(file: path, "bad ZIP64 end-of-central-directory record")
            }
            let z64 = Int(z64raw)
            let c64 = d.le64(z64 + 32), s64 = d.le64(z64 + 40), o64 = d.le64(z64 + 48)
            guard c64 <= UInt64(n), s64 <= UInt64(n), o64 <= UInt64(n) else {
                throw CheckpointError.badZip(file: path, "ZIP64 central directory fields exceed the file size")
            }
            count = Int(c64); cdSize = Int(s64); cdOffset = Int(o64)
        }
        guard cdOffset >= 0, cdSize >= 0, cdOffset <= n, cdSize <= n - cdOffset else {
            throw CheckpointError.truncated(file: path, "central directory \(cdOffset)+\(cdSize) is past the end (\(n) bytes)")
        }
        var out: [ZipEntry] = []; out.reserveCapacity(count)
        var q = cdOffset
        for i in 0..<count {
            guard q + 46 <= n, d.le32(q) == 0x0201_4b50 else {
                throw CheckpointError.badZip(file: path, "central directory entry \(i) is corrupt")
            }
            let method = Int(d.le16(q + 10))
            var csize = UInt64(d.le32(q + 20)), usize = UInt64(d.le32(q + 24))
            let nameLen = Int(d.le16(q + 28)), extraLen = Int(d.le16(q + 30)), commentLen = Int(d.le16(q + 32))
            var lho = UInt64(d.le32(q + 42))
            guard nameLen + extraLen + commentLen <= n - q - 46 else {
                throw CheckpointError.truncated(file: path, "central directory entry \(i) runs past the end")
            }
            let name = String(decoding: d[(q + 46)..<(q + 46 + nameLen)], as: UTF8.self)
            // ZIP64 extended information: only the fields saturated in the fixed header, in order.
            var e = q + 46 + nameLen
            let eEnd = e + extraLen
            while e + 4 <= eEnd {
                let id = d.le16(e), sz = Int(d.le16(e + 2))
                if id == 0x0001 {
                    var f = e + 4
                    if usize == 0xFFFF_FFFF, f + 8 <= e + 4 + sz { usize = d.le64(f); f += 8 }
                    if csize == 0xFFFF_FFFF, f + 8 <= e + 4 + sz { csize = d.le64(f); f += 8 }
                    if lho == 0xFFFF_FFFF, f + 8 <= e + 4 + sz { lho = d.le64(f); f += 8 }
                }
                e += 4 + sz
            }
            guard csize <= UInt64(n), usize < UInt64(Int.max), lho <= UInt64(n) else {
                throw CheckpointError.badZip(file: path, "entry '\(name)' has impossible sizes")
            }
            out.append(ZipEntry(name: name, method: method, compressedSize: Int(csize),
                                uncompressedSize: Int(usize), localHeaderOffset: Int(lho), crc32: d.le32(q + 16)))
            q += 46 + nameLen + extraLen + commentLen
        }
        return out
    }
}

// MARK: - Little-endian reads on Data (index relative to startIndex)

extension Data {
    @inline(__always) func le16(_ o: Int) -> UInt16 {
        withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
    }
    @inline(__always) func le32(_ o: Int) -> UInt32 {
        withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
    }
    @inline(__always) func le64(_ o: Int) -> UInt64 {
        withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
    }
}
