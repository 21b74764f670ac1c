// PrefixTrie: a double-array byte trie over token strings, for the unigram Viterbi (sentencepiece uses darts-clone's
// the same way). Node x's child on byte c sits at units[base(x) + c] when that unit's check is x; a unit also holds
// the id stored at its node.
// Contract: built once from (key, id) pairs (a repeated key keeps the first id; the empty key is never reported);
// `prefixes(p, n)` calls `body(length, id)` for every stored key that is a prefix of p[0..<n], shortest first,
// reading one 12-byte unit per byte and never allocating. Construction is bounded: a node whose children fit no
// free slots within `maxTries` candidates goes to the end of the array.

struct PrefixTrie: Sendable {
    private struct Unit {
        var base: Int32 = 0
        var check: Int32 = -1   // parent node; -1: free, -2: the root
        var term: Int32 = -1    // id stored at this node, -1: none
    }
    private let units: [Unit]
    private static let maxTries = 256

    init(keys: [[UInt8]], ids: [Int32]) throws {
        precondition(keys.count == ids.count)
        let order = keys.indices.sorted { a, b in
            keys[a] == keys[b] ? a < b : keys[a].lexicographicallyPrecedes(keys[b])
        }
        var u = [Unit(base: 0, check: -2, term: -1)]
        var firstFree = 1
        var stack: [(lo: Int, hi: Int, depth: Int, node: Int)] = [(0, order.count, 0, 0)]
        var labels: [Int] = [], starts: [Int] = []
        while let (lo, hi, depth, node) = stack.popLast() {
            var a = lo
            while a < hi && keys[order[a]].count == depth {   // keys ending here sort first
                if depth > 0 && u[node].term < 0 { u[node].term = ids[order[a]] }
                a += 1
            }
            if a == hi { continue }
            labels.removeAll(keepingCapacity: true); starts.removeAll(keepingCapacity: true)
            var k = a
            while k < hi {
                let c = keys[order[k]][depth]
                labels.append(Int(c)); starts.append(k)
                while k < hi && keys[order[k]][depth] == c { k += 1 }
            }
            starts.append(hi)
            // the first base (from the first free unit on) where every child's unit is free
            var base = -1, f = firstFree, tries = 0
            while tries < PrefixTrie.maxTries {
                while f < u.count && u[f].check != -1 { f += 1 }
                let b = f - labels[0]
                if b >= 0 && labels.allSatisfy({ b + $0 >= u.count || u[b + $0].check == -1 }) { base = b; break }
                f += 1; tries += 1
            }
            if base < 0 { base = u.count }
            let end = base + labels[labels.count - 1] + 1
            guard end < Int(Int32.max) else { throw TokenizerError.invalidFormat("vocabulary too large for the piece trie (\(end) nodes)") }
            if end > u.count { u.append(contentsOf: repeatElement(Unit(), count: end - u.count)) }
            u[node].base = Int32(base)
            for (j, c) in labels.enumerated() {
                u[base + c].check = Int32(node)
                stack.append((starts[j], starts[j + 1], depth + 1, base + c))
            }
            while firstFree < u.count && u[firstFree].check != -1 { firstFree += 1 }
        }
        units = u
    }

    @inline(__always)
    func prefixes(_ p: UnsafePointer<UInt8>, _ n: Int, _ body: (Int, Int) -> Void) {
        units.withUnsafeBufferPointer { u in
            let count = u.count
            var node = 0
            var i = 0
            while i < n {
                let t = Int(u[node].base) + Int(p[i])
                if t >= count || Int(u[t].check) != node { return }
                node = t
                i += 1
                let id = u[t].term
                if id >= 0 { body(i, Int(id)) }
            }
        }
    }
}
