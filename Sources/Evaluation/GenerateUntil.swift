// GenerateUntil: lm-eval 0.4.13's `generate_until` for a causal model, greedy, as its HF model runs it
// (models/huggingface.py generate_until and _model_generate, models/utils_hf.py MultiTokenEOSCriteria,
// models/utils.py handle_stop_sequences and postprocess_generated_text).
//
// Contract, per request:
// * stops = the task's `until` strings plus the end-of-text token's text (decode([eot]), added when absent);
//   empty strings are ignored (lm-eval skips them when cutting; as a stopping criterion "" would stop at once).
// * The context is encoded as lm-eval tok_batch_encode does (lmEvalEncode: BOS for Llama-family tokenizers) and left-truncated to its last
//   max_positions - max_gen_toks tokens; max_gen_toks must be below max_positions (lm-eval asserts it).
// * Greedy decoding (first maximum wins, as torch.argmax) on the KV cache (Engine.Generator) for at most
//   max_gen_toks tokens; generation ends at the end-of-text token (not part of the output), or after the
//   first token at which some stop string s occurs in decode(the last len(encode(s)) + 2 generated tokens)
//   (special tokens kept, as HF batch_decode), which is exactly when HF's stopping criteria fire.
// * Result = decode(generated tokens), then for each stop string in order: text = text.split(s)[0]
//   (Python semantics: sequential cuts, code-point matching).
// Requests of one call run as one batch (each sequence on its own cache; a sequence's tokens do not
// depend on the others').

import Engine
import Tokenizers

public struct GenerateUntil {
    public let model: CausalLM
    public let tokenizer: Tokenizer

    public init(model: CausalLM, tokenizer: Tokenizer) { self.model = model; self.tokenizer = tokenizer }

    /// The stop strings lm-eval uses for `until`: the given ones, then end-of-text's text when absent.
    public func stops(_ until: [String]) -> [String] {
        var s = until
        if let eot = tokenizer.eosToken ?? model.config.eosToken {
            let t = tokenizer.decode([eot])
            if !s.contains(t) { s.append(t) }
        }
        return s.filter { !$0.isEmpty }
    }

    /// Generated text per context, in order; `tokens` receives the context and generated token counts.
    public func generate(_ contexts: [String], until: [String], maxGenToks: Int, tokens: inout Int) throws -> [String] {
        let P = model.config.maxPositions
        guard maxGenToks < P else {
            throw EvaluationError("max_gen_toks \(maxGenToks) must be below the model's \(P) positions (lm-eval asserts the same)")
        }
        let stopList = stops(until)
        let windows = stopList.map { encodePlain(tokenizer, $0).count + 2 }
        let eot = tokenizer.eosToken ?? model.config.eosToken
        var requests: [GenerationRequest] = []
        for (i, c) in contexts.enumerated() {
            let ids = lmEvalEncode(tokenizer, c).suffix(P - maxGenToks)
            guard !ids.isEmpty else { throw EvaluationError("generation request \(i): the context \"\(c.prefix(40))\" encodes to no tokens") }
            requests.append(GenerationRequest(prompt: Array(ids), maxTokens: maxGenToks, stopTokens: eot.map { [$0] } ?? []))
            tokens += ids.count
        }
        var generated = [[Int]](repeating: [], count: contexts.count)
        _ = try Generator(model: model).generate(requests) { seq, tok in
            generated[seq].append(tok)
            let g = generated[seq]
            for (s, w) in zip(stopList, windows) where containsScalars(tokenizer.decode(Array(g.suffix(w))), s) { return false }
            return true
        }
        tokens += generated.reduce(0) { $0 + $1.count }
        return generated.map { ids in
            var text = tokenizer.decode(ids)
            for s in stopList { text = prefixBefore(text, s) }
            return text
        }
    }
}

/// Python's `needle in haystack` (code points).
func containsScalars(_ haystack: String, _ needle: String) -> Bool { firstScalarOffset(haystack, needle) != nil }

/// Python's `text.split(sep)[0]`.
func prefixBefore(_ text: String, _ sep: String) -> String {
    guard let i = firstScalarOffset(text, sep) else { return text }
    var v = String.UnicodeScalarView()
    v.append(contentsOf: text.unicodeScalars.prefix(i))
    return String(v)
}

func firstScalarOffset(_ haystack: String, _ needle: String) -> Int? {
    let h = Array(haystack.unicodeScalars), n = Array(needle.unicodeScalars)
    guard !n.isEmpty else { return 0 }
    guard h.count >= n.count else { return nil }
    for i in 0...(h.count - n.count) where h[i] == n[0] && h[i..<(i + n.count)].elementsEqual(n) { return i }
    return nil
}
