// WeightChecks: the checks every loaded model passes before it may run, at the checkpoint boundary
// (whatever the format): no tensor holds NaN or infinity (`CheckpointError.nonFinite` names the
// first such tensor and how many values). One pass over the weights, at memory speed.

import TensorCore

public enum WeightChecks {
    /// Throws for the first tensor (in name order) holding a NaN or infinite value.
    public static func refuseNonFinite(_ tensors: [String: Tensor], file: String, piece: String = "") throws {
        for name in tensors.keys.sorted() {
            let n = nonFiniteCount(tensors[name]!.data)
            if n > 0 { throw CheckpointError.nonFinite(file: file, tensor: name + piece, count: n) }
        }
    }

    /// Values whose exponent bits are all ones (NaN or ±inf).
    /// Large arrays are counted in chunks on the kernels' threads.
    public static func nonFiniteCount(_ xs: [Float]) -> Int {
        xs.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: UInt32.self) { u in
                Compute.mapChunks(u.count) { r in
                    var bad = 0
                    for x in u[r] { bad &+= (x & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0 }
                    return bad
                }.reduce(0, +)
            }
        }
    }
}
