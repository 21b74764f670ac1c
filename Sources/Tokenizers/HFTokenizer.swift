// HFTokenizer: a tokenizer.json run as HF `tokenizers` (0.2x) runs it: added tokens split out first (those with
// normalized=false matched on the raw text, leftmost-longest, with single_word/lstrip/rstrip), the normalizer on
// each remaining segment, then added tokens with normalized=true matched on the normalized text, the pre-tokenizer,
// the model per pre-token (cached per word), and the post-processor's special tokens when asked for.
// decode maps ids to spellings (added tokens first) and runs the decoder chain (HFDecoder).
// Contract: `encode(_:addSpecialTokens:)` equals `Tokenizer.encode(text, add_special_tokens=...).ids`; `decode`
// equals `Tokenizer.decode(ids, skip_special_tokens=False)`; `encode(_:)` adds special tokens as transformers does
// by default. Loading refuses unknown component types and unsupported fields naming them; `truncation` and
// `padding` are ignored (transformers turns them off for a plain encode). Thread-safe (one lock, per-word cache).

import Foundation

public final class HFTokenizer: Tokenizer, @unchecked Sendable {
    struct Added {
        var content: [UInt8]
        var id: Int
        var special: Bool
        var lstrip: Bool, rstrip: Bool, singleWord: Bool, normalized: Bool
    }
    enum Template { case special([Int]), sequence }

    public let vocabSize: Int
    public var bosToken: Int?
    public var eosToken: Int?
    let normalizer: HFNormalizer?
    let preTokenizer: HFPreTokenizer?
    let decoder: HFDecoder?
    let model: HFModel
    let template: [Template]?
    let added: [Added]
    private let rawSet: AddedSet       // normalized == false
    private let normSet: AddedSet      // normalized == true, content normalized
    private let addedById: [Int: [UInt8]]
    /// Description of the pipeline for `turing inspect`.
    public let summary: String

    private let lock = NSLock()
    private var cache = ByteStringMap(capacity: 4096)
    private var scratch: [Int32] = []
    private var pre = PreScratch()

    public convenience init(path: String) throws {
        try self.init(data: readTokenizerFile(path), source: path)
    }

