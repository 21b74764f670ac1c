// GPT2Tokenizer: byte-level BPE producing the same ids as HF `GPT2TokenizerFast` (tokenizers' BPE model +
// ByteLevel pre-tokenizer/decoder, add_prefix_space=false by default).
// Contract: encode = split out added tokens (e.g. `<|endoftext|>`, leftmost-longest) -> GPT-2 regex split
// (GPT2PreTokenizer) -> per-word BPE over UTF-8 bytes (BPEMerger, cached per word). decode concatenates each
// id's bytes, so decode(encode(s)) == s for every String. Thread-safe (one lock around the scratch state).
// Loading lives in GPT2Tokenizer+Loading.swift.

import Foundation

public final class GPT2Tokenizer: Tokenizer, @unchecked Sendable {
    public struct AddedToken: Equatable, Sendable {
        public var content: String
        public var id: Int
        public var special: Bool
        /// Absorb whitespace to the left / right of a match (HF AddedToken lstrip / rstrip).
        public var lstrip: Bool
        public var rstrip: Bool
        public init(content: String, id: Int, special: Bool = true, lstrip: Bool = false, rstrip: Bool = false) {
            self.content = content; self.id = id; self.special = special; self.lstrip = lstrip; self.rstrip = rstrip
        }
    }

    public let vocabSize: Int
    public let eosToken: Int?
    public let bosToken: Int?
    public let addedTokens: [AddedToken]
    public let addPrefixSpace: Bool
    public let ignoreMerges: Bool
    /// Number of merge rules in effect.
    public var mergeCount: Int { merges.count }

    // Immutable model.
    private let merges: PairMap
    private let vocabByBytes: ByteStringMap        // byte-level vocab: bytes -> id
    private let byteToId: [Int32]                  // id of each single-byte token (-1 if absent)
    private let idBytesStart: [Int]                // bytes of id i = idBytes[idBytesStart[i] ..< idBytesStart[i+1]]
    private let idBytes: [UInt8]
    private let idKnown: [Bool]
    private let idSpelling: [String?]
    private let addedBytes: [[UInt8]]              // addedTokens' UTF-8, sorted longest first (same order)
    private let addedFirstByte: [Bool]

    // Mutable scratch, guarded by `lock`.
    private let lock = NSLock()
    private let scratch = Scratch()
    /// Words longer than this (bytes) are not cached; the cache is cleared when it holds more than maxCacheWords.
    static let maxCachedWordBytes = 256
    static let maxCacheWords = 200_000

    private final class Scratch {
        var pre = GPT2PreTokenizer()
        var merger = BPEMerger()
        var cache = ByteStringMap(capacity: 4096)
        var ranges: [Int] = []
        var initial: [Int32] = []
        var word: [Int32] = []
        var prefixed: [UInt8] = []
    }

