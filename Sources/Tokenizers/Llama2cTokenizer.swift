// Llama2cTokenizer: karpathy/llama2.c `tokenizer.bin` (int32 max_token_length, then per token: float32 score,
// int32 byte length, bytes; all little-endian) with llama2.c's SentencePiece-style `encode` and `decode`.
// Contract: encode = [BOS] + dummy-prefix " " (text non-empty; skipped if the vocab lacks " ") + per-UTF-8-
// character lookup (else byte fallback id = byte + 3) + repeated merge of the adjacent pair whose concatenation
// has the highest score (leftmost on ties; BOS takes part, as in run.c; done with a heap, see mergeGreedy) +
// [EOS]. decode = llama2.c `decode` per token (leading space stripped after BOS, `<0xXX>` pieces become raw
// bytes); BOS/EOS themselves produce no text.

import Foundation

public final class Llama2cTokenizer: Tokenizer, @unchecked Sendable {
    public let vocabSize: Int
    public let maxTokenLength: Int
    public let bosToken: Int? = 1
    public let eosToken: Int? = 2
    /// Whether `encode` prepends BOS / appends EOS (run.c uses bos=1, eos=0).
    public var addBOS: Bool
    public var addEOS: Bool

    public let scores: [Float]
    private let pieces: [[UInt8]]
    private let lookup: [[UInt8]: Int]   // byte string -> lowest id with that piece

    public convenience init(path: String, vocabSize: Int? = nil, addBOS: Bool = true, addEOS: Bool = false) throws {
        try self.init(data: readTokenizerFile(path), vocabSize: vocabSize, addBOS: addBOS, addEOS: addEOS)
    }

    /// `vocabSize` comes from the model header in llama2.c; nil reads tokens until the end of the data.
    public init(data: Data, vocabSize: Int? = nil, addBOS: Bool = true, addEOS: Bool = false) throws {
        let bytes = [UInt8](data)
        var pos = 0
        func int32() throws -> Int32 {
            guard pos + 4 <= bytes.count else { throw TokenizerError.invalidFormat("tokenizer.bin truncated at byte \(pos)") }
            let v = UInt32(bytes[pos]) | UInt32(bytes[pos + 1]) << 8 | UInt32(bytes[pos + 2]) << 16 | UInt32(bytes[pos + 3]) << 24
            pos += 4
            return Int32(bitPattern: v)
        }
        let maxLen = Int(try int32())
        guard maxLen > 0 else { throw TokenizerError.invalidFormat("max_token_length \(maxLen)") }
        var scores: [Float] = [], pieces: [[UInt8]] = []
        while vocabSize.map({ pieces.count < $0 }) ?? (pos < bytes.count) {
            let score = Float(bitPattern: UInt32(bitPattern: try int32()))
            let len = Int(try int32())
            guard len >= 0, pos + len <= bytes.count else {
                throw TokenizerError.invalidFormat("token \(pieces.count): bad length \(len)")
            }
            scores.append(score)
            pieces.append(Array(bytes[pos..<(pos + len)]))
            pos += len
        }
        guard pieces.count > 3 else { throw TokenizerError.invalidFormat("only \(pieces.count) tokens") }
        var lookup: [[UInt8]: Int] = [:]
        for (i, p) in pieces.enumerated() where lookup[p] == nil { lookup[p] = i }
        self.maxTokenLength = maxLen
        self.vocabSize = pieces.count
        self.scores = scores
        self.pieces = pieces
        self.lookup = lookup
        self.addBOS = addBOS
        self.addEOS = addEOS
    }

    public func encode(_ text: String) -> [Int] { encode(text, bos: addBOS, eos: addEOS) }

    public func encode(_ text: String, bos: Bool, eos: Bool) -> [Int] {
        var tokens = initialTokens(text, bos: bos)
        mergeGreedy(&tokens)
        if eos { tokens.append(2) }
        return tokens
    }

    /// [BOS] + dummy prefix + per-character ids (byte fallback), before any merge.
    private func initialTokens(_ text: String, bos: Bool) -> [Int] {
        var tokens: [Int] = []
        if bos { tokens.append(1) }
        let b = Array(text.utf8)
        if !b.isEmpty, let dummy = lookup[[0x20]] { tokens.append(dummy) }
        var i = 0
        while i < b.count {
            // A UTF-8 character: the lead byte plus up to 3 continuation bytes (as llama2.c groups them).
            var j = i + 1
            while j < b.count && b[j] & 0xC0 == 0x80 && j - i < 4 { j += 1 }
            let ch = Array(b[i..<j])
            if let id = lookup[ch] { tokens.append(id) } else { for c in ch { tokens.append(Int(c) + 3) } }
            i = j
        }
        return tokens
    }

    /// Id whose piece is piece(a) + piece(b), or -1.
    private func pairId(_ a: Int, _ b: Int) -> Int {
        lookup[piece(a) + piece(b)] ?? -1
    }

