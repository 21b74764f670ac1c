// SentencePieceTokenizer: encode/decode exactly as sentencepiece's SentencePieceProcessor (0.2.3) does for a
// `tokenizer.model` of type BPE or UNIGRAM: normalizer (precompiled charsmap, longest match; user-defined symbols
// left as they are; remove_extra_whitespaces; add_dummy_prefix; spaces escaped to U+2581), then the model on the
// normalized bytes, then unknown handling (byte fallback to <0xXX> pieces, else consecutive unknowns fused into one
// <unk>). decode follows SentencePieceProcessor::Decode (control pieces invisible, <unk> -> unk_surface, byte runs
// decoded with one U+FFFD per malformed byte, the leading space of the first piece dropped under add_dummy_prefix).
// Contract: `encode(_:addSpecialTokens: false)` equals `spm.encode(text)`; with special tokens it adds BOS/EOS per
// `addBOS`/`addEOS` (Megatron's Llama2Tokenizer and HF's LlamaTokenizer add BOS). Words (split before a U+2581 that
// follows another character) are encoded independently and cached when no piece spans such a boundary, which leaves
// the result unchanged (checked at load; BPE only). Thread-safe (one lock around the scratch state).

import Foundation

public final class SentencePieceTokenizer: Tokenizer, @unchecked Sendable {
    public let model: SentencePieceModel
    public let vocabSize: Int
    public let bosToken: Int?
    public let eosToken: Int?
    public let padToken: Int?
    public let unkToken: Int
    public var addBOS: Bool
    public var addEOS: Bool

    private let pieceIds: ByteStringMap          // NORMAL, USER_DEFINED, UNUSED pieces -> id
    private let trie: PrefixTrie                 // the same pieces, for unigram
    private let latticeScore: [Float]            // unigram: a piece's score in the lattice, NaN for UNUSED pieces
    private let reserved: [[UInt8]: Int]         // CONTROL, UNKNOWN, BYTE pieces -> id
    private let byteIds: [Int32]                 // id of <0xXX>, -1 without byte fallback
    private let userDefined: [[UInt8]]           // longest first
    private let userFirstByte: [Bool]
    private let charsmap: PrecompiledCharsmap?
    private let plainByte: [Bool]                // [256] ASCII bytes no charsmap rule or user-defined piece starts with
    private let splitWords: Bool
    private let unkScore: Float
    private let spaceSymbol: [UInt8] = [0xE2, 0x96, 0x81]

    private let lock = NSLock()
    private var cache = ByteStringMap(capacity: 4096)
    private var scratch: [Int32] = []
    static let maxCacheWords = 200_000

    public convenience init(path: String, addBOS: Bool = false, addEOS: Bool = false) throws {
        try self.init(model: SentencePieceModel(path: path), addBOS: addBOS, addEOS: addEOS)
    }

