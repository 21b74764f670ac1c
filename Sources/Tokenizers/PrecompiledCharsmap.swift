// PrecompiledCharsmap: sentencepiece's precompiled normalization rules (normalizer_spec.precompiled_charsmap, also
// HF's `Precompiled` normalizer): uint32 LE trie byte size, a darts-clone double array of uint32 units, then a pool
// of NUL-terminated replacement strings.
// Contract: the blob is untrusted: sizes, trie indices and pool offsets are checked at every step (a bad index ends
// the search; a pool offset without a terminating NUL is refused at load by scanning every reachable value lazily:
// `replacement` returns nil for it). Search results are (value, matched length) of every key that prefixes the input.

struct PrecompiledCharsmap: Sendable {
    private let units: [UInt32]
    private let pool: [UInt8]
    /// [128] firstMatch of each ASCII byte alone (nil: the byte is kept).
    private(set) var asciiAlone: [ArraySlice<UInt8>?] = []

    init?(_ blob: [UInt8]) {
        guard blob.count >= 4 else { return nil }
        let size = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard size % 4 == 0, size <= blob.count - 4, size >= 4 else { return nil }
        var u = [UInt32](); u.reserveCapacity(size / 4)
        var i = 4
        while i < 4 + size {
            u.append(UInt32(blob[i]) | UInt32(blob[i + 1]) << 8 | UInt32(blob[i + 2]) << 16 | UInt32(blob[i + 3]) << 24)
            i += 4
        }
        units = u
        pool = Array(blob[(4 + size)...])
        var t: [ArraySlice<UInt8>?] = []
        for b in UInt8(0)..<128 { t.append(withUnsafePointer(to: b) { firstMatch($0, 1) }) }
        asciiAlone = t
    }

    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
    @inline(__always) private static func label(_ u: UInt32) -> UInt32 { u & ((1 << 31) | 0xFF) }
    @inline(__always) private static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) private static func value(_ u: UInt32) -> Int { Int(u & ((1 << 31) - 1)) }

    /// darts-clone commonPrefixSearch over p[0..<n]: calls `found(value, length)` for each matching key, shortest first.
    @inline(__always)
    func commonPrefixSearch(_ p: UnsafePointer<UInt8>, _ n: Int, _ found: (Int, Int) -> Void) {
        var pos = 0
        guard !units.isEmpty else { return }
        pos ^= PrecompiledCharsmap.offset(units[0])
        for i in 0..<n {
            let c = Int(p[i])
            pos ^= c
            guard pos >= 0, pos < units.count else { return }
            let u = units[pos]
            if PrecompiledCharsmap.label(u) != UInt32(c) { return }
            pos ^= PrecompiledCharsmap.offset(u)
            guard pos >= 0, pos < units.count else { return }
            if PrecompiledCharsmap.hasLeaf(u) { found(PrecompiledCharsmap.value(units[pos]), i + 1) }
        }
    }

    /// Whether some key starts with byte `b` (a byte no key starts with normalizes to itself).
    func hasRule(startingWith b: UInt8) -> Bool {
        // as the first step of commonPrefixSearch: the root has an edge labelled b
        guard !units.isEmpty else { return false }
        let pos = PrecompiledCharsmap.offset(units[0]) ^ Int(b)
        return pos >= 0 && pos < units.count && PrecompiledCharsmap.label(units[pos]) == UInt32(b)
    }

    /// The NUL-terminated replacement at pool offset `v`, or nil when it is out of range or unterminated.
    func replacement(_ v: Int) -> ArraySlice<UInt8>? {
        guard v >= 0, v < pool.count else { return nil }
        var e = v
        while e < pool.count && pool[e] != 0 { e += 1 }
        guard e < pool.count else { return nil }
        return pool[v..<e]
    }

    /// sentencepiece's rule: the longest matching key at p (length, replacement), or nil.
    func longestMatch(_ p: UnsafePointer<UInt8>, _ n: Int) -> (Int, ArraySlice<UInt8>)? {
        var bestLen = 0, bestVal = 0
        commonPrefixSearch(p, n) { v, l in if bestLen == 0 || l > bestLen { bestLen = l; bestVal = v } }
        guard bestLen > 0, let r = replacement(bestVal) else { return nil }
        return (bestLen, r)
    }

    /// spm_precompiled's rule (HF `Precompiled`): the first (shortest) matching key's replacement, or nil.
    func firstMatch(_ p: UnsafePointer<UInt8>, _ n: Int) -> ArraySlice<UInt8>? {
        var first: Int?
        commonPrefixSearch(p, n) { v, _ in if first == nil { first = v } }
        return first.flatMap { replacement($0) }
    }
}

/// UTF-8 helpers shared by the tokenizers.
enum UTF8Util {
    /// sentencepiece's IsValidDecodeUTF8: (scalar, length) of the character at p[i], or (nil, 1) for a malformed byte.
    @inline(__always)
    static func decode(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (UInt32?, Int) {
        let b0 = p[i]
        if b0 < 0x80 { return (UInt32(b0), 1) }
        let len: Int, minV: UInt32
        var v: UInt32
        if b0 & 0xE0 == 0xC0 { len = 2; v = UInt32(b0 & 0x1F); minV = 0x80 }
        else if b0 & 0xF0 == 0xE0 { len = 3; v = UInt32(b0 & 0x0F); minV = 0x800 }
        else if b0 & 0xF8 == 0xF0 { len = 4; v = UInt32(b0 & 0x07); minV = 0x10000 }
        else { return (nil, 1) }
        guard i + len <= n else { return (nil, 1) }
        for k in 1..<len {
            let c = p[i + k]
            guard c & 0xC0 == 0x80 else { return (nil, 1) }
            v = (v << 6) | UInt32(c & 0x3F)
        }
        guard v >= minV, v <= 0x10FFFF, !(0xD800...0xDFFF).contains(v) else { return (nil, 1) }
        return (v, len)
    }

    /// Length of the UTF-8 sequence led by b (1 for continuation/invalid bytes), as sentencepiece's OneCharLen.
    @inline(__always)
    static func charLen(_ b: UInt8) -> Int {
        if b < 0x80 { return 1 }
        if b & 0xE0 == 0xC0 { return 2 }
        if b & 0xF0 == 0xE0 { return 3 }
        if b & 0xF8 == 0xF0 { return 4 }
        return 1
    }

    /// Bytes decoded with one U+FFFD per malformed byte (sentencepiece's decoder rule).
    static func appendLossy(_ bytes: [UInt8], into out: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { b in
            guard let p = b.baseAddress else { return }
            var i = 0
            while i < b.count {
                let (v, l) = decode(p, i, b.count)
                if v == nil { out.append(contentsOf: [0xEF, 0xBF, 0xBD]) } else { out.append(contentsOf: b[i..<(i + l)]) }
                i += l
            }
        }
    }
}
