// The pre-1.6 torch.save stream, built by hand: magic, protocol 1001, sys_info, the object (a
// strided tensor and a storage-view tensor sharing one root storage), the key list, then the data.

import Foundation
import XCTest
import TensorCore
@testable import Checkpoints

final class LegacyStreamTests: XCTestCase {
    static func legacyFile(dropTail: Int = 0) -> [UInt8] {
        var b = Bytes()
        b.raw([0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E])  // magic
        b.raw([0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E])                                                        // 1001
        b.raw([0x80, 0x02, 0x7D, 0x58]); b.u32(13); b.s("little_endian"); b.raw([0x88, 0x73, 0x2E])        // sys_info
        func tensor(_ view: (Int, Int)?, offset: Int, size: [Int], stride: [Int]) {
            b.s("ctorch._utils\n_rebuild_tensor_v2\n"); b.u8(0x28)
            b.u8(0x28); b.u8(0x58); b.u32(7); b.s("storage"); b.s("ctorch\nFloatStorage\n")
            b.u8(0x58); b.u32(6); b.s("140000"); b.u8(0x58); b.u32(3); b.s("cpu"); b.raw([0x4B, 8])
            if let (off, n) = view { b.u8(0x58); b.u32(4); b.s("view"); b.raw([0x4B, UInt8(off), 0x4B, UInt8(n), 0x87]) } else { b.u8(0x4E) }
            b.raw([0x74, 0x51, 0x4B, UInt8(offset)])
            b.u8(0x28); for s in size { b.raw([0x4B, UInt8(s)]) }; b.u8(0x74)
            b.u8(0x28); for s in stride { b.raw([0x4B, UInt8(s)]) }; b.u8(0x74)
            b.u8(0x89); b.s("ccollections\nOrderedDict\n"); b.raw([0x29, 0x52, 0x74, 0x52])
        }
        b.raw([0x80, 0x02, 0x7D])
        b.u8(0x58); b.u32(1); b.s("w"); tensor(nil, offset: 1, size: [2, 2], stride: [1, 2]); b.u8(0x73)
        b.u8(0x58); b.u32(1); b.s("v"); tensor((4, 3), offset: 1, size: [2], stride: [1]); b.u8(0x73)
        b.u8(0x2E)
        b.raw([0x80, 0x02, 0x5D, 0x58]); b.u32(6); b.s("140000"); b.raw([0x61, 0x2E])                     // keys
        b.u64(8); for f in (0..<8).map(Float.init) { withUnsafeBytes(of: f.bitPattern.littleEndian) { b.raw(Array($0)) } }
        return Array(b.b.dropLast(dropTail))
    }

    func testLegacyStreamWithViews() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let u = dir.appendingPathComponent("old.pt"); try Data(Self.legacyFile()).write(to: u)
        let root = try TorchFile.load(u)
        guard case .tensor(let w)? = root["w"], case .tensor(let v)? = root["v"] else { return XCTFail("\(root)") }
        XCTAssertEqual(try w.materialize().data, [1, 3, 2, 4])
        XCTAssertEqual(try v.materialize().data, [5, 6], "view starts at element 4, tensor offset 1")
        let cut = dir.appendingPathComponent("cut.pt"); try Data(Self.legacyFile(dropTail: 5)).write(to: cut)
        XCTAssertThrowsError(try TorchFile.load(cut)) { e in
            guard case .truncated(let f, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, cut.path)
        }
    }
}
