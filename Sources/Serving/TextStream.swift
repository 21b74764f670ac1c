// TextStream: incremental detokenisation with stop strings, shared by `turing generate` and the
// server (one copy, so a served completion is the text `turing generate` prints).
//
// Contract: text is released only when it can no longer be the start of a stop string, never splits
// a UTF-8 sequence, and stops before the first stop string found (the stop string is not returned).

import Tokenizers

public struct TextStream {
    let tokenizer: Tokenizer
    let stops: [String]
    var ids: [Int]
    let promptBytes: Int
    public private(set) var text = ""
    public private(set) var stopped = false

    public init(tokenizer: Tokenizer, prompt: [Int], stops: [String]) {
        self.tokenizer = tokenizer; self.stops = stops.filter { !$0.isEmpty }; ids = prompt
        promptBytes = tokenizer.decodeBytes(prompt).count
    }

    /// Returns newly releasable text and whether a stop string was reached.
    public mutating func push(_ token: Int) -> (String, Bool) {
        ids.append(token)
        let all = tokenizer.decodeBytes(ids)
        let generated = Array(all[min(promptBytes, all.count)...])
        var full = String(decoding: generated, as: UTF8.self)
        // hold back an incomplete UTF-8 tail
        if full.hasSuffix("\u{FFFD}") && generated.last.map({ $0 >= 0x80 }) == true { full = String(full.dropLast()) }
        for s in stops {
            if let r = full.range(of: s) {
                stopped = true
                full = String(full[..<r.lowerBound])
            }
        }
        var releasable = full
        if !stopped {
            // keep back a suffix that could begin a stop string
            var hold = 0
            for s in stops {
                for k in stride(from: min(s.count - 1, full.count), through: 1, by: -1) where full.hasSuffix(String(s.prefix(k))) {
                    hold = max(hold, k); break
                }
            }
            releasable = String(full.dropLast(hold))
        }
        let new = releasable.count > text.count ? String(releasable.dropFirst(text.count)) : ""
        text = releasable
        return (new, stopped)
    }

    /// The rest of the text once no more tokens come.
    public mutating func finish() -> String {
        if stopped { return "" }
        let all = tokenizer.decodeBytes(ids)
        var full = String(decoding: all[min(promptBytes, all.count)...], as: UTF8.self)
        for s in stops { if let r = full.range(of: s) { full = String(full[..<r.lowerBound]) } }
        let rest = full.count > text.count ? String(full.dropFirst(text.count)) : ""
        text = full
        return rest
    }
}

/// One token as the logprobs arrays spell it: its text when its bytes are valid UTF-8 on their own,
/// else `bytes:\xNN...` (OpenAI's spelling), so distinct tokens never share a key in `top_logprobs`.
public func tokenDisplay(_ tok: Tokenizer, _ id: Int) -> String {
    let b = tok.decodeBytes([id])
    if let s = String(validating: b, as: UTF8.self) { return s }
    return "bytes:" + b.map { "\\x" + (($0 < 16) ? "0" : "") + String($0, radix: 16) }.joined()
}
