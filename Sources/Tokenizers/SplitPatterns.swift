// SplitPatterns: the regexes of HF `Split` pre-tokenizers and tiktoken, as match finders over UTF-8 bytes.
// Contract: `matches` returns the non-overlapping leftmost-first match ranges (byte offsets) that Oniguruma / the
// Rust regex crates find. The GPT-2 and Llama-3 (cl100k) patterns, the Qwen-2 variant (\p{N} instead of
// \p{N}{1,3}), `\s+` and ` {2,}` run hand-written matchers; any other regex runs on Foundation's
// NSRegularExpression (ICU); Tests/TokenizersTests checks both against ICU and the libraries. Empty matches are dropped. Literal strings match bytewise.

import Foundation

protocol SplitPattern: Sendable {
    /// Match ranges (start, end) in b, in order.
    func matches(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)]
    /// The same ranges appended to `out` (no allocation when `out` has room).
    func matches(_ b: UnsafeBufferPointer<UInt8>, into out: inout [(Int, Int)])
}

extension SplitPattern {
    func matches(_ b: UnsafeBufferPointer<UInt8>, into out: inout [(Int, Int)]) { out.append(contentsOf: matches(b)) }
}

public enum SplitPatterns {
    public static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    public static let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    public static let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The matcher for `regex`: hand-written for the known patterns unless `generic`, else NSRegularExpression.
    static func make(regex: String, generic: Bool = false) throws -> SplitPattern {
        if !generic {
            if regex == gpt2 { return GPT2Pattern() }
            if regex == llama3 { return Llama3Pattern(maxDigits: 3) }
            if regex == qwen2 { return Llama3Pattern(maxDigits: 1) }
            if regex == #"\s+"# { return WhitespaceRunPattern() }
            if regex == " {2,}" { return RunPattern(minimum: 2) { $0 == " " } }
        }
        return try ICUPattern(regex)
    }
}

struct LiteralPattern: SplitPattern {
    let bytes: [UInt8]
    func matches(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        matches(b, into: &out)
        return out
    }
    func matches(_ b: UnsafeBufferPointer<UInt8>, into out: inout [(Int, Int)]) {
        let m = bytes.count
        guard m > 0, b.count >= m else { return }
        let first = bytes[0]
        var i = 0
        while i + m <= b.count {
            if b[i] != first { i += 1; continue }
            var ok = true
            for j in 1..<m where b[i + j] != bytes[j] { ok = false; break }
            if ok { out.append((i, i + m)); i += m } else { i += 1 }
        }
    }
}

/// Maximal runs of at least `minimum` scalars satisfying `pred` (`\s+`, ` {2,}`).
struct RunPattern: SplitPattern {
    let minimum: Int
    let pred: @Sendable (Unicode.Scalar) -> Bool
    init(minimum: Int, _ pred: @escaping @Sendable (Unicode.Scalar) -> Bool) { self.minimum = minimum; self.pred = pred }
    func matches(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        matches(b, into: &out)
        return out
    }
    func matches(_ b: UnsafeBufferPointer<UInt8>, into out: inout [(Int, Int)]) {
        guard let p = b.baseAddress else { return }
        var i = 0, runStart = -1, runLen = 0
        while i <= b.count {
            var ok = false, l = 1
            if i < b.count {
                if p[i] < 0x80 { ok = pred(Unicode.Scalar(p[i])) }
                else {
                    let (v, len) = UTF8Util.decode(p, i, b.count)
                    l = len
                    if let v, let u = Unicode.Scalar(v) { ok = pred(u) }
                }
            }
            if ok { if runStart < 0 { runStart = i; runLen = 0 }; runLen += 1 }
            else if runStart >= 0 { if runLen >= minimum { out.append((runStart, i)) }; runStart = -1 }
            i += l
        }
    }
}

/// `\s+`: maximal runs of White_Space scalars (RunPattern's rule, with the ASCII test inline).
struct WhitespaceRunPattern: SplitPattern {
    func matches(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        matches(b, into: &out)
        return out
    }
    func matches(_ b: UnsafeBufferPointer<UInt8>, into out: inout [(Int, Int)]) {
        guard let p = b.baseAddress else { return }
        var i = 0, runStart = -1
        while i < b.count {
            let c = p[i]
            var ok: Bool, l = 1
            if c < 0x80 { ok = c == 0x20 || (c >= 0x09 && c <= 0x0D) }
            else {
                let (v, len) = UTF8Util.decode(p, i, b.count)
                l = len
                ok = v.flatMap { Unicode.Scalar($0) }.map { CharClass.isWhitespace($0) } ?? false
            }
            if ok { if runStart < 0 { runStart = i } }
            else if runStart >= 0 { out.append((runStart, i)); runStart = -1 }
            i += l
        }
        if runStart >= 0 { out.append((runStart, b.count)) }
    }
}

