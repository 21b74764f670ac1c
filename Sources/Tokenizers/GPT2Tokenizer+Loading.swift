// GPT2Tokenizer loading: Megatron/OpenAI `vocab.json` + `merges.txt`, or an HF `tokenizer.json`.
// Contract: every malformed or unsupported input raises TokenizerError (never traps). tokenizer.json must hold a
// BPE model with a ByteLevel pre-tokenizer (regex on) and no normalizer; merges may be "a b" strings or
// ["a", "b"] arrays; `added_tokens` are honored (split out before BPE, decoded as their content).

import Foundation

extension GPT2Tokenizer {
    /// Megatron's --vocab-file/--merge-file pair. Each of `specialTokens` present in the vocab is matched as an
    /// added token (HF GPT2TokenizerFast registers `<|endoftext|>` this way).
    public convenience init(vocabFile: String, mergesFile: String,
                            specialTokens: [String] = ["<|endoftext|>"]) throws {
        let vocab = try GPT2Tokenizer.parseVocabJSON(readTokenizerFile(vocabFile), source: vocabFile)
        let merges = try GPT2Tokenizer.parseMergesTxt(readTokenizerFile(mergesFile), source: mergesFile)
        let added = specialTokens.compactMap { s in vocab[s].map { AddedToken(content: s, id: $0) } }
        try self.init(vocab: vocab, merges: merges, addedTokens: added)
    }

    /// HF `tokenizer.json`.
    public convenience init(tokenizerJSON path: String) throws {
        try self.init(tokenizerJSONData: readTokenizerFile(path))
    }

    public convenience init(tokenizerJSONData data: Data) throws {
        let root: [String: Any]
        do {
            guard let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TokenizerError.invalidJSON("top level is not an object")
            }
            root = r
        } catch let e as TokenizerError { throw e } catch { throw TokenizerError.invalidJSON("\(error)") }

        guard let model = root["model"] as? [String: Any] else { throw TokenizerError.invalidJSON("missing model") }
        if let type = model["type"] as? String, type != "BPE" { throw TokenizerError.unsupported("model type \(type)") }
        if let n = root["normalizer"], !(n is NSNull) { throw TokenizerError.unsupported("normalizer") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty { throw TokenizerError.unsupported("BPE \(key)") }
        }
        if let d = model["dropout"], !(d is NSNull) { throw TokenizerError.unsupported("BPE dropout") }
        var addPrefixSpace = false
        if let pre = root["pre_tokenizer"] as? [String: Any] {
            guard pre["type"] as? String == "ByteLevel" else {
                throw TokenizerError.unsupported("pre_tokenizer \(pre["type"] ?? "?")")
            }
            if let useRegex = pre["use_regex"] as? Bool, !useRegex { throw TokenizerError.unsupported("ByteLevel use_regex=false") }
            addPrefixSpace = pre["add_prefix_space"] as? Bool ?? false
        } else {
            throw TokenizerError.unsupported("missing ByteLevel pre_tokenizer")
        }

        guard let vocabObj = model["vocab"] as? [String: Any] else { throw TokenizerError.invalidJSON("missing model.vocab") }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(vocabObj.count)
        for (k, v) in vocabObj {
            guard let id = v as? Int else { throw TokenizerError.invalidJSON("non-integer id for \(k)") }
            vocab[k] = id
        }
        var merges: [(String, String)] = []
        if let list = model["merges"] as? [Any] {
            merges.reserveCapacity(list.count)
            for (i, m) in list.enumerated() {
                if let s = m as? String {
                    let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw TokenizerError.invalidFormat("merge \(i) is not 'a b': \(s)") }
                    merges.append((String(parts[0]), String(parts[1])))
                } else if let a = m as? [Any], a.count == 2, let x = a[0] as? String, let y = a[1] as? String {
                    merges.append((x, y))
                } else {
                    throw TokenizerError.invalidFormat("merge \(i) is neither a string nor a 2-element array")
                }
            }
        } else if model["merges"] != nil {
            throw TokenizerError.invalidJSON("model.merges is not an array")
        }
        var added: [AddedToken] = []
        for (i, t) in ((root["added_tokens"] as? [Any]) ?? []).enumerated() {
            guard let o = t as? [String: Any], let id = o["id"] as? Int, let content = o["content"] as? String else {
                throw TokenizerError.invalidJSON("added_tokens[\(i)]")
            }
            added.append(AddedToken(content: content, id: id, special: o["special"] as? Bool ?? false,
                                    lstrip: o["lstrip"] as? Bool ?? false, rstrip: o["rstrip"] as? Bool ?? false))
        }
        try self.init(vocab: vocab, merges: merges, addedTokens: added, addPrefixSpace: addPrefixSpace,
                      ignoreMerges: model["ignore_merges"] as? Bool ?? false)
    }

    static func parseVocabJSON(_ data: Data, source: String) throws -> [String: Int] {
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: data) } catch {
            throw TokenizerError.invalidJSON("\(source): \(error)")
        }
        guard let dict = obj as? [String: Any] else { throw TokenizerError.invalidJSON("\(source): not an object") }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(dict.count)
        for (k, v) in dict {
            guard let id = v as? Int else { throw TokenizerError.invalidJSON("\(source): non-integer id for \(k)") }
            vocab[k] = id
        }
        return vocab
    }

    /// merges.txt: optional `#version` line(s), then one "a b" pair per line (blank lines ignored).
    static func parseMergesTxt(_ data: Data, source: String) throws -> [(String, String)] {
        guard let text = String(data: data, encoding: .utf8) else { throw TokenizerError.invalidFormat("\(source): not UTF-8") }
        var merges: [(String, String)] = []
        var lineNo = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.isEmpty || line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw TokenizerError.invalidFormat("\(source):\(lineNo): expected 'a b'") }
            merges.append((String(parts[0]), String(parts[1])))
        }
        return merges
    }
}
