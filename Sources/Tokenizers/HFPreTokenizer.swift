// HFPreTokenizer: tokenizer.json `pre_tokenizer` (ByteLevel, Split, Metaspace, Whitespace, WhitespaceSplit,
// Punctuation, Digits, BertPreTokenizer, Sequence) as HF tokenizers runs it, on UTF-8 pieces.
// Contract: `run` maps pieces to pieces (empty ones dropped, as HF drops them). Pieces are spans of one UTF-8
// buffer (`PreTokens`): splitting stages only cut spans; Metaspace and ByteLevel's prefix space write a new buffer.
// A piece carries whether it starts at the original text's offset 0 (Metaspace's prepend_scheme "first").
// ByteLevel must come last (its byte-to-Unicode mapping is left to the model, which then works on raw bytes);
// anything else is refused at load naming the field. Scratch arrays are reused across calls (`PreScratch`).

import Foundation

/// One piece: bytes [start, end) of `PreTokens.buf`.
struct PreSpan {
    var start: Int
    var end: Int
    var atStart: Bool
}

/// The pieces of one text: spans in order over one buffer.
struct PreTokens {
    var buf: [UInt8]
    var spans: [PreSpan]
    init(_ bytes: [UInt8], atStart: Bool) {
        buf = bytes
        spans = bytes.isEmpty ? [] : [PreSpan(start: 0, end: bytes.count, atStart: atStart)]
    }
}

/// Reused storage for the pre-tokenizer stages (one per encoder, under its lock).
struct PreScratch {
    var spans: [PreSpan] = []
    var buf: [UInt8] = []
    var matches: [(Int, Int)] = []
    var parts: [(Int, Int, Bool)] = []
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

    func run(_ p: inout PreTokens, _ x: inout PreScratch) {
        switch self {
        case .sequence(let list):
            for st in list { st.run(&p, &x) }
        case .byteLevel(let addPrefix, let useRegex):
            if addPrefix {   // a space before each piece that lacks one: a new buffer
                x.buf.removeAll(keepingCapacity: true)
                x.spans.removeAll(keepingCapacity: true)
                for sp in p.spans {
                    let s = x.buf.count
                    if p.buf[sp.start] != 0x20 { x.buf.append(0x20) }
                    x.buf.append(contentsOf: p.buf[sp.start..<sp.end])
                    x.spans.append(PreSpan(start: s, end: x.buf.count, atStart: sp.atStart))
                }
                swap(&p.buf, &x.buf); swap(&p.spans, &x.spans)
            }
            if useRegex { HFPreTokenizer.splitAll(&p, GPT2Pattern(), .isolated, invert: false, &x) }
        case .split(let pat, let beh, let inv):
            HFPreTokenizer.splitAll(&p, pat, beh, invert: inv, &x)
        case .metaspace(let rep, let scheme, let split):
            x.buf.removeAll(keepingCapacity: true)
            x.spans.removeAll(keepingCapacity: true)
            for sp in p.spans {
                let s = x.buf.count
                p.buf.withUnsafeBufferPointer { q in   // runs between spaces copied whole, each space written as rep
                    var i = sp.start, run = sp.start
                    while i < sp.end {
                        if q[i] == 0x20 {
                            x.buf.append(contentsOf: UnsafeBufferPointer(rebasing: q[run..<i])); x.buf.append(contentsOf: rep); run = i + 1
                        }
                        i += 1
                    }
                    x.buf.append(contentsOf: UnsafeBufferPointer(rebasing: q[run..<sp.end]))
                }
                let prepend = scheme == "always" || (scheme == "first" && sp.atStart)
                if prepend && !(x.buf.count - s >= rep.count && x.buf[s..<(s + rep.count)].elementsEqual(rep)) { x.buf.insert(contentsOf: rep, at: s) }
                x.spans.append(PreSpan(start: s, end: x.buf.count, atStart: sp.atStart))
            }
            swap(&p.buf, &x.buf); swap(&p.spans, &x.spans)
            if split { HFPreTokenizer.splitAll(&p, LiteralPattern(bytes: rep), .mergedWithNext, invert: false, &x) }
        case .whitespace:
            // \w+|[^\w\s]+ kept, the rest removed
            HFPreTokenizer.classAll(&p, &x) { u in CharClass.isWord(u) ? 1 : CharClass.isWhitespace(u) ? 0 : 2 }
        case .whitespaceSplit:
            HFPreTokenizer.classAll(&p, &x) { u in CharClass.isWhitespace(u) ? 0 : 1 }
        case .bert:
            HFPreTokenizer.whitespaceSplit.run(&p, &x)
            HFPreTokenizer.punctuation(.isolated).run(&p, &x)
        case .punctuation(let beh):
            HFPreTokenizer.splitAll(&p, ClassPattern(bit: CharClass.punctuationBit), beh, invert: false, &x)
        case .digits(let individual):
            HFPreTokenizer.splitAll(&p, ClassPattern(bit: CharClass.numberBit), individual ? .isolated : .contiguous, invert: false, &x)
        }
    }

