// TokenizerLoader: which tokenizer a path or a checkpoint names, and loading it.
// Contract: `load(path:)` takes a folder or a file. Files: *.json (an HF tokenizer.json; a Megatron TikTokenizer
// list), *.model (a sentencepiece ModelProto, or a tiktoken rank file as Llama 3's original/tokenizer.model is),
// *.tiktoken, llama2.c *.bin. Folders, in HF's order: tokenizer.json, tokenizer.model, *.tiktoken, vocab.json +
// merges.txt (or gpt2-*), tokenizer.bin. tokenizer_config.json beside sets BOS/EOS and add_bos_token for
// sentencepiece and tiktoken models (HF LlamaTokenizer adds BOS unless add_bos_token is false).
// `find(besideCheckpoint:megatronArgs:)` follows the checkpoint's saved Megatron args (tokenizer_type,
// tokenizer_model, vocab_file, merge_file, tiktoken_*) when present, looking each file up as saved, then by name
// beside the checkpoint (its folder and up to two parents); else (also when the args leave a file empty) the
// checkpoint folder's own files; nil when none.
// Errors name the file or the arg and what was looked for.

import Foundation

public struct LoadedTokenizer {
    public let tokenizer: Tokenizer
    /// One line for `turing inspect`: the kind and the file(s).
    public let description: String
}

/// The tokenizer fields of Megatron's saved args (strings as saved; nil when absent).
public struct MegatronTokenizerArgs: Sendable {
    public var tokenizerType: String?
    public var tokenizerModel: String?
    public var vocabFile: String?
    public var mergeFile: String?
    public var tiktokenPattern: String?
    public var tiktokenNumSpecialTokens: Int?
    public var tiktokenSpecialTokens: [String]?
    public var vocabSize: Int?
    /// `--vocab-extra-ids` (SentencePieceTokenizer's <extra_id_N> tokens).
    public var vocabExtraIDs: Int?
    public init(tokenizerType: String? = nil, tokenizerModel: String? = nil, vocabFile: String? = nil, mergeFile: String? = nil,
                tiktokenPattern: String? = nil, tiktokenNumSpecialTokens: Int? = nil, tiktokenSpecialTokens: [String]? = nil,
                vocabSize: Int? = nil, vocabExtraIDs: Int? = nil) {
        self.tokenizerType = tokenizerType; self.tokenizerModel = tokenizerModel; self.vocabFile = vocabFile
        self.mergeFile = mergeFile; self.tiktokenPattern = tiktokenPattern; self.tiktokenNumSpecialTokens = tiktokenNumSpecialTokens
        self.tiktokenSpecialTokens = tiktokenSpecialTokens; self.vocabSize = vocabSize; self.vocabExtraIDs = vocabExtraIDs
    }
    /// From (field, readable value) pairs as `CheckpointInspection.args` lists them.
    public init(fields: [(String, String)]) {
        func s(_ k: String) -> String? {
            guard let v = fields.first(where: { $0.0 == k })?.1, v != "None", !v.isEmpty else { return nil }
            return v.count >= 2 && (v.hasPrefix("'") && v.hasSuffix("'") || v.hasPrefix("\"") && v.hasSuffix("\"")) ? String(v.dropFirst().dropLast()) : v
        }
        self.init(tokenizerType: s("tokenizer_type"), tokenizerModel: s("tokenizer_model"), vocabFile: s("vocab_file"),
                  mergeFile: s("merge_file"), tiktokenPattern: s("tiktoken_pattern"),
                  tiktokenNumSpecialTokens: s("tiktoken_num_special_tokens").flatMap { Int($0) }, vocabSize: s("vocab_size").flatMap { Int($0) },
                  vocabExtraIDs: s("vocab_extra_ids").flatMap { Int($0) })
    }
}

public enum TokenizerLoader {
    static let fm = FileManager.default

    static func isDir(_ p: String) -> Bool {
        var d: ObjCBool = false
        return fm.fileExists(atPath: p, isDirectory: &d) && d.boolValue
    }

    /// A folder or a tokenizer file.
    public static func load(path: String) throws -> LoadedTokenizer {
        guard fm.fileExists(atPath: path) else { throw TokenizerError.fileNotFound(path) }
        if !isDir(path) { return try loadFile(path, config: config(beside: (path as NSString).deletingLastPathComponent)) }
        guard let t = try loadFolder(path) else {
            throw TokenizerError.fileNotFound("no tokenizer in \(path): looked for tokenizer.json, tokenizer.model, *.tiktoken, vocab.json + merges.txt, tokenizer.bin")
        }
        return t
    }

