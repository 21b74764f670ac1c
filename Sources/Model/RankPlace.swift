// RankPlace: where one rank sits in a `ParallelLayout` (its TP rank, pipeline stage and data-parallel
// replica) and which part of the canonical model it holds: its stage's contiguous layer range; the
// embeddings on the first stage; the final norm and the LM head on the last (tied: its own copy of
// the word embedding, like Megatron's word_embeddings_for_head); TP piece `tpRank` of each tensor
// (Partition.swift), the vocabulary padded by the layout's `VocabPadding`.
// Built checked: ranks inside the layout, the layer range the layout gives the stage.

public struct RankPlace: Sendable, Equatable, CustomStringConvertible {
    public let layout: ParallelLayout
    public let tpRank: Int, stage: Int, dpRank: Int
    /// Global indices of the layers on this rank's stage.
    public let layers: Range<Int>

    /// Throws `LayoutError` when a rank index is outside the layout or the layout cannot split
    /// `numLayers` layers into its stages.
    public init(layout: ParallelLayout, tpRank: Int = 0, stage: Int = 0, dpRank: Int = 0, numLayers: Int) throws {
        guard tpRank >= 0 && tpRank < layout.tp, stage >= 0 && stage < layout.pp, dpRank >= 0 && dpRank < layout.dp else {
            throw LayoutError("rank (TP \(tpRank), stage \(stage), replica \(dpRank)) is outside \(layout)")
        }
        self.layout = layout; self.tpRank = tpRank; self.stage = stage; self.dpRank = dpRank
        layers = try layout.stageLayers(numLayers: numLayers)[stage]
    }

    /// The whole model on one rank (TP 1 x PP 1 x DP 1, vocabulary unpadded).
    public static func single(layers n: Int) -> RankPlace { RankPlace(unchecked: ParallelLayout(), layers: 0..<max(0, n)) }
    private init(unchecked layout: ParallelLayout, layers: Range<Int>) {
        self.layout = layout; tpRank = 0; stage = 0; dpRank = 0; self.layers = layers
    }

    public var tp: Int { layout.tp }
    public var pp: Int { layout.pp }
    public var isFirstStage: Bool { stage == 0 }
    public var isLastStage: Bool { stage == layout.pp - 1 }
    /// This rank's world rank, (stage * DP + dpRank) * TP + tpRank.
    public var worldRank: Int { layout.rank(tpRank: tpRank, stage: stage, dpRank: dpRank) }
    public var description: String { "TP rank \(tpRank), stage \(stage)" + (layout.dp == 1 ? "" : ", replica \(dpRank)") + " of \(layout)" }
}
