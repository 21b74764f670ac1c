// TiktokenTokenizer: tiktoken's byte-level BPE (a rank per token; the adjacent pair whose concatenation has the
// lowest rank merges first, leftmost on ties; a piece that is itself a token is taken whole) after a split regex,
// with special tokens recognised in the text (tiktoken `encode(text, allowed_special="all")`).
// Two files are read: a `*.tiktoken` rank file (base64 token, space, rank per line; Llama 3's
// `original/tokenizer.model` is one) and Megatron-LM's TikTokenizer JSON (a list of {rank, token_bytes, token_str};
// ranks shifted by num_special_tokens, special tokens first).
// Rule for a bare rank file (documented in docs/tokenizers.md): Llama 3's pattern and its 256 reserved special
// tokens at ids len(ranks) + i, unless the caller passes others. Megatron JSON: pattern "v2" unless "v1" is given,
// special tokens <unk> <s> </s> <mask> <pad> <cls> <sep> then <SPECIAL_i> up to num_special_tokens (1000).
// Contract: malformed lines raise TokenizerError naming the file and line; every byte must have a rank.

import Foundation

public final class TiktokenTokenizer: Tokenizer, @unchecked Sendable {
    public let vocabSize: Int
    public let bosToken: Int?
    public let eosToken: Int?
    public var addBOS: Bool
    public let patternSource: String
    let pattern: SplitPattern
    private let ranks: ByteStringMap
    private let merges: PairMap
    private let byteIds: [Int32]
    private let tokenBytes: [Int: [UInt8]]
    private let specials: [(bytes: [UInt8], id: Int)]   // longest first
    private let specialFirst: [[Int]]                     // indices into specials by first byte
    private let lock = NSLock()
    private var merger = BPEMerger()
    private var cache = ByteStringMap(capacity: 4096)
    private var initial: [Int32] = [], word: [Int32] = []

