// HFNormalizer: tokenizer.json `normalizer` (NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace,
// Prepend, Precompiled, BertNormalizer, Sequence) applied to a UTF-8 segment as HF tokenizers does.
// Contract: `normalize` maps bytes to bytes (valid UTF-8 in, valid UTF-8 out); unknown types are refused at load
// naming the type. Lowercase is per scalar (Rust `char::to_lowercase`, no final-sigma context). The Unicode
// normal forms skip already-normalized runs (UnicodeNormalForm); all of it works on bytes, no String per character.

import Foundation

indirect enum HFNormalizer: Sendable {
    case nfc, nfd, nfkc, nfkd, lowercase
    case strip(left: Bool, right: Bool)
    case stripAccents
    case replace(pattern: HFPattern, content: [UInt8])
    case prepend([UInt8])
    case precompiled(PrecompiledCharsmap)
    case bert(cleanText: Bool, chinese: Bool, stripAccents: Bool?, lowercase: Bool)
    case sequence([HFNormalizer])

    static func parse(_ j: Any?, path: String = "normalizer") throws -> HFNormalizer? {
        guard let j, !(j is NSNull) else { return nil }
        guard let o = j as? [String: Any], let type = o["type"] as? String else { throw TokenizerError.invalidJSON("\(path): expected an object with a type") }
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Strip": return .strip(left: o["strip_left"] as? Bool ?? true, right: o["strip_right"] as? Bool ?? true)
        case "StripAccents": return .stripAccents
        case "Replace":
            guard let content = o["content"] as? String else { throw TokenizerError.invalidJSON("\(path).content: expected a string") }
            return .replace(pattern: try HFPattern.parse(o["pattern"], path: "\(path).pattern"), content: Array(content.utf8))
        case "Prepend":
            guard let s = o["prepend"] as? String else { throw TokenizerError.invalidJSON("\(path).prepend: expected a string") }
            return .prepend(Array(s.utf8))
        case "Precompiled":
            guard let s = o["precompiled_charsmap"] as? String, let d = Data(base64Encoded: s) else {
                throw TokenizerError.invalidJSON("\(path).precompiled_charsmap: expected base64")
            }
            if d.isEmpty { return .sequence([]) }
            guard let c = PrecompiledCharsmap([UInt8](d)) else { throw TokenizerError.invalidFormat("\(path).precompiled_charsmap: malformed") }
            return .precompiled(c)
        case "BertNormalizer":
            return .bert(cleanText: o["clean_text"] as? Bool ?? true, chinese: o["handle_chinese_chars"] as? Bool ?? true,
                         stripAccents: o["strip_accents"] as? Bool, lowercase: o["lowercase"] as? Bool ?? true)
        case "Sequence":
            guard let list = o["normalizers"] as? [Any] else { throw TokenizerError.invalidJSON("\(path).normalizers: expected an array") }
            return .sequence(try list.enumerated().compactMap { try parse($1, path: "\(path).normalizers[\($0)]") })
        default: throw TokenizerError.unsupported("\(path).type \(type)")
        }
    }

    func normalize(_ b: [UInt8]) -> [UInt8] {
        switch self {
        case .nfc where !b.contains(where: { $0 >= 0x80 }): return b   // ASCII is invariant under every form
        case .nfd where !b.contains(where: { $0 >= 0x80 }): return b
        case .nfkc where !b.contains(where: { $0 >= 0x80 }): return b
        case .nfkd where !b.contains(where: { $0 >= 0x80 }): return b
        case .nfc: return UnicodeNormalForm.nfc.normalize(b)
        case .nfd: return UnicodeNormalForm.nfd.normalize(b)
        case .nfkc: return UnicodeNormalForm.nfkc.normalize(b)
        case .nfkd: return UnicodeNormalForm.nfkd.normalize(b)
        case .lowercase: return HFNormalizer.lowercaseBytes(b)
        case .strip(let l, let r):
            var s = 0, e = b.count
            if l { while s < e, let (u, n) = HFTokenizer.scalarAt(b, s), CharClass.isWhitespace(u) { s += n } }
            if r { while e > s, let (u, n) = HFTokenizer.scalarBefore(b, e), CharClass.isWhitespace(u) { e -= n } }
            return s == 0 && e == b.count ? b : Array(b[s..<e])
        case .stripAccents: return HFNormalizer.filterBytes(b) { !CharClass.isMark($0) }
        case .replace(let pattern, let content):
            return b.withUnsafeBufferPointer { buf in
                let ms = pattern.matcher.matches(buf)
                // no match, or every match already spelled as its replacement (a lone space for `\s+` -> " "): unchanged
                if ms.allSatisfy({ $0.1 - $0.0 == content.count && buf[$0.0..<$0.1].elementsEqual(content) }) { return b }
                var out: [UInt8] = [], last = 0
                out.reserveCapacity(b.count + ms.count * content.count)
                for (s, e) in ms { out.append(contentsOf: buf[last..<s]); out.append(contentsOf: content); last = e }
                out.append(contentsOf: buf[last...])
                return out
            }
        case .prepend(let p): return b.isEmpty ? b : p + b
        case .precompiled(let c): return HFNormalizer.precompiled(c, b)
        case .bert(let clean, let chinese, let strip, let lower):
            var out = HFNormalizer.mapScalars(b) { u, out in
                let v = u.value
                if clean {
                    if v == 0 || v == 0xFFFD { return }
                    let cat = u.properties.generalCategory
                    let isControl = (v != 0x09 && v != 0x0A && v != 0x0D) && (cat == .control || cat == .format || cat == .privateUse || cat == .surrogate || cat == .unassigned)
                    if isControl { return }
                    if CharClass.isWhitespace(u) { out.unicodeScalars.append(" "); return }
                }
                if chinese && HFNormalizer.isChinese(v) { out.unicodeScalars.append(" "); out.unicodeScalars.append(u); out.unicodeScalars.append(" "); return }
                out.unicodeScalars.append(u)
            }
            if strip ?? lower { out = HFNormalizer.nfd.normalize(out); out = HFNormalizer.stripAccents.normalize(out) }
            if lower { out = HFNormalizer.lowercase.normalize(out) }
            return out
        case .sequence(let list):
            var x = b
            for n in list { x = n.normalize(x) }
            return x
        }
    }

    /// Per-scalar lowercase (Rust char::to_lowercase) without building a String per character: single-scalar
    /// mappings of the BMP come from a table built once; others from the Unicode properties.
    static let lowerBMP: [UInt32] = (0..<0x10000).map { v -> UInt32 in
        guard let u = Unicode.Scalar(UInt32(v)) else { return UInt32(v) }
        let m = u.properties.lowercaseMapping.unicodeScalars
        return m.count == 1 ? m.first!.value : 0xFFFF_FFFF   // 0xFFFFFFFF: several scalars
    }

    static func lowercaseBytes(_ b: [UInt8]) -> [UInt8] {
        if !b.contains(where: { $0 >= 0x80 }) {   // ASCII: in place on a copy, or the input when nothing changes
            guard b.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) else { return b }
            var out = b
            out.withUnsafeMutableBufferPointer { q in for i in q.indices where q[i] >= 0x41 && q[i] <= 0x5A { q[i] += 32 } }
            return out
        }
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        b.withUnsafeBufferPointer { q in
            guard let p = q.baseAddress else { return }
            var i = 0
            while i < q.count {
                let c = p[i]
                if c < 0x80 { out.append(c >= 0x41 && c <= 0x5A ? c + 32 : c); i += 1; continue }
                let (v, l) = UTF8Util.decode(p, i, q.count)
                if let v, v < 0x10000, lowerBMP[Int(v)] != 0xFFFF_FFFF {
                    appendUTF8(lowerBMP[Int(v)], &out)
                } else if let v, let u = Unicode.Scalar(v) {
                    out.append(contentsOf: u.properties.lowercaseMapping.utf8)
                } else { out.append(contentsOf: UnsafeBufferPointer(start: p + i, count: l)) }
                i += l
            }
        }
        return out
    }

    static func filterBytes(_ b: [UInt8], _ keep: (Unicode.Scalar) -> Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        b.withUnsafeBufferPointer { q in
            guard let p = q.baseAddress else { return }
            var i = 0
            while i < q.count {
                if p[i] < 0x80 { out.append(p[i]); i += 1; continue }
                let (v, l) = UTF8Util.decode(p, i, q.count)
                if let v, let u = Unicode.Scalar(v), !keep(u) { i += l; continue }
                out.append(contentsOf: UnsafeBufferPointer(start: p + i, count: l))
                i += l
            }
        }
        return out
    }

    @inline(__always) static func appendUTF8(_ v: UInt32, _ out: inout [UInt8]) {
        if v < 0x80 { out.append(UInt8(v)) }
        else if v < 0x800 { out.append(UInt8(0xC0 | (v >> 6))); out.append(UInt8(0x80 | (v & 0x3F))) }
        else if v < 0x10000 { out.append(UInt8(0xE0 | (v >> 12))); out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F))) }
        else { out.append(UInt8(0xF0 | (v >> 18))); out.append(UInt8(0x80 | ((v >> 12) & 0x3F))); out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F))) }
    }

    static func isChinese(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B920...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }

    private static func mapScalars(_ b: [UInt8], _ f: (Unicode.Scalar, inout String) -> Void) -> [UInt8] {
        var out = ""
        out.reserveCapacity(b.count)
        for u in String(decoding: b, as: UTF8.self).unicodeScalars { f(u, &out) }
        return Array(out.utf8)
    }

    /// spm_precompiled (HF `Precompiled`): per grapheme cluster shorter than 6 bytes, the first matching rule for the
    /// whole cluster; otherwise per scalar. Between two ASCII bytes other than CR LF there is always a cluster
    /// boundary (UAX #29 GB999; no ASCII character is Extend, SpacingMark, ZWJ or Prepend), so an ASCII byte with
    /// ASCII on both sides is a cluster of its own, and the text between such bytes is segmented on its own.
    private static func precompiled(_ c: PrecompiledCharsmap, _ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        let n = b.count
        // a boundary before b[k] is certain
        func certain(_ k: Int) -> Bool {
            k == 0 || k == n || (b[k - 1] < 0x80 && b[k] < 0x80 && !(b[k - 1] == 0x0D && b[k] == 0x0A))
        }
        var i = 0
        while i < n {
            if b[i] < 0x80 && certain(i) && certain(i + 1) {
                if let r = c.asciiAlone[Int(b[i])] { out.append(contentsOf: r) } else { out.append(b[i]) }
                i += 1
                continue
            }
            var j = i + 1
            while !certain(j) { j += 1 }
            precompiledClusters(c, b[i..<j], into: &out)
            i = j
        }
        return out
    }

    private static func precompiledClusters(_ c: PrecompiledCharsmap, _ b: ArraySlice<UInt8>, into out: inout [UInt8]) {
        for g in String(decoding: b, as: UTF8.self) {
            let gb = Array(String(g).utf8)
            if gb.count < 6, let r = gb.withUnsafeBufferPointer({ c.firstMatch($0.baseAddress!, $0.count) }) { out.append(contentsOf: r); continue }
            for u in g.unicodeScalars {
                let ub = Array(String(u).utf8)
                if let r = ub.withUnsafeBufferPointer({ c.firstMatch($0.baseAddress!, $0.count) }) { out.append(contentsOf: r) } else { out.append(contentsOf: ub) }
            }
        }
    }
}

/// tokenizer.json `pattern`: {"String": s} (literal) or {"Regex": r}.
struct HFPattern: Sendable {
    let matcher: SplitPattern
    let literal: [UInt8]?

    static func parse(_ j: Any?, path: String) throws -> HFPattern {
        if let o = j as? [String: Any] {
            if let s = o["String"] as? String { return HFPattern(matcher: LiteralPattern(bytes: Array(s.utf8)), literal: Array(s.utf8)) }
            if let r = o["Regex"] as? String { return HFPattern(matcher: try SplitPatterns.make(regex: r), literal: nil) }
        }
        if let s = j as? String { return HFPattern(matcher: LiteralPattern(bytes: Array(s.utf8)), literal: Array(s.utf8)) }
        throw TokenizerError.invalidJSON("\(path): expected {\"String\": ...} or {\"Regex\": ...}")
    }
}
