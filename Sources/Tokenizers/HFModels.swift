// HFModels: tokenizer.json `model` (BPE, Unigram, WordPiece) as HF tokenizers runs it on one pre-token.
// Contract: `tokenize(word, into:)` appends ids. BPE: symbols are the word's characters (raw bytes when the
// pre-tokenizer is ByteLevel; vocab keys are then read through the byte-level alphabet), continuing_subword_prefix /
// end_of_word_suffix applied, unknown characters go to byte fallback (<0xXX>), else <unk> (fused when fuse_unk),
// else are dropped; merges by rank as Word::merge_all (BPEMerger); ignore_merges looks the whole word up first.
// Unigram: Viterbi in f64 as Unigram::encode_optimized, unknowns fused, then byte fallback or unk_id. WordPiece:
// greedy longest-match-first, `max_input_chars_per_word`, whole word -> unk when a piece is missing.
// Unsupported fields (BPE dropout) are refused at load naming the field.

import Foundation

protocol HFModel: AnyObject {
    func tokenize(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int])
    /// id -> token string as the vocab spells it (for decoders), and the reverse.
    func token(_ id: Int) -> [UInt8]?
    func id(_ token: [UInt8]) -> Int?
    var size: Int { get }
}

final class HFBPEModel: HFModel {
    let vocab: ByteStringMap          // key bytes (raw bytes in byte-level mode) -> id
    let spellings: [Int: [UInt8]]     // id -> vocab spelling (UTF-8 of the JSON key)
    let merges: PairMap
    let byteLevel: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let unk: Int?
    let fuseUnk: Bool
    let prefix: [UInt8]
    let suffix: [UInt8]
    let byteIds: [Int32]
    let size: Int
    private var merger = BPEMerger()
    private var initial: [Int32] = []
    private var word: [Int32] = []

