// HashTables: allocation-free lookup structures for the BPE hot path.
// ByteStringMap: open-addressing map from byte strings (compared bytewise, never via String equality, which
// would conflate canonically-equivalent text) to a list of Int32 values stored in one arena.
// PairMap: open-addressing map from a pair of token ids to (rank, merged id).
// Contract: lookups never allocate; ByteStringMap keeps the first value of a repeated key, PairMap the last.

struct ByteStringMap {
    private var slots: [Int32]        // index into entries, -1 = empty
    private var hashes: [UInt64]      // per slot
    private var keyStart: [Int] = []
    private var keyLen: [Int32] = []
    private var valStart: [Int] = []
    private var valLen: [Int32] = []
    private var keyArena: [UInt8] = []
    private(set) var values: [Int32] = []
    private var mask: Int
    var count: Int { keyStart.count }
    var arenaBytes: Int { keyArena.count + values.count * 4 }

    init(capacity: Int = 1024) {
        var cap = 16
        while cap < capacity * 2 { cap <<= 1 }
        slots = [Int32](repeating: -1, count: cap)
        hashes = [UInt64](repeating: 0, count: cap)
        mask = cap - 1
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        var i = 0
        while i + 8 <= n {
            let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
            h = (h ^ w) &* 0x100000001b3
            h ^= h >> 29
            i += 8
        }
        var tail: UInt64 = 0
        var s: UInt64 = 0
        while i < n { tail |= UInt64(p[i]) << s; s += 8; i += 1 }
        h = (h ^ tail ^ UInt64(n)) &* 0x9E3779B97F4A7C15
        return h ^ (h >> 32)
    }

    /// Range of the values stored for key p[0..<n] (into `values`), or nil.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int) -> Range<Int>? {
        let h = ByteStringMap.hash(p, n)
        var s = Int(truncatingIfNeeded: h) & mask
        return slots.withUnsafeBufferPointer { sl -> Range<Int>? in
            while true {
                let e = Int(sl[s])
                if e < 0 { return nil }
                if hashes[s] == h && Int(keyLen[e]) == n {
                    let ks = keyStart[e]
                    let same = keyArena.withUnsafeBufferPointer { ka -> Bool in
                        var i = 0
                        while i < n { if ka[ks + i] != p[i] { return false }; i += 1 }
                        return true
                    }
                    if same { return valStart[e]..<(valStart[e] + Int(valLen[e])) }
                }
                s = (s + 1) & mask
            }
        }
    }

    mutating func insert(_ p: UnsafePointer<UInt8>, _ n: Int, values v: UnsafeBufferPointer<Int32>) {
        if find(p, n) != nil { return }
        if (count + 1) * 2 > slots.count { grow() }
        let h = ByteStringMap.hash(p, n)
        var s = Int(truncatingIfNeeded: h) & mask
        while slots[s] >= 0 { s = (s + 1) & mask }
        slots[s] = Int32(count)
        hashes[s] = h
        keyStart.append(keyArena.count); keyLen.append(Int32(n))
        keyArena.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        valStart.append(values.count); valLen.append(Int32(v.count))
        values.append(contentsOf: v)
    }

    mutating func insert(_ key: [UInt8], value: Int32) {
        key.withUnsafeBufferPointer { k in
            withUnsafePointer(to: value) { vp in
                let base = k.baseAddress ?? UnsafePointer(bitPattern: 1)!
                insert(base, k.count, values: UnsafeBufferPointer(start: vp, count: 1))
            }
        }
    }

    func find(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { k -> Int32? in
            let base = k.baseAddress ?? UnsafePointer(bitPattern: 1)!
            guard let r = find(base, k.count) else { return nil }
            return values[r.lowerBound]
        }
    }

    mutating func removeAll() {
        self = ByteStringMap(capacity: 1024)
    }

    private mutating func grow() {
        let cap = slots.count * 2
        var ns = [Int32](repeating: -1, count: cap)
        var nh = [UInt64](repeating: 0, count: cap)
        let m = cap - 1
        for s in 0..<slots.count where slots[s] >= 0 {
            var t = Int(truncatingIfNeeded: hashes[s]) & m
            while ns[t] >= 0 { t = (t + 1) & m }
            ns[t] = slots[s]; nh[t] = hashes[s]
        }
        slots = ns; hashes = nh; mask = m
    }
}

struct PairMap {
    private var keys: [UInt64]    // (a << 32 | b) + 1; 0 = empty
    private var vals: [UInt64]    // rank << 32 | newId
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int) {
        var cap = 16
        while cap < capacity * 2 { cap <<= 1 }
        keys = [UInt64](repeating: 0, count: cap)
        vals = [UInt64](repeating: 0, count: cap)
        mask = cap - 1
    }

    @inline(__always) private static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        ((UInt64(UInt32(bitPattern: a)) << 32) | UInt64(UInt32(bitPattern: b))) &+ 1
    }

    @inline(__always) private static func slot(_ k: UInt64, _ mask: Int) -> Int {
        let h = k &* 0x9E3779B97F4A7C15
        return Int(truncatingIfNeeded: h >> 29) & mask
    }

    /// (rank, merged id) for the adjacent pair (a, b), or nil.
    @inline(__always)
    func get(_ a: Int32, _ b: Int32) -> (rank: Int32, id: Int32)? {
        let k = PairMap.key(a, b)
        var s = PairMap.slot(k, mask)
        while true {
            let kk = keys[s]
            if kk == k { let v = vals[s]; return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v)) }
            if kk == 0 { return nil }
            s = (s + 1) & mask
        }
    }

    /// Inserts or overwrites (as in HF tokenizers and OpenAI's encoder.py, a later duplicate merge wins).
    mutating func insert(_ a: Int32, _ b: Int32, rank: Int32, id: Int32) {
        if (count + 1) * 2 > keys.count { grow() }
        let k = PairMap.key(a, b)
        var s = PairMap.slot(k, mask)
        while keys[s] != 0 {
            if keys[s] == k { break }
            s = (s + 1) & mask
        }
        if keys[s] == 0 { count += 1 }
        keys[s] = k
        vals[s] = (UInt64(UInt32(bitPattern: rank)) << 32) | UInt64(UInt32(bitPattern: id))
    }

    private mutating func grow() {
        let old = (keys, vals)
        let cap = keys.count * 2
        keys = [UInt64](repeating: 0, count: cap)
        vals = [UInt64](repeating: 0, count: cap)
        mask = cap - 1
        for i in 0..<old.0.count where old.0[i] != 0 {
            var s = PairMap.slot(old.0[i], mask)
            while keys[s] != 0 { s = (s + 1) & mask }
            keys[s] = old.0[i]; vals[s] = old.1[i]
        }
    }
}
