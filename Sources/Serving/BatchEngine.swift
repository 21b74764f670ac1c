// BatchEngine: continuous batching over one model, on one thread that owns it.
//
// Contract: `submit` queues sequences (all of a request's or none: a full queue is a 503 with
// Retry-After) and returns one event stream per sequence. The engine thread loops: admit queued
// sequences up to `maxBatch` active (and about `prefillTokens` prompt tokens per prefill), prefill
// the admitted ones in one stacked forward (`.last` rows, or every row when prompt log-probabilities
// were asked for), then sample one token for every active sequence and run one stacked forward for
// all that go on. Each sequence has its own seeded `Sampler` and cache, and the products are batch-
// invariant, so a sequence's tokens equal `Generator`'s for the same prompt and seed whatever else is
// in the batch. Prompt log-probabilities come from one chunk of prompt[:-1] and `RowLogSoftmax`: at TP 1
// the bits `Scorer` gives for context [prompt[0]] and continuation prompt[1...] (the attention kernel
// depends on a chunk's row count, so another split of the same prompt can differ in the last bits);
// the last prompt token then runs alone (so with echo + logprobs the first generated token's logits
// come from a one-row chunk, where `Generator` prefills the whole prompt at once). A sequence
// whose consumer goes away (client disconnect: the stream is terminated) is dropped at the next step
// and its cache freed. `shutdown` lets queued and active sequences finish, then stops the thread.

import Foundation
import Engine
import Model
import Tokenizers

public enum FinishReason: String, Sendable { case stop, length }

public struct SequenceSpec: Sendable {
    public var prompt: [Int]
    public var maxTokens: Int
    public var sampling: SamplingParams
    public var stopTokens: Set<Int>
    public var stopStrings: [String]
    /// Log-probabilities of the prompt's tokens (echo + logprobs); the first token has none.
    public var promptLogprobs: Bool
    /// Log-probabilities of generated tokens, with this many alternatives (nil: none).
    public var topLogprobs: Int?
    public init(prompt: [Int], maxTokens: Int, sampling: SamplingParams, stopTokens: Set<Int>, stopStrings: [String] = [],
                promptLogprobs: Bool = false, topLogprobs: Int? = nil) {
        self.prompt = prompt; self.maxTokens = maxTokens; self.sampling = sampling; self.stopTokens = stopTokens
        self.stopStrings = stopStrings; self.promptLogprobs = promptLogprobs; self.topLogprobs = topLogprobs
    }
}

/// One token with its log-probability and the alternatives asked for (most likely first).
public struct ScoredToken: Sendable {
    public var id: Int
    public var logprob: Double?
    public var top: [TokenLogprob]
}

public enum SequenceEvent: Sendable {
    /// The prompt's tokens (first without a log-probability), once, before any generated token.
    case prompt([ScoredToken])
    /// A generated token and the text it releases (an end-of-text token releases none: `isStopToken`).
    case token(ScoredToken, text: String, isStopToken: Bool)
    case finished(FinishReason, text: String)
    case failed(String)
}

public struct EngineStats: Sendable, Equatable {
    public var active: Int
    public var queued: Int
    /// Sequences (and so KV caches) alive, active, queued or not yet released.
    public var live: Int
    public var steps: Int
    /// Sequences dropped because their consumer went away (client disconnect).
    public var cancelled: Int
}

final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

public final class BatchEngine: @unchecked Sendable {
    public let model: CausalLM
    public let tokenizer: Tokenizer
    public let maxBatch: Int
    public let maxQueue: Int
    public let prefillTokens: Int

    private let cond = NSCondition()
    private var queue: [Seq] = []
    private var active: [Seq] = []        // touched by the engine thread only (count read under cond)
    private var activeCount = 0
    private var live = 0
    private var steps = 0
    private var cancelled = 0
    private var paused = false
    private var stopping = false
    private var started = false
    private let done = DispatchSemaphore(value: 0)

    final class Seq {
        let spec: SequenceSpec
        let cont: AsyncStream<SequenceEvent>.Continuation
        let cancel: CancelFlag
        var sampler: Sampler
        var text: TextStream
        var cache: SequenceCache?
        var pending: [Float] = []
        var generated = 0
        var lastToken = 0
        let onDeinit: () -> Void
        init(spec: SequenceSpec, cont: AsyncStream<SequenceEvent>.Continuation, cancel: CancelFlag, tokenizer: Tokenizer, onDeinit: @escaping () -> Void) {
            self.spec = spec; self.cont = cont; self.cancel = cancel; self.onDeinit = onDeinit
            sampler = Sampler(spec.sampling)
            text = TextStream(tokenizer: tokenizer, prompt: spec.prompt, stops: spec.stopStrings)
        }
        deinit { onDeinit() }
    }

