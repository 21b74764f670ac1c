// Test-only writer of small `torch.save`-style files (zip of stored entries + protocol-2 pickle), kept
// independent of the library's `TorchWriter` so the readers are checked against a second writer;
// synthetic Megatron trees (GQA, SwiGLU, RoPE, megatron-core names, virtual pipeline, uneven
// stages) can be built without PyTorch.

import Foundation
import TensorCore

indirect enum TV {
    case dict([(String, TV)]), tensor(Tensor), int(Int), float(Double), string(String), bool(Bool), none
    case namespace([(String, TV)])
}

/// CRC-32 bit by bit (independent of the library's table-driven one).
func bitwiseCRC32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return ~c
}

/// Zip of stored entries; `zip64` writes ZIP64 records with saturated 32-bit fields.
func buildZip(_ entries: [(String, [UInt8])], zip64: Bool = false) -> [UInt8] {
    var z = Bytes(); var central = Bytes()
    for (name, payload) in entries {
        let off = z.b.count
        let crc = bitwiseCRC32(payload)
        let pad = 64 - (off + 30 + name.utf8.count + 4) % 64
        z.u32(0x04034b50); z.u16(45); z.u16(0); z.u16(0); z.u16(0); z.u16(0); z.u32(Int(crc))
        z.u32(payload.count); z.u32(payload.count); z.u16(name.utf8.count); z.u16(4 + pad); z.s(name)
        z.u16(0x4246); z.u16(pad); z.raw(Array(repeating: 0x5A, count: pad)); z.raw(payload)
        central.u32(0x02014b50); central.u16(45); central.u16(45); central.u16(0); central.u16(0); central.u16(0); central.u16(0)
        central.u32(Int(crc))
        if zip64 { central.u32(0xFFFF_FFFF); central.u32(0xFFFF_FFFF) } else { central.u32(payload.count); central.u32(payload.count) }
        central.u16(name.utf8.count); central.u16(zip64 ? 28 : 0)
        central.u16(0); central.u16(0); central.u16(0); central.u32(0); central.u32(zip64 ? 0xFFFF_FFFF : off); central.s(name)
        if zip64 { central.u16(0x0001); central.u16(24); central.u64(payload.count); central.u64(payload.count); central.u64(off) }
    }
    let cdOff = z.b.count
    z.raw(central.b)
    if zip64 {
        let z64 = z.b.count
        z.u32(0x06064b50); z.u64(44); z.u16(45); z.u16(45); z.u32(0); z.u32(0)
        z.u64(entries.count); z.u64(entries.count); z.u64(central.b.count); z.u64(cdOff)
        z.u32(0x07064b50); z.u32(0); z.u64(z64); z.u32(1)
        z.u32(0x06054b50); z.u16(0); z.u16(0); z.u16(0xFFFF); z.u16(0xFFFF); z.u32(0xFFFF_FFFF); z.u32(0xFFFF_FFFF); z.u16(0)
    } else {
        z.u32(0x06054b50); z.u16(0); z.u16(0); z.u16(entries.count); z.u16(entries.count); z.u32(central.b.count); z.u32(cdOff); z.u16(0)
    }
    return z.b
}

struct TestTorchWriter {
    var p = Bytes()
    var storages: [[UInt8]] = []

    mutating func str(_ s: String) { p.u8(0x58); p.u32(s.utf8.count); p.s(s) }
    mutating func global(_ m: String, _ n: String) { p.u8(0x63); p.s(m + "\n" + n + "\n") }
    mutating func int(_ i: Int) { p.u8(0x4A); p.u32(i & 0xFFFF_FFFF) }
    mutating func ints(_ xs: [Int]) { p.u8(0x28); for x in xs { int(x) }; p.u8(0x74) }

    mutating func emit(_ v: TV) {
        switch v {
        case .none: p.u8(0x4E)
        case .bool(let b): p.u8(b ? 0x88 : 0x89)
        case .int(let i): int(i)
        case .float(let d): p.u8(0x47); let bits = d.bitPattern; for i in (0..<8).reversed() { p.u8(UInt8((bits >> (8 * UInt64(i))) & 0xFF)) }
        case .string(let s): str(s)
        case .dict(let items): p.u8(0x7D); for (k, x) in items { str(k); emit(x); p.u8(0x73) }
        case .namespace(let items):
            global("argparse", "Namespace"); p.u8(0x29); p.u8(0x81); emit(.dict(items)); p.u8(0x62)
        case .tensor(let t):
            let key = storages.count
            storages.append(t.data.withUnsafeBytes { Array($0) })
            global("torch._utils", "_rebuild_tensor_v2"); p.u8(0x28)
            p.u8(0x28); str("storage"); global("torch", "FloatStorage"); str(String(key)); str("cpu"); int(t.count); p.u8(0x74); p.u8(0x51)
            int(0); ints(t.shape)
            var strides = [Int](repeating: 1, count: t.shape.count)
            for d in stride(from: t.shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }
            ints(strides); p.u8(0x89); global("collections", "OrderedDict"); p.u8(0x29); p.u8(0x52); p.u8(0x74); p.u8(0x52)
        }
    }

    static func save(_ root: TV, to url: URL, prefix: String = "archive") throws {
        var w = TestTorchWriter(); w.p.raw([0x80, 0x02]); w.emit(root); w.p.u8(0x2E)
        var entries = [("\(prefix)/data.pkl", w.p.b)]
        for (i, s) in w.storages.enumerated() { entries.append(("\(prefix)/data/\(i)", s)) }
        entries.append(("\(prefix)/version", Array("3\n".utf8)))
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(buildZip(entries)).write(to: url)
    }
}
