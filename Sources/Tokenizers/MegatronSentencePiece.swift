// MegatronSentencePieceTokenizer: Megatron-LM's `_SentencePieceTokenizer` (megatron/training/tokenizer/tokenizer.py,
// the tokenizer_type SentencePieceTokenizer) over a SentencePieceTokenizer.
// Contract, as Megatron's class: the vocabulary is the model's pieces, then the special tokens <CLS>, <SEP>, <EOD>,
// <MASK>, the pad, bos and eos pieces (<PAD>, <BOS>, <EOS> when the model has none) and <extra_id_0..N-1>
// (`vocab_extra_ids`), each reusing the model's piece of that spelling when there is one, else taking the next id;
// `vocabSize` counts them all. `encode` is Megatron's `tokenize`: the text is cut at the leftmost occurrence of any
// special string (ties: the first in the order above), each piece between encoded by sentencepiece alone (no BOS),
// each special string becoming its id. `decode` is `detokenize`: pieces between special ids decoded by
// sentencepiece, each special id written as " <spelling> ". `eosToken` is Megatron's `eod` (the document separator
// and the generation stop); `bosToken` its `bos`. Checked against the real class: Tests/Fixtures/tokenizers/megatron_sp.

import Foundation

public final class MegatronSentencePieceTokenizer: Tokenizer, @unchecked Sendable {
    public let base: SentencePieceTokenizer
    public let vocabSize: Int
    public let cls: Int, sep: Int, eod: Int, mask: Int, pad: Int, bos: Int, eos: Int
    /// The ids of <extra_id_0> ... in order (Megatron's `additional_special_tokens_ids`).
    public let extraIDs: [Int]
    /// Special strings in Megatron's dict order (first spelling wins on a repeat), with their ids.
    let specials: [(bytes: [UInt8], id: Int)]
    private let specialById: [Int: [UInt8]]
    private let byFirstByte: [[Int]]

    public var bosToken: Int? { bos }
    public var eosToken: Int? { eod }

    /// `vocabExtraIDs` is Megatron's `--vocab-extra-ids` (saved as `vocab_extra_ids`).
    public init(base: SentencePieceTokenizer, vocabExtraIDs: Int = 0) throws {
        guard vocabExtraIDs >= 0 && vocabExtraIDs <= 1_000_000 else {
            throw TokenizerError.invalidFormat("vocab_extra_ids: expected 0...1000000, found \(vocabExtraIDs)")
        }
        self.base = base
        var next = base.vocabSize
        var list: [(bytes: [UInt8], id: Int)] = []
        var added: [String: Int] = [:]
        var listed = Set<[UInt8]>()   // a spelling is listed once (its first id): linear in vocab_extra_ids
        func add(_ t: String) -> Int {
            let id: Int
            if let i = base.tokenID(t) ?? added[t] { id = i } else { id = next; next += 1; added[t] = id }
            if listed.insert(Array(t.utf8)).inserted { list.append((Array(t.utf8), id)) }
            return id
        }
        func piece(_ id: Int?, _ fallback: String) -> String { id.flatMap { base.tokenString($0) } ?? fallback }
        cls = add("<CLS>"); sep = add("<SEP>"); eod = add("<EOD>"); mask = add("<MASK>")
        pad = add(piece(base.padToken, "<PAD>"))
        bos = add(piece(base.bosToken, "<BOS>"))
        eos = add(piece(base.eosToken, "<EOS>"))
        extraIDs = (0..<vocabExtraIDs).map { add("<extra_id_\($0)>") }
        vocabSize = next
        specials = list
        var byId: [Int: [UInt8]] = [:]
        for s in list where byId[s.id] == nil { byId[s.id] = s.bytes }
        specialById = byId
        var f = [[Int]](repeating: [], count: 256)
        for (k, s) in list.enumerated() { f[Int(s.bytes[0])].append(k) }
        byFirstByte = f
    }

    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: true) }

    /// Megatron's `tokenize` (which adds nothing around the text, so `addSpecialTokens` changes nothing).
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        let b = Array(text.utf8)
        var out: [Int] = []
        var start = 0, i = 0
        while i < b.count {
            var hit: Int?
            for k in byFirstByte[Int(b[i])] {
                let s = specials[k].bytes
                if s.count <= b.count - i && b[i..<(i + s.count)].elementsEqual(s) { hit = min(hit ?? k, k) }
            }
            guard let k = hit else { i += 1; continue }
            if i > start { out += base.encode(String(decoding: b[start..<i], as: UTF8.self), addSpecialTokens: false) }
            out.append(specials[k].id)
            i += specials[k].bytes.count
            start = i
        }
        if start < b.count { out += base.encode(String(decoding: b[start...], as: UTF8.self), addSpecialTokens: false) }
        return out
    }

    /// Megatron's `detokenize`: sentencepiece's decode between special ids.
    public func decode(_ ids: [Int]) -> String { String(decoding: detokenize(ids) { Array(base.decode($0).utf8) }, as: UTF8.self) }

    /// As `decode`, with sentencepiece's raw bytes (a partial UTF-8 sequence stays as it is, for streaming).
    public func decodeBytes(_ ids: [Int]) -> [UInt8] { detokenize(ids, base.decodeBytes) }

    private func detokenize(_ ids: [Int], _ piecewise: ([Int]) -> [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var last = 0
        for (i, id) in ids.enumerated() {
            guard let s = specialById[id] else { continue }
            out += piecewise(Array(ids[last..<i]))
            out.append(0x20); out += s; out.append(0x20)
            last = i + 1
        }
        return out + piecewise(Array(ids[last...]))
    }

    public func tokenString(_ id: Int) -> String? { specialById[id].map { String(decoding: $0, as: UTF8.self) } ?? base.tokenString(id) }

    public func tokenID(_ token: String) -> Int? { specials.first { $0.bytes == Array(token.utf8) }?.id ?? base.tokenID(token) }
}
