// ByteLevel: GPT-2's reversible byte <-> printable-Unicode mapping (`bytes_to_unicode` in OpenAI's encoder.py
// and HF's ByteLevel pre-tokenizer/decoder). Contract: `byteToScalar` is a bijection from the 256 bytes onto
// 256 scalars; `bytes(fromTokenString:)` inverts it and returns nil when a scalar is outside the table.

public enum ByteLevel {
    /// byteToScalar[b] = code point representing byte b in vocab files.
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var isPrintable = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { isPrintable[b] = true }
        for b in 0xA1...0xAC { isPrintable[b] = true }
        for b in 0xAE...0xFF { isPrintable[b] = true }
        var n: UInt32 = 0
        for b in 0..<256 {
            if isPrintable[b] { table[b] = UInt32(b) } else { table[b] = 256 + n; n += 1 }
        }
        return table
    }()

    /// Inverse of byteToScalar over code points < 324 (-1 where unmapped).
    static let scalarToByte: [Int16] = {
        var inv = [Int16](repeating: -1, count: 324)
        for (b, s) in byteToScalar.enumerated() { inv[Int(s)] = Int16(b) }
        return inv
    }()

    /// Bytes spelled by a vocab-file token string, or nil if it uses a scalar outside the table.
    static func bytes(fromTokenString s: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.unicodeScalars.count)
        for u in s.unicodeScalars {
            let v = Int(u.value)
            guard v < scalarToByte.count, scalarToByte[v] >= 0 else { return nil }
            out.append(UInt8(scalarToByte[v]))
        }
        return out
    }

    /// Vocab-file spelling of raw bytes.
    public static func tokenString(fromBytes bytes: [UInt8]) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(byteToScalar[Int(b)])!) }
        return String(s)
    }
}
