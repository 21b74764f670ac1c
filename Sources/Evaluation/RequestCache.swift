// RequestCache: scored loglikelihood requests on disk, so an interrupted `turing eval` resumes from
// what it already scored and ends with numbers identical to an uninterrupted run.
//
// One JSONL file per model, named by the weights' content hash; a line is {"k": key, "lp": bits,
// "g": greedy} where the key hashes the request's context and continuation tokens and `lp` is the
// log-prob's IEEE bit pattern in hex (exact). Lines are appended and flushed after every scored
// chunk (a write error throws); a torn last line (the process died mid-write) is cut off the file
// when the cache is opened, and any line that does not parse is ignored (its request is rescored).
// Decisions never mix bits: requests come in groups (one document's choices, or its rolling windows),
// and a group with any request missing from the cache is rescored whole, in one call, its new bits
// replacing the old; so every decision compares log-likelihoods from one scoring call. With scoring
// batch-invariant (docs/compute.md) a rescored request also gets its old bits: a resumed run's
// log-likelihoods, decisions and metrics equal an uninterrupted run's bit for bit.

import Foundation
import Engine

public final class RequestCache {
    public let url: URL
    private var entries: [String: (Double, Bool)] = [:]
    private let handle: FileHandle
    public private(set) var hits = 0

    public init(directory: URL, modelHash: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        url = directory.appendingPathComponent("\(modelHash).jsonl")
        if let data = FileManager.default.contents(atPath: url.path) {
            // cut a torn last line off, so appends start on a line of their own
            let keep = data.lastIndex(of: 0x0A).map { $0 - data.startIndex + 1 } ?? 0
            if keep < data.count && truncate(url.path, off_t(keep)) != 0 {
                throw EvaluationError("\(url.path): cannot cut the torn last line of the request cache: \(String(cString: strerror(errno)))")
            }
            for line in data.prefix(keep).split(separator: 0x0A) {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                      let k = o["k"] as? String, let lp = o["lp"] as? String, (1...16).contains(lp.count), let bits = UInt64(lp, radix: 16), let g = o["g"] as? Bool else { continue }
                entries[k] = (Double(bitPattern: bits), g)
            }
        } else {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw EvaluationError("\(url.path): cannot create the request cache")
            }
        }
        guard let h = FileHandle(forWritingAtPath: url.path) else { throw EvaluationError("cannot open the request cache \(url.path)") }
        handle = h
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    public var count: Int { entries.count }

    /// FNV-1a over the token ids, with the context length, so (ctx, cont) splits never collide.
    static func key(_ r: LoglikelihoodRequest) -> String {
        var h: UInt64 = 0xcbf29ce484222325
        for t in [r.context.count] + r.context + r.continuation {
            var x = UInt64(bitPattern: Int64(t))
            for _ in 0..<8 { h ^= x & 0xff; h = h &* 0x100000001b3; x >>= 8 }
        }
        return "\(r.context.count)-\(r.continuation.count)-" + String(h, radix: 16)
    }

    /// Results for `requests`: cached ones are taken from disk, the rest scored by `score` and stored.
    /// `groups` partitions the requests into consecutive runs whose results are compared with each
    /// other (sizes summing to `requests.count`; nil: each request alone): a run with any request
    /// missing is scored whole.
    public func resolve(_ requests: [LoglikelihoodRequest], groups: [Int]? = nil,
                        score: ([LoglikelihoodRequest]) throws -> [LoglikelihoodResult]) throws -> [(Double, Bool)] {
        let sizes = groups ?? Array(repeating: 1, count: requests.count)
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == requests.count else {
            throw EvaluationError("request cache: groups of \(sizes.reduce(0, +)) requests given for \(requests.count)")
        }
        var out = [(Double, Bool)?](repeating: nil, count: requests.count)
        var missing: [Int] = []
        var start = 0
        for n in sizes {
            let run = start..<(start + n)
            let cached = run.map { entries[Self.key(requests[$0])] }
            if cached.allSatisfy({ $0 != nil }) {
                for (i, e) in zip(run, cached) { out[i] = e; hits += 1 }
            } else {
                missing += run   // never mix cached bits with new ones in one group
            }
            start += n
        }
        if !missing.isEmpty {
            let res = try score(missing.map { requests[$0] })
            var lines = ""
            for (j, i) in missing.enumerated() {
                let e = (res[j].logprob, res[j].isGreedy)
                out[i] = e
                let k = Self.key(requests[i])
                entries[k] = e
                let hex = String(e.0.bitPattern, radix: 16)
                lines += "{\"k\":\"\(k)\",\"lp\":\"\(String(repeating: "0", count: 16 - hex.count) + hex)\",\"g\":\(e.1)}\n"
            }
            do {
                try handle.write(contentsOf: Data(lines.utf8))
                try handle.synchronize()
            } catch {
                throw EvaluationError("\(url.path): cannot append to the request cache: \((error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription)")
            }
        }
        return out.map { $0! }
    }
}