    /// Llama 3.1's special tokens (meta-llama/llama-models tokenizer.py), ids len(ranks) + i.
    public static let llama3Specials: [String] = {
        let named = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
                     "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
                     "<|eot_id|>", "<|python_tag|>"]
        return named + (0..<(256 - named.count)).map { "<|reserved_special_token_\(2 + $0)|>" }
    }()
    public static let megatronSpecials = ["<unk>", "<s>", "</s>", "<mask>", "<pad>", "<cls>", "<sep>"]
    public static let megatronPatternV1 = #"[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"#
    public static let megatronPatternV2 = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// A `*.tiktoken` rank file.
    public convenience init(rankFile path: String, pattern: String = SplitPatterns.llama3, specialTokens: [String]? = nil,
                            addBOS: Bool = false) throws {
        let data = try readTokenizerFile(path)
        var ranks: [([UInt8], Int)] = []
        var lineNo = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNo += 1
            if line.isEmpty { continue }
            let parts = line.split(separator: UInt8(ascii: " "))
            guard parts.count == 2, let tok = Data(base64Encoded: Data(parts[0])),
                  let r = Int(String(decoding: parts[1], as: UTF8.self).trimmingCharacters(in: .whitespaces)), r >= 0, r < Int(Int32.max) else {
                throw TokenizerError.invalidFormat("\(path):\(lineNo): expected 'base64-token rank'")
            }
            ranks.append(([UInt8](tok), r))
        }
        let base = (ranks.map { $0.1 }.max() ?? -1) + 1
        let sp = (specialTokens ?? TiktokenTokenizer.llama3Specials).enumerated().map { (Array($1.utf8), base + $0) }
        let bos = sp.first { $0.0 == Array("<|begin_of_text|>".utf8) }?.1
        let eos = sp.first { $0.0 == Array("<|end_of_text|>".utf8) }?.1
        try self.init(ranks: ranks, specials: sp, pattern: pattern, bos: bos, eos: eos, addBOS: addBOS, source: path)
    }

    /// Megatron-LM's TikTokenizer vocabulary JSON.
    public convenience init(megatronJSON path: String, pattern: String = "v2", numSpecialTokens: Int = 1000,
                            specialTokens: [String]? = nil, vocabSize: Int? = nil) throws {
        let data = try readTokenizerFile(path)
        guard let list = try? JSONSerialization.jsonObject(with: data) as? [Any] else {
            throw TokenizerError.invalidJSON("\(path): expected a list of {rank, token_bytes, token_str}")
        }
        let specials = specialTokens ?? TiktokenTokenizer.megatronSpecials
        guard specials.count <= numSpecialTokens, numSpecialTokens >= 0 else {
            throw TokenizerError.invalidFormat("\(path): \(specials.count) special tokens but num_special_tokens \(numSpecialTokens)")
        }
        let all = specials + (specials.count..<numSpecialTokens).map { "<SPECIAL_\($0)>" }
        var ranks: [([UInt8], Int)] = []
        let limit = vocabSize.map { max(0, $0 - numSpecialTokens) } ?? Int.max
        for (i, x) in list.prefix(limit).enumerated() {
            guard let o = x as? [String: Any], let r = o["rank"] as? Int, r == i, let b64 = o["token_bytes"] as? String,
                  let b = Data(base64Encoded: b64) else {
                throw TokenizerError.invalidJSON("\(path): entry \(i): expected {rank: \(i), token_bytes: base64, token_str}")
            }
            ranks.append(([UInt8](b), r + numSpecialTokens))
        }
        let pat: String
        switch pattern {
        case "v1": pat = TiktokenTokenizer.megatronPatternV1
        case "v2": pat = TiktokenTokenizer.megatronPatternV2
        default: throw TokenizerError.unsupported("tiktoken_pattern \(pattern) (v1 or v2)")
        }
        let sp = all.enumerated().map { (Array($1.utf8), $0) }
        try self.init(ranks: ranks, specials: sp, pattern: pat, bos: all.firstIndex(of: "<s>"), eos: all.firstIndex(of: "</s>"),
                      addBOS: false, source: path)
    }

    init(ranks list: [([UInt8], Int)], specials: [([UInt8], Int)], pattern: String, bos: Int?, eos: Int?, addBOS: Bool, source: String) throws {
        var r = ByteStringMap(capacity: list.count)
        var tb: [Int: [UInt8]] = [:]
        for (b, id) in list { r.insert(b, value: Int32(id)); tb[id] = b }
        var bi = [Int32](repeating: -1, count: 256)
        for x in 0..<256 {
            guard let id = r.find([UInt8(x)]) else { throw TokenizerError.invalidFormat("\(source): byte \(x) has no rank") }
            bi[x] = id
        }
        var pm = PairMap(capacity: list.count * 4)
        for (b, id) in list where b.count >= 2 {
            for k in 1..<b.count {
                if let a = r.find(Array(b[..<k])), let c = r.find(Array(b[k...])) {
                    if let old = pm.get(a, c), old.rank <= Int32(id) { continue }
                    pm.insert(a, c, rank: Int32(id), id: Int32(id))
                }
            }
        }
        ranks = r; merges = pm; byteIds = bi
        for (b, id) in specials { tb[id] = b }
        tokenBytes = tb
        self.specials = specials.filter { !$0.0.isEmpty }.sorted { $0.0.count > $1.0.count }.map { (bytes: $0.0, id: $0.1) }
        vocabSize = (tb.keys.max() ?? -1) + 1
        var sf = [[Int]](repeating: [], count: 256)
        for (k, s) in self.specials.enumerated() { sf[Int(s.bytes[0])].append(k) }
        specialFirst = sf
        self.pattern = try SplitPatterns.make(regex: pattern)
        patternSource = pattern
        bosToken = bos; eosToken = eos; self.addBOS = addBOS
    }

    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: true) }

    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var out: [Int] = []
        if addSpecialTokens && addBOS, let b = bosToken { out.append(b) }
        let b = Array(text.utf8)
        lock.lock(); defer { lock.unlock() }
        var start = 0, i = 0
        while i < b.count {
            var hit: (bytes: [UInt8], id: Int)?
            for k in specialFirst[Int(b[i])] {
                let s = specials[k]
                if s.bytes.count <= b.count - i && b[i..<(i + s.bytes.count)].elementsEqual(s.bytes) { hit = s; break }
            }
            if let h = hit {
                encodeOrdinary(b, start, i, into: &out)
                out.append(h.id)
                i += h.bytes.count; start = i
            } else { i += 1 }
        }
        encodeOrdinary(b, start, b.count, into: &out)
        return out
    }

    private func encodeOrdinary(_ b: [UInt8], _ lo: Int, _ hi: Int, into out: inout [Int]) {
        if lo >= hi { return }
        let seg = Array(b[lo..<hi])
        seg.withUnsafeBufferPointer { p in
            for (s, e) in pattern.matches(p) { encodePiece(p.baseAddress! + s, e - s, into: &out) }
        }
    }

    private func encodePiece(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int]) {
        if let r = ranks.find(w, n) { out.append(Int(ranks.values[r.lowerBound])); return }
        if let r = cache.find(w, n) { cache.values.withUnsafeBufferPointer { v in for i in r { out.append(Int(v[i])) } }; return }
        initial.removeAll(keepingCapacity: true)
        for i in 0..<n { initial.append(byteIds[Int(w[i])]) }
        initial.withUnsafeBufferPointer { merger.merge($0, merges: merges, into: &word) }
        for x in word { out.append(Int(x)) }
        if n <= 256 {
            if cache.count >= 200_000 { cache.removeAll() }
            word.withUnsafeBufferPointer { cache.insert(w, n, values: $0) }
        }
    }

    public func decodeBytes(_ ids: [Int]) -> [UInt8] { ids.flatMap { tokenBytes[$0] ?? [] } }
    public func tokenString(_ id: Int) -> String? { tokenBytes[id].map { String(decoding: $0, as: UTF8.self) } }
    public func tokenID(_ token: String) -> Int? {
        let b = Array(token.utf8)
        if let s = specials.first(where: { $0.bytes == b }) { return s.id }
        return ranks.find(b).map(Int.init)
    }
}