struct GPT2Pattern: SplitPattern {
    func matches(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)] {
        guard let p = b.baseAddress, b.count > 0 else { return [] }
        var pre = GPT2PreTokenizer()
        var r: [Int] = []
        pre.split(p, from: 0, to: b.count, into: &r)
        var out: [(Int, Int)] = []
        out.reserveCapacity(r.count / 2)
        var k = 0
        while k < r.count { out.append((r[k], r[k + 1])); k += 2 }
        return out
    }
}

/// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
struct Llama3Pattern: SplitPattern {
    let maxDigits: Int
    // classes
    static let other: UInt8 = 0, letter: UInt8 = 1, number: UInt8 = 2, space: UInt8 = 3, newline: UInt8 = 4

    func matches(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)] {
        guard let p = b.baseAddress, b.count > 0 else { return [] }
        var cls: [UInt8] = [], sc: [UInt32] = [], off: [Int] = []
        cls.reserveCapacity(b.count); sc.reserveCapacity(b.count); off.reserveCapacity(b.count + 1)
        var i = 0
        while i < b.count {
            let (v0, l) = UTF8Util.decode(p, i, b.count)
            let v = v0 ?? 0xFFFD
            off.append(i); sc.append(v)
            let c: UInt8
            if v == 0x0A || v == 0x0D { c = Llama3Pattern.newline }
            else if let u = Unicode.Scalar(v) {
                c = CharClass.isLetter(u) ? Llama3Pattern.letter : CharClass.isNumber(u) ? Llama3Pattern.number
                    : CharClass.isWhitespace(u) ? Llama3Pattern.space : Llama3Pattern.other
            } else { c = Llama3Pattern.other }
            cls.append(c)
            i += l
        }
        off.append(b.count)
        let n = cls.count
        var out: [(Int, Int)] = []
        var s = 0
        let L = Llama3Pattern.letter, N = Llama3Pattern.number, S = Llama3Pattern.space, NL = Llama3Pattern.newline
        @inline(__always) func isSpace(_ k: Int) -> Bool { cls[k] == S || cls[k] == NL }
        @inline(__always) func lower(_ v: UInt32) -> UInt32 { (0x41...0x5A).contains(v) ? v + 32 : v }
        while s < n {
            var e = -1
            // 1. contractions, case-insensitive
            if sc[s] == 0x27 && s + 1 < n {
                let c1 = lower(sc[s + 1])
                if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 || c1 == 0x17F { e = s + 2 }
                else if s + 2 < n {
                    let c2 = lower(sc[s + 2])
                    if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) { e = s + 3 }
                }
            }
            // 2. [^\r\n\p{L}\p{N}]?\p{L}+
            if e < 0 {
                var k = s
                if cls[k] != L && cls[k] != N && cls[k] != NL && k + 1 < n && cls[k + 1] == L { k += 1 }
                if cls[k] == L {
                    var j = k + 1
                    while j < n && cls[j] == L { j += 1 }
                    e = j
                }
            }
            // 3. \p{N}{1,D}
            if e < 0 && cls[s] == N {
                var j = s + 1
                while j < n && j - s < maxDigits && cls[j] == N { j += 1 }
                e = j
            }
            // 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            if e < 0 {
                var k = s
                if sc[k] == 0x20 && k + 1 < n && cls[k + 1] == Llama3Pattern.other { k += 1 }
                if cls[k] == Llama3Pattern.other {
                    var j = k + 1
                    while j < n && cls[j] == Llama3Pattern.other { j += 1 }
                    while j < n && cls[j] == NL { j += 1 }
                    e = j
                }
            }
            // 5-7. whitespace
            if e < 0 {
                var j = s
                var lastNL = -1
                while j < n && isSpace(j) { if cls[j] == NL { lastNL = j }; j += 1 }
                if lastNL >= 0 { e = lastNL + 1 }
                else if j == n || j - s == 1 { e = j }
                else { e = j - 1 }
            }
            out.append((off[s], off[e]))
            s = e
        }
        return out
    }
}

/// Any other regex, on ICU (NSRegularExpression); offsets mapped from UTF-16 back to UTF-8.
struct ICUPattern: SplitPattern, @unchecked Sendable {
    let regex: NSRegularExpression
    init(_ pattern: String) throws {
        do { regex = try NSRegularExpression(pattern: pattern, options: []) } catch {
            throw TokenizerError.unsupported("regex \(pattern) does not compile on ICU: \(error)")
        }
    }
    func matches(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)] {
        let s = String(decoding: b, as: UTF8.self)
        // utf16 offset -> utf8 offset
        var map = [Int](); map.reserveCapacity(b.count + 1)
        var u8 = 0
        for u in s.unicodeScalars {
            map.append(u8)
            if u.value > 0xFFFF { map.append(u8) }
            u8 += UTF8.width(u)
        }
        map.append(u8)
        var out: [(Int, Int)] = []
        for m in regex.matches(in: s, options: [], range: NSRange(location: 0, length: (s as NSString).length)) {
            let r = m.range
            guard r.location != NSNotFound, r.length > 0 else { continue }
            out.append((map[r.location], map[r.location + r.length]))
        }
        return out
    }
}
