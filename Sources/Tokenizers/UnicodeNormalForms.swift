// UnicodeNormalForm: NFC, NFD, NFKC, NFKD of UTF-8 bytes, equal to Foundation's (ICU's) normalization of the whole
// text, with the Unicode quick check skipping what is already normalized.
// Contract: `normalize(b)` == Array(String(decoding: b).precomposedStringWithCanonicalMapping.utf8) (and the three
// other forms). The text is cut before each "boundary" scalar (ASCII, or a scalar that is its own normal form, has
// canonical combining class 0 and, for the composing forms, cannot compose with a preceding scalar: not a mark, not a
// Hangul vowel or trailing jamo), where normalization cannot reach across (UAX #15 "normalization boundaries").
// A piece between two cuts is copied when it passes the quick check (every scalar its own normal form; for the
// decomposing forms, non-starters already in canonical order; for the composing forms, no scalar that may compose
// backwards) and normalized by Foundation otherwise. Per-scalar facts come from Foundation once per scalar and form
// (kept in a table under a lock). Invalid UTF-8 goes to Foundation as before (U+FFFD).

import Foundation

final class UnicodeNormalForm: @unchecked Sendable {
    enum Form { case nfc, nfd, nfkc, nfkd }
    let form: Form
    private let composes: Bool
    private let lock = NSLock()
    /// Per BMP scalar: 0 not yet known; else knownBit | unstable/mayCompose bits | ccc.
    private var bmp = [UInt16](repeating: 0, count: 0x10000)
    private var astral: [UInt32: UInt16] = [:]
    private static let knownBit: UInt16 = 0x8000, unstableBit: UInt16 = 0x4000, mayComposeBit: UInt16 = 0x2000

    static let nfc = UnicodeNormalForm(.nfc), nfd = UnicodeNormalForm(.nfd)
    static let nfkc = UnicodeNormalForm(.nfkc), nfkd = UnicodeNormalForm(.nfkd)

    private init(_ f: Form) {
        form = f
        composes = f == .nfc || f == .nfkc
    }

    /// Foundation's normalization of one piece.
    func foundation(_ s: String) -> String {
        switch form {
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        }
    }

    private func info(_ v: UInt32) -> UInt16 {
        if v < 0x10000 { let x = bmp[Int(v)]; if x != 0 { return x } } else if let x = astral[v] { return x }
        var x = UnicodeNormalForm.knownBit
        if let u = Unicode.Scalar(v) {
            x |= UInt16(u.properties.canonicalCombiningClass.rawValue)
            let n = foundation(String(Character(u))).unicodeScalars
            if n.count != 1 || n.first != u { x |= UnicodeNormalForm.unstableBit }
            if composes && (u.properties.canonicalCombiningClass.rawValue != 0 || CharClass.isMark(u)
                            || (0x1161...0x1175).contains(v) || (0x11A8...0x11C2).contains(v)) { x |= UnicodeNormalForm.mayComposeBit }
        } else { x |= UnicodeNormalForm.unstableBit }
        if v < 0x10000 { bmp[Int(v)] = x } else { astral[v] = x }
        return x
    }

    func normalize(_ b: [UInt8]) -> [UInt8] {
        lock.lock(); defer { lock.unlock() }
        var out: [UInt8]?          // nil while everything so far is already normalized
        var copied = 0             // b[..<copied] is in out
        b.withUnsafeBufferPointer { q in
            guard let p = q.baseAddress else { return }
            let n = q.count
            var chunk = 0, ok = true
            var lastCCC: UInt16 = 0
            @inline(__always) func flush(_ end: Int) {
                if ok || end <= chunk { return }
                if out == nil { out = []; out!.reserveCapacity(n + 16) }
                out!.append(contentsOf: UnsafeBufferPointer(start: p + copied, count: chunk - copied))
                out!.append(contentsOf: foundation(String(decoding: UnsafeBufferPointer(start: p + chunk, count: end - chunk), as: UTF8.self)).utf8)
                copied = end
            }
            var i = 0
            while i < n {
                if p[i] < 0x80 { flush(i); chunk = i; ok = true; lastCCC = 0; i += 1; continue }
                let (v, l) = UTF8Util.decode(p, i, n)
                let x = v.map(info) ?? (UnicodeNormalForm.knownBit | UnicodeNormalForm.unstableBit)
                let ccc = x & 0xFF
                if x & (UnicodeNormalForm.unstableBit | UnicodeNormalForm.mayComposeBit) == 0 && ccc == 0 {
                    flush(i); chunk = i; ok = true; lastCCC = 0
                } else {
                    if x & (UnicodeNormalForm.unstableBit | UnicodeNormalForm.mayComposeBit) != 0 || ccc < lastCCC { ok = false }
                    lastCCC = ccc
                }
                i += l
            }
            flush(n)
        }
        guard var o = out else { return b }
        if copied < b.count { o.append(contentsOf: b[copied...]) }
        return o
    }
}