    public init(model: CausalLM, tokenizer: Tokenizer, maxBatch: Int = 16, maxQueue: Int = 256, prefillTokens: Int = 2048) {
        self.model = model; self.tokenizer = tokenizer
        self.maxBatch = max(1, maxBatch); self.maxQueue = max(0, maxQueue); self.prefillTokens = max(1, prefillTokens)
    }

    public func start() {
        cond.lock(); defer { cond.unlock() }
        guard !started else { return }
        started = true
        let t = Thread { [self] in run(); done.signal() }
        t.name = "turing-engine"
        t.stackSize = 16 << 20
        t.start()
    }

    /// Lets every queued and active sequence finish, then stops the engine thread.
    public func shutdown() {
        cond.lock()
        let wasStarted = started
        stopping = true
        cond.broadcast()
        cond.unlock()
        if wasStarted { done.wait() }
    }

    public var stats: EngineStats {
        cond.lock(); defer { cond.unlock() }
        return EngineStats(active: activeCount, queued: queue.count, live: live, steps: steps, cancelled: cancelled)
    }

    /// Queues the sequences of one request, all or none.
    public func submit(_ specs: [SequenceSpec]) throws -> [AsyncStream<SequenceEvent>] {
        let room = maxQueue + maxBatch
        guard specs.count <= room else {
            throw APIError.invalid("the request asks for \(specs.count) sequences; this server runs at most \(room) at once (--max-batch \(maxBatch) + --max-queue \(maxQueue))")
        }
        cond.lock(); defer { cond.unlock() }
        guard !stopping else { var e = APIError(.serviceUnavailable, "the server is shutting down"); e.retryAfter = 5; throw e }
        let free = max(0, maxBatch - activeCount)
        guard queue.count + specs.count <= maxQueue + free else {
            var e = APIError(.serviceUnavailable, "the request queue is full (\(queue.count) sequences waiting, --max-queue \(maxQueue)); retry later")
            e.retryAfter = 1
            throw e
        }
        var streams: [AsyncStream<SequenceEvent>] = []
        for spec in specs {
            let flag = CancelFlag()
            let (stream, cont) = AsyncStream<SequenceEvent>.makeStream(bufferingPolicy: .unbounded)
            cont.onTermination = { reason in if case .cancelled = reason { flag.set() } }
            live += 1
            queue.append(Seq(spec: spec, cont: cont, cancel: flag, tokenizer: tokenizer) { [weak self] in self?.released() })
            streams.append(stream)
        }
        cond.signal()
        return streams
    }

    /// Runs on the engine thread after every step (tests slow the engine down with it).
    var afterStep: (@Sendable () -> Void)? {
        get { cond.lock(); defer { cond.unlock() }; return _afterStep }
        set { cond.lock(); _afterStep = newValue; cond.unlock() }
    }
    private var _afterStep: (@Sendable () -> Void)?

    /// Holds the engine between steps (tests use it to make a busy or mid-stream moment certain).
    func setPaused(_ p: Bool) { cond.lock(); paused = p; cond.broadcast(); cond.unlock() }

    private func released() { cond.lock(); live -= 1; cond.unlock() }

    // MARK: the engine thread

    private func run() {
        while true {
            cond.lock()
            while (queue.isEmpty && active.isEmpty && !stopping) || (paused && !stopping) { cond.wait() }
            if stopping && queue.isEmpty && active.isEmpty { cond.unlock(); return }
            var admitted: [Seq] = []
            var tokens = 0
            while let s = queue.first, active.count + admitted.count < maxBatch,
                  admitted.isEmpty || tokens + s.spec.prompt.count <= prefillTokens {
                queue.removeFirst()
                if s.cancel.isSet { cancelled += 1; s.cont.finish(); continue }
                admitted.append(s); tokens += s.spec.prompt.count
            }
            cond.unlock()
            let gone = active.filter { $0.cancel.isSet }.count
            if gone > 0 { cond.lock(); cancelled += gone; cond.unlock() }
            for s in active where s.cancel.isSet { s.cont.finish() }
            active.removeAll { $0.cancel.isSet }
            if !admitted.isEmpty { prefill(admitted) }
            if !active.isEmpty { step() }
            cond.lock(); activeCount = active.count; steps += 1; let hook = _afterStep; cond.unlock()
            hook?()
        }
    }

    private func fail(_ seqs: [Seq], _ error: Error) {
        for s in seqs { s.cont.yield(.failed("\(error)")); s.cont.finish() }
        let ids = Set(seqs.map { ObjectIdentifier($0) })
        active.removeAll { ids.contains(ObjectIdentifier($0)) }
    }

    private func finish(_ s: Seq, _ reason: FinishReason) {
        let rest = s.text.finish()
        s.cont.yield(.finished(reason, text: rest))
        s.cont.finish()
        s.cache = nil
    }

