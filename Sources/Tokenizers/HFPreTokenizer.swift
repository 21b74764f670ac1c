// HFPreTokenizer: tokenizer.json `pre_tokenizer` (ByteLevel, Split, Metaspace, Whitespace, WhitespaceSplit,
// Punctuation, Digits, BertPreTokenizer, Sequence) as HF tokenizers runs it, on UTF-8 pieces.
// Contract: `run` maps pieces to pieces (empty ones dropped, as HF drops them). A piece carries whether it starts at
// the original text's offset 0 (Metaspace's prepend_scheme "first"). ByteLevel must come last (its byte-to-Unicode
// mapping is left to the model, which then works on raw bytes); anything else is refused at load naming the field.

import Foundation

struct PreToken {
    var bytes: [UInt8]
    var atStart: Bool
}

enum SplitBehavior: String, Sendable { case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious", mergedWithNext = "MergedWithNext", contiguous = "Contiguous" }

indirect enum HFPreTokenizer: Sendable {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(SplitPattern, SplitBehavior, invert: Bool)
    case metaspace(replacement: [UInt8], prepend: String, split: Bool)
    case whitespace, whitespaceSplit, bert
    case punctuation(SplitBehavior)
    case digits(individual: Bool)
    case sequence([HFPreTokenizer])

    static func parse(_ j: Any?, path: String = "pre_tokenizer", last: Bool = true) throws -> HFPreTokenizer? {
        guard let j, !(j is NSNull) else { return nil }
        guard let o = j as? [String: Any], let type = o["type"] as? String else { throw TokenizerError.invalidJSON("\(path): expected an object with a type") }
        func behavior(_ key: String = "behavior", _ d: SplitBehavior) throws -> SplitBehavior {
            guard let s = o[key] as? String else { return d }
            guard let b = SplitBehavior(rawValue: s) else { throw TokenizerError.unsupported("\(path).\(key) \(s)") }
            return b
        }
        switch type {
        case "ByteLevel":
            guard last else { throw TokenizerError.unsupported("\(path): ByteLevel before another pre-tokenizer (it must come last)") }
            return .byteLevel(addPrefixSpace: o["add_prefix_space"] as? Bool ?? true, useRegex: o["use_regex"] as? Bool ?? true)
        case "Split":
            let pattern = try HFPattern.parse(o["pattern"], path: "\(path).pattern")
            return .split(pattern.matcher, try behavior("behavior", .removed), invert: o["invert"] as? Bool ?? false)
        case "Metaspace":
            let rep = o["replacement"] as? String ?? "\u{2581}"
            var scheme = o["prepend_scheme"] as? String ?? "always"
            if o["prepend_scheme"] == nil, let add = o["add_prefix_space"] as? Bool { scheme = add ? "always" : "never" }
            guard ["always", "first", "never"].contains(scheme) else { throw TokenizerError.unsupported("\(path).prepend_scheme \(scheme)") }
            return .metaspace(replacement: Array(rep.utf8), prepend: scheme, split: o["split"] as? Bool ?? true)
        case "Whitespace": return .whitespace
        case "WhitespaceSplit": return .whitespaceSplit
        case "BertPreTokenizer": return .bert
        case "Punctuation": return .punctuation(try behavior("behavior", .isolated))
        case "Digits": return .digits(individual: o["individual_digits"] as? Bool ?? false)
        case "Sequence":
            guard let list = o["pretokenizers"] as? [Any] else { throw TokenizerError.invalidJSON("\(path).pretokenizers: expected an array") }
            return .sequence(try list.enumerated().compactMap { i, x in
                try parse(x, path: "\(path).pretokenizers[\(i)]", last: last && i == list.count - 1)
            })
        default: throw TokenizerError.unsupported("\(path).type \(type)")
        }
    }

    /// Whether the model sees raw bytes (a ByteLevel pre-tokenizer is present).
    var isByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .sequence(let l): return l.contains { $0.isByteLevel }
        default: return false
        }
    }

    func run(_ pieces: [PreToken]) -> [PreToken] {
        switch self {
        case .sequence(let list):
            var x = pieces
            for p in list { x = p.run(x) }
            return x
        default:
            var out: [PreToken] = []
            out.reserveCapacity(pieces.count * 2)
            for p in pieces { runOne(p, into: &out) }
            return out
        }
    }

    private func runOne(_ p: PreToken, into out: inout [PreToken]) {
        switch self {
        case .byteLevel(let addPrefix, let useRegex):
            var b = p.bytes
            if addPrefix && b.first != 0x20 { b.insert(0x20, at: 0) }
            if useRegex { HFPreTokenizer.splitBy(b, GPT2Pattern(), .isolated, invert: false, atStart: p.atStart, into: &out) }
            else if !b.isEmpty { out.append(PreToken(bytes: b, atStart: p.atStart)) }
        case .split(let pat, let beh, let inv):
            HFPreTokenizer.splitBy(p.bytes, pat, beh, invert: inv, atStart: p.atStart, into: &out)
        case .metaspace(let rep, let scheme, let split):
            var b: [UInt8] = []
            b.reserveCapacity(p.bytes.count + 8)
            for c in p.bytes { if c == 0x20 { b.append(contentsOf: rep) } else { b.append(c) } }
            if (scheme == "always" || (scheme == "first" && p.atStart)) && !b.starts(with: rep) { b.insert(contentsOf: rep, at: 0) }
            if split { HFPreTokenizer.splitBy(b, LiteralPattern(bytes: rep), .mergedWithNext, invert: false, atStart: p.atStart, into: &out) }
            else if !b.isEmpty { out.append(PreToken(bytes: b, atStart: p.atStart)) }
        case .whitespace:
            // \w+|[^\w\s]+ kept, the rest removed
            HFPreTokenizer.splitByClass(p, into: &out) { u in CharClass.isWord(u) ? 1 : CharClass.isWhitespace(u) ? 0 : 2 }
        case .whitespaceSplit:
            HFPreTokenizer.splitByClass(p, into: &out) { u in CharClass.isWhitespace(u) ? 0 : 1 }
        case .bert:
            var tmp: [PreToken] = []
            HFPreTokenizer.whitespaceSplit.runOne(p, into: &tmp)
            for t in tmp { HFPreTokenizer.punctuation(.isolated).runOne(t, into: &out) }
        case .punctuation(let beh):
            HFPreTokenizer.splitBy(p.bytes, CharPattern { CharClass.isPunctuation($0) }, beh, invert: false, atStart: p.atStart, into: &out)
        case .digits(let individual):
            HFPreTokenizer.splitBy(p.bytes, CharPattern { CharClass.isNumber($0) }, individual ? .isolated : .contiguous,
                                   invert: false, atStart: p.atStart, into: &out)
        case .sequence: out.append(contentsOf: run([p]))
        }
    }

    /// Runs of scalars by class; class 0 is dropped, runs of other classes kept (each run one piece).
    private static func splitByClass(_ p: PreToken, into out: inout [PreToken], _ cls: (Unicode.Scalar) -> Int) {
        p.bytes.withUnsafeBufferPointer { q in
            guard let b = q.baseAddress else { return }
            var curCls = 0, curStart = 0, i = 0
            while i < q.count {
                let (v, l) = UTF8Util.decode(b, i, q.count)
                let c = v.flatMap { Unicode.Scalar($0) }.map(cls) ?? 2
                if c != curCls {
                    if curCls != 0 && i > curStart { out.append(PreToken(bytes: Array(q[curStart..<i]), atStart: p.atStart && curStart == 0)) }
                    curCls = c; curStart = i
                }
                i += l
            }
            if curCls != 0 && q.count > curStart { out.append(PreToken(bytes: Array(q[curStart...]), atStart: p.atStart && curStart == 0)) }
        }
    }

    /// NormalizedString::split with a pattern and a behaviour.
    static func splitBy(_ b: [UInt8], _ pat: SplitPattern, _ beh: SplitBehavior, invert: Bool, atStart: Bool, into out: inout [PreToken]) {
        if b.isEmpty { return }
        let ms = b.withUnsafeBufferPointer { pat.matches($0) }
        // (start, end, isMatch) covering b
        var parts: [(Int, Int, Bool)] = []
        var last = 0
        for (s, e) in ms {
            if s > last { parts.append((last, s, invert)) }
            parts.append((s, e, !invert))
            last = e
        }
        if last < b.count { parts.append((last, b.count, invert)) }
        var res: [(Int, Int)] = []
        switch beh {
        case .removed: res = parts.filter { !$0.2 }.map { ($0.0, $0.1) }
        case .isolated: res = parts.map { ($0.0, $0.1) }
        case .mergedWithPrevious:
            var prevMatch = false
            for (s, e, m) in parts {
                if m && !prevMatch, !res.isEmpty { res[res.count - 1].1 = e } else { res.append((s, e)) }
                prevMatch = m
            }
        case .mergedWithNext:
            var prevMatch = false
            var rev: [(Int, Int)] = []
            for (s, e, m) in parts.reversed() {
                if m && !prevMatch, !rev.isEmpty { rev[rev.count - 1].0 = s } else { rev.append((s, e)) }
                prevMatch = m
            }
            res = rev.reversed()
        case .contiguous:
            var prevMatch = false
            for (s, e, m) in parts {
                if m == prevMatch, !res.isEmpty { res[res.count - 1].1 = e } else { res.append((s, e)) }
                prevMatch = m
            }
        }
        for (s, e) in res where e > s { out.append(PreToken(bytes: Array(b[s..<e]), atStart: atStart && s == 0)) }
    }
}

/// Each scalar satisfying `pred` is one match (HF's `Fn(char) -> bool` patterns).
struct CharPattern: SplitPattern {
    let pred: @Sendable (Unicode.Scalar) -> Bool
    init(_ pred: @escaping @Sendable (Unicode.Scalar) -> Bool) { self.pred = pred }
    func matches(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)] {
        guard let p = b.baseAddress else { return [] }
        var out: [(Int, Int)] = []
        var i = 0
        while i < b.count {
            let (v, l) = UTF8Util.decode(p, i, b.count)
            if let v, let u = Unicode.Scalar(v), pred(u) { out.append((i, i + l)) }
            i += l
        }
        return out
    }
}
