// PromptBuilder: a document's loglikelihood requests (text level), with few-shot examples, exactly as
// lm-evaluation-harness 0.4.13 builds them (api/task.py fewshot_context, build_qa_turn,
// multiple_input_context, construct_requests; api/samplers.py ContextSampler.sample).
//
// Contract:
// * One PyRandom(seed) per (task, shot count), consumed in document order (lm-eval's set_fewshot_seed).
// * Shots: `random.sample(pool, k)`; when the task excludes self (fewshot_split == test_split), draw k+1,
//   drop documents equal to the evaluated one, keep k; if fewer than k remain, resample k from the pool
//   without the evaluated document's copies.
// * Context = description + for each shot (text + target_delimiter + answer + fewshot_delimiter) + text.
//   A shot's answer is choices[target] when the target is an index, else the target text. For
//   multiple-input tasks (doc_to_text gives an index: Winogrande) the shot's text is choices[index] and
//   the evaluated document has one context per choice.
// * Requests: loglikelihood -> (context, target); multiple_choice -> (context, target_delimiter + choice)
//   per choice, or (context_i, target_delimiter + target) per context for multiple-input tasks;
//   generate_until -> (context, "") with the target text (choices[target] when doc_to_choice is set);
//   loglikelihood_rolling -> ("", target): the document alone, so shots > 0 are an error (lm-eval builds
//   a few-shot context for them and then ignores it).

public struct DocRequests: Sendable {
    public var docID: Int
    public var requests: [(context: String, continuation: String)]
    public var choices: [String]            // empty for loglikelihood tasks
    public var gold: Int?                   // multiple choice: index of the right choice
    public var target: String               // loglikelihood: the continuation; multiple choice: rendered target
}

public struct PromptBuilder {
    public let spec: TaskSpec
    public let pool: [Document]
    private var rng: PyRandom
    /// Documents that were drawn among their own shots (a pool that holds the evaluated documents
    /// without the task excluding them): lm-eval does the same; the caller warns.
    public private(set) var selfInContext = 0

    public init(spec: TaskSpec, pool: [Document], seed: Int) {
        self.spec = spec; self.pool = pool; self.rng = PyRandom(seed: seed)
    }

    /// lm-eval turns an all-digit rendered target into an index only when the task has doc_to_choice.
    var isChoice: Bool { spec.docToChoice != nil }

    func text(_ d: Document) throws -> Resolved { try Template.resolve(spec.docToText, d, task: spec.file, isChoiceTask: isChoice) }
    func target(_ d: Document) throws -> Resolved { try Template.resolve(spec.docToTarget, d, task: spec.file, isChoiceTask: isChoice) }
    func choices(_ d: Document) throws -> [String]? { try spec.docToChoice.map { try Template.choices($0, d, task: spec.file) } }

    /// The shots for `doc` (consumes the generator as lm-eval does).
    public mutating func shots(for doc: Document, k: Int) throws -> [Document] {
        guard k > 0 else { return [] }
        guard !pool.isEmpty else { throw TaskError("\(spec.file): \(k)-shot asked for but the few-shot pool is empty") }
        if spec.excludesSelfFromShots {
            guard k + 1 <= pool.count else { throw TaskError("\(spec.file): \(k)-shot needs \(k + 1) few-shot documents, the pool has \(pool.count)") }
            var res = rng.sample(count: pool.count, k: k + 1).map { pool[$0] }.filter { $0 != doc }
            res = Array(res.prefix(k))
            if res.count < k {
                let rest = pool.filter { $0 != doc }
                guard k <= rest.count else { throw TaskError("\(spec.file): not enough few-shot documents besides the evaluated one") }
                res = rng.sample(count: rest.count, k: k).map { rest[$0] }
            }
            return res
        }
        guard k <= pool.count else { throw TaskError("\(spec.file): \(k)-shot needs \(k) few-shot documents, the pool has \(pool.count)") }
        let res = rng.sample(count: pool.count, k: k).map { pool[$0] }
        if res.contains(doc) { selfInContext += 1 }
        return res
    }

