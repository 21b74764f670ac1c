// UTF8StreamDecoder: turns a stream of byte chunks (e.g. one token at a time) into text without ever
// splitting a UTF-8 sequence. Contract: `push` returns the longest decodable prefix seen so far and keeps an
// incomplete trailing sequence (at most 3 bytes) for the next call; `finish` flushes it (invalid -> U+FFFD).

public struct UTF8StreamDecoder {
    private var pending: [UInt8] = []

    public init() {}

    public mutating func push(_ bytes: [UInt8]) -> String {
        pending.append(contentsOf: bytes)
        let keep = UTF8StreamDecoder.incompleteSuffixLength(pending)
        let ready = pending.count - keep
        if ready == 0 { return "" }
        let s = String(decoding: pending[0..<ready], as: UTF8.self)
        pending.removeFirst(ready)
        return s
    }

    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of a trailing, possibly-valid but incomplete UTF-8 sequence (0 if the buffer ends cleanly).
    static func incompleteSuffixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        var k = 1
        while k <= 3 && k <= n {
            let c = b[n - k]
            if c & 0xC0 != 0x80 {  // a lead byte (or ASCII)
                let need: Int
                if c < 0x80 { need = 1 } else if c >= 0xF0 && c <= 0xF4 { need = 4 }
                else if c >= 0xE0 { need = 3 } else if c >= 0xC2 { need = 2 } else { need = 1 }
                return need > k ? k : 0
            }
            k += 1
        }
        return 0
    }
}
