// LMEvalEncoding: text -> token ids as lm-evaluation-harness 0.4 does it (api/model.py _encode_pair),
// shared by `turing score` and `turing eval` (the one copy).
//
// Contract (lm-eval 0.4.13 TemplateLM.loglikelihood and _encode_pair, branch by branch, pinned by
// Tests/Fixtures/lmeval/branches.json which lm-eval itself wrote). encode is HFLM.tok_encode
// (`lmEvalEncode`): the tokenizer's own special tokens (BOS for Llama-family tokenizers, nothing for GPT-2),
// except when the text already starts with the prefix token's text;
//   * context == "": cont = the continuation without special tokens; nothing -> error (lm-eval:
//     IndexError); cont[0] is the prefix token -> (cont[:1], cont[1:]), else ([prefix], cont);
//   * otherwise the context's trailing whitespace (Python's str.isspace, by code point) moves to the
//     front of the continuation; ctx = encode(context), cont = encode(context + continuation)[len(ctx):];
//     an empty ctx (a whitespace-only context) is an error (lm-eval: AssertionError);
//   * an empty continuation is an error in every branch (lm-eval: AssertionError).

import Model
import Tokenizers

public struct EvaluationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Token ids of `text` as lm-eval encodes it: no BOS/EOS added.
public func encodePlain(_ tok: Tokenizer, _ text: String) -> [Int] {
    if let l = tok as? Llama2cTokenizer { return l.encode(text, bos: false, eos: false) }
    return tok.encode(text, addSpecialTokens: false)
}

/// lm-eval HFLM.tok_encode(text): the tokenizer's special tokens unless `text` starts with the prefix token's text.
public func lmEvalEncode(_ tok: Tokenizer, _ text: String) -> [Int] {
    if tok is Llama2cTokenizer { return encodePlain(tok, text) }
    if let p = tok.bosToken ?? tok.eosToken {
        let s = tok.decode([p])
        if !s.isEmpty && text.hasPrefix(s) { return tok.encode(text, addSpecialTokens: false) }
    }
    return tok.encode(text, addSpecialTokens: true)
}

/// The token an empty context conditions on: BOS when the tokenizer has one, else end-of-text.
public func prefixToken(_ tok: Tokenizer, _ config: ModelConfig) throws -> Int {
    if let b = tok.bosToken ?? tok.eosToken ?? config.bosToken ?? config.eosToken { return b }
    throw EvaluationError("the tokenizer defines neither BOS nor end-of-text; an empty context has nothing to condition on")
}

/// Code points Python's `str.isspace()` accepts (what `str.rstrip()` strips).
let pythonWhitespace: Set<UInt32> = [9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197,
                                     8198, 8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288]

/// lm-eval's loglikelihood encoding of one (context, continuation) pair: (context ids, continuation ids).
public func lmEvalEncodePair(_ tok: Tokenizer, _ context: String, _ continuation: String, prefix: Int) throws -> ([Int], [Int]) {
    if context.isEmpty {
        let cont = encodePlain(tok, continuation)
        guard let first = cont.first else {
            throw EvaluationError("empty context and a continuation \"\(continuation)\" that encodes to no tokens: nothing to score (lm-eval fails on it too)")
        }
        let pair = first == prefix ? (Array(cont[..<1]), Array(cont[1...])) : ([prefix], cont)
        guard !pair.1.isEmpty else {
            throw EvaluationError("the continuation \"\(continuation)\" is only the prefix token \(prefix): nothing is left to score (lm-eval fails on it too)")
        }
        return pair
    }
    var scalars = Array(context.unicodeScalars)
    var moved: [Unicode.Scalar] = []
    while let last = scalars.last, pythonWhitespace.contains(last.value) { moved.insert(scalars.removeLast(), at: 0) }
    var ctx = String.UnicodeScalarView(); ctx.append(contentsOf: scalars)
    var lead = String.UnicodeScalarView(); lead.append(contentsOf: moved)
    let ctxText = String(ctx), contText = String(lead) + continuation
    let c = lmEvalEncode(tok, ctxText)
    guard !c.isEmpty else {
        throw EvaluationError("the context \"\(context)\" is only whitespace: after lm-eval moves it to the continuation nothing is left to condition on (lm-eval fails on it too)")
    }
    let whole = lmEvalEncode(tok, ctxText + contText)
    let x = Array(whole[min(c.count, whole.count)...])
    guard !x.isEmpty else { throw EvaluationError("the continuation \"\(continuation)\" encodes to no tokens after the context: nothing to score") }
    return (c, x)
}
