// BPEMerger: applies BPE merges to one pre-tokenized word, exactly as HF tokenizers' `Word::merge_all`
// (a min-heap of candidate merges ordered by (rank, position); stale entries are skipped). This gives the
// same result as OpenAI's encoder.py loop (merge the lowest-rank pair everywhere, repeat) in O(n log n).
// Contract: input is the word's initial symbol ids; output is its token ids. Scratch buffers are reused.

struct BPEMerger {
    private var sym: [Int32] = []
    private var prev: [Int32] = []
    private var next: [Int32] = []
    private var alive: [Bool] = []
    private var heapKey: [UInt64] = []   // rank << 32 | pos  (min-heap)
    private var heapId: [Int32] = []

    mutating func merge(_ initial: UnsafeBufferPointer<Int32>, merges: PairMap, into out: inout [Int32]) {
        let n = initial.count
        out.removeAll(keepingCapacity: true)
        if n < 2 { out.append(contentsOf: initial); return }
        sym.removeAll(keepingCapacity: true); sym.append(contentsOf: initial)
        prev.removeAll(keepingCapacity: true); next.removeAll(keepingCapacity: true)
        alive.removeAll(keepingCapacity: true)
        for i in 0..<n { prev.append(Int32(i - 1)); next.append(i + 1 < n ? Int32(i + 1) : -1); alive.append(true) }
        heapKey.removeAll(keepingCapacity: true); heapId.removeAll(keepingCapacity: true)
        for i in 0..<(n - 1) {
            if let m = merges.get(sym[i], sym[i + 1]) { push(rank: m.rank, pos: i, id: m.id) }
        }
        while let (key, newId) = pop() {
            let pos = Int(UInt32(truncatingIfNeeded: key))
            if !alive[pos] { continue }
            let r = Int(next[pos])
            if r < 0 { continue }
            guard let cur = merges.get(sym[pos], sym[r]), cur.id == newId else { continue }  // stale entry
            sym[pos] = newId
            alive[r] = false
            let rn = Int(next[r])
            next[pos] = Int32(rn)
            if rn >= 0 { prev[rn] = Int32(pos) }
            let p = Int(prev[pos])
            if p >= 0, let m = merges.get(sym[p], sym[pos]) { push(rank: m.rank, pos: p, id: m.id) }
            if rn >= 0, let m = merges.get(sym[pos], sym[rn]) { push(rank: m.rank, pos: pos, id: m.id) }
        }
        var i = 0
        while i >= 0 { out.append(sym[i]); i = Int(next[i]) }
    }

    private mutating func push(rank: Int32, pos: Int, id: Int32) {
        var k = heapKey.count
        let key = (UInt64(UInt32(bitPattern: rank)) << 32) | UInt64(pos)
        heapKey.append(key); heapId.append(id)
        while k > 0 {
            let parent = (k - 1) >> 1
            if heapKey[parent] <= key { break }
            heapKey[k] = heapKey[parent]; heapId[k] = heapId[parent]
            k = parent
        }
        heapKey[k] = key; heapId[k] = id
    }

    private mutating func pop() -> (UInt64, Int32)? {
        guard let top = heapKey.first else { return nil }
        let topId = heapId[0]
        let lastKey = heapKey.removeLast(), lastId = heapId.removeLast()
        let n = heapKey.count
        if n > 0 {
            var k = 0
            while true {
                let l = 2 * k + 1
                if l >= n { break }
                var c = l
                if l + 1 < n && heapKey[l + 1] < heapKey[l] { c = l + 1 }
                if heapKey[c] >= lastKey { break }
                heapKey[k] = heapKey[c]; heapId[k] = heapId[c]
                k = c
            }
            heapKey[k] = lastKey; heapId[k] = lastId
        }
        return (top, topId)
    }
}
