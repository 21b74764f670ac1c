// PipelineSchedule: the order in which one pipeline stage runs the forward and backward passes of
// a step's micro-batches.
//
// 1F1B (Megatron's non-interleaved schedule): stage p of P runs min(P - p - 1, M) warm-up
// forwards, then alternates one forward and one backward, then drains the remaining backwards.
// A stage holds the activations of at most P - p micro-batches at once (GPipe would hold all M),
// and each stage's sequence only waits for what its neighbours produce in their own order, so
// the schedule cannot deadlock when sends do not block (`PointToPoint.sendAsync`).

public enum PipelineOp: Equatable, Sendable, CustomStringConvertible {
    case forward(Int), backward(Int)
    public var description: String {
        switch self { case .forward(let m): return "F\(m)"; case .backward(let m): return "B\(m)" }
    }
}

public enum PipelineSchedule {
    public static func oneFOneB(stage p: Int, stages P: Int, microBatches M: Int) -> [PipelineOp] {
        precondition(P >= 1 && p >= 0 && p < P && M >= 1)
        let warm = min(P - p - 1, M)
        var ops: [PipelineOp] = (0..<warm).map { .forward($0) }
        for i in 0..<(M - warm) { ops.append(.forward(warm + i)); ops.append(.backward(i)) }
        for m in (M - warm)..<M { ops.append(.backward(m)) }
        return ops
    }

    /// Most micro-batches whose activations a stage holds at once under `ops`.
    public static func peakInFlight(_ ops: [PipelineOp]) -> Int {
        var live = 0, peak = 0
        for op in ops { if case .forward = op { live += 1; peak = max(peak, live) } else { live -= 1 } }
        return peak
    }
}