    private func prefill(_ arrived: [Seq]) {
        let P = model.config.maxPositions, V = model.config.vocabSize
        var seqs: [Seq] = []   // those that got a cache; a request the system has no memory for fails alone
        for s in arrived {
            do { s.cache = try model.makeSequenceCache(capacity: min(P, s.spec.prompt.count + s.spec.maxTokens)); seqs.append(s) }
            catch { fail([s], error) }
        }
        var failed = Set<ObjectIdentifier>()
        let scored = seqs.filter { $0.spec.promptLogprobs }, plain = seqs.filter { !$0.spec.promptLogprobs }
        if !plain.isEmpty {
            do {
                let logits = try model.forward(tokens: plain.map(\.spec.prompt), caches: plain.map { $0.cache! }, logits: .last)
                for (r, s) in plain.enumerated() { s.pending = Array(logits.data[(r * V)..<((r + 1) * V)]) }
            } catch { fail(plain, error); plain.forEach { failed.insert(ObjectIdentifier($0)) } }
        }
        if !scored.isEmpty {
            do {
                // prompt[:-1] in one chunk, every row: row i predicts token i + 1 — the chunk `Scorer` runs for
                // context [prompt[0]] and continuation prompt[1...], so these are its bits
                let heads = scored.filter { $0.spec.prompt.count > 1 }
                if !heads.isEmpty {
                    let logits = try model.forward(tokens: heads.map { Array($0.spec.prompt.dropLast()) }, caches: heads.map { $0.cache! }, logits: .all)
                    var row0 = 0
                    logits.data.withUnsafeBufferPointer { b in
                        for s in heads {
                            let p = s.spec.prompt, n = s.spec.topLogprobs ?? 0
                            var out = [ScoredToken(id: p[0], logprob: nil, top: [])]
                            for i in 1..<p.count {
                                let ls = RowLogSoftmax(UnsafeBufferPointer(rebasing: b[((row0 + i - 1) * V)..<((row0 + i) * V)]))
                                out.append(ScoredToken(id: p[i], logprob: ls.logprob(p[i]), top: ls.top(n)))
                            }
                            s.cont.yield(.prompt(out))
                            row0 += p.count - 1
                        }
                    }
                }
                for s in scored where s.spec.prompt.count == 1 { s.cont.yield(.prompt([ScoredToken(id: s.spec.prompt[0], logprob: nil, top: [])])) }
                // then the last prompt token: the logits the first generated token is drawn from
                let logits = try model.forward(tokens: scored.map { s in s.spec.prompt.count > 1 ? [s.spec.prompt.last!] : s.spec.prompt },
                                               caches: scored.map { $0.cache! }, logits: .last)
                for (r, s) in scored.enumerated() { s.pending = Array(logits.data[(r * V)..<((r + 1) * V)]) }
            } catch { fail(scored, error); scored.forEach { failed.insert(ObjectIdentifier($0)) } }
        }
        for s in seqs where !failed.contains(ObjectIdentifier(s)) {
            if s.spec.maxTokens == 0 { finish(s, .length) } else { active.append(s) }
        }
    }

    private func step() {
        var next: [Seq] = []
        for s in active {
            if s.cancel.isSet { s.cont.finish(); cond.lock(); cancelled += 1; cond.unlock(); continue }
            let (tok, scoredTok): (Int, ScoredToken) = s.pending.withUnsafeBufferPointer { row in
                let t = s.sampler.sample(row)
                guard let n = s.spec.topLogprobs else { return (t, ScoredToken(id: t, logprob: nil, top: [])) }
                let ls = RowLogSoftmax(row)
                return (t, ScoredToken(id: t, logprob: ls.logprob(t), top: ls.top(n)))
            }
            s.generated += 1
            if s.spec.stopTokens.contains(tok) {
                s.cont.yield(.token(scoredTok, text: "", isStopToken: true))
                finish(s, .stop); continue
            }
            let (text, stopped) = s.text.push(tok)
            s.cont.yield(.token(scoredTok, text: text, isStopToken: false))
            if stopped { finish(s, .stop); continue }
            if s.generated >= s.spec.maxTokens || s.cache!.length >= s.cache!.capacity { finish(s, .length); continue }
            s.lastToken = tok
            next.append(s)
        }
        active = next
        guard !next.isEmpty else { return }
        let V = model.config.vocabSize
        do {
            let inputs = next.map { [$0.lastToken] }
            let logits = try model.forward(tokens: inputs, caches: next.map { $0.cache! }, logits: .last)
            for (r, s) in next.enumerated() { s.pending = Array(logits.data[(r * V)..<((r + 1) * V)]) }
        } catch { fail(next, error) }
    }
}
