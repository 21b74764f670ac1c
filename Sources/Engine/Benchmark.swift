// Benchmark: prefill and decode throughput, time to first token and peak RSS for a model, measured
// the same way `scripts/bench_peers.py` measures PyTorch and llama.cpp (128-token prompts, 64 decoded tokens,
// batch 1 and 8, one warm-up). Wall-clock; the ratio against PyTorch is what the README reports.

import Foundation
import Model
import TensorCore

public struct BenchmarkResult: Codable, Sendable {
    public var prefillTokensPerSecond: [String: Double] = [:]   // "b1", "b8"
    public var decodeTokensPerSecond: [String: Double] = [:]
    /// Scoring: prompts forwarded with logits for every row (as `Scorer` does); only with `score: true`.
    public var scoreTokensPerSecond: [String: Double]? = nil
    public var timeToFirstTokenMs: Double = 0
    /// Peak RSS of generation (weights, caches, activations; the load's transients excluded by the caller).
    public var peakRSSMB: Double = 0
    /// Peak RSS of the scoring phase alone (only with `score: true`, where the high-water mark can be reset).
    public var scorePeakRSSMB: Double? = nil
    public var threads: Int = 0
    public var dtype: String = "float32"
    /// The instruction set the kernels used, and the CPU's model name.
    public var isa: String = ""
    public var cpu: String = ""
    public var layout: String = "tp1-pp1"
    /// Rank 0's time inside communication calls per layer, ms (ShardedEngine, DistributedEngine),
    /// for the best run of each measurement: "prefill_b1" per forward, "decode_b1" per decode step.
    /// Includes waiting for the peer (load imbalance, pipeline bubbles), not only transfer.
    public var communicationMsPerLayer: [String: Double]? = nil
}

/// An engine that can say how long it spent communicating.
public protocol CommunicationProbe {
    func resetCommunicationStatistics()
    var communicationSecondsTotal: Double { get }
    var localLayers: Int { get }
}

public func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

public func peakRSSMegabytes() -> Double {
    var u = rusage()
    getrusage(0, &u)   // 0 = RUSAGE_SELF
    return Double(u.ru_maxrss) / 1024   // Linux reports KiB
}

/// The kernel's high-water mark of this process's resident set (VmHWM), which
/// `resetPeakRSS()` sets back to the current size (Linux >= 4.0); nil where unavailable.
public func highWaterRSSMegabytes() -> Double? {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return nil }
    return kb / 1024
}

/// Starts a new high-water mark (writes 5 to /proc/self/clear_refs). False where unsupported.
@discardableResult public func resetPeakRSS() -> Bool {
    guard let f = fopen("/proc/self/clear_refs", "w") else { return false }
    defer { fclose(f) }
    return fputs("5", f) >= 0
}

public enum Benchmark {
    /// Best of `reps` timed runs per measurement after one warm-up (as scripts/bench_peers.py).
    /// Generation (prefill and decode at every batch size) runs first and `peakRSSMB` is its peak;
    /// scoring runs after it with its own peak, `scorePeakRSSMB` (llama.cpp's scoring runs in its own
    /// process for the same reason: batch 8's all-position logits are not generation's memory). The
    /// peaks are the kernel's high-water marks when it can reset them (`resetPeakRSS`), else getrusage's.
    public static func run(model: CausalLM, promptLength: Int = 128, decodeTokens: Int = 64, batches: [Int] = [1, 8],
                           reps: Int = 3, score: Bool = false, log: (String) -> Void = { _ in }) throws -> BenchmarkResult {
        var res = BenchmarkResult()
        let probe = model as? CommunicationProbe
        if probe != nil { res.communicationMsPerLayer = [:] }
        func commMs(_ per: Int) -> Double { probe.map { $0.communicationSecondsTotal * 1000 / Double(per * $0.localLayers) } ?? 0 }
        let V = model.config.vocabSize
        var rng = SplitMix64(seed: 42)
        func prompt() -> [Int] { (0..<promptLength).map { _ in Int(rng.next() % UInt64(V)) } }
        let resets = resetPeakRSS()
        func peak() -> Double { resets ? highWaterRSSMegabytes() ?? peakRSSMegabytes() : peakRSSMegabytes() }
        // warm-up
        _ = try model.forward(tokens: [prompt()], caches: [try model.makeSequenceCache(capacity: promptLength + 2)], logits: .last)
        for b in batches {
            var bestPrefill = Double.infinity, bestDecode = Double.infinity
            for _ in 0..<reps {
                let prompts = (0..<b).map { _ in prompt() }
                let caches = try prompts.map { _ in try model.makeSequenceCache(capacity: promptLength + decodeTokens + 1) }
                probe?.resetCommunicationStatistics()
                let t0 = now()
                var logits = try model.forward(tokens: prompts, caches: caches, logits: .last)
                let first = (0..<b).map { r in logits.data.withUnsafeBufferPointer { argmaxIndex(UnsafeBufferPointer(start: $0.baseAddress! + r * V, count: V)) } }
                let t1 = now()
                if t1 - t0 < bestPrefill { res.communicationMsPerLayer?["prefill_b\(b)"] = commMs(1) }
                bestPrefill = min(bestPrefill, t1 - t0)
                var next = first
                probe?.resetCommunicationStatistics()
                let t2 = now()
                for _ in 0..<decodeTokens {
                    logits = try model.forward(tokens: next.map { [$0] }, caches: caches, logits: .last)
                    next = (0..<b).map { r in logits.data.withUnsafeBufferPointer { argmaxIndex(UnsafeBufferPointer(start: $0.baseAddress! + r * V, count: V)) } }
                }
                let t3 = now()
                if t3 - t2 < bestDecode { res.communicationMsPerLayer?["decode_b\(b)"] = commMs(decodeTokens) }
                bestDecode = min(bestDecode, t3 - t2)
            }
            res.prefillTokensPerSecond["b\(b)"] = Double(b * promptLength) / bestPrefill
            if b == 1 { res.timeToFirstTokenMs = bestPrefill * 1000 }
            res.decodeTokensPerSecond["b\(b)"] = Double(b * decodeTokens) / bestDecode
            log("b\(b): prefill \(String(format: "%.0f", Double(b * promptLength) / bestPrefill)) tok/s, decode \(String(format: "%.1f", Double(b * decodeTokens) / bestDecode)) tok/s")
        }
        res.peakRSSMB = peak()
        guard score else { return res }
        releaseFreedMemory()
        let scoreResets = resetPeakRSS()
        res.scoreTokensPerSecond = [:]
        for b in batches {
            var best = Double.infinity
            for _ in 0..<reps {
                let prompts = (0..<b).map { _ in prompt() }
                let caches = try prompts.map { _ in try model.makeSequenceCache(capacity: promptLength) }
                probe?.resetCommunicationStatistics()
                let t0 = now()
                let all = try model.forward(tokens: prompts, caches: caches, logits: .all)
                precondition(all.shape[0] == b * promptLength)
                let t1 = now()
                if t1 - t0 < best { res.communicationMsPerLayer?["score_b\(b)"] = commMs(1) }
                best = min(best, t1 - t0)
            }
            res.scoreTokensPerSecond?["b\(b)"] = Double(b * promptLength) / best
            log("b\(b): scoring \(String(format: "%.0f", Double(b * promptLength) / best)) tok/s")
        }
        if scoreResets { res.scorePeakRSSMB = highWaterRSSMegabytes() }
        return res
    }
}