    /// Core initializer. `vocab` maps vocab-file spellings (byte-level Unicode) to ids; `merges` are pairs of
    /// spellings in rank order. Spellings outside the byte-level alphabet are taken as literal UTF-8.
    public init(vocab: [String: Int], merges mergeList: [(String, String)], addedTokens: [AddedToken] = [],
                addPrefixSpace: Bool = false, ignoreMerges: Bool = false,
                eosToken: Int? = nil, bosToken: Int? = nil) throws {
        func bytesOf(_ s: String) -> [UInt8] { ByteLevel.bytes(fromTokenString: s) ?? Array(s.utf8) }
        var maxId = -1
        for (tok, id) in vocab {
            guard id >= 0, id < Int(Int32.max) else { throw TokenizerError.invalidFormat("negative or huge id \(id) for \(tok)") }
            maxId = max(maxId, id)
        }
        for a in addedTokens {
            guard a.id >= 0, a.id < Int(Int32.max) else { throw TokenizerError.invalidFormat("bad added-token id \(a.id)") }
            maxId = max(maxId, a.id)
        }
        let size = maxId + 1
        var perId = [[UInt8]?](repeating: nil, count: size)
        var spelling = [String?](repeating: nil, count: size)
        var byBytes = ByteStringMap(capacity: vocab.count)
        // Deterministic insertion order (lowest id first) so duplicate byte spellings resolve the same way.
        for (tok, id) in vocab.sorted(by: { $0.value < $1.value }) {
            let b = bytesOf(tok)
            perId[id] = b; spelling[id] = tok
            byBytes.insert(b, value: Int32(id))
        }
        for a in addedTokens { perId[a.id] = Array(a.content.utf8); spelling[a.id] = a.content }

        var pairMap = PairMap(capacity: max(16, mergeList.count))
        for (rank, (a, b)) in mergeList.enumerated() {
            let ba = bytesOf(a), bb = bytesOf(b)
            guard let ia = byBytes.find(ba) else { throw TokenizerError.tokenNotInVocab(a) }
            guard let ib = byBytes.find(bb) else { throw TokenizerError.tokenNotInVocab(b) }
            guard let inew = byBytes.find(ba + bb) else { throw TokenizerError.tokenNotInVocab(a + b) }
            pairMap.insert(ia, ib, rank: Int32(rank), id: inew)
        }

        var b2i = [Int32](repeating: -1, count: 256)
        for b in 0..<256 { if let id = byBytes.find([UInt8(b)]) { b2i[b] = id } }

        var starts = [Int](); starts.reserveCapacity(size + 1)
        var arena = [UInt8](); var known = [Bool](repeating: false, count: size)
        for i in 0..<size {
            starts.append(arena.count)
            if let b = perId[i] { arena.append(contentsOf: b); known[i] = true }
        }
        starts.append(arena.count)

        let sortedAdded = addedTokens.filter { !$0.content.isEmpty }
            .sorted { $0.content.utf8.count != $1.content.utf8.count ? $0.content.utf8.count > $1.content.utf8.count : $0.id < $1.id }
        var first = [Bool](repeating: false, count: 256)
        for a in sortedAdded { first[Int(a.content.utf8.first!)] = true }

        self.vocabSize = size
        self.merges = pairMap
        self.vocabByBytes = byBytes
        self.byteToId = b2i
        self.idBytesStart = starts
        self.idBytes = arena
        self.idKnown = known
        self.idSpelling = spelling
        self.addedTokens = sortedAdded
        self.addedBytes = sortedAdded.map { Array($0.content.utf8) }
        self.addedFirstByte = first
        self.addPrefixSpace = addPrefixSpace
        self.ignoreMerges = ignoreMerges
        let eot = sortedAdded.first(where: { $0.content == "<|endoftext|>" })?.id
            ?? vocab["<|endoftext|>"]
        self.eosToken = eosToken ?? eot
        self.bosToken = bosToken ?? eot
    }

    // MARK: - Tokenizer

    public func encode(_ text: String) -> [Int] {
        var t = text
        return t.withUTF8 { buf -> [Int] in
            var out: [Int] = []
            out.reserveCapacity(buf.count / 3 + 4)
            guard let base = buf.baseAddress, buf.count > 0 else { return out }
            lock.lock(); defer { lock.unlock() }
            encodeBytes(base, buf.count, into: &out)
            return out
        }
    }

    public func decodeBytes(_ ids: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        for id in ids where id >= 0 && id < vocabSize && idKnown[id] {
            out.append(contentsOf: idBytes[idBytesStart[id]..<idBytesStart[id + 1]])
        }
        return out
    }

    public func tokenString(_ id: Int) -> String? {
        guard id >= 0 && id < vocabSize else { return nil }
        return idSpelling[id]
    }

    public func tokenID(_ token: String) -> Int? {
        if let a = addedTokens.first(where: { Array($0.content.utf8) == Array(token.utf8) }) { return a.id }
        guard let b = ByteLevel.bytes(fromTokenString: token) ?? Optional(Array(token.utf8)),
              let id = vocabByBytes.find(b) else { return nil }
        return Int(id)
    }

    /// Raw bytes of one id (nil if unknown).
    public func tokenBytes(_ id: Int) -> [UInt8]? {
        guard id >= 0 && id < vocabSize && idKnown[id] else { return nil }
        return Array(idBytes[idBytesStart[id]..<idBytesStart[id + 1]])
    }

    // MARK: - Encoding internals (caller holds `lock`)

    private func encodeBytes(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        if addedBytes.isEmpty { encodeSegment(p, 0, n, into: &out); return }
        var segStart = 0
        var i = 0
        while i < n {
            if addedFirstByte[Int(p[i])], let k = matchAdded(p, i, n) {
                let tok = addedTokens[k]
                var segEnd = i
                if tok.lstrip { while segEnd > segStart, let w = whitespaceBefore(p, segStart, segEnd) { segEnd -= w } }
                encodeSegment(p, segStart, segEnd, into: &out)
                out.append(tok.id)
                i += addedBytes[k].count
                if tok.rstrip { while i < n, let w = whitespaceAt(p, i, n) { i += w } }
                segStart = i
            } else {
                i += 1
            }
        }
        encodeSegment(p, segStart, n, into: &out)
    }

