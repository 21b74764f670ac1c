// LMEvalEncoding: text -> token ids as lm-evaluation-harness 0.4 does it (api/model.py _encode_pair),
// shared by `turing score` and `turing eval` (the one copy).
//
// Contract: text is encoded as lm-eval's HFLM.tok_encode does with add_bos_token unset: with the tokenizer's own
// special tokens (transformers' add_special_tokens=True: BOS for Llama-family tokenizers, nothing for GPT-2),
// except when the text already starts with the prefix token's text; trailing whitespace of the context moves to
// the front of the continuation; continuation ids = encode(context + continuation)[len(encode(context)):]; an
// empty context conditions on the prefix token (BOS, else end-of-text) and its continuation is encoded without
// special tokens (split off when it starts with the prefix token, as lm-eval does).

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

/// lm-eval `_encode_pair` with the empty-context rule.
public func lmEvalEncodePair(_ tok: Tokenizer, _ context: String, _ continuation: String, prefix: Int) -> ([Int], [Int]) {
    if context.isEmpty {
        let cont = encodePlain(tok, continuation)
        if let f = cont.first, f == prefix { return ([f], Array(cont.dropFirst())) }
        return ([prefix], cont)
    }
    var ctx = context, cont = continuation
    let trailing = ctx.reversed().prefix { $0.isWhitespace }.count
    if trailing > 0 {
        cont = String(ctx.suffix(trailing)) + cont
        ctx = String(ctx.dropLast(trailing))
    }
    let whole = lmEvalEncode(tok, ctx + cont)
    let c = lmEvalEncode(tok, ctx)
    return (c.isEmpty ? [prefix] : c, Array(whole[min(c.count, whole.count)...]))
}
