// GPT2PreTokenizer: hand-written equivalent of the GPT-2 split regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with Python-`regex`/Oniguruma semantics (alternatives tried in order, greedy, `\s+(?!\S)` backtracks so a
// whitespace run followed by a non-space gives its last character to the next piece).
// Contract: input is valid UTF-8 (as held by a Swift String); output is a list of byte ranges that tile the
// input exactly. Letter = general category L*, number = N*, whitespace = Unicode White_Space.

struct GPT2PreTokenizer {
    static let other: UInt8 = 0, letter: UInt8 = 1, number: UInt8 = 2, space: UInt8 = 3

    /// Class of each ASCII byte.
    private static let asciiClass: [UInt8] = {
        var t = [UInt8](repeating: other, count: 128)
        for b in UInt8(ascii: "a")...UInt8(ascii: "z") { t[Int(b)] = letter }
        for b in UInt8(ascii: "A")...UInt8(ascii: "Z") { t[Int(b)] = letter }
        for b in UInt8(ascii: "0")...UInt8(ascii: "9") { t[Int(b)] = number }
        for b in 0x09...0x0D { t[b] = space }
        t[0x20] = space
        return t
    }()

    static func classify(_ v: UInt32) -> UInt8 {
        if v < 128 { return asciiClass[Int(v)] }
        guard let u = Unicode.Scalar(v) else { return other }
        let p = u.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return other
        }
    }

    // Per-scalar scratch (reused between calls): class, ASCII byte (0xFF if not ASCII), byte offset.
    private var cls: [UInt8] = []
    private var asc: [UInt8] = []
    private var off: [Int] = []

    /// Appends (start, end) byte offsets (absolute, into `p`) of each piece of p[start..<end] to `out`.
    mutating func split(_ p: UnsafePointer<UInt8>, from start: Int, to end: Int, into out: inout [Int]) {
        cls.removeAll(keepingCapacity: true)
        asc.removeAll(keepingCapacity: true)
        off.removeAll(keepingCapacity: true)
        var i = start
        let table = GPT2PreTokenizer.asciiClass
        while i < end {
            let b0 = p[i]
            off.append(i)
            if b0 < 0x80 {
                cls.append(table[Int(b0)]); asc.append(b0); i += 1
                continue
            }
            var v: UInt32, len: Int
            if b0 < 0xE0 {
                len = 2; v = UInt32(b0 & 0x1F)
            } else if b0 < 0xF0 {
                len = 3; v = UInt32(b0 & 0x0F)
            } else {
                len = 4; v = UInt32(b0 & 0x07)
            }
            if i + len > end { len = end - i }  // defensive: truncated sequence stays one "other" scalar
            var k = 1
            while k < len { v = (v << 6) | UInt32(p[i + k] & 0x3F); k += 1 }
            cls.append(GPT2PreTokenizer.classify(v)); asc.append(0xFF); i += len
        }
        let n = cls.count
        off.append(end)
        let sp = GPT2PreTokenizer.space
        cls.withUnsafeBufferPointer { c in
            asc.withUnsafeBufferPointer { a in
                var i = 0
                while i < n {
                    let j = GPT2PreTokenizer.matchEnd(c, a, i, n, sp)
                    out.append(off[i]); out.append(off[j])
                    i = j
                }
            }
        }
    }

    /// Scalar index one past the regex match starting at scalar i.
    @inline(__always)
    private static func matchEnd(_ c: UnsafeBufferPointer<UInt8>, _ a: UnsafeBufferPointer<UInt8>,
                                 _ i: Int, _ n: Int, _ sp: UInt8) -> Int {
        let ch = a[i]
        // 1. 's|'t|'re|'ve|'m|'ll|'d
        if ch == UInt8(ascii: "'") && i + 1 < n {
            let c1 = a[i + 1]
            if c1 == UInt8(ascii: "s") || c1 == UInt8(ascii: "t") || c1 == UInt8(ascii: "m") || c1 == UInt8(ascii: "d") {
                return i + 2
            }
            if i + 2 < n {
                let c2 = a[i + 2]
                if (c1 == UInt8(ascii: "r") && c2 == UInt8(ascii: "e")) || (c1 == UInt8(ascii: "v") && c2 == UInt8(ascii: "e"))
                    || (c1 == UInt8(ascii: "l") && c2 == UInt8(ascii: "l")) {
                    return i + 3
                }
            }
        }
        // 2-4. ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: the optional space binds to a following non-space.
        var k = i
        if ch == 0x20 && i + 1 < n && c[i + 1] != sp { k = i + 1 }
        let kc = c[k]
        if kc != sp {
            var j = k + 1
            while j < n && c[j] == kc { j += 1 }
            return j
        }
        // 5-6. `\s+(?!\S)` then `\s+`.
        var e = i + 1
        while e < n && c[e] == sp { e += 1 }
        if e == n || e - i == 1 { return e }
        return e - 1
    }
}
