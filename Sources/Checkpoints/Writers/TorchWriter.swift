// TorchWriter: writes `torch.save`-compatible files (torch >= 1.6 zip container) that
// `torch.load(weights_only=False)` and Megatron read, and that `TorchFile` reads back.
//
// Contract: a STORED (uncompressed) zip whose entries sit under a top folder named after the file
// stem: `<stem>/data.pkl` (pickle protocol 2, the opcodes torch.save emits), `<stem>/byteorder`
// ("little"), `<stem>/data/<N>` (raw little-endian storage bytes, payloads 64-byte aligned through a
// 'FB' local-header extra field as PyTorch does), `<stem>/version` ("3\n"); CRC-32 on every entry;
// ZIP64 records when an entry, offset or the directory passes 4 GiB. Tensors are pickled as
// `torch._utils._rebuild_tensor_v2(persistent storage, 0, size, contiguous stride, False, OrderedDict())`.
// Tensor payloads are produced lazily, one at a time while writing, so a writer never holds more than
// one storage in memory. The file is written to a temporary name in the same folder, then renamed.
// Does not own: what goes in the tree (CheckpointWriters).

import Foundation
import CChecksum
import TensorCore

/// A tensor to be written: its shape and storage dtype now, its values when the writer asks.
public struct TensorPayload {
    public let shape: [Int]
    public let dtype: StorageDType
    public let make: () throws -> Tensor
    public init(shape: [Int], dtype: StorageDType, make: @escaping () throws -> Tensor) {
        self.shape = shape; self.dtype = dtype; self.make = make
    }
    public init(_ t: Tensor, dtype: StorageDType = .float32) { self.init(shape: t.shape, dtype: dtype) { t } }
}

/// The values a written pickle may hold.
public indirect enum TorchValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([TorchValue])
    case tuple([TorchValue])
    /// A plain dict with string keys, in order.
    case dict([(String, TorchValue)])
    /// A plain dict with integer keys (an optimizer's `state`).
    case intDict([(Int, TorchValue)])
    /// `collections.OrderedDict` (what `state_dict()` returns).
    case orderedDict([(String, TorchValue)])
    /// `argparse.Namespace` with these attributes.
    case namespace([(String, TorchValue)])
    /// A bare global such as `torch.float32`.
    case global(module: String, name: String)
    case tensor(TensorPayload)

    public static func dtype(_ d: StorageDType) -> TorchValue {
        switch d {
        case .bfloat16: return .global(module: "torch", name: "bfloat16")
        case .float16: return .global(module: "torch", name: "float16")
        default: return .global(module: "torch", name: "float32")
        }
    }
}

public enum TorchWriter {
    static let writableDTypes: [StorageDType] = [.float32, .bfloat16, .float16]

    static func storageClass(_ d: StorageDType) -> String {
        switch d { case .bfloat16: return "BFloat16Storage"; case .float16: return "HalfStorage"; default: return "FloatStorage" }
    }

    /// Write `root` to `url` atomically.
    public static func save(_ root: TorchValue, to url: URL) throws { try save(root, to: url, zip64Threshold: 0xFFFF_FFFF) }

    /// `zip64Threshold` lowers the size/offset at which ZIP64 records are used (tests force them).
    static func save(_ root: TorchValue, to url: URL, zip64Threshold: UInt64) throws {
        let stem = url.deletingPathExtension().lastPathComponent
        var pk = PickleEmitter()
        pk.bytes.append(contentsOf: [0x80, 0x02])
        try pk.emit(root, file: url.path)
        pk.bytes.append(0x2E)
        let dir = url.deletingLastPathComponent()
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        catch { throw CheckpointError.io(file: dir.path, "cannot create directory: \(error.localizedDescription)") }
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            let z = try ZipStreamWriter(path: tmp.path, zip64Threshold: zip64Threshold)
            try z.add(stem + "/data.pkl", pk.bytes)
            try z.add(stem + "/byteorder", Array("little".utf8))
            for (i, p) in pk.payloads.enumerated() {
                let t = try p.make()
                guard t.shape == p.shape else {
                    throw CheckpointError.shapeMismatch(file: url.path, tensor: "storage \(i)", expected: p.shape, found: t.shape)
                }
                if p.dtype == .float32 {   // little-endian host: write the floats as they are, no byte copy
                    try t.data.withUnsafeBytes { try z.add(stem + "/data/\(i)", $0) }
                } else {
                    try encode(t, p.dtype).withUnsafeBytes { try z.add(stem + "/data/\(i)", $0) }
                }
            }
            try z.add(stem + "/version", Array("3\n".utf8))
            try z.finish()
            guard rename(tmp.path, url.path) == 0 else { throw CheckpointError.io(file: url.path, "rename failed (errno \(errno))") }
        } catch {
            unlink(tmp.path)
            throw error
        }
    }

    /// Little-endian bytes of `t` stored as `dtype`.
    static func encode(_ t: Tensor, _ dtype: StorageDType) -> [UInt8] {
        switch dtype {
        case .bfloat16:
            let h = t.data.map { floatToBF16($0).littleEndian }; return h.withUnsafeBytes { Array($0) }
        case .float16:
            let h = t.data.map { Float16($0).bitPattern.littleEndian }; return h.withUnsafeBytes { Array($0) }
        default:
            return t.data.withUnsafeBytes { Array($0) }   // little-endian host
        }
    }
}

