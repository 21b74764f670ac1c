// Shared helpers for the Checkpoints tests: fixture location (TURING_SHARED_FIXTURES, or
// TURING_SHARED_DATA/../fixtures/checkpoints, or <package root>/../shared/fixtures/checkpoints),
// temporary directories, bitwise tensor comparison, and tiny byte builders for hand-made files.

import Foundation
import XCTest
import TestSupport
import TensorCore
import Model
@testable import Checkpoints

enum Fixtures {
    static var root: URL { Paths.sharedCheckpoints }

    static func dir(_ name: String) throws -> URL {
        let u = root.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: u.path) else {
            throw XCTSkip("checkpoint fixture '\(name)' not found at \(u.path); set TURING_SHARED_FIXTURES to the fixtures/checkpoints directory")
        }
        return u
    }

    /// The HF reference, loaded once.
    nonisolated(unsafe) static var cachedReference: CanonicalCheckpoint?
    static func reference() throws -> CanonicalCheckpoint {
        if let r = cachedReference { return r }
        let r = try HFAdapter.load(try dir("gpt2-tiny"))
        cachedReference = r
        return r
    }
}

func tempDir() throws -> URL { try makeTempDirectory("ckpt") }

func bf16Rounded(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, data: t.data.map { bf16ToFloat(floatToBF16($0)) }) }

/// Assert `got` holds exactly the reference tensors (optionally bf16-rounded); returns the max error seen.
@discardableResult
func assertBitwiseEqual(_ got: CanonicalCheckpoint, _ ref: CanonicalCheckpoint, bf16: Bool = false,
                        file: StaticString = #filePath, line: UInt = #line) -> Float {
    XCTAssertEqual(Set(got.tensors.keys), Set(ref.tensors.keys), "tensor names differ", file: file, line: line)
    var worst: Float = 0
    for (name, r) in ref.tensors.sorted(by: { $0.key < $1.key }) {
        guard let g = got.tensors[name] else { continue }
        guard g.shape == r.shape else { XCTFail("\(name): shape \(g.shape) vs \(r.shape)", file: file, line: line); continue }
        let (m, n) = compare(g, bf16 ? bf16Rounded(r) : r)
        worst = max(worst, m)
        XCTAssertEqual(n, 0, "\(name): \(n) elements differ, max |Δ| \(m)", file: file, line: line)
    }
    return worst
}

struct Bytes {
    var b: [UInt8] = []
    mutating func u8(_ x: UInt8) { b.append(x) }
    mutating func u16(_ x: Int) { b += [UInt8(x & 0xFF), UInt8((x >> 8) & 0xFF)] }
    mutating func u32(_ x: Int) { for i in 0..<4 { b.append(UInt8((x >> (8 * i)) & 0xFF)) } }
    mutating func u64(_ x: Int) { for i in 0..<8 { b.append(UInt8((x >> (8 * i)) & 0xFF)) } }
    mutating func s(_ x: String) { b += Array(x.utf8) }
    mutating func raw(_ x: [UInt8]) { b += x }
}

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []; var it = s.makeIterator()
    while let a = it.next(), let c = it.next() { out.append(UInt8(String([a, c]), radix: 16)!) }
    return out
}

/// Rank-by-rank, name-by-name bitwise equality of two TP splits.
func assertSameShards(_ got: [[String: Tensor]], _ want: [[String: Tensor]], _ what: String,
                      file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, want.count, "\(what): rank count", file: file, line: line)
    for (r, (g, w)) in zip(got, want).enumerated() {
        XCTAssertEqual(Set(g.keys), Set(w.keys), "\(what) rank \(r): names", file: file, line: line)
        for (n, t) in w {
            guard let x = g[n] else { continue }
            XCTAssertEqual(x.shape, t.shape, "\(what) rank \(r) \(n): shape", file: file, line: line)
            if x.shape == t.shape {
                XCTAssertEqual(compare(x, t).bitDiffs, 0, "\(what) rank \(r) \(n): values", file: file, line: line)
            }
        }
    }
}
