// PyRandom: CPython 3.11's `random.Random` reproduced bit for bit, for lm-eval's few-shot sampling and
// its bootstrap standard errors.
//
// Contract: `PyRandom(seed: s)` equals `random.Random(s)` for an integer s (init_by_array over the 32-bit
// words of |s|, least significant first; [0] for 0); `getrandbits(k)` (k <= 32), `randbelow(n)`,
// `random()`, `sample(count:k)` (indices that `random.sample(range(count), k)` returns, with CPython's
// set-or-pool branch) and `choicesIndex(count:)` (one draw of `random.choices`) consume the MT19937
// stream exactly as CPython does.

public struct PyRandom {
    private var mt = [UInt32](repeating: 0, count: 624)
    private var index = 625

    public init(seed: Int) {
        var key: [UInt32] = []
        var m = seed.magnitude
        repeat { key.append(UInt32(truncatingIfNeeded: m)); m >>= 32 } while m > 0
        initByArray(key)
    }

    private mutating func initGenrand(_ s: UInt32) {
        mt[0] = s
        for i in 1..<624 {
            mt[i] = 1812433253 &* (mt[i - 1] ^ (mt[i - 1] >> 30)) &+ UInt32(i)
        }
        index = 624
    }

    private mutating func initByArray(_ key: [UInt32]) {
        initGenrand(19650218)
        var i = 1, j = 0
        var k = max(624, key.count)
        while k > 0 {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) &* 1664525)) &+ key[j] &+ UInt32(j)
            i += 1; j += 1
            if i >= 624 { mt[0] = mt[623]; i = 1 }
            if j >= key.count { j = 0 }
            k -= 1
        }
        k = 623
        while k > 0 {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) &* 1566083941)) &- UInt32(i)
            i += 1
            if i >= 624 { mt[0] = mt[623]; i = 1 }
            k -= 1
        }
        mt[0] = 0x8000_0000
    }

    public mutating func nextUInt32() -> UInt32 {
        if index >= 624 {
            for kk in 0..<624 {
                let y = (mt[kk] & 0x8000_0000) | (mt[(kk + 1) % 624] & 0x7fff_ffff)
                mt[kk] = mt[(kk + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_b0df : 0)
            }
            index = 0
        }
        var y = mt[index]; index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// `getrandbits(k)` for 1 <= k <= 32.
    public mutating func getrandbits(_ k: Int) -> UInt32 {
        precondition(k >= 1 && k <= 32)
        return nextUInt32() >> UInt32(32 - k)
    }

    /// `_randbelow_with_getrandbits(n)`, n >= 1, n < 2^32.
    public mutating func randbelow(_ n: Int) -> Int {
        let k = Int.bitWidth - n.leadingZeroBitCount
        var r = Int(getrandbits(k))
        while r >= n { r = Int(getrandbits(k)) }
        return r
    }

    /// `random()`: 53-bit float in [0, 1).
    public mutating func random() -> Double {
        let a = Double(nextUInt32() >> 5), b = Double(nextUInt32() >> 6)
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0)
    }

    /// Positions `random.sample(population, k)` picks from a population of `count` items, in order.
    public mutating func sample(count n: Int, k: Int) -> [Int] {
        precondition(k >= 0 && k <= n, "sample larger than population")
        var result = [Int](repeating: 0, count: k)
        var setsize = 21
        if k > 5 {
            // 4 ** ceil(log(k * 3, 4)), with CPython's float log
            let e = (log(Double(k * 3)) / log(4.0)).rounded(.up)
            setsize += Int(pow(4.0, e))
        }
        if n <= setsize {
            var pool = Array(0..<n)
            for i in 0..<k {
                let j = randbelow(n - i)
                result[i] = pool[j]
                pool[j] = pool[n - i - 1]
            }
        } else {
            var selected = Set<Int>()
            for i in 0..<k {
                var j = randbelow(n)
                while selected.contains(j) { j = randbelow(n) }
                selected.insert(j)
                result[i] = j
            }
        }
        return result
    }

    /// One element index of `random.choices(population, k=...)` without weights: floor(random() * n).
    public mutating func choicesIndex(count n: Int) -> Int {
        Int((random() * Double(n)).rounded(.down))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