    public mutating func build(_ doc: Document, docID: Int, k: Int) throws -> DocRequests {
        if spec.outputType == .loglikelihoodRolling {
            guard k == 0 else {
                throw TaskError("\(spec.file): loglikelihood_rolling scores each document on its own; \(k)-shot has no meaning (lm-eval ignores the shots): run it at 0 shots")
            }
            guard case .text(let t) = try target(doc) else { throw TaskError("\(spec.file): doc_to_target must give text (document \(doc.origin))") }
            return DocRequests(docID: docID, requests: [("", t)], choices: [], gold: nil, target: t)
        }
        // lm-eval resolve_field(doc, description): a template over the evaluated document, prepended as is
        var prefix = spec.description.isEmpty ? "" : try Template.render(spec.description, doc, task: spec.file)
        for s in try shots(for: doc, k: k) {
            var q = try text(s)
            let c = try choices(s)
            let a = try target(s)
            if case .index(let qi) = q, let c {         // multiple input: the text is a choice index
                guard c.indices.contains(qi) else { throw TaskError("\(spec.file): text index \(qi) out of range (document \(s.origin))") }
                q = .text(c[qi])
                prefix += try qaTurn(q, choices: nil, answer: a, doc: s)
            } else {
                prefix += try qaTurn(q, choices: c, answer: a, doc: s)
            }
        }
        let q = try text(doc)
        let t = try target(doc)
        switch spec.outputType {
        case .loglikelihood:
            guard case .text(let ctx) = q, case .text(let cont) = t else {
                throw TaskError("\(spec.file): loglikelihood tasks need text contexts and targets (document \(doc.origin))")
            }
            return DocRequests(docID: docID, requests: [(prefix + ctx, cont)], choices: [], gold: nil, target: cont)
        case .generateUntil:
            guard case .text(let ctx) = q else { throw TaskError("\(spec.file): doc_to_text must give text (document \(doc.origin))") }
            let gold: String
            switch (t, try choices(doc)) {
            case (.index(let i), let c?):
                guard c.indices.contains(i) else { throw TaskError("\(spec.file): label \(i) out of range for \(c.count) choices (document \(doc.origin))") }
                gold = c[i]
            case (.index(let i), nil): gold = String(i)
            case (.text(let s), _): gold = s
            case (.list, _): throw TaskError("\(spec.file): list targets are not supported (document \(doc.origin))")
            }
            return DocRequests(docID: docID, requests: [(prefix + ctx, "")], choices: [], gold: nil, target: gold)
        case .loglikelihoodRolling:
            fatalError("handled above")
        case .multipleChoice:
            let c = try choices(doc) ?? []
            if case .index(let gi) = q {                   // multiple input (Winogrande)
                guard case .text(let cont) = t else { throw TaskError("\(spec.file): multiple-input target must be text (document \(doc.origin))") }
                guard c.indices.contains(gi) else { throw TaskError("\(spec.file): gold index \(gi) out of range for \(c.count) choices (document \(doc.origin))") }
                return DocRequests(docID: docID, requests: c.map { (prefix + $0, spec.targetDelimiter + cont) },
                                   choices: c, gold: gi, target: cont)
            }
            guard case .text(let ctx) = q else { throw TaskError("\(spec.file): doc_to_text must give text (document \(doc.origin))") }
            let gold: Int
            switch t {
            case .index(let i): gold = i
            case .text(let s):
                guard let i = c.firstIndex(of: s) else { throw TaskError("\(spec.file): target \"\(s)\" is not one of the choices (document \(doc.origin))") }
                gold = i
            case .list: throw TaskError("\(spec.file): list targets are not supported (document \(doc.origin))")
            }
            guard c.indices.contains(gold) else {
                throw TaskError("\(spec.file): label \(gold) out of range for \(c.count) choices (document \(doc.origin))")
            }
            return DocRequests(docID: docID, requests: c.map { (prefix + ctx, spec.targetDelimiter + $0) },
                               choices: c, gold: gold, target: c[gold])
        }
    }

    func qaTurn(_ q: Resolved, choices c: [String]?, answer a: Resolved, doc: Document) throws -> String {
        guard case .text(let qt) = q else { throw TaskError("\(spec.file): doc_to_text must give text (document \(doc.origin))") }
        let ans: String
        switch a {
        case .index(let i):
            if let c {
                guard c.indices.contains(i) else { throw TaskError("\(spec.file): label \(i) out of range for \(c.count) choices (document \(doc.origin))") }
                ans = c[i]
            } else { ans = String(i) }
        case .text(let s): ans = s
        case .list(let l): ans = l.first ?? ""
        }
        if ans.isEmpty { return qt }
        return qt + spec.targetDelimiter + ans + spec.fewshotDelimiter
    }
}