    public init(model m: SentencePieceModel, addBOS: Bool = false, addEOS: Bool = false) throws {
        model = m
        vocabSize = m.pieces.count
        var map = ByteStringMap(capacity: m.pieces.count)
        var res: [[UInt8]: Int] = [:]
        var ud: [[UInt8]] = []
        var minScore = Float.greatestFiniteMagnitude
        var bytes = [Int32](repeating: -1, count: 256)
        var unk = -1
        for i in 0..<m.pieces.count {
            let p = m.pieceBytes[i]
            switch m.types[i] {
            case .normal, .userDefined, .unused:
                map.insert(p, value: Int32(i))
                if m.types[i] == .userDefined { ud.append(p) }
                if m.types[i] == .normal { minScore = min(minScore, m.scores[i]) }
            case .control, .unknown, .byte:
                res[p] = i
                if m.types[i] == .unknown { unk = i }
                if m.types[i] == .byte, let b = SentencePieceModel.byteOfPiece(p) { bytes[b] = Int32(i) }
            }
        }
        let inTrie = m.modelType == .unigram ? (0..<m.pieces.count).filter { [.normal, .userDefined, .unused].contains(m.types[$0]) } : []
        trie = try PrefixTrie(keys: inTrie.map { m.pieceBytes[$0] }, ids: inTrie.map { Int32($0) })
        latticeScore = (0..<m.pieces.count).map { i in
            switch m.types[i] {
            case .userDefined: return Float(0.1 * Double(m.pieceBytes[i].count - 1))
            case .unused: return .nan
            default: return m.scores[i]
            }
        }
        pieceIds = map; reserved = res; byteIds = bytes; unkToken = unk
        userDefined = ud.sorted { $0.count > $1.count }
        var first = [Bool](repeating: false, count: 256)
        for u in ud { first[Int(u[0])] = true }
        userFirstByte = first
        unkScore = minScore - 10
        if m.precompiledCharsmap.isEmpty { charsmap = nil } else {
            guard let c = PrecompiledCharsmap(m.precompiledCharsmap) else {
                throw TokenizerError.invalidFormat("normalizer_spec.precompiled_charsmap: malformed (trie size does not fit the blob)")
            }
            charsmap = c
        }
        let cm = charsmap
        plainByte = (0..<256).map { b in b < 0x80 && !first[b] && !(cm?.hasRule(startingWith: UInt8(b)) ?? false) }
        // Words may be encoded one at a time when no piece holds U+2581 right after another character.
        var ok = true
        for i in 0..<m.pieces.count where [.normal, .userDefined, .unused].contains(m.types[i]) {
            let p = m.pieceBytes[i]
            var j = 3
            while j + 3 <= p.count {
                if p[j] == 0xE2 && p[j + 1] == 0x96 && p[j + 2] == 0x81 && !(p[j - 3] == 0xE2 && p[j - 2] == 0x96 && p[j - 1] == 0x81) { ok = false }
                j += 1
            }
        }
        // BPE only: unigram's float running sums make a word's result depend on the text before it.
        splitWords = ok && m.modelType == .bpe
        func control(_ piece: String) -> Int? {
            guard let id = res[Array(piece.utf8)], m.types[id] == .control else { return nil }
            return id
        }
        bosToken = control(m.bosPiece); eosToken = control(m.eosPiece); padToken = control(m.padPiece)
        self.addBOS = addBOS; self.addEOS = addEOS
    }