    init(_ o: [String: Any], byteLevel: Bool) throws {
        if let d = o["dropout"], !(d is NSNull) { throw TokenizerError.unsupported("model.dropout \(d) (BPE dropout)") }
        guard let vj = o["vocab"] as? [String: Any] else { throw TokenizerError.invalidJSON("model.vocab: expected an object") }
        self.byteLevel = byteLevel
        prefix = Array((o["continuing_subword_prefix"] as? String ?? "").utf8)
        suffix = Array((o["end_of_word_suffix"] as? String ?? "").utf8)
        byteFallback = o["byte_fallback"] as? Bool ?? false
        ignoreMerges = o["ignore_merges"] as? Bool ?? false
        fuseUnk = o["fuse_unk"] as? Bool ?? false
        func key(_ s: String) -> [UInt8] { byteLevel ? (ByteLevel.bytes(fromTokenString: s) ?? Array(s.utf8)) : Array(s.utf8) }
        var v = ByteStringMap(capacity: vj.count)
        var sp: [Int: [UInt8]] = [:]
        var maxId = -1
        for (k, x) in vj.sorted(by: { ($0.value as? Int ?? 0) < ($1.value as? Int ?? 0) }) {
            guard let id = x as? Int, id >= 0, id < Int(Int32.max) else { throw TokenizerError.invalidJSON("model.vocab[\(k)]: expected an id in 0..<2^31, found \(x)") }
            v.insert(key(k), value: Int32(id)); sp[id] = Array(k.utf8); maxId = max(maxId, id)
        }
        vocab = v; spellings = sp; size = maxId + 1
        if let u = o["unk_token"] as? String {
            guard let id = v.find(key(u)) else { throw TokenizerError.invalidJSON("model.unk_token \(u) is not in the vocab") }
            unk = Int(id)
        } else { unk = nil }
        var pm = PairMap(capacity: 1024)
        let list = o["merges"] as? [Any] ?? []
        for (i, m) in list.enumerated() {
            var a: String, b: String
            if let s = m as? String {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw TokenizerError.invalidFormat("model.merges[\(i)]: expected 'a b', found \(s)") }
                a = String(parts[0]); b = String(parts[1])
            } else if let arr = m as? [Any], arr.count == 2, let x = arr[0] as? String, let y = arr[1] as? String { a = x; b = y }
            else { throw TokenizerError.invalidFormat("model.merges[\(i)]: neither 'a b' nor [a, b]") }
            let ka = key(a), kb = key(b)
            guard let ia = v.find(ka) else { throw TokenizerError.tokenNotInVocab(a) }
            guard let ib = v.find(kb) else { throw TokenizerError.tokenNotInVocab(b) }
            let bStripped = byteLevel || prefix.isEmpty || !kb.starts(with: prefix) ? kb : Array(kb[prefix.count...])
            guard let inew = v.find(ka + bStripped) else { throw TokenizerError.tokenNotInVocab(a + b) }
            pm.insert(ia, ib, rank: Int32(i), id: inew)
        }
        merges = pm
        var bi = [Int32](repeating: -1, count: 256)
        if byteFallback {
            for x in 0..<256 {
                let s = String(format: "<0x%02X>", x)
                if let id = v.find(Array(s.utf8)) { bi[x] = id }
            }
        }
        byteIds = bi
    }

    /// Whether a word may be cut before each U+2581 that follows another character without changing the result:
    /// no token holds U+2581 after another character (so no merge crosses the cut), no word-position affixes, and
    /// no whole-word lookup (ignore_merges).
    lazy var splitsAtMetaspace: Bool = {
        if byteLevel || ignoreMerges || !prefix.isEmpty || !suffix.isEmpty { return false }
        for (_, t) in spellings {
            var j = 3
            while j + 3 <= t.count {
                if t[j] == 0xE2 && t[j + 1] == 0x96 && t[j + 2] == 0x81 && !(t[j - 3] == 0xE2 && t[j - 2] == 0x96 && t[j - 1] == 0x81) { return false }
                j += 1
            }
        }
        return true
    }()

    func token(_ id: Int) -> [UInt8]? { spellings[id] }
    func id(_ token: [UInt8]) -> Int? {
        let k = byteLevel ? (ByteLevel.bytes(fromTokenString: String(decoding: token, as: UTF8.self)) ?? token) : token
        return vocab.find(k).map(Int.init)
    }

    func tokenize(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        if n == 0 { return }
        if ignoreMerges, let r = vocab.find(w, n) { out.append(Int(vocab.values[r.lowerBound])); return }
        initial.removeAll(keepingCapacity: true)
        var pendingUnk = false
        var i = 0
        var key: [UInt8] = []
        while i < n {
            let l = byteLevel ? 1 : min(UTF8Util.charLen(w[i]), n - i)
            var found: Range<Int>?
            let isFirst = i == 0, isLast = i + l == n
            if (isFirst || prefix.isEmpty) && (!isLast || suffix.isEmpty) {
                found = vocab.find(w + i, l)
            } else {
                key.removeAll(keepingCapacity: true)
                if !isFirst { key.append(contentsOf: prefix) }
                key.append(contentsOf: UnsafeBufferPointer(start: w + i, count: l))
                if isLast { key.append(contentsOf: suffix) }
                found = key.withUnsafeBufferPointer { vocab.find($0.baseAddress!, $0.count) }
            }
            if let r = found {
                if pendingUnk, let u = unk { initial.append(Int32(u)); pendingUnk = false }
                initial.append(vocab.values[r.lowerBound])
            } else if byteFallback && (0..<l).allSatisfy({ byteIds[Int(w[i + $0])] >= 0 }) {
                for k in 0..<l { initial.append(byteIds[Int(w[i + k])]) }
            } else if let u = unk {
                if pendingUnk && !fuseUnk { initial.append(Int32(u)) }
                pendingUnk = true
            }
            i += l
        }
        if pendingUnk, let u = unk { initial.append(Int32(u)) }
        initial.withUnsafeBufferPointer { merger.merge($0, merges: merges, into: &word) }
        for x in word { out.append(Int(x)) }
    }
}

final class HFUnigramModel: HFModel {
    let pieces: [[UInt8]]
    let scores: [Double]
    let map: ByteStringMap
    let trie: PrefixTrie
    let unk: Int?
    let byteFallback: Bool
    let minScore: Double
    let maxLen: Int
    let byteIds: [Int32]
    var size: Int { pieces.count }

    init(_ o: [String: Any]) throws {
        guard let vj = o["vocab"] as? [Any] else { throw TokenizerError.invalidJSON("model.vocab: expected an array of [piece, score]") }
        var p: [[UInt8]] = [], s: [Double] = []
        var m = ByteStringMap(capacity: vj.count)
        var ml = 1, mn = Double.greatestFiniteMagnitude
        for (i, x) in vj.enumerated() {
            guard let a = x as? [Any], a.count == 2, let piece = a[0] as? String, let sc = (a[1] as? NSNumber)?.doubleValue else {
                throw TokenizerError.invalidJSON("model.vocab[\(i)]: expected [piece, score]")
            }
            let b = Array(piece.utf8)
            p.append(b); s.append(sc); m.insert(b, value: Int32(i)); ml = max(ml, b.count); mn = min(mn, sc)
        }
        pieces = p; scores = s; map = m; maxLen = ml; minScore = mn
        trie = try PrefixTrie(keys: p, ids: p.indices.map { Int32($0) })
        if let u = o["unk_id"] as? Int {
            guard u >= 0 && u < p.count else { throw TokenizerError.invalidJSON("model.unk_id \(u) outside the vocab (\(p.count))") }
            unk = u
        } else { unk = nil }
        byteFallback = o["byte_fallback"] as? Bool ?? false
        var bi = [Int32](repeating: -1, count: 256)
        for x in 0..<256 { if let id = m.find(Array(String(format: "<0x%02X>", x).utf8)) { bi[x] = id } }
        byteIds = bi
    }

