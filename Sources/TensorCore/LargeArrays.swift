// LargeArrays: arrays of weights and load-time temporaries (hundreds of MB each at 7B) allocated
// uninitialized and, where the kernel offers transparent huge pages on request (the `madvise` mode
// Debian ships), backed by 2 MB pages: one page fault and one TLB entry per 2 MB instead of per 4 KB.
// Contract: `uninitializedArray(count:fill:)` gives an array whose every element `fill` wrote (it must
// write them all); the advice changes no value, only how pages are mapped, and is skipped below 4 MB.

#if canImport(Glibc)
import Glibc
#endif

/// Asks for 2 MB pages over the whole 2 MB-aligned stretch inside [p, p + bytes).
@inline(__always)
public func adviseHugePages(_ p: UnsafeMutableRawPointer, bytes: Int) {
    #if canImport(Glibc)
    let huge = 2 << 20
    guard bytes >= 2 * huge else { return }
    let start = (Int(bitPattern: p) + huge - 1) & ~(huge - 1)
    let end = (Int(bitPattern: p) + bytes) & ~(huge - 1)
    if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_HUGEPAGE) }
    #endif
}

/// An array of `count` elements, each written by `fill` (no zeroing pass first).
@inline(__always)
public func uninitializedArray<T>(count: Int, fill: (UnsafeMutablePointer<T>) -> Void) -> [T] {
    [T](unsafeUninitializedCapacity: count) { b, c in
        if let base = b.baseAddress {
            adviseHugePages(UnsafeMutableRawPointer(base), bytes: count * MemoryLayout<T>.stride)
            fill(base)
        }
        c = count
    }
}
