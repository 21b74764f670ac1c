// LMEvalEncoding: text -> token ids as lm-evaluation-harness 0.4 does it (api/model.py _encode_pair),
// shared by `turing score` and `turing eval` (the one copy).
//
// Contract: no BOS/EOS is added by encoding; trailing whitespace of the context moves to the front of the
// continuation; continuation ids = encode(context + continuation)[len(encode(context)):]; an empty
// context (or one that encodes to nothing) conditions on the prefix token (BOS, else end-of-text).

import Model
import Tokenizers

public struct EvaluationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Token ids of `text` as lm-eval encodes it: no BOS/EOS added.
public func encodePlain(_ tok: Tokenizer, _ text: String) -> [Int] {
    if let l = tok as? Llama2cTokenizer { return l.encode(text, bos: false, eos: false) }
    return tok.encode(text)
}

/// The token an empty context conditions on: BOS when the tokenizer has one, else end-of-text.
public func prefixToken(_ tok: Tokenizer, _ config: ModelConfig) throws -> Int {
    if let b = tok.bosToken ?? tok.eosToken ?? config.bosToken ?? config.eosToken { return b }
    throw EvaluationError("the tokenizer defines neither BOS nor end-of-text; an empty context has nothing to condition on")
}

/// lm-eval `_encode_pair` with the empty-context rule.
public func lmEvalEncodePair(_ tok: Tokenizer, _ context: String, _ continuation: String, prefix: Int) -> ([Int], [Int]) {
    if context.isEmpty { return ([prefix], encodePlain(tok, continuation)) }
    var ctx = context, cont = continuation
    let trailing = ctx.reversed().prefix { $0.isWhitespace }.count
    if trailing > 0 {
        cont = String(ctx.suffix(trailing)) + cont
        ctx = String(ctx.dropLast(trailing))
    }
    let whole = encodePlain(tok, ctx + cont)
    let c = encodePlain(tok, ctx)
    return (c.isEmpty ? [prefix] : c, Array(whole[min(c.count, whole.count)...]))
}
