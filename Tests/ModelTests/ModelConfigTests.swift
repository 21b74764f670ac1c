import Foundation
import XCTest
@testable import Model

final class ModelConfigTests: XCTestCase {
    func testUnknownFieldIsRejected() {
        let json = #"{"vocab_size": 10, "hidden_size": 8, "num_layers": 1, "num_heads": 2, "max_positions": 16, "hiden": 3}"#
        XCTAssertThrowsError(try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8))) { e in
            XCTAssertEqual(e as? ModelError, .unknownConfigField("hiden"))
        }
    }

    func testInconsistentGroupsAreRejected() {
        let json = #"{"vocab_size": 10, "hidden_size": 12, "num_layers": 1, "num_heads": 3, "num_kv_heads": 2, "max_positions": 16}"#
        XCTAssertThrowsError(try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8)))
    }

    func testRoundTripAndDefaults() throws {
        let c = ModelConfig(vocabSize: 10, hiddenSize: 8, numLayers: 2, numHeads: 2, maxPositions: 16)
        XCTAssertEqual(c.ffnSize, 32); XCTAssertEqual(c.headDim, 4)
        let back = try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(c))
        XCTAssertEqual(back, c)
    }
}