    /// Index (into addedTokens) of the longest added token starting at byte i.
    private func matchAdded(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> Int? {
        outer: for (k, b) in addedBytes.enumerated() where b.count <= n - i {
            for j in 0..<b.count where p[i + j] != b[j] { continue outer }
            return k
        }
        return nil
    }

    /// Byte length of a whitespace scalar starting at i, else nil.
    private func whitespaceAt(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> Int? {
        let (v, len) = decodeScalar(p, i, n)
        return GPT2PreTokenizer.classify(v) == GPT2PreTokenizer.space ? len : nil
    }

    /// Byte length of a whitespace scalar ending at `end` (not before `start`), else nil.
    private func whitespaceBefore(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Int? {
        var s = end - 1
        while s > start && p[s] & 0xC0 == 0x80 { s -= 1 }
        let (v, len) = decodeScalar(p, s, end)
        return GPT2PreTokenizer.classify(v) == GPT2PreTokenizer.space && s + len == end ? len : nil
    }

    private func decodeScalar(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (UInt32, Int) {
        let b0 = p[i]
        if b0 < 0x80 { return (UInt32(b0), 1) }
        var len = b0 < 0xE0 ? 2 : (b0 < 0xF0 ? 3 : 4)
        var v = UInt32(b0) & (len == 2 ? 0x1F : (len == 3 ? 0x0F : 0x07))
        len = min(len, n - i)
        for k in 1..<max(len, 1) { v = (v << 6) | UInt32(p[i + k] & 0x3F) }
        return (v, len)
    }

    private func encodeSegment(_ p: UnsafePointer<UInt8>, _ lo: Int, _ hi: Int, into out: inout [Int]) {
        if lo >= hi { return }
        if addPrefixSpace && p[lo] != 0x20 {
            scratch.prefixed.removeAll(keepingCapacity: true)
            scratch.prefixed.append(0x20)
            scratch.prefixed.append(contentsOf: UnsafeBufferPointer(start: p + lo, count: hi - lo))
            let copy = scratch.prefixed
            copy.withUnsafeBufferPointer { b in encodePieces(b.baseAddress!, 0, b.count, into: &out) }
            return
        }
        encodePieces(p, lo, hi, into: &out)
    }

    private func encodePieces(_ p: UnsafePointer<UInt8>, _ lo: Int, _ hi: Int, into out: inout [Int]) {
        scratch.ranges.removeAll(keepingCapacity: true)
        scratch.pre.split(p, from: lo, to: hi, into: &scratch.ranges)
        let ranges = scratch.ranges
        scratch.ranges = []
        defer { scratch.ranges = ranges }
        ranges.withUnsafeBufferPointer { r in
            var k = 0
            while k < r.count {
                encodeWord(p + r[k], r[k + 1] - r[k], into: &out)
                k += 2
            }
        }
    }

    @inline(__always)
    private func encodeWord(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        if n == 1 {
            let id = byteToId[Int(w[0])]
            if id >= 0 { out.append(Int(id)) }
            return
        }
        if let r = scratch.cache.find(w, n) {
            scratch.cache.values.withUnsafeBufferPointer { v in
                for i in r { out.append(Int(v[i])) }
            }
            return
        }
        scratch.initial.removeAll(keepingCapacity: true)
        if ignoreMerges, let r = vocabByBytes.find(w, n) {
            scratch.initial.append(vocabByBytes.values[r.lowerBound])
            scratch.word = scratch.initial
        } else {
            for i in 0..<n {
                let id = byteToId[Int(w[i])]
                if id >= 0 { scratch.initial.append(id) }   // HF drops symbols missing from the vocab (no unk)
            }
            var word = scratch.word
            scratch.initial.withUnsafeBufferPointer { scratch.merger.merge($0, merges: merges, into: &word) }
            scratch.word = word
        }
        for id in scratch.word { out.append(Int(id)) }
        if n <= GPT2Tokenizer.maxCachedWordBytes {
            if scratch.cache.count >= GPT2Tokenizer.maxCacheWords { scratch.cache.removeAll() }
            scratch.word.withUnsafeBufferPointer { scratch.cache.insert(w, n, values: $0) }
        }
    }

    /// Empties the per-word BPE cache (e.g. for cold-cache benchmarking).
    public func clearCache() {
        lock.lock(); defer { lock.unlock() }
        scratch.cache.removeAll()
    }
}