    /// tokenizer_config.json in `dir` (empty when absent or unreadable).
    static func config(beside dir: String) -> [String: Any] {
        let p = (dir as NSString).appendingPathComponent("tokenizer_config.json")
        guard let d = fm.contents(atPath: p), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return [:] }
        return o
    }

    static func tokenName(_ v: Any?) -> String? {
        if let s = v as? String { return s }
        if let o = v as? [String: Any] { return o["content"] as? String }
        return nil
    }

    static func loadFolder(_ dir: String) throws -> LoadedTokenizer? {
        let cfg = config(beside: dir)
        func at(_ n: String) -> String? { let p = (dir as NSString).appendingPathComponent(n); return fm.fileExists(atPath: p) ? p : nil }
        if let p = at("tokenizer.json") { return try loadFile(p, config: cfg) }
        if let p = at("tokenizer.model") { return try loadFile(p, config: cfg) }
        let names = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        if let n = names.first(where: { $0.hasSuffix(".tiktoken") }) { return try loadFile((dir as NSString).appendingPathComponent(n), config: cfg) }
        for (v, m) in [("vocab.json", "merges.txt"), ("gpt2-vocab.json", "gpt2-merges.txt")] {
            if let vp = at(v), let mp = at(m) { return LoadedTokenizer(tokenizer: try GPT2Tokenizer(vocabFile: vp, mergesFile: mp), description: "GPT-2 BPE \(vp) + \(mp)") }
        }
        if let p = at("tokenizer.bin") { return try loadFile(p, config: cfg) }
        return nil
    }

    /// Whether a file holds tiktoken rank lines ("base64 rank").
    static func looksLikeTiktoken(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let head = h.readData(ofLength: 256)
        guard let nl = head.firstIndex(of: UInt8(ascii: "\n")) else { return false }
        let parts = head[head.startIndex..<nl].split(separator: UInt8(ascii: " "))
        return parts.count == 2 && Data(base64Encoded: Data(parts[0])) != nil && Int(String(decoding: parts[1], as: UTF8.self)) != nil
    }

    static func loadFile(_ path: String, config cfg: [String: Any], addBOS: Bool? = nil) throws -> LoadedTokenizer {
        let name = (path as NSString).lastPathComponent
        let ext = (path as NSString).pathExtension
        let wantBOS = addBOS ?? (cfg["add_bos_token"] as? Bool ?? ((cfg["tokenizer_class"] as? String)?.contains("Llama") ?? false))
        if ext == "json" {
            let data = try readTokenizerFile(path)
            if let list = try? JSONSerialization.jsonObject(with: data) as? [Any], list.first is [String: Any] {
                return LoadedTokenizer(tokenizer: try TiktokenTokenizer(megatronJSON: path), description: "Megatron TikTokenizer \(path)")
            }
            if let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any], isPlainGPT2(root),
               let t = try? GPT2Tokenizer(tokenizerJSONData: data) {
                return LoadedTokenizer(tokenizer: t, description: "GPT-2 byte-level BPE tokenizer.json \(path)")
            }
            let t = try HFTokenizer(data: data, source: path)
            if let b = tokenName(cfg["bos_token"]).flatMap({ t.tokenID($0) }) { t.bosToken = b }
            if let e = tokenName(cfg["eos_token"]).flatMap({ t.tokenID($0) }) { t.eosToken = e }
            return LoadedTokenizer(tokenizer: t, description: "\(t.summary) \(path)")
        }
        if ext == "tiktoken" || (ext == "model" && looksLikeTiktoken(path)) {
            let t = try TiktokenTokenizer(rankFile: path, addBOS: addBOS ?? (cfg["add_bos_token"] as? Bool ?? false))
            return LoadedTokenizer(tokenizer: t, description: "tiktoken rank file (Llama 3 pattern and special tokens) \(path)")
        }
        if ext == "model" {
            let t = try SentencePieceTokenizer(path: path, addBOS: wantBOS, addEOS: cfg["add_eos_token"] as? Bool ?? false)
            return LoadedTokenizer(tokenizer: t, description: "SentencePiece \(t.model.modelType == .bpe ? "BPE" : "unigram") \(path)" + (wantBOS ? " (adds BOS)" : ""))
        }
        if ext == "bin" { return LoadedTokenizer(tokenizer: try Llama2cTokenizer(path: path), description: "llama2.c tokenizer \(path)") }
        throw TokenizerError.unsupported("\(name): unknown tokenizer file (expected tokenizer.json, *.model, *.tiktoken, a Megatron TikTokenizer .json, or a llama2.c .bin)")
    }

    /// A GPT-2-style tokenizer.json that GPT2Tokenizer runs exactly (BPE, no normalizer, ByteLevel alone, no template).
    static func isPlainGPT2(_ root: [String: Any]) -> Bool {
        guard (root["normalizer"] ?? NSNull()) is NSNull,
              let pre = root["pre_tokenizer"] as? [String: Any], pre["type"] as? String == "ByteLevel",
              let model = root["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE" else { return false }
        if model["byte_fallback"] as? Bool == true { return false }
        if let p = root["post_processor"] as? [String: Any], p["type"] as? String != "ByteLevel" { return false }
        if let d = root["decoder"] as? [String: Any], d["type"] as? String != "ByteLevel" { return false }
        return true
    }

    /// Where a file named in saved args is: as saved, else by name beside the checkpoint.
    static func locate(_ saved: String, near checkpoint: String, extra: String?) -> String? {
        if fm.fileExists(atPath: saved) { return saved }
        let name = (saved as NSString).lastPathComponent
        var dirs: [String] = []
        if let e = extra { dirs.append(isDir(e) ? e : (e as NSString).deletingLastPathComponent) }
        var d = isDir(checkpoint) ? checkpoint : (checkpoint as NSString).deletingLastPathComponent
        for _ in 0..<3 { dirs.append(d); d = (d as NSString).deletingLastPathComponent }
        for dir in dirs {
            let p = (dir as NSString).appendingPathComponent(name)
            if fm.fileExists(atPath: p) { return p }
        }
        return nil
    }

    /// The tokenizer a checkpoint names (Megatron args first, then its folder's files); nil when none is found.
    /// `tokenizerPath` (from --tokenizer) is where files named in the args are looked up first.
    public static func find(besideCheckpoint checkpoint: String, megatronArgs a: MegatronTokenizerArgs?, tokenizerPath: String? = nil) throws -> LoadedTokenizer? {
        if let a, let type = a.tokenizerType {
            /// A field the args left empty ends the args' part (the folder is searched next, as for no args).
            struct Absent: Error {}
            func need(_ v: String?, _ field: String) throws -> String {
                guard let v else { throw Absent() }
                guard let p = locate(v, near: checkpoint, extra: tokenizerPath) else {
                    throw TokenizerError.fileNotFound("\(field) \(v) (saved in the checkpoint's args; not found as saved, beside the checkpoint, or in --tokenizer): pass --tokenizer PATH")
                }
                return p
            }
            do {
                switch type {
                case "GPT2BPETokenizer":
                    let v = try need(a.vocabFile, "vocab_file"), m = try need(a.mergeFile, "merge_file")
                    return LoadedTokenizer(tokenizer: try GPT2Tokenizer(vocabFile: v, mergesFile: m), description: "GPT2BPETokenizer (Megatron args) \(v) + \(m)")
                case "SentencePieceTokenizer":
                    let p = try need(a.tokenizerModel, "tokenizer_model")
                    let t = try MegatronSentencePieceTokenizer(base: SentencePieceTokenizer(path: p), vocabExtraIDs: a.vocabExtraIDs ?? 0)
                    return LoadedTokenizer(tokenizer: t, description: "SentencePieceTokenizer (Megatron args): SentencePiece \(t.base.model.modelType == .bpe ? "BPE" : "unigram") \(p)"
                                           + " + <CLS> <SEP> <EOD> <MASK>\(t.extraIDs.isEmpty ? "" : " + \(t.extraIDs.count) <extra_id_N>"), \(t.vocabSize) ids, eod \(t.eod)")
                case "GPTSentencePieceTokenizer", "Llama2Tokenizer":
                    let p = try need(a.tokenizerModel, "tokenizer_model")
                    let t = try SentencePieceTokenizer(path: p, addBOS: type == "Llama2Tokenizer")
                    return LoadedTokenizer(tokenizer: t, description: "\(type) (Megatron args): SentencePiece \(t.model.modelType == .bpe ? "BPE" : "unigram") \(p)" + (t.addBOS ? ", adds BOS" : ""))
                case "Llama3Tokenizer":
                    let p = try need(a.tokenizerModel, "tokenizer_model")
                    return LoadedTokenizer(tokenizer: try TiktokenTokenizer(rankFile: p, addBOS: true), description: "Llama3Tokenizer (Megatron args): tiktoken \(p), adds BOS")
                case "TikTokenizer":
                    let p = try need(a.tokenizerModel, "tokenizer_model")
                    let t = try TiktokenTokenizer(megatronJSON: p, pattern: a.tiktokenPattern ?? "v2", numSpecialTokens: a.tiktokenNumSpecialTokens ?? 1000,
                                                  specialTokens: a.tiktokenSpecialTokens, vocabSize: a.vocabSize)
                    return LoadedTokenizer(tokenizer: t, description: "TikTokenizer (Megatron args) \(p), pattern \(a.tiktokenPattern ?? "v2")")
                case "HuggingFaceTokenizer":
                    let p = try need(a.tokenizerModel, "tokenizer_model")
                    let t = try load(path: p)
                    return LoadedTokenizer(tokenizer: t.tokenizer, description: "HuggingFaceTokenizer (Megatron args): \(t.description)")
                case "NullTokenizer": break
                default: throw TokenizerError.unsupported("Megatron tokenizer_type \(type)")
                }
            } catch is Absent {}
        }
        if let t = tokenizerPath { return try load(path: t) }
        if isDir(checkpoint) { return try loadFolder(checkpoint) }
        // a single-file checkpoint (llama2.c): tokenizer.bin or tok*.bin beside it
        let dir = (checkpoint as NSString).deletingLastPathComponent
        let names = ((try? fm.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir)) ?? []).sorted()
        if let n = (["tokenizer.bin"] + names.filter { $0.hasPrefix("tok") && $0.hasSuffix(".bin") }).first(where: names.contains) {
            return try loadFile((dir as NSString).appendingPathComponent(n), config: [:])
        }
        return nil
    }
}