    func token(_ id: Int) -> [UInt8]? { id >= 0 && id < pieces.count ? pieces[id] : nil }
    func id(_ token: [UInt8]) -> Int? { map.find(token).map(Int.init) }

    func tokenize(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        if n == 0 { return }
        var best = [Double](repeating: 0, count: n + 1)
        var from = [Int](repeating: -1, count: n + 1)
        var ids = [Int](repeating: -1, count: n + 1)
        let unkScore = minScore - 10
        var s = 0
        while s < n {
            let here = best[s]
            var single = false
            let mblen = min(UTF8Util.charLen(w[s]), n - s)
            trie.prefixes(w + s, n - s) { length, id in
                let e = s + length
                let cand = scores[id] + here
                if from[e] == -1 || cand > best[e] { best[e] = cand; from[e] = s; ids[e] = id }
                if length == mblen { single = true }
            }
            if !single {
                let cand = unkScore + here
                if from[s + mblen] == -1 || cand > best[s + mblen] { best[s + mblen] = cand; from[s + mblen] = s; ids[s + mblen] = unk ?? -1 }
            }
            s += mblen
        }
        // backtrack, fusing unknowns
        var segs: [(Int, Int, Bool)] = []   // (start, end, isUnk)
        var e = n
        while e > 0 {
            let b = from[e]
            let isUnk = unk != nil && ids[e] == unk!
            if isUnk, let last = segs.last, last.2 { segs[segs.count - 1].0 = b } else { segs.append((b, e, isUnk)) }
            e = b
        }
        for (b, e, _) in segs.reversed() {
            if let r = map.find(w + b, e - b) { out.append(Int(map.values[r.lowerBound])) }
            else if byteFallback && (b..<e).allSatisfy({ byteIds[Int(w[$0])] >= 0 }) { for k in b..<e { out.append(Int(byteIds[Int(w[k])])) } }
            else if let u = unk { out.append(u) }
        }
    }
}

final class HFWordPieceModel: HFModel {
    let vocab: ByteStringMap
    let spellings: [Int: [UInt8]]
    let unk: Int
    let prefix: [UInt8]
    let maxChars: Int
    let size: Int

    init(_ o: [String: Any]) throws {
        guard let vj = o["vocab"] as? [String: Any] else { throw TokenizerError.invalidJSON("model.vocab: expected an object") }
        var v = ByteStringMap(capacity: vj.count)
        var sp: [Int: [UInt8]] = [:]
        var maxId = -1
        for (k, x) in vj.sorted(by: { ($0.value as? Int ?? 0) < ($1.value as? Int ?? 0) }) {
            guard let id = x as? Int, id >= 0, id < Int(Int32.max) else { throw TokenizerError.invalidJSON("model.vocab[\(k)]: bad id \(x)") }
            v.insert(Array(k.utf8), value: Int32(id)); sp[id] = Array(k.utf8); maxId = max(maxId, id)
        }
        vocab = v; spellings = sp; size = maxId + 1
        let u = o["unk_token"] as? String ?? "[UNK]"
        guard let uid = v.find(Array(u.utf8)) else { throw TokenizerError.invalidJSON("model.unk_token \(u) is not in the vocab") }
        unk = Int(uid)
        prefix = Array((o["continuing_subword_prefix"] as? String ?? "##").utf8)
        maxChars = o["max_input_chars_per_word"] as? Int ?? 100
    }

    func token(_ id: Int) -> [UInt8]? { spellings[id] }
    func id(_ token: [UInt8]) -> Int? { vocab.find(token).map(Int.init) }

    func tokenize(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        var chars = 0
        for i in 0..<n where w[i] & 0xC0 != 0x80 { chars += 1 }
        if chars > maxChars { out.append(unk); return }
        var start = 0
        var subs: [Int] = []
        var key: [UInt8] = []
        while start < n {
            var end = n
            var cur: Int?
            while start < end {
                key.removeAll(keepingCapacity: true)
                if start > 0 { key.append(contentsOf: prefix) }
                key.append(contentsOf: UnsafeBufferPointer(start: w + start, count: end - start))
                if let id = vocab.find(key) { cur = Int(id); break }
                end -= 1
                while end > start && w[end] & 0xC0 == 0x80 { end -= 1 }
            }
            guard let c = cur else { out.append(unk); return }
            subs.append(c)
            start = end
        }
        out.append(contentsOf: subs)
    }
}
