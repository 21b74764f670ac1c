// TrainingReference: a training run recorded by PyTorch (scripts/fixtures_training.py), replayed
// through any `TrainingExecutor` and compared: the first step's gradients (per tensor, max |diff|
// over max |reference|), the first gradient norm, and every step's loss (relative). Used by the
// tests (in-process layouts) and by `turing train-check` (the same replay under mpirun).

import Foundation
import Model

public struct TrainingReference: Decodable, Sendable {
    public let B: Int, T: Int
    public let mask: [[Bool]]
    public let batches: [[[Int]]]
    public let losses: [Double]
    public let grad_norms: [Double]?
    public let micro_batch: Int?
    public let clip_grad: Double?

    public static func load(_ url: URL) throws -> TrainingReference {
        do { return try JSONDecoder().decode(TrainingReference.self, from: Data(contentsOf: url)) }
        catch { throw TrainingError("\(url.path): not a training reference (\(error))") }
    }

    /// Step `step`'s global batch cut into micro-batches of `micro_batch` sequences.
    public func microBatches(step: Int) -> [TrainingBatch] {
        let ids = batches[step], mb = micro_batch ?? B
        return stride(from: 0, to: B, by: mb).map { s in
            let r = s..<min(B, s + mb)
            return TrainingBatch(inputs: r.map { Array(ids[$0].dropLast()) }, targets: r.map { Array(ids[$0].dropFirst()) }, mask: r.map { mask[$0] })
        }
    }

    public struct Result: Sendable {
        public var worstGradient: (name: String, relative: Float) = ("", 0)
        public var firstNorm: (got: Float, want: Double) = (0, 0)
        public var worstLoss: Double = 0
        public var losses: [Float] = []
    }

    /// Replays the run from `state`: one step at lr 0 without clipping for the raw gradients, then
    /// every step from `state` again with lr 1e-3 and the recorded clipping. Nil on MPI ranks other than 0.
    public func replay(_ ex: TrainingExecutor, from state: TrainerState, reference: [String: [Float]], lr: Float = 1e-3) throws -> Result? {
        let canon = state.adam.layout
        var r = Result()
        try ex.load(state)
        let (_, norm0) = try ex.step(micro: microBatches(step: 0), lr: 0, clip: 0)
        let grads = try ex.gather(\.grads, canonical: canon)
        try ex.load(state)
        for s in 0..<losses.count {
            let (loss, _) = try ex.step(micro: microBatches(step: s), lr: lr, clip: Float(clip_grad ?? 0))
            r.losses.append(loss)
            r.worstLoss = max(r.worstLoss, abs(Double(loss) - losses[s]) / abs(losses[s]))
        }
        guard let grads else { return nil }
        r.firstNorm = (norm0, grad_norms?.first ?? .nan)
        let global = grads.map(abs).max() ?? 0
        for e in canon.entries {
            guard let want = reference[e.name] else { throw TrainingError("reference gradients lack \(e.name)") }
            let got = grads[e.offset..<(e.offset + e.count)]
            if e.name.hasSuffix("attn.k.bias") {
                // analytically zero (a key bias adds the same q.b to every score of a row): both sides are rounding noise
                let rel = (got.map(abs).max() ?? 0) / max(global, 1e-12)
                if rel > 1e-5 { r.worstGradient = ("\(e.name) is \(rel) of the largest gradient, should be ~0", .infinity) }
                continue
            }
            let rel = zip(got, want).map { abs($0 - $1) }.max()! / max(want.map(abs).max()!, 1e-12)
            if rel > r.worstGradient.relative { r.worstGradient = (e.name, rel) }
        }
        return r
    }
}
