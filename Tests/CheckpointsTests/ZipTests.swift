// Zip reader tests: a hand-built ZIP64 torch archive (64-bit central directory, saturated sizes,
// local extra field longer than the central one), bad and truncated files.

import Foundation
import XCTest
import TensorCore
@testable import Checkpoints

final class ZipTests: XCTestCase {
    /// A torch-style archive with ZIP64 records holding a column-major [2, 2] view at offset 1.
    static func zip64TorchArchive() -> [UInt8] {
        var pkl = Bytes()
        pkl.raw([0x80, 0x02]); pkl.s("ctorch._utils\n_rebuild_tensor_v2\n"); pkl.u8(0x28)
        pkl.u8(0x28); pkl.u8(0x58); pkl.u32(7); pkl.s("storage"); pkl.s("ctorch\nFloatStorage\n")
        pkl.u8(0x58); pkl.u32(1); pkl.s("0"); pkl.u8(0x58); pkl.u32(3); pkl.s("cpu"); pkl.raw([0x4B, 6, 0x74, 0x51])
        pkl.raw([0x4B, 1, 0x4B, 2, 0x4B, 2, 0x86, 0x4B, 1, 0x4B, 2, 0x86, 0x89]); pkl.s("ccollections\nOrderedDict\n")
        pkl.raw([0x29, 0x52, 0x74, 0x52, 0x2E])
        let storage: [UInt8] = [0, 1, 2, 3, 4, 5].flatMap { (f: Float) -> [UInt8] in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }
        return buildZip([("archive/data.pkl", pkl.b), ("archive/data/0", storage), ("archive/version", Array("3\n".utf8))], zip64: true)
    }

    func testZip64TorchArchiveWithStridedTensor() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pt")
        try Data(Self.zip64TorchArchive()).write(to: url)
        let f = try TorchFile(url: url)
        XCTAssertEqual(f.prefix, "archive")
        XCTAssertEqual(f.archive.entries.count, 3)
        let r = try f.archive.payloadRange(of: f.archive.entry(named: "archive/data/0")!)
        XCTAssertEqual(r.lowerBound % 64, 0, "payload located from the local header")
        guard case .tensor(let t) = try f.root() else { return XCTFail("not a tensor") }
        XCTAssertFalse(t.isContiguous)
        XCTAssertEqual(try t.materialize().data, [1, 3, 2, 4])
    }

    func testBadZipNamesTheFile() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("garbage.pt"); try Data("hello, not a zip at all".utf8).write(to: a)
        XCTAssertThrowsError(try TorchFile(url: a)) { e in
            guard case .badZip(let f, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, a.path)
        }
        var z = Self.zip64TorchArchive(); z.replaceSubrange((z.count - 22)..<(z.count - 18), with: [0, 0, 0, 0])  // break EOCD
        let b = dir.appendingPathComponent("noeocd.pt"); try Data(z).write(to: b)
        XCTAssertThrowsError(try TorchFile(url: b)) { e in XCTAssertNotNil(e as? CheckpointError, "\(e)") }
        let leg = dir.appendingPathComponent("legacy.pt"); try Data(LegacyStreamTests.legacyFile()).write(to: leg)
        XCTAssertThrowsError(try TorchFile(url: leg)) { e in
            XCTAssertEqual(e as? CheckpointError, .unsupportedLegacyFormat(file: leg.path), "the zip reader refuses; TorchFile.load dispatches")
        }
    }

    func testTruncatedFixtureFileIsTyped() throws {
        let src = try Fixtures.dir("megatron-legacy-tp1-pp1").appendingPathComponent("release/mp_rank_00/model_optim_rng.pt")
        let data = try Data(contentsOf: src)
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        for cut in [data.count / 2, data.count - 10, 100] {
            let u = dir.appendingPathComponent("cut\(cut).pt")
            try data.prefix(cut).write(to: u)
            XCTAssertThrowsError(try TorchFile.load(u)) { e in
                guard let ce = e as? CheckpointError else { return XCTFail("untyped error \(e)") }
                guard case .truncated(let f, _) = ce else { return XCTFail("expected truncated, got \(ce)") }
                XCTAssertEqual(f, u.path)
            }
        }
    }
}

/// Corrupted archives must give typed errors (or decode), never trap.
final class CorruptionFuzzTests: XCTestCase {
    func testMutatedArchivesNeverCrash() throws {
        let src = try Fixtures.dir("megatron-legacy-tp2-pp1").appendingPathComponent("release/mp_rank_01/model_optim_rng.pt")
        let original = [UInt8](try Data(contentsOf: src))
        let f = try TorchFile(url: src)
        let pkl = try f.archive.payloadRange(of: f.archive.entry(named: f.prefix + "/data.pkl")!)
        let cdStart = original.count - 22 - 64 * 40   // rough tail region holding the central directory
        var state: UInt64 = 12345
        func rnd(_ n: Int) -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int((state >> 33) % UInt64(n)) }
        var typed = 0, decoded = 0
        let iterations = Int(ProcessInfo.processInfo.environment["TURING_FUZZ_ITERATIONS"] ?? "") ?? 400
        for i in 0..<iterations {
            var b = original
            let region = i % 2 == 0 ? pkl : max(0, cdStart)..<original.count
            for _ in 0..<(1 + rnd(4)) { b[region.lowerBound + rnd(region.count)] = UInt8(rnd(256)) }
            if i % 7 == 0 { b = Array(b.prefix(rnd(b.count))) }
            do {
                let root = try TorchFile(data: Data(b), path: "fuzz\(i).pt").root()
                for (n, t) in root.flattenTensors() { _ = try? t.materialize(name: n) }
                decoded += 1
            } catch is CheckpointError { typed += 1 } catch { XCTFail("untyped error \(error)") }
        }
        XCTAssertGreaterThan(typed, 50)
        print("fuzz: \(typed) typed errors, \(decoded) decoded")
    }
}
