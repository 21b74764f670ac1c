// RequestCache: scored loglikelihood requests on disk, so an interrupted `turing eval` resumes from
// what it already scored and ends with numbers identical to an uninterrupted run.
//
// One JSONL file per model, named by the weights' content hash; a line is {"k": key, "lp": bits,
// "g": greedy} where the key hashes the request's context and continuation tokens and `lp` is the
// log-prob's IEEE bit pattern in hex (exact). Lines are appended and flushed after every scored
// chunk; a torn last line (the process died mid-write) is dropped when the cache is opened.
// A resumed run's decisions and metrics equal an uninterrupted run's; single log-likelihoods can
// differ in the last float bits (~1e-7), because the Scorer batches requests and BLAS results depend
// on the batch's shape.

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
        if var data = FileManager.default.contents(atPath: url.path) {
            // drop a torn last line, so appends start on a line of their own
            if let last = data.lastIndex(of: 0x0A) { data = data.prefix(through: last) } else { data = Data() }
            try data.write(to: url)
            let text = String(decoding: data, as: UTF8.self)
            for line in text.split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let k = o["k"] as? String, let lp = o["lp"] as? String, let bits = UInt64(lp, radix: 16), let g = o["g"] as? Bool else { continue }
                entries[k] = (Double(bitPattern: bits), g)
            }
        } else {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        guard let h = FileHandle(forWritingAtPath: url.path) else { throw EvaluationError("cannot open the request cache \(url.path)") }
        handle = h
        handle.seekToEndOfFile()
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
    public func resolve(_ requests: [LoglikelihoodRequest], score: ([LoglikelihoodRequest]) throws -> [LoglikelihoodResult]) throws -> [(Double, Bool)] {
        var out = [(Double, Bool)?](repeating: nil, count: requests.count)
        var missing: [Int] = []
        for (i, r) in requests.enumerated() {
            if let e = entries[Self.key(r)] { out[i] = e; hits += 1 } else { missing.append(i) }
        }
        if !missing.isEmpty {
            let res = try score(missing.map { requests[$0] })
            var lines = ""
            for (j, i) in missing.enumerated() {
                let e = (res[j].logprob, res[j].isGreedy)
                out[i] = e
                let k = Self.key(requests[i])
                entries[k] = e
                lines += "{\"k\":\"\(k)\",\"lp\":\"\(String(e.0.bitPattern, radix: 16))\",\"g\":\(e.1)}\n"
            }
            handle.write(Data(lines.utf8))
            try? handle.synchronize()
        }
        return out.map { $0! }
    }
}