    /// Runs of scalars by class over every span; class 0 is dropped, runs of other classes kept (each run one piece).
    private static func classAll(_ p: inout PreTokens, _ x: inout PreScratch, _ cls: (Unicode.Scalar) -> Int) {
        x.spans.removeAll(keepingCapacity: true)
        p.buf.withUnsafeBufferPointer { q in
            guard let b = q.baseAddress else { return }
            for sp in p.spans {
                var curCls = 0, curStart = sp.start, i = sp.start
                while i < sp.end {
                    let c: Int, l: Int
                    if b[i] < 0x80 { c = cls(Unicode.Scalar(b[i])); l = 1 }
                    else { let (v, len) = UTF8Util.decode(b, i, sp.end); l = len; c = v.flatMap { Unicode.Scalar($0) }.map(cls) ?? 2 }
                    if c != curCls {
                        if curCls != 0 && i > curStart { x.spans.append(PreSpan(start: curStart, end: i, atStart: sp.atStart && curStart == sp.start)) }
                        curCls = c; curStart = i
                    }
                    i += l
                }
                if curCls != 0 && sp.end > curStart { x.spans.append(PreSpan(start: curStart, end: sp.end, atStart: sp.atStart && curStart == sp.start)) }
            }
        }
        swap(&p.spans, &x.spans)
    }

    /// NormalizedString::split with a pattern and a behaviour, over every span.
    static func splitAll<P: SplitPattern>(_ p: inout PreTokens, _ pat: P, _ beh: SplitBehavior, invert: Bool, _ x: inout PreScratch) {
        x.spans.removeAll(keepingCapacity: true)
        p.buf.withUnsafeBufferPointer { q in
            for sp in p.spans { splitBy(q, sp, pat, beh, invert: invert, &x) }
        }
        swap(&p.spans, &x.spans)
    }

    /// One span split, the pieces appended to x.spans.
    @inline(__always)
    static func splitBy<P: SplitPattern>(_ q: UnsafeBufferPointer<UInt8>, _ sp: PreSpan, _ pat: P, _ beh: SplitBehavior, invert: Bool, _ x: inout PreScratch) {
        if sp.end <= sp.start { return }
        if !x.matches.isEmpty { x.matches.removeAll(keepingCapacity: true) }
        pat.matches(UnsafeBufferPointer(rebasing: q[sp.start..<sp.end]), into: &x.matches)
        // (start, end, isMatch) covering the span, offsets within it
        x.parts.removeAll(keepingCapacity: true)
        var last = 0
        for (s, e) in x.matches {
            if s > last { x.parts.append((last, s, invert)) }
            x.parts.append((s, e, !invert))
            last = e
        }
        let n = sp.end - sp.start
        if x.matches.isEmpty && !invert {   // no match: the span as it is (every behaviour keeps a lone non-match)
            x.spans.append(sp)
            return
        }
        if last < n { x.parts.append((last, n, invert)) }
        let first = x.spans.count
        func add(_ s: Int, _ e: Int) { if e > s { x.spans.append(PreSpan(start: sp.start + s, end: sp.start + e, atStart: sp.atStart && s == 0)) } }
        switch beh {
        case .removed: for (s, e, m) in x.parts where !m { add(s, e) }
        case .isolated: for (s, e, _) in x.parts { add(s, e) }
        case .mergedWithPrevious:
            var prevMatch = false
            for (s, e, m) in x.parts {
                if m && !prevMatch, x.spans.count > first { x.spans[x.spans.count - 1].end = sp.start + e } else { add(s, e) }
                prevMatch = m
            }
        case .mergedWithNext:
            // a match joins the part after it when that part is not a match
            var carry: Int?
            for (k, (s, e, m)) in x.parts.enumerated() {
                if m && k + 1 < x.parts.count && !x.parts[k + 1].2 { if carry == nil { carry = s }; continue }
                add(carry ?? s, e)
                carry = nil
            }
        case .contiguous:
            var prevMatch = false
            for (s, e, m) in x.parts {
                if m == prevMatch, x.spans.count > first { x.spans[x.spans.count - 1].end = sp.start + e } else { add(s, e) }
                prevMatch = m
            }
        }
    }
}

/// Each scalar of one CharClass class is one match (HF's punctuation and digit splitters).
struct ClassPattern: SplitPattern {
    let bit: UInt8
    func matches(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        matches(b, into: &out)
        return out
    }
    @inline(__always)
    func matches(_ b: UnsafeBufferPointer<UInt8>, into out: inout [(Int, Int)]) {
        guard let p = b.baseAddress else { return }
        var i = 0
        while i < b.count {
            if p[i] < 0x80 { if CharClass.bmp[Int(p[i])] & bit != 0 { out.append((i, i + 1)) }; i += 1; continue }
            let (v, l) = UTF8Util.decode(p, i, b.count)
            if let v, let u = Unicode.Scalar(v), CharClass.test(u, bit) { out.append((i, i + l)) }
            i += l
        }
    }
}