/// Protocol-2 pickle emission; collects tensor payloads in storage-key order.
struct PickleEmitter {
    var bytes: [UInt8] = []
    var payloads: [TensorPayload] = []

    mutating func op(_ b: UInt8) { bytes.append(b) }
    mutating func le(_ v: UInt64, _ n: Int) { for i in 0..<n { bytes.append(UInt8((v >> (8 * UInt64(i))) & 0xFF)) } }
    mutating func str(_ s: String) { op(0x58); le(UInt64(s.utf8.count), 4); bytes.append(contentsOf: s.utf8) }   // BINUNICODE
    mutating func global(_ m: String, _ n: String) { op(0x63); bytes.append(contentsOf: (m + "\n" + n + "\n").utf8) }
    mutating func int(_ i: Int) {
        if i >= 0 && i < 256 { op(0x4B); le(UInt64(i), 1) }                            // BININT1
        else if i >= 0 && i < 65536 { op(0x4D); le(UInt64(i), 2) }                      // BININT2
        else if i >= Int(Int32.min) && i <= Int(Int32.max) { op(0x4A); le(UInt64(bitPattern: Int64(i)), 4) }   // BININT
        else { op(0x8A); op(8); le(UInt64(bitPattern: Int64(i)), 8) }                    // LONG1
    }
    mutating func tuple(_ items: [TorchValue], file: String) throws {
        switch items.count {
        case 0: op(0x29)
        case 1...3: for x in items { try emit(x, file: file) }; op(0x84 + UInt8(items.count))   // TUPLE1..3
        default: op(0x28); for x in items { try emit(x, file: file) }; op(0x74)
        }
    }
    mutating func setitems(_ items: [(String, TorchValue)], file: String) throws {
        guard !items.isEmpty else { return }
        op(0x28); for (k, v) in items { str(k); try emit(v, file: file) }; op(0x75)      // MARK ... SETITEMS
    }

    mutating func emit(_ v: TorchValue, file: String) throws {
        switch v {
        case .none: op(0x4E)
        case .bool(let b): op(b ? 0x88 : 0x89)
        case .int(let i): int(i)
        case .float(let d): op(0x47); let bits = d.bitPattern; for i in (0..<8).reversed() { op(UInt8((bits >> (8 * UInt64(i))) & 0xFF)) }
        case .string(let s): str(s)
        case .list(let xs): op(0x5D); if !xs.isEmpty { op(0x28); for x in xs { try emit(x, file: file) }; op(0x65) }
        case .tuple(let xs): try tuple(xs, file: file)
        case .dict(let items): op(0x7D); try setitems(items, file: file)
        case .intDict(let items):
            op(0x7D)
            if !items.isEmpty { op(0x28); for (k, v) in items { int(k); try emit(v, file: file) }; op(0x75) }
        case .orderedDict(let items): global("collections", "OrderedDict"); op(0x29); op(0x52); try setitems(items, file: file)
        case .namespace(let items):
            global("argparse", "Namespace"); op(0x29); op(0x81); op(0x7D); try setitems(items, file: file); op(0x62)   // NEWOBJ, BUILD
        case .global(let m, let n): global(m, n)
        case .tensor(let p):
            guard TorchWriter.writableDTypes.contains(p.dtype) else {
                throw CheckpointError.unsupportedDType(file: file, tensor: "storage \(payloads.count)", p.dtype.rawValue + " (writable: float32, bfloat16, float16)")
            }
            let key = payloads.count
            payloads.append(p)
            let numel = p.shape.reduce(1, *)
            var strides = [Int](repeating: 1, count: p.shape.count)
            if p.shape.count >= 2 { for d in stride(from: p.shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * p.shape[d + 1] } }
            global("torch._utils", "_rebuild_tensor_v2"); op(0x28)
            op(0x28); str("storage"); global("torch", TorchWriter.storageClass(p.dtype)); str(String(key)); str("cpu"); int(numel); op(0x74)
            op(0x51)                                                                      // BINPERSID
            int(0)
            try tuple(p.shape.map { .int($0) }, file: file)
            try tuple(strides.map { .int($0) }, file: file)
            op(0x89)
            global("collections", "OrderedDict"); op(0x29); op(0x52)
            op(0x74); op(0x52)                                                            // TUPLE, REDUCE
        }
    }
}

/// Sequential writer of a stored zip (CRC-32, 64-byte aligned payloads, ZIP64 when needed).
final class ZipStreamWriter {
    let path: String
    let fd: Int32
    var offset: UInt64 = 0
    var central: [UInt8] = []
    var count = 0
    var closed = false
    let limit: UInt64

