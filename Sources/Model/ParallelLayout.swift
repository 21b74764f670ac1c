// ParallelLayout: how a model is laid out over ranks, the one description shared by the loader,
// the engines, the trainer and the checkpoint writers: tensor-parallel size TP, pipeline size PP,
// data-parallel replicas DP, the layers of each stage, and how the vocabulary is padded before its
// vocab-parallel split (`VocabPadding`, Partition.swift).
//
// Rank order (Megatron's default): world rank g = (p * DP + d) * TP + t, TP fastest, then the
// replica d, then the stage p; with DP 1 this is g = p * TP + t. Pipeline stages hold contiguous
// layer ranges (`layersPerStage` if given, else as even as possible with the remainder on the
// earliest stages). Where one rank sits in it is a `RankPlace` (RankPlace.swift).
// Errors: `LayoutError` naming the size that does not fit and what it had to fit.

public struct ParallelLayout: Sendable, Equatable, CustomStringConvertible {
    public var tp: Int, pp: Int, dp: Int
    /// Layers of each stage (PP positive numbers summing to the model's layers); nil: the even split.
    public var layersPerStage: [Int]?
    /// How the vocabulary is padded before the vocab-parallel split: `.tensorParallel` (what the
    /// engines and the trainer hold) or `.megatron(divisibleBy:)` (what Megatron saves hold).
    public var vocab: VocabPadding

    public init(tp: Int = 1, pp: Int = 1, dp: Int = 1, layersPerStage: [Int]? = nil, vocab: VocabPadding = .tensorParallel) {
        self.tp = tp; self.pp = pp; self.dp = dp; self.layersPerStage = layersPerStage; self.vocab = vocab
    }

    /// Ranks in the layout: TP x PP x DP.
    public var worldSize: Int { tp * pp * dp }
    /// "TP t x PP p", with " x DP d" when there is more than one replica.
    public var description: String { "TP \(tp) x PP \(pp)" + (dp == 1 ? "" : " x DP \(dp)") }

    /// World rank of (TP rank t, stage p, replica d): (p * DP + d) * TP + t.
    public func rank(tpRank t: Int, stage p: Int, dpRank d: Int = 0) -> Int { (p * dp + d) * tp + t }

    /// (TP rank, stage, replica) of world rank g: the inverse of `rank(tpRank:stage:dpRank:)`.
    public func coordinates(ofRank g: Int) -> (tpRank: Int, stage: Int, dpRank: Int) {
        (g % tp, g / (tp * dp), (g / tp) % dp)
    }

    /// World rank `g`'s place, for a model of `numLayers` layers.
    public func place(ofRank g: Int, numLayers: Int) throws -> RankPlace {
        guard g >= 0 && g < worldSize else { throw LayoutError("rank \(g) is outside \(self) (\(worldSize) ranks)") }
        let (t, p, d) = coordinates(ofRank: g)
        return try RankPlace(layout: self, tpRank: t, stage: p, dpRank: d, numLayers: numLayers)
    }

    /// Each stage's global layer range for a model of `numLayers` layers.
    public func stageLayers(numLayers: Int) throws -> [Range<Int>] {
        try Self.stageLayers(numLayers: numLayers, pp: pp, layersPerStage: layersPerStage)
    }

    /// Throws unless a model of config `c` can be cut this way (TP divides heads, groups and FFN;
    /// every stage gets at least one layer; DP >= 1); returns each stage's layer range.
    @discardableResult
    public func check(_ c: ModelConfig) throws -> [Range<Int>] {
        guard dp >= 1 else { throw LayoutError("data-parallel size must be >= 1, found \(dp)") }
        try Self.checkTensorParallel(c, tp: tp)
        return try stageLayers(numLayers: c.numLayers)
    }

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