    public init(data: Data, source: String = "tokenizer.json") throws {
        let root: [String: Any]
        do {
            guard let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw TokenizerError.invalidJSON("\(source): top level is not an object") }
            root = r
        } catch let e as TokenizerError { throw e } catch { throw TokenizerError.invalidJSON("\(source): \(error)") }
        do {
            normalizer = try HFNormalizer.parse(root["normalizer"])
            preTokenizer = try HFPreTokenizer.parse(root["pre_tokenizer"])
            decoder = try HFDecoder.parse(root["decoder"])
            guard let m = root["model"] as? [String: Any] else { throw TokenizerError.invalidJSON("model: missing") }
            let type = m["type"] as? String ?? (m["merges"] != nil ? "BPE" : m["vocab"] is [Any] ? "Unigram" : "WordPiece")
            switch type {
            case "BPE": model = try HFBPEModel(m, byteLevel: preTokenizer?.isByteLevel ?? false)
            case "Unigram": model = try HFUnigramModel(m)
            case "WordPiece": model = try HFWordPieceModel(m)
            default: throw TokenizerError.unsupported("model.type \(type)")
            }
            template = try HFTokenizer.parsePostProcessor(root["post_processor"])
            var list: [Added] = []
            for (i, t) in ((root["added_tokens"] as? [Any]) ?? []).enumerated() {
                guard let o = t as? [String: Any], let id = o["id"] as? Int, id >= 0, id < Int(Int32.max), let c = o["content"] as? String else {
                    throw TokenizerError.invalidJSON("added_tokens[\(i)]: expected {id, content, ...}")
                }
                let special = o["special"] as? Bool ?? false
                list.append(Added(content: Array(c.utf8), id: id, special: special, lstrip: o["lstrip"] as? Bool ?? false,
                                  rstrip: o["rstrip"] as? Bool ?? false, singleWord: o["single_word"] as? Bool ?? false,
                                  normalized: o["normalized"] as? Bool ?? !special))
            }
            added = list
        } catch let e as TokenizerError {
            switch e {
            case .unsupported(let m): throw TokenizerError.unsupported("\(source): \(m)")
            case .invalidJSON(let m): throw TokenizerError.invalidJSON("\(source): \(m)")
            case .invalidFormat(let m): throw TokenizerError.invalidFormat("\(source): \(m)")
            default: throw e
            }
        }
        let byLen: (Added, Added) -> Bool = { $0.content.count != $1.content.count ? $0.content.count > $1.content.count : $0.id < $1.id }
        rawSet = AddedSet(added.filter { !$0.normalized && !$0.content.isEmpty }.sorted(by: byLen))
        let n = normalizer
        normSet = AddedSet(added.filter { $0.normalized }.map { a in var b = a; if let n { b.content = n.normalize(a.content) }; return b }
            .filter { !$0.content.isEmpty }.sorted(by: byLen))
        var byId: [Int: [UInt8]] = [:]
        for a in added { byId[a.id] = a.content }
        addedById = byId
        vocabSize = max(model.size, (added.map { $0.id }.max() ?? -1) + 1)
        var bos: Int?
        if let t = template, case .special(let ids)? = t.first { bos = ids.first }
        bosToken = bos
        eosToken = nil
        for s in ["</s>", "<|endoftext|>", "<|end_of_text|>", "[SEP]"] { if let id = byId.first(where: { $0.value == Array(s.utf8) })?.key { eosToken = id; break } }
        let mtype = model is HFBPEModel ? "BPE" : model is HFUnigramModel ? "Unigram" : "WordPiece"
        summary = "tokenizer.json \(mtype)" + (normalizer != nil ? " + normalizer" : "") + (preTokenizer.map { $0.isByteLevel ? " + ByteLevel" : " + pre-tokenizer" } ?? "")
            + ", \(vocabSize) ids, \(added.count) added tokens"
    }

    static func parsePostProcessor(_ j: Any?) throws -> [Template]? {
        guard let j, !(j is NSNull) else { return nil }
        guard let o = j as? [String: Any], let type = o["type"] as? String else { throw TokenizerError.invalidJSON("post_processor: expected an object with a type") }
        switch type {
        case "ByteLevel": return nil
        case "TemplateProcessing":
            guard let single = o["single"] as? [Any] else { throw TokenizerError.invalidJSON("post_processor.single: expected an array") }
            let specials = o["special_tokens"] as? [String: Any] ?? [:]
            return try single.enumerated().map { i, x in
                guard let e = x as? [String: Any] else { throw TokenizerError.invalidJSON("post_processor.single[\(i)]") }
                if let s = e["SpecialToken"] as? [String: Any], let name = s["id"] as? String {
                    guard let st = specials[name] as? [String: Any], let ids = st["ids"] as? [Int] else {
                        throw TokenizerError.invalidJSON("post_processor.special_tokens: \(name) missing")
                    }
                    return .special(ids)
                }
                if e["Sequence"] != nil { return .sequence }
                throw TokenizerError.invalidJSON("post_processor.single[\(i)]: neither SpecialToken nor Sequence")
            }
        case "BertProcessing", "RobertaProcessing":
            guard let cls = o["cls"] as? [Any], cls.count == 2, let c = cls[1] as? Int, let sep = o["sep"] as? [Any], sep.count == 2, let s = sep[1] as? Int else {
                throw TokenizerError.invalidJSON("post_processor \(type): cls/sep")
            }
            return [.special([c]), .sequence, .special([s])]
        case "Sequence":
            var result: [Template]?
            for (i, p) in ((o["processors"] as? [Any]) ?? []).enumerated() {
                if let t = try parsePostProcessor(p) {
                    guard result == nil else { throw TokenizerError.unsupported("post_processor.processors[\(i)]: a second template") }
                    result = t
                }
            }
            return result
        default: throw TokenizerError.unsupported("post_processor.type \(type)")
        }
    }

    // MARK: - Tokenizer

    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: true) }

    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        let bytes = Array(text.utf8)
        lock.lock()
        for seg in HFTokenizer.findAdded(bytes, rawSet, atStart: true) {
            if let id = seg.id { ids.append(id); continue }
            let normalized = normalizer?.normalize(seg.bytes) ?? seg.bytes
            for sub in HFTokenizer.findAdded(normalized, normSet, atStart: seg.atStart) {
                if let id = sub.id { ids.append(id); continue }
                if sub.bytes.isEmpty { continue }   // HF drops empty splits before pre-tokenizing
                var words = PreTokens(sub.bytes, atStart: sub.atStart)
                preTokenizer?.run(&words, &pre)
                words.buf.withUnsafeBufferPointer { q in
                    for w in words.spans { tokenizeWord(q.baseAddress! + w.start, w.end - w.start, into: &ids) }
                }
            }
        }
        lock.unlock()
        guard addSpecialTokens, let t = template else { return ids }
        var out: [Int] = []
        for item in t { switch item { case .special(let s): out.append(contentsOf: s); case .sequence: out.append(contentsOf: ids) } }
        return out
    }

    private lazy var metaspaceSplit: Bool = (model as? HFBPEModel)?.splitsAtMetaspace ?? false

    private func tokenizeWord(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        if n == 0 { return }
        if n > 256 && metaspaceSplit {   // a long word (Metaspace split=false, Prepend+Replace) cut where no merge crosses
            var start = 0, i = 0, prevSpace = true
            while i < n {
                let isSpace = i + 3 <= n && w[i] == 0xE2 && w[i + 1] == 0x96 && w[i + 2] == 0x81
                if isSpace && !prevSpace && i > start { tokenizePart(w + start, i - start, into: &out); start = i }
                prevSpace = isSpace
                i += isSpace ? 3 : 1
            }
            tokenizePart(w + start, n - start, into: &out)
            return
        }
        tokenizePart(w, n, into: &out)
    }

    private func tokenizePart(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        if n == 0 { return }
        if let r = cache.find(w, n) {
            cache.values.withUnsafeBufferPointer { v in for i in r { out.append(Int(v[i])) } }
            return
        }
        let s = out.count
        model.tokenize(w, n, into: &out)
        if n <= 256 {
            if cache.count >= 200_000 { cache.removeAll() }
            scratch.removeAll(keepingCapacity: true)
            for i in s..<out.count { scratch.append(Int32(out[i])) }
            scratch.withUnsafeBufferPointer { cache.insert(w, n, values: $0) }
        }
    }

    struct Segment { var bytes: [UInt8]; var id: Int?; var atStart: Bool }

    /// Added tokens longest first, indexed by first byte.
    struct AddedSet {
        let tokens: [Added]
        let byFirst: [[Int]]
        let isFirst: [Bool]
        init(_ t: [Added]) {
            tokens = t
            var f = [[Int]](repeating: [], count: 256)
            for (i, a) in t.enumerated() { f[Int(a.content[0])].append(i) }
            byFirst = f
            isFirst = f.map { !$0.isEmpty }
        }
        var isEmpty: Bool { tokens.isEmpty }
    }

    /// AddedVocabulary::find_matches over `b` with one matching set.
    static func findAdded(_ b: [UInt8], _ set: AddedSet, atStart: Bool) -> [Segment] {
        if set.isEmpty || b.isEmpty { return [Segment(bytes: b, id: nil, atStart: atStart)] }
        var out: [Segment] = []
        var startOffset = 0
        var i = 0
        let n = b.count
        while i < n {
            if !set.isFirst[Int(b[i])] { i += 1; continue }
            var hit: Added?
            for k in set.byFirst[Int(b[i])] where set.tokens[k].content.count <= n - i {
                let a = set.tokens[k]
                var ok = true
                for j in 1..<a.content.count where b[i + j] != a.content[j] { ok = false; break }
                if ok { hit = a; break }
            }
            guard let a = hit else { i += 1; continue }
            var start = i, stop = i + a.content.count
            i = stop
            if a.singleWord {
                let startSpace = start == 0 || !endsWithWord(b, start)
                let stopSpace = stop == n || !startsWithWord(b, stop)
                if !startSpace || !stopSpace { continue }
            }
            if a.lstrip {
                var s = start
                while s > 0, let (u, l) = scalarBefore(b, s), CharClass.isWhitespace(u) { s -= l }
                start = max(s, startOffset)
            }
            if a.rstrip {
                while stop < n, let (u, l) = scalarAt(b, stop), CharClass.isWhitespace(u) { stop += l }
            }
            if startOffset < start { out.append(Segment(bytes: Array(b[startOffset..<start]), id: nil, atStart: atStart && startOffset == 0)) }
            out.append(Segment(bytes: [], id: a.id, atStart: false))
            startOffset = stop
        }
        if startOffset < n { out.append(Segment(bytes: Array(b[startOffset...]), id: nil, atStart: atStart && startOffset == 0)) }
        return out
    }

    static func scalarAt(_ b: [UInt8], _ i: Int) -> (Unicode.Scalar, Int)? {
        b.withUnsafeBufferPointer { p in
            let (v, l) = UTF8Util.decode(p.baseAddress!, i, p.count)
            return v.flatMap { Unicode.Scalar($0) }.map { ($0, l) }
        }
    }
    static func scalarBefore(_ b: [UInt8], _ end: Int) -> (Unicode.Scalar, Int)? {
        var s = end - 1
        while s > 0 && b[s] & 0xC0 == 0x80 { s -= 1 }
        guard let (u, l) = scalarAt(b, s), s + l == end else { return nil }
        return (u, l)
    }
    static func endsWithWord(_ b: [UInt8], _ end: Int) -> Bool { scalarBefore(b, end).map { CharClass.isWord($0.0) } ?? false }
    static func startsWithWord(_ b: [UInt8], _ i: Int) -> Bool { scalarAt(b, i).map { CharClass.isWord($0.0) } ?? false }

    // MARK: - Decoding

    private func spellings(_ ids: [Int]) -> [[UInt8]] {
        ids.compactMap { id in addedById[id] ?? model.token(id) }
    }

    private func decodeChain(_ ids: [Int], exact: Bool) -> [UInt8] {
        let toks = spellings(ids)
        guard let d = decoder else {
            var out: [UInt8] = []
            for (i, t) in toks.enumerated() { if i > 0 { out.append(0x20) }; out.append(contentsOf: t) }
            return out
        }
        return d.decode(toks, exact: exact).flatMap { $0 }
    }

    public func decode(_ ids: [Int]) -> String { String(decoding: decodeChain(ids, exact: true), as: UTF8.self) }
    public func decodeBytes(_ ids: [Int]) -> [UInt8] { decodeChain(ids, exact: false) }

    public func tokenString(_ id: Int) -> String? { (addedById[id] ?? model.token(id)).map { String(decoding: $0, as: UTF8.self) } }
    public func tokenID(_ token: String) -> Int? {
        let b = Array(token.utf8)
        if let a = added.first(where: { $0.content == b }) { return a.id }
        return model.id(b)
    }
}
