// DemoCorpus: the rule-governed little language Turing's built-in demo model is trained on, its
// word-level BPE tokenizer, and the demo tasks' documents. Everything is generated from a seed, so
// `turing make-demo` rebuilds checkpoints/demo from nothing.
//
// Sentences: facts ("the sky is blue ."), animal sounds ("the dog says woof ."), counting
// ("after three comes four ."). A trained model should know them; an untrained one is at chance.

import Foundation
import Model
import Tokenizers

enum DemoCorpus {
    static let facts: [(String, String)] = [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"),
        ("blood", "red"), ("sun", "yellow"), ("fire", "hot"), ("ice", "cold"), ("lemon", "sour"), ("sugar", "sweet"),
        ("night", "dark"), ("rock", "hard")]
    static let sounds: [(String, String)] = [("dog", "woof"), ("cat", "meow"), ("cow", "moo"), ("duck", "quack"),
        ("sheep", "baa"), ("owl", "hoot"), ("lion", "roar"), ("bee", "buzz")]
    static let numbers = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    static let openers = ["", "look , ", "we know ", "yes , ", "so "]

    static func sentence(_ rng: inout SplitMix64) -> String {
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        switch rng.next() % 3 {
        case 0: let (x, y) = pick(facts); return "\(pick(openers))the \(x) is \(y) ."
        case 1: let (a, s) = pick(sounds); return "\(pick(openers))the \(a) says \(s) ."
        default:
            let i = Int(rng.next() % UInt64(numbers.count - 1))
            return "after \(numbers[i]) comes \(numbers[i + 1]) ."
        }
    }

    /// `n` documents of 3-6 sentences each, joined by a space or (as few-shot prompts are) a blank line.
    static func documents(_ n: Int, seed: UInt64) -> [String] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            var doc = sentence(&rng)
            for _ in 0..<(2 + Int(rng.next() % 4)) { doc += (rng.next() % 2 == 0 ? " " : "\n\n") + sentence(&rng) }
            return doc
        }
    }

    /// Multiple-choice docs for the three demo tasks: {"query", "choices", "gold"}; the wrong choice
    /// is another answer of the same kind, and the gold position is random.
    static func taskDocuments(seed: UInt64) -> [String: [[String: Any]]] {
        var rng = SplitMix64(seed: seed)
        func mc(_ query: String, _ right: String, _ pool: [String]) -> [String: Any] {
            var wrong = right
            while wrong == right { wrong = pool[Int(rng.next() % UInt64(pool.count))] }
            let gold = Int(rng.next() % 2)
            return ["query": query, "choices": gold == 0 ? [right, wrong] : [wrong, right], "gold": gold]
        }
        let fs = facts.flatMap { f in (0..<3).map { _ in mc("the \(f.0) is", f.1, facts.map(\.1)) } }
        let ss = sounds.flatMap { s in (0..<3).map { _ in mc("the \(s.0) says", s.1, sounds.map(\.1)) } }
        let cs = (0..<(numbers.count - 1)).flatMap { i in (0..<3).map { _ in mc("after \(numbers[i]) comes", numbers[i + 1], numbers) } }
        return ["demo_facts": fs, "demo_sounds": ss, "demo_count": cs]
    }

    /// Word-level byte-level BPE: the 256 byte tokens, every word (with and without its leading
    /// space) built by a left-to-right merge chain, and <|endoftext|> last.
    static func tokenizerFiles() -> (vocab: [String: Int], merges: [(String, String)]) {
        var vocab: [String: Int] = [:]
        for b in 0..<256 { vocab[ByteLevel.tokenString(fromBytes: [UInt8(b)])] = b }
        var merges: [(String, String)] = []
        var words = Set(["the", "is", "says", "after", "comes", ".", ",", "look", "we", "know", "yes", "so"])
        for (a, b) in facts + sounds { words.insert(a); words.insert(b) }
        numbers.forEach { words.insert($0) }
        for w in words.sorted() {
            for form in [w, " " + w] {
                let pieces = Array(form.utf8).map { ByteLevel.tokenString(fromBytes: [$0]) }
                var cur = pieces[0]
                for p in pieces.dropFirst() {
                    let next = cur + p
                    if vocab[next] == nil {
                        merges.append((cur, p))
                        vocab[next] = vocab.count
                    }
                    cur = next
                }
            }
        }
        vocab["<|endoftext|>"] = vocab.count
        return (vocab, merges)
    }
}
