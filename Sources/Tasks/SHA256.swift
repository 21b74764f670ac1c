// SHA256: FIPS 180-4 SHA-256, streaming, in plain Swift, for pinning downloaded task data.
//
// Contract: `update` may be called with pieces of any size; `finalize` pads and returns the 32-byte digest
// (the value is then spent: call `finalize` once). `SHA256.hex(_:)` hashes bytes, `SHA256.hex(file:)` a file
// read in 1 MiB pieces. Checked against FIPS 180-4's examples and hashlib (Tests/TasksTests/SHA256Tests).
// Not here: HMAC or any other hash. (CryptoKit is Apple-only; swift-crypto would build BoringSSL for one
// function.)

import Foundation

public struct SHA256 {
    private var h: [UInt32] = [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a,
                               0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19]
    private var block = [UInt8](repeating: 0, count: 64)   // bytes not yet compressed
    private var used = 0                                     // how many of `block` hold data
    private var length: UInt64 = 0                           // message bytes so far

    public init() {}

    public mutating func update(_ data: Data) {
        data.withUnsafeBytes { update(UnsafeRawBufferPointer($0)) }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        length &+= UInt64(bytes.count)
        var i = 0
        while i < bytes.count {
            if used == 0 && bytes.count - i >= 64 {           // whole blocks straight from the input
                compress(UnsafeRawBufferPointer(rebasing: bytes[i..<i + 64])); i += 64; continue
            }
            let n = min(64 - used, bytes.count - i)
            for j in 0..<n { block[used + j] = bytes[i + j] }
            used += n; i += n
            if used == 64 { let b = block; b.withUnsafeBytes { compress($0) }; used = 0 }
        }
    }

    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        var pad: [UInt8] = [0x80]
        let afterOne = (used + 1) % 64
        pad += [UInt8](repeating: 0, count: afterOne <= 56 ? 56 - afterOne : 120 - afterOne)
        for s in stride(from: 56, through: 0, by: -8) { pad.append(UInt8(truncatingIfNeeded: bits >> UInt64(s))) }
        let keep = length
        pad.withUnsafeBytes { update($0) }
        length = keep
        precondition(used == 0)
        var out: [UInt8] = []
        for w in h { out += [UInt8(w >> 24), UInt8(truncatingIfNeeded: w >> 16), UInt8(truncatingIfNeeded: w >> 8), UInt8(truncatingIfNeeded: w)] }
        return out
    }

    public static func hex(_ data: Data) -> String {
        var s = SHA256(); s.update(data)
        return s.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The file's digest as lowercase hex, read in 1 MiB pieces (any size of file).
    public static func hex(file path: String) throws -> String {
        guard let fh = FileHandle(forReadingAtPath: path) else { throw TaskError("\(path): cannot open to hash") }
        defer { try? fh.close() }
        var s = SHA256()
        while true {
            let piece = try fh.read(upToCount: 1 << 20) ?? Data()
            if piece.isEmpty { break }
            s.update(piece)
        }
        return s.finalize().map { String(format: "%02x", $0) }.joined()
    }

    // MARK: - The compression function (FIPS 180-4 section 6.2.2)

    private static let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    @inline(__always) private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    /// One 64-byte block `m` into the state.
    private mutating func compress(_ m: UnsafeRawBufferPointer) {
        var w = [UInt32](repeating: 0, count: 64)
        for t in 0..<16 {
            w[t] = UInt32(m[4 * t]) << 24 | UInt32(m[4 * t + 1]) << 16 | UInt32(m[4 * t + 2]) << 8 | UInt32(m[4 * t + 3])
        }
        for t in 16..<64 {
            let s0 = Self.rotr(w[t - 15], 7) ^ Self.rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
            let s1 = Self.rotr(w[t - 2], 17) ^ Self.rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
        }
        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
        for t in 0..<64 {
            let s1 = Self.rotr(e, 6) ^ Self.rotr(e, 11) ^ Self.rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ Self.k[t] &+ w[t]
            let s0 = Self.rotr(a, 2) ^ Self.rotr(a, 13) ^ Self.rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
    }
}