    // MARK: - Tokenizer

    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: true) }

    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var out: [Int] = []
        if addSpecialTokens && addBOS, let b = bosToken { out.append(b) }
        let normalized = normalize(Array(text.utf8))
        lock.lock()
        normalized.withUnsafeBufferPointer { encodeNormalized($0, into: &out) }
        lock.unlock()
        if addSpecialTokens && addEOS, let e = eosToken { out.append(e) }
        return out
    }

    public func tokenString(_ id: Int) -> String? { id >= 0 && id < vocabSize ? model.pieces[id] : nil }

    public func tokenID(_ token: String) -> Int? {
        let b = Array(token.utf8)
        if let r = reserved[b] { return r }
        return pieceIds.find(b).map(Int.init)
    }

    public func decodeBytes(_ ids: [Int]) -> [UInt8] {
        var text: [UInt8] = []
        var pendingBytes: [UInt8] = []
        var isBosWs = true, bosWsSeen = false
        let stripLeading = model.addDummyPrefix || model.removeExtraWhitespaces
        for id in ids where id >= 0 && id < vocabSize {
            if model.types[id] == .byte {
                pendingBytes.append(UInt8(SentencePieceModel.byteOfPiece(model.pieceBytes[id]) ?? 0))
                continue
            }
            if !pendingBytes.isEmpty { UTF8Util.appendLossy(pendingBytes, into: &text); pendingBytes.removeAll() }
            if bosWsSeen || !text.isEmpty { isBosWs = false }
            switch model.types[id] {
            case .control: bosWsSeen = false
            case .unknown: text.append(contentsOf: model.unkSurface); bosWsSeen = false
            default:
                var piece = model.pieceBytes[id][...]
                var hasBosWs = false
                if isBosWs && stripLeading, piece.starts(with: spaceSymbol) {
                    piece = piece.dropFirst(3)
                    hasBosWs = !model.removeExtraWhitespaces
                }
                var i = piece.startIndex
                while i < piece.endIndex {
                    if piece.endIndex - i >= 3 && piece[i] == 0xE2 && piece[i + 1] == 0x96 && piece[i + 2] == 0x81 { text.append(0x20); i += 3 }
                    else { text.append(piece[i]); i += 1 }
                }
                bosWsSeen = hasBosWs
            }
        }
        if !pendingBytes.isEmpty { UTF8Util.appendLossy(pendingBytes, into: &text) }
        return text
    }

    // MARK: - Normalizer (sentencepiece normalizer.cc)

    /// One normalized prefix of p[i..<n]: (replacement bytes, consumed length).
    @inline(__always)
    private func normalizePrefix(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (ArraySlice<UInt8>?, Int) {
        if userFirstByte[Int(p[i])], let l = matchUserDefined(p, i, n) { return (nil, l) }
        if let c = charsmap, let (l, r) = c.longestMatch(p + i, n - i) { return (r, l) }
        let (v, l) = UTF8Util.decode(p, i, n)
        if v == nil { return ([0xEF, 0xBF, 0xBD][...], 1) }
        return (nil, l)
    }

    private func matchUserDefined(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> Int? {
        outer: for u in userDefined where u.count <= n - i {
            for j in 0..<u.count where p[i + j] != u[j] { continue outer }
            return u.count
        }
        return nil
    }

    func normalize(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count + input.count / 4 + 3)
        input.withUnsafeBufferPointer { b in
            guard let p = b.baseAddress else { return }
            let n = b.count
            var i = 0
            let escape = model.escapeWhitespaces, remove = model.removeExtraWhitespaces
            if remove {   // leading spaces (a character whose normal form is one space counts)
                while i < n {
                    let (r, l) = normalizePrefix(p, i, n)
                    let isSpace = r.map { $0.count == 1 && $0.first == 0x20 } ?? (l == 1 && p[i] == 0x20)
                    if !isSpace { break }
                    i += l
                }
            }
            if i >= n { return }
            if model.addDummyPrefix { appendSpace(&out) }
            var isPrevSpace = remove
            // One normalized piece q[0..<count]: leading spaces dropped after a space when collapsing, spaces escaped.
            func emit(_ q: UnsafePointer<UInt8>, _ count: Int, _ out: inout [UInt8], _ isPrevSpace: inout Bool) {
                var k = 0
                if isPrevSpace { while k < count && q[k] == 0x20 { k += 1 } }
                if k == count { return }
                while k < count {
                    let c = q[k]
                    if escape && c == 0x20 { out.append(0xE2); out.append(0x96); out.append(0x81) } else { out.append(c) }
                    k += 1
                }
                isPrevSpace = q[count - 1] == 0x20
            }
            plainByte.withUnsafeBufferPointer { plain in
                while i < n {
                    if plain[Int(p[i])] {   // a run of ASCII bytes that normalize to themselves
                        var j = i
                        while j < n && plain[Int(p[j])] && p[j] != 0x20 { j += 1 }
                        if j > i {
                            out.append(contentsOf: UnsafeBufferPointer(start: p + i, count: j - i))
                            isPrevSpace = false
                            i = j
                            continue
                        }
                        // p[i] is a plain space
                        if !isPrevSpace { appendSpace(&out) }
                        isPrevSpace = remove
                        i += 1
                        continue
                    }
                    let (r, l) = normalizePrefix(p, i, n)
                    if let r {
                        r.withUnsafeBufferPointer { if let a = $0.baseAddress, $0.count > 0 { emit(a, $0.count, &out, &isPrevSpace) } }
                    } else {
                        emit(p + i, l, &out, &isPrevSpace)
                    }
                    i += l
                    if !remove { isPrevSpace = false }
                }
            }
            if remove {
                let sp: [UInt8] = escape ? spaceSymbol : [0x20]
                while out.count >= sp.count && out[(out.count - sp.count)...].elementsEqual(sp) { out.removeLast(sp.count) }
            }
        }
        return out
    }

    @inline(__always) private func appendSpace(_ out: inout [UInt8]) {
        if model.escapeWhitespaces { out.append(contentsOf: spaceSymbol) } else { out.append(0x20) }
    }

    // MARK: - Model (caller holds `lock`)

    private func encodeNormalized(_ b: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        guard let p = b.baseAddress, b.count > 0 else { return }
        let n = b.count
        let start = out.count
        if !splitWords {
            encodeWord(p, n, into: &out)
        } else {
            var w = 0, i = 0
            var prevSpace = true
            while i < n {
                let isSpace = i + 3 <= n && p[i] == 0xE2 && p[i + 1] == 0x96 && p[i + 2] == 0x81
                if isSpace && !prevSpace && i > w { encodeCached(p + w, i - w, into: &out); w = i }
                prevSpace = isSpace
                i += isSpace ? 3 : 1
            }
            if w < n { encodeCached(p + w, n - w, into: &out) }
        }
        if !model.byteFallback {   // fuse runs of <unk> (PopulateSentencePieceText)
            var k = start, prevUnk = false
            for j in start..<out.count {
                let u = out[j] == unkToken
                if u && prevUnk { continue }
                out[k] = out[j]; k += 1; prevUnk = u
            }
            out.removeLast(out.count - k)
        }
    }

    private func encodeCached(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        if let r = cache.find(w, n) {
            cache.values.withUnsafeBufferPointer { v in for i in r { out.append(Int(v[i])) } }
            return
        }
        let s = out.count
        encodeWord(w, n, into: &out)
        if n <= 256 {
            if cache.count >= SentencePieceTokenizer.maxCacheWords { cache.removeAll() }
            scratch.removeAll(keepingCapacity: true)
            for i in s..<out.count { scratch.append(Int32(out[i])) }
            scratch.withUnsafeBufferPointer { cache.insert(w, n, values: $0) }
        }
    }

    /// Appends the ids of one normalized word (unknown pieces expanded to bytes under byte fallback).
    private func encodeWord(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        if model.modelType == .unigram { unigram(p, n, into: &out); return }
        var pieces: [(Int, Int)] = []   // (start, length)
        bpe(p, n, &pieces)
        for (s, l) in pieces {
            if let r = pieceIds.find(p + s, l) {
                out.append(Int(pieceIds.values[r.lowerBound]))
            } else if model.byteFallback {
                for k in 0..<l { out.append(Int(byteIds[Int(p[s + k])])) }
            } else {
                out.append(unkToken)
            }
        }
    }

    private func pieceID(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        guard let r = pieceIds.find(p, n) else { return nil }
        return Int(pieceIds.values[r.lowerBound])
    }

    /// bpe_model.cc Encode: merge the adjacent pair with the highest score (leftmost on ties) until none is in the
    /// vocabulary; pieces of UNUSED type are split back into the pair that made them.
    private func bpe(_ p: UnsafePointer<UInt8>, _ n: Int, _ result: inout [(Int, Int)]) {
        var start: [Int] = [], len: [Int] = [], prev: [Int] = [], next: [Int] = [], freeze: [Bool] = []
        var i = 0
        while i < n {
            var l: Int, f = false
            if userFirstByte[Int(p[i])], let u = matchUserDefined(p, i, n) { l = u; f = true } else { l = min(UTF8Util.charLen(p[i]), n - i) }
            start.append(i); len.append(l); freeze.append(f)
            prev.append(start.count - 2); next.append(i + l < n ? start.count : -1)
            i += l
        }
        var heap = PairHeap()
        var revMerge: [[UInt8]: Int] = [:]
        func add(_ l: Int, _ r: Int) {
            if l < 0 || r < 0 || freeze[l] || freeze[r] { return }
            let size = len[l] + len[r]
            guard let id = pieceID(p + start[l], size) else { return }
            heap.push(score: model.scores[id], left: l, right: r, size: size)
            if model.types[id] == .unused { revMerge[Array(UnsafeBufferPointer(start: p + start[l], count: size))] = len[l] }
        }
        for k in 1..<max(1, start.count) { add(k - 1, k) }
        while let top = heap.pop() {
            let (l, r) = (top.left, top.right)
            if len[l] == 0 || len[r] == 0 || len[l] + len[r] != top.size { continue }
            len[l] += len[r]
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            len[r] = 0
            add(prev[l], l)
            add(l, next[l])
        }
        func resegment(_ s: Int, _ l: Int, _ depth: Int) {   // depth-limited as sentencepiece 0.2.3 (hostile models)
            if depth <= 100, let id = pieceID(p + s, l), model.types[id] == .unused,
               let left = revMerge[Array(UnsafeBufferPointer(start: p + s, count: l))] {
                resegment(s, left, depth + 1); resegment(s + left, l - left, depth + 1)
            } else { result.append((s, l)) }
        }
        var k = start.isEmpty ? -1 : 0
        while k >= 0 { resegment(start[k], len[k], 0); k = next[k] }
    }

    /// unigram_model.cc EncodeOptimized of sentencepiece 0.2.3 (Viterbi in float; when the running score leaves
    /// +-1e5 the scores from here to the frontier are shifted by it; user-defined pieces score 0.1 * (bytes - 1)).
    /// Appends the best path's ids; an unknown character becomes <unk>, or its bytes' pieces under byte fallback.
    private func unigram(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        var best = [Float](repeating: 0, count: n + 1)      // [n + 1] best score of a path ending at each byte
        var startsAt = [Int](repeating: -1, count: n + 1)   // [n + 1] where that path's last piece starts
        var pieceAt = [Int32](repeating: -1, count: n + 1)  // [n + 1] its id, -1 for an unknown character
        let unkScore = self.unkScore
        best.withUnsafeMutableBufferPointer { best in startsAt.withUnsafeMutableBufferPointer { startsAt in
        pieceAt.withUnsafeMutableBufferPointer { pieceAt in latticeScore.withUnsafeBufferPointer { scores in
            var frontier = 0
            var s = 0
            while s < n {
                var here = best[s]
                if here < -100_000 || here > 100_000 {
                    let offset = here
                    if frontier >= s { for i in s...frontier where i == s || startsAt[i] != -1 { best[i] -= offset } }
                    here = 0
                }
                var single = false
                let mblen = min(UTF8Util.charLen(p[s]), n - s)
                trie.prefixes(p + s, n - s) { length, id in
                    let score = scores[id]
                    guard !score.isNaN else { return }   // UNUSED
                    let e = s + length
                    frontier = max(frontier, e)
                    let cand = score + here
                    if startsAt[e] == -1 || cand > best[e] { best[e] = cand; startsAt[e] = s; pieceAt[e] = Int32(id) }
                    if length == mblen { single = true }
                }
                if !single {
                    let e = s + mblen
                    frontier = max(frontier, e)
                    let cand = unkScore + here
                    if startsAt[e] == -1 || cand > best[e] { best[e] = cand; startsAt[e] = s; pieceAt[e] = -1 }
                }
                s += mblen
            }
        } } } }
        let first = out.count
        var e = n
        while e > 0 {   // the path backwards, reversed below
            let b = startsAt[e], id = Int(pieceAt[e])
            if id >= 0 { out.append(id) }
            else if model.byteFallback { var k = e - 1; while k >= b { out.append(Int(byteIds[Int(p[k])])); k -= 1 } }
            else { out.append(unkToken) }
            e = b
        }
        out[first...].reverse()
    }
}

/// Max-heap of candidate merges: higher score first, then smaller left index (bpe_model.cc SymbolPairComparator).
struct PairHeap {
    private var items: [(score: Float, left: Int, right: Int, size: Int)] = []
    @inline(__always) private static func before(_ a: (score: Float, left: Int, right: Int, size: Int), _ b: (score: Float, left: Int, right: Int, size: Int)) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }
    mutating func push(score: Float, left: Int, right: Int, size: Int) {
        items.append((score, left, right, size))
        var k = items.count - 1
        while k > 0 {
            let parent = (k - 1) / 2
            if !PairHeap.before(items[k], items[parent]) { break }
            items.swapAt(k, parent); k = parent
        }
    }
    mutating func pop() -> (score: Float, left: Int, right: Int, size: Int)? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var k = 0
            while true {
                let l = 2 * k + 1, r = l + 1
                var m = k
                if l < items.count && PairHeap.before(items[l], items[m]) { m = l }
                if r < items.count && PairHeap.before(items[r], items[m]) { m = r }
                if m == k { break }
                items.swapAt(k, m); k = m
            }
        }
        return top
    }
}
