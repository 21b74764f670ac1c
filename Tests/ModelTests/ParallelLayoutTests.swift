// ParallelLayout and RankPlace: Megatron's rank order g = (p * DP + d) * TP + t (as
// megatron/core/parallel_state.py builds its groups with the default order "tp-cp-ep-dp-pp": TP
// ranks consecutive, then data-parallel replicas, pipeline stages outermost), stage layer ranges,
// the TP divisibility check, the places a rank can and cannot take, and the vocabulary padding policies.

import XCTest
@testable import Model

final class ParallelLayoutTests: XCTestCase {
    static let llama = ModelConfig(vocabSize: 37, hiddenSize: 16, numLayers: 5, numHeads: 4, numKVHeads: 2, ffnSize: 24,
                                   maxPositions: 16, norm: .rmsnorm, activation: .swiglu, positions: .rope, linearBias: false)

    func testRankOrderIsMegatronsTPThenDPThenPP() throws {
        let l = ParallelLayout(tp: 2, pp: 3, dp: 2)
        XCTAssertEqual(l.worldSize, 12)
        // Written out by hand for TP 2 x DP 2 x PP 3: ranks 0-3 are stage 0 (replica 0: 0, 1; replica 1: 2, 3), ...
        let expected: [(t: Int, p: Int, d: Int)] = [(0, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (1, 1, 0),
                                                    (0, 1, 1), (1, 1, 1), (0, 2, 0), (1, 2, 0), (0, 2, 1), (1, 2, 1)]
        for (g, e) in expected.enumerated() {
            let c = l.coordinates(ofRank: g)
            XCTAssertEqual([c.tpRank, c.stage, c.dpRank], [e.t, e.p, e.d], "rank \(g)")
            XCTAssertEqual(l.rank(tpRank: e.t, stage: e.p, dpRank: e.d), g)
            let place = try l.place(ofRank: g, numLayers: 5)
            XCTAssertEqual(place.worldRank, g)
            XCTAssertEqual([place.tpRank, place.stage, place.dpRank], [e.t, e.p, e.d])
            XCTAssertEqual(place.isFirstStage, e.p == 0)
            XCTAssertEqual(place.isLastStage, e.p == 2)
            XCTAssertEqual(place.layers, [0..<2, 2..<4, 4..<5][e.p])
        }
        // DP 1: the engines' g = p * TP + t.
        let e = ParallelLayout(tp: 4, pp: 2)
        for g in 0..<8 { XCTAssertEqual(e.coordinates(ofRank: g).tpRank, g % 4); XCTAssertEqual(e.coordinates(ofRank: g).stage, g / 4) }
        XCTAssertThrowsError(try l.place(ofRank: 12, numLayers: 5)) { XCTAssertTrue("\($0)".contains("rank 12 is outside TP 2 x PP 3 x DP 2"), "\($0)") }
    }

    func testStageLayers() throws {
        XCTAssertEqual(try ParallelLayout(pp: 3).stageLayers(numLayers: 7), [0..<3, 3..<5, 5..<7])
        XCTAssertEqual(try ParallelLayout(pp: 2, layersPerStage: [1, 4]).stageLayers(numLayers: 5), [0..<1, 1..<5])
        XCTAssertThrowsError(try ParallelLayout(pp: 2, layersPerStage: [2, 2]).stageLayers(numLayers: 5)) {
            XCTAssertEqual("\($0)", "layers per stage [2, 2] must be 2 positive numbers summing to 5")
        }
        XCTAssertThrowsError(try ParallelLayout(pp: 6).stageLayers(numLayers: 5)) { XCTAssertTrue("\($0)".contains("larger than the model's 5 layers"), "\($0)") }
        XCTAssertThrowsError(try ParallelLayout(pp: 0).stageLayers(numLayers: 5))
    }

    func testCheckNamesWhatTPDoesNotDivide() throws {
        XCTAssertEqual(try ParallelLayout(tp: 2, pp: 2).check(Self.llama), [0..<3, 3..<5])
        XCTAssertThrowsError(try ParallelLayout(tp: 4).check(Self.llama)) {
            XCTAssertEqual("\($0)", "--tp 4 does not divide the 2 query groups (KV heads)")
        }
        XCTAssertThrowsError(try ParallelLayout(tp: 5).check(Self.llama)) {
            XCTAssertEqual("\($0)", "--tp 5 does not divide the 4 attention heads; --tp 5 does not divide the 2 query groups (KV heads); --tp 5 does not divide the FFN size 24")
        }
        XCTAssertThrowsError(try ParallelLayout(dp: 0).check(Self.llama)) { XCTAssertEqual("\($0)", "data-parallel size must be >= 1, found 0") }
    }

    func testPlacesOutsideTheLayoutAreRefused() throws {
        let l = ParallelLayout(tp: 2, pp: 2)
        for (t, p, d) in [(2, 0, 0), (-1, 0, 0), (0, 2, 0), (0, 0, 1)] {
            XCTAssertThrowsError(try RankPlace(layout: l, tpRank: t, stage: p, dpRank: d, numLayers: 4), "(\(t), \(p), \(d))")
        }
        XCTAssertThrowsError(try RankPlace(layout: ParallelLayout(pp: 3), stage: 2, numLayers: 2))
        let one = RankPlace.single(layers: 3)
        XCTAssertEqual(one.layers, 0..<3)
        XCTAssertTrue(one.isFirstStage && one.isLastStage)
        XCTAssertEqual(one, try RankPlace(layout: ParallelLayout(), numLayers: 3))
    }

    func testVocabPaddingPolicies() {
        XCTAssertEqual(VocabPadding.tensorParallel.paddedVocab(50257, tp: 1), 50257)
        XCTAssertEqual(VocabPadding.tensorParallel.paddedVocab(50257, tp: 4), 50260)
        XCTAssertEqual(VocabPadding.megatronDefault.paddedVocab(50257, tp: 1), 50304)       // GPT-2 under Megatron
        XCTAssertEqual(VocabPadding.megatronDefault.paddedVocab(50257, tp: 2), 50432)
        XCTAssertEqual(VocabPadding.megatron(divisibleBy: 1).paddedVocab(37, tp: 2), 38)
        XCTAssertEqual(ParallelLayout().vocab, .tensorParallel)
    }
}
