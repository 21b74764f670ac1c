// Character classes as HF tokenizers (Rust `char` methods, the `regex` crate's \w and \s) and Oniguruma define
// them, on Unicode scalars. Contract: pure functions of the scalar (Swift's Unicode tables); the BMP answers come
// from a table of class bits built once from the same properties (the hot loops ask per scalar).

enum CharClass {
    static let whitespaceBit: UInt8 = 1, letterBit: UInt8 = 2, numberBit: UInt8 = 4, markBit: UInt8 = 8, wordBit: UInt8 = 16, punctuationBit: UInt8 = 32
    /// Class bits of every BMP scalar (surrogates: none).
    static let bmp: [UInt8] = (0..<0x10000).map { v -> UInt8 in
        guard let u = Unicode.Scalar(UInt32(v)) else { return 0 }
        var b: UInt8 = 0
        if Slow.isWhitespace(u) { b |= whitespaceBit }
        if Slow.isLetter(u) { b |= letterBit }
        if Slow.isNumber(u) { b |= numberBit }
        if Slow.isMark(u) { b |= markBit }
        if Slow.isWord(u) { b |= wordBit }
        if Slow.isPunctuation(u) { b |= punctuationBit }
        return b
    }
    @inline(__always) static func has(_ u: Unicode.Scalar, _ bit: UInt8, _ slow: (Unicode.Scalar) -> Bool) -> Bool {
        u.value < 0x10000 ? bmp[Int(u.value)] & bit != 0 : slow(u)
    }
    /// Whether `u` is in the class of `bit` (one of the bits above).
    static func test(_ u: Unicode.Scalar, _ bit: UInt8) -> Bool {
        if u.value < 0x10000 { return bmp[Int(u.value)] & bit != 0 }
        switch bit {
        case whitespaceBit: return Slow.isWhitespace(u)
        case letterBit: return Slow.isLetter(u)
        case numberBit: return Slow.isNumber(u)
        case markBit: return Slow.isMark(u)
        case wordBit: return Slow.isWord(u)
        default: return Slow.isPunctuation(u)
        }
    }
    @inline(__always) static func isWhitespace(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 { return u.value == 0x20 || (0x09...0x0D).contains(u.value) }
        return has(u, whitespaceBit, Slow.isWhitespace)
    }
    @inline(__always) static func isLetter(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 { return (0x41...0x5A).contains(u.value) || (0x61...0x7A).contains(u.value) }
        return has(u, letterBit, Slow.isLetter)
    }
    @inline(__always) static func isNumber(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 { return (0x30...0x39).contains(u.value) }
        return has(u, numberBit, Slow.isNumber)
    }
    @inline(__always) static func isMark(_ u: Unicode.Scalar) -> Bool { u.value < 0x80 ? false : has(u, markBit, Slow.isMark) }
    @inline(__always) static func isWord(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 {
            let v = u.value
            return (0x30...0x39).contains(v) || (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) || v == 0x5F
        }
        return has(u, wordBit, Slow.isWord)
    }
    @inline(__always) static func isPunctuation(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 {
            let v = u.value
            return (0x21...0x2F).contains(v) || (0x3A...0x40).contains(v) || (0x5B...0x60).contains(v) || (0x7B...0x7E).contains(v)
        }
        return has(u, punctuationBit, Slow.isPunctuation)
    }
}

/// The definitions, from the scalar properties.
private enum Slow {
    /// Rust `char::is_whitespace` / regex `\s` / Oniguruma `\s`: the White_Space property.
    @inline(__always) static func isWhitespace(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 { return u.value == 0x20 || (0x09...0x0D).contains(u.value) }
        return u.properties.isWhitespace
    }
    @inline(__always) static func isLetter(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 { return (0x41...0x5A).contains(u.value) || (0x61...0x7A).contains(u.value) }
        switch u.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }
    /// \p{N} and Rust `char::is_numeric`: Nd, Nl, No.
    @inline(__always) static func isNumber(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 { return (0x30...0x39).contains(u.value) }
        switch u.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
    @inline(__always) static func isMark(_ u: Unicode.Scalar) -> Bool {
        switch u.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }
    /// regex crate `\w`: Alphabetic, M, Nd, Pc, Join_Control.
    static func isWord(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 {
            let v = u.value
            return (0x30...0x39).contains(v) || (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) || v == 0x5F
        }
        let p = u.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
    /// HF `is_punc`: ASCII punctuation or Unicode P*.
    static func isPunctuation(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 {
            let v = u.value
            return (0x21...0x2F).contains(v) || (0x3A...0x40).contains(v) || (0x5B...0x60).contains(v) || (0x7B...0x7E).contains(v)
        }
        switch u.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }
}
