// ShardSpec: where one rank sits in the engine's TP x PP layout, and which part of the canonical
// model it holds. Pipeline stages hold contiguous layer ranges (uneven splits allowed); stage 0 holds
// the embedding, the last stage the final norm and the LM head (tied: its own copy of the word
// embedding, like Megatron's word_embeddings_for_head).

public struct ShardSpec: Sendable, Equatable {
    public var tp: Int, tpRank: Int
    public var pp: Int, stage: Int
    public var layers: Range<Int>       // global layer indices on this stage

    public static func single(layers n: Int) -> ShardSpec { ShardSpec(tp: 1, tpRank: 0, pp: 1, stage: 0, layers: 0..<n) }

    public init(tp: Int, tpRank: Int, pp: Int, stage: Int, layers: Range<Int>) {
        self.tp = tp; self.tpRank = tpRank; self.pp = pp; self.stage = stage; self.layers = layers
    }

    public var isFirstStage: Bool { stage == 0 }
    public var isLastStage: Bool { stage == pp - 1 }

    /// Layer ranges for `pp` stages: `layersPerStage` if given (must sum to L), else as even as
    /// possible with the remainder on the earliest stages.
    public static func stageLayers(numLayers L: Int, pp: Int, layersPerStage: [Int]? = nil) throws -> [Range<Int>] {
        guard pp >= 1 else { throw LayoutError("pipeline size must be >= 1, found \(pp)") }
        guard pp <= L else { throw LayoutError("pipeline size \(pp) is larger than the model's \(L) layers; every stage needs at least one layer") }
        let counts: [Int]
        if let given = layersPerStage {
            guard given.count == pp, given.reduce(0, +) == L, given.allSatisfy({ $0 >= 1 }) else {
                throw LayoutError("layers per stage \(given) must be \(pp) positive numbers summing to \(L)")
            }
            counts = given
        } else {
            counts = (0..<pp).map { L / pp + ($0 < L % pp ? 1 : 0) }
        }
        var out: [Range<Int>] = []
        var start = 0
        for c in counts { out.append(start..<(start + c)); start += c }
        return out
    }

    /// Check that a TP degree divides what it must.
    public static func checkTensorParallel(_ c: ModelConfig, tp: Int) throws {
        var p: [String] = []
        if tp < 1 { p.append("tensor-parallel size must be >= 1, found \(tp)") }
        else {
            if c.numHeads % tp != 0 { p.append("--tp \(tp) does not divide the \(c.numHeads) attention heads") }
            if c.numKVHeads % tp != 0 { p.append("--tp \(tp) does not divide the \(c.numKVHeads) query groups (KV heads)") }
            if c.ffnSize % tp != 0 { p.append("--tp \(tp) does not divide the FFN size \(c.ffnSize)") }
        }
        if !p.isEmpty { throw LayoutError(p.joined(separator: "; ")) }
    }
}

public struct LayoutError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}