    init(path: String, zip64Threshold: UInt64 = 0xFFFF_FFFF) throws {
        self.path = path
        self.limit = min(zip64Threshold, 0xFFFF_FFFF)
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw CheckpointError.io(file: path, "cannot create (errno \(errno))") }
    }
    deinit { if !closed { Glibc.close(fd) } }

    func write(_ b: [UInt8]) throws { try b.withUnsafeBytes { try write($0) } }

    func write(_ raw: UnsafeRawBufferPointer) throws {
        do {
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 { if errno == EINTR { continue }; throw CheckpointError.io(file: path, "write failed (errno \(errno))") }
                done += n
            }
        }
        offset += UInt64(raw.count)
    }

    func add(_ name: String, _ payload: [UInt8]) throws { try payload.withUnsafeBytes { try add(name, $0) } }

    func add(_ name: String, _ payload: UnsafeRawBufferPointer) throws {
        let crc = CRC32.checksum(payload)
        let size = UInt64(payload.count)
        let big = size >= limit
        let nameBytes = Array(name.utf8)
        var h = LEBytes()
        var zip64Local = LEBytes()
        if big { zip64Local.u16(0x0001); zip64Local.u16(16); zip64Local.u64(size); zip64Local.u64(size) }
        let before = offset + 30 + UInt64(nameBytes.count) + UInt64(zip64Local.b.count) + 4
        let pad = Int((64 - before % 64) % 64)
        h.u32(0x0403_4B50); h.u16(big ? 45 : 20); h.u16(0); h.u16(0); h.u16(0); h.u16(0x21); h.u32(crc)
        h.u32(big ? 0xFFFF_FFFF : UInt32(size)); h.u32(big ? 0xFFFF_FFFF : UInt32(size))
        h.u16(nameBytes.count); h.u16(zip64Local.b.count + 4 + pad)
        h.b += nameBytes; h.b += zip64Local.b
        h.u16(0x4246); h.u16(pad); h.b += [UInt8](repeating: 0x5A, count: pad)    // 'FB' alignment field, as PyTorch
        let localOffset = offset
        try write(h.b)
        try write(payload)
        // Central directory record.
        let bigOff = localOffset >= limit
        var x = LEBytes()
        if big || bigOff {
            x.u16(0x0001); x.u16((big ? 16 : 0) + (bigOff ? 8 : 0))
            if big { x.u64(size); x.u64(size) }
            if bigOff { x.u64(localOffset) }
        }
        var c = LEBytes()
        c.u32(0x0201_4B50); c.u16(45); c.u16(big || bigOff ? 45 : 20); c.u16(0); c.u16(0); c.u16(0); c.u16(0x21); c.u32(crc)
        c.u32(big ? 0xFFFF_FFFF : UInt32(size)); c.u32(big ? 0xFFFF_FFFF : UInt32(size))
        c.u16(nameBytes.count); c.u16(x.b.count); c.u16(0); c.u16(0); c.u16(0); c.u32(0)
        c.u32(bigOff ? 0xFFFF_FFFF : UInt32(localOffset))
        c.b += nameBytes; c.b += x.b
        central += c.b
        count += 1
    }

    func finish() throws {
        let cdOffset = offset, cdSize = UInt64(central.count)
        try write(central)
        var e = LEBytes()
        let z64 = cdOffset >= limit || cdSize >= limit || count >= 0xFFFF
        if z64 {
            let z64Offset = offset
            e.u32(0x0606_4B50); e.u64(44); e.u16(45); e.u16(45); e.u32(0); e.u32(0)
            e.u64(UInt64(count)); e.u64(UInt64(count)); e.u64(cdSize); e.u64(cdOffset)
            e.u32(0x0706_4B50); e.u32(0); e.u64(z64Offset); e.u32(1)
        }
        e.u32(0x0605_4B50); e.u16(0); e.u16(0)
        e.u16(z64 ? 0xFFFF : count); e.u16(z64 ? 0xFFFF : count)
        e.u32(z64 ? 0xFFFF_FFFF : UInt32(cdSize)); e.u32(z64 ? 0xFFFF_FFFF : UInt32(cdOffset)); e.u16(0)
        try write(e.b)
        try close()
    }

    /// fsync and close (also for plain sequential files written through `write`).
    func close() throws {
        if fsync(fd) != 0 { throw CheckpointError.io(file: path, "fsync failed (errno \(errno))") }
        closed = true
        if Glibc.close(fd) != 0 { throw CheckpointError.io(file: path, "close failed (errno \(errno))") }
    }
}

struct LEBytes {
    var b: [UInt8] = []
    mutating func u16(_ v: Int) { b.append(UInt8(v & 0xFF)); b.append(UInt8((v >> 8) & 0xFF)) }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { b.append(UInt8((v >> (8 * UInt32(i))) & 0xFF)) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { b.append(UInt8((v >> (8 * UInt64(i))) & 0xFF)) } }
}

/// CRC-32 (IEEE 802.3, as zip uses): CChecksum's slicing-by-8 (also what reads verify with).
enum CRC32 {
    static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
    static func checksum(_ raw: UnsafeRawBufferPointer) -> UInt32 {
        raw.count == 0 ? 0 : turing_crc32(0, raw.baseAddress!, raw.count)
    }
}
