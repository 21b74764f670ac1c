// HFDecoder: tokenizer.json `decoder` (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, WordPiece,
// BPEDecoder, Sequence) on token spellings, as HF tokenizers' decode_chain; no decoder joins tokens with " ".
// Contract: tokens are UTF-8 byte strings. In `exact` mode the result is what HF's decode returns (ByteFallback
// writes one U+FFFD per byte of an invalid run; the caller makes the final text lossy); otherwise invalid byte runs
// are kept raw so that streaming (UTF8StreamDecoder) can join partial characters.

import Foundation

indirect enum HFDecoder: Sendable {
    case byteLevel
    case metaspace(replacement: [UInt8], prepend: Bool)
    case replace(pattern: HFPattern, content: [UInt8])
    case byteFallback, fuse
    case strip(content: [UInt8], start: Int, stop: Int)
    case wordPiece(prefix: [UInt8], cleanup: Bool)
    case bpe(suffix: [UInt8])
    case sequence([HFDecoder])

    static func parse(_ j: Any?, path: String = "decoder") throws -> HFDecoder? {
        guard let j, !(j is NSNull) else { return nil }
        guard let o = j as? [String: Any], let type = o["type"] as? String else { throw TokenizerError.invalidJSON("\(path): expected an object with a type") }
        switch type {
        case "ByteLevel": return .byteLevel
        case "Metaspace":
            let rep = o["replacement"] as? String ?? "\u{2581}"
            var scheme = o["prepend_scheme"] as? String ?? "always"
            if o["prepend_scheme"] == nil, let add = o["add_prefix_space"] as? Bool { scheme = add ? "always" : "never" }
            return .metaspace(replacement: Array(rep.utf8), prepend: scheme != "never")
        case "Replace":
            return .replace(pattern: try HFPattern.parse(o["pattern"], path: "\(path).pattern"), content: Array((o["content"] as? String ?? "").utf8))
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            let c = o["content"] as? String ?? " "
            return .strip(content: Array(c.utf8), start: max(0, o["start"] as? Int ?? 0), stop: max(0, o["stop"] as? Int ?? 0))
        case "WordPiece": return .wordPiece(prefix: Array((o["prefix"] as? String ?? "##").utf8), cleanup: o["cleanup"] as? Bool ?? true)
        case "BPEDecoder": return .bpe(suffix: Array((o["suffix"] as? String ?? "</w>").utf8))
        case "Sequence":
            guard let list = o["decoders"] as? [Any] else { throw TokenizerError.invalidJSON("\(path).decoders: expected an array") }
            return .sequence(try list.enumerated().compactMap { try parse($1, path: "\(path).decoders[\($0)]") })
        default: throw TokenizerError.unsupported("\(path).type \(type)")
        }
    }

    func decode(_ tokens: [[UInt8]], exact: Bool) -> [[UInt8]] {
        switch self {
        case .sequence(let l):
            var t = tokens
            for d in l { t = d.decode(t, exact: exact) }
            return t
        case .byteLevel:
            var out: [UInt8] = []
            for t in tokens {
                if let b = ByteLevel.bytes(fromTokenString: String(decoding: t, as: UTF8.self)) { out.append(contentsOf: b) }
                else { out.append(contentsOf: t) }
            }
            return [out]
        case .metaspace(let rep, let prepend):
            return tokens.enumerated().map { i, t in
                var o: [UInt8] = []
                var k = 0
                while k < t.count {
                    if t.count - k >= rep.count && Array(t[k..<(k + rep.count)]) == rep {
                        if !(i == 0 && prepend) { o.append(0x20) }
                        k += rep.count
                    } else { o.append(t[k]); k += 1 }
                }
                return o
            }
        case .replace(let pattern, let content):
            return tokens.map { t in
                t.withUnsafeBufferPointer { buf in
                    var o: [UInt8] = [], last = 0
                    for (s, e) in pattern.matcher.matches(buf) { o.append(contentsOf: buf[last..<s]); o.append(contentsOf: content); last = e }
                    o.append(contentsOf: buf[last...])
                    return o
                }
            }
        case .byteFallback:
            var out: [[UInt8]] = [], run: [UInt8] = []
            func flush() {
                if run.isEmpty { return }
                if !exact || String(validating: run, as: UTF8.self) != nil { out.append(run) }
                else { for _ in run { out.append([0xEF, 0xBF, 0xBD]) } }
                run.removeAll()
            }
            for t in tokens {
                if t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E,
                   let v = UInt8(String(decoding: t[3..<5], as: UTF8.self), radix: 16) { run.append(v) }
                else { flush(); out.append(t) }
            }
            flush()
            return out
        case .fuse: return [tokens.flatMap { $0 }]
        case .strip(let c, let start, let stop):
            return tokens.map { t in
                var s = t[...]
                var k = 0
                while k < start && s.starts(with: c) { s = s.dropFirst(c.count); k += 1 }
                k = 0
                while k < stop && s.count >= c.count && Array(s.suffix(c.count)) == c { s = s.dropLast(c.count); k += 1 }
                return Array(s)
            }
        case .wordPiece(let prefix, let cleanup):
            return tokens.enumerated().map { i, t in
                var o = t
                if i != 0 { if o.starts(with: prefix) { o.removeFirst(prefix.count) } else { o.insert(0x20, at: 0) } }
                if cleanup { o = HFDecoder.cleanup(o) }
                return o
            }
        case .bpe(let suffix):
            return tokens.enumerated().map { i, t in
                let rep: [UInt8] = i == tokens.count - 1 ? [] : [0x20]
                return HFDecoder.replaceAll(t, suffix, rep)
            }
        }
    }

    /// WordPiece cleanup (tokenizers decoders::wordpiece::cleanup).
    static func cleanup(_ t: [UInt8]) -> [UInt8] {
        var o = t
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                       (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            o = replaceAll(o, Array(a.utf8), Array(b.utf8))
        }
        return o
    }

    static func replaceAll(_ t: [UInt8], _ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        guard !a.isEmpty, t.count >= a.count else { return t }
        var o: [UInt8] = [], k = 0
        while k < t.count {
            if t.count - k >= a.count && t[k..<(k + a.count)].elementsEqual(a) { o.append(contentsOf: b); k += a.count }
            else { o.append(t[k]); k += 1 }
        }
        return o
    }
}