    /// llama2.c's loop "merge the adjacent pair with the best score (> -1e10), leftmost on ties, until none",
    /// run with a max-heap over (score, position) and a linked list so it is O(n log n) instead of O(n^2).
    /// A popped entry is used only if its pair still exists; every live pair is always in the heap, so each
    /// step picks the same pair as the quadratic scan.
    private func mergeGreedy(_ tokens: inout [Int]) {
        let n = tokens.count
        if n < 2 { return }
        var next = Array(1...n); next[n - 1] = -1
        var prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var pairCache: [Int: Int] = [:]
        func pair(_ a: Int, _ b: Int) -> Int {
            let key = (a << 32) | b
            if let v = pairCache[key] { return v }
            let v = pairId(a, b)
            pairCache[key] = v
            return v
        }
        struct Entry { var score: Float; var pos: Int; var id: Int }
        var heap: [Entry] = []
        func before(_ x: Entry, _ y: Entry) -> Bool { x.score > y.score || (x.score == y.score && x.pos < y.pos) }
        func push(_ e: Entry) {
            heap.append(e)
            var k = heap.count - 1
            while k > 0 {
                let p = (k - 1) / 2
                if !before(heap[k], heap[p]) { break }
                heap.swapAt(k, p); k = p
            }
        }
        func pop() -> Entry? {
            guard !heap.isEmpty else { return nil }
            heap.swapAt(0, heap.count - 1)
            let top = heap.removeLast()
            var k = 0
            while true {
                let l = 2 * k + 1, r = l + 1
                var m = k
                if l < heap.count && before(heap[l], heap[m]) { m = l }
                if r < heap.count && before(heap[r], heap[m]) { m = r }
                if m == k { break }
                heap.swapAt(k, m); k = m
            }
            return top
        }
        func consider(_ pos: Int) {
            let r = next[pos]
            guard r >= 0 else { return }
            let id = pair(tokens[pos], tokens[r])
            if id >= 0 && scores[id] > -1e10 { push(Entry(score: scores[id], pos: pos, id: id)) }
        }
        for i in 0..<(n - 1) { consider(i) }
        while let e = pop() {
            let r = next[e.pos]
            guard alive[e.pos], r >= 0, pair(tokens[e.pos], tokens[r]) == e.id else { continue }
            tokens[e.pos] = e.id
            alive[r] = false
            next[e.pos] = next[r]
            if next[r] >= 0 { prev[next[r]] = e.pos }
            if prev[e.pos] >= 0 { consider(prev[e.pos]) }
            consider(e.pos)
        }
        var out: [Int] = []
        out.reserveCapacity(n)
        var i = 0
        while i >= 0 { out.append(tokens[i]); i = next[i] }
        tokens = out
    }

    /// The literal O(n^2) loop from run.c, kept as an oracle for tests.
    func encodeQuadratic(_ text: String, bos: Bool, eos: Bool) -> [Int] {
        var tokens = initialTokens(text, bos: bos)
        while true {
            var bestScore: Float = -1e10, bestId = -1, bestIdx = -1
            var k = 0
            while k + 1 < tokens.count {
                let id = pairId(tokens[k], tokens[k + 1])
                if id >= 0, scores[id] > bestScore { bestScore = scores[id]; bestId = id; bestIdx = k }
                k += 1
            }
            if bestIdx < 0 { break }
            tokens[bestIdx] = bestId
            tokens.remove(at: bestIdx + 1)
        }
        if eos { tokens.append(2) }
        return tokens
    }

    private func piece(_ id: Int) -> [UInt8] { id >= 0 && id < pieces.count ? pieces[id] : [] }

    /// llama2.c `decode(prev_token, token)`: the bytes printed for `token` following `prev`.
    public func decodePiece(prev: Int, token: Int) -> [UInt8] {
        guard token >= 0 && token < pieces.count else { return [] }
        var p = pieces[token][...]
        if prev == 1, p.first == 0x20 { p = p.dropFirst() }
        if let byte = Llama2cTokenizer.parseBytePiece(p) { return [byte] }
        return Array(p)
    }

    /// `sscanf(piece, "<0x%02hhX>", &b) == 1`: "<0x" followed by one or two hex digits.
    static func parseBytePiece(_ p: ArraySlice<UInt8>) -> UInt8? {
        let a = Array(p)
        guard a.count >= 4, a[0] == UInt8(ascii: "<"), a[1] == UInt8(ascii: "0"), a[2] == UInt8(ascii: "x") else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        guard let h = hex(a[3]) else { return nil }
        if a.count >= 5, let l = hex(a[4]) { return h << 4 | l }
        return h
    }

    public func decodeBytes(_ ids: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        var prev = -1
        for id in ids {
            if id != 1 && id != 2 { out.append(contentsOf: decodePiece(prev: prev, token: id)) }
            prev = id
        }
        return out
    }

    public func tokenString(_ id: Int) -> String? {
        guard id >= 0 && id < pieces.count else { return nil }
        return String(decoding: pieces[id], as: UTF8.self)
    }

    public func tokenID(_ token: String) -> Int? { lookup[Array(token.utf8)] }
}
