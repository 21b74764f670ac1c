import XCTest
import Foundation
@testable import Checkpoints
import Model

/// `--megatron-arg key=value`: user-given args win over the saved ones and fill in missing ones.
final class ArgOverrideTests: XCTestCase {
    func testOverridesFillMissingArgsAndWin() throws {
        let ds = try Fixtures.dir("deepspeed-tp2-pp2")
        // DeepSpeed's args record no real vocabulary size: kept padded, with a reported problem
        let plain = try CheckpointLoader.loadReport(ds)
        XCTAssertEqual(plain.checkpoint.config.vocabSize, 1024)
        XCTAssertTrue(plain.problems.contains { $0.contains("vocabulary kept padded") }, "\(plain.problems)")
        // filled in by an override
        let o = try MegatronArgs.parseOverrides(["orig_vocab_size=1000", "openai_gelu=false", "bias_gelu_fusion=false"])
        let over = try CheckpointLoader.loadReport(ds, options: LoadOptions(argOverrides: o))
        XCTAssertEqual(over.checkpoint.config.vocabSize, 1000)
        // and winning over a saved arg (openai_gelu True in the file -> exact GeLU)
        XCTAssertEqual(plain.checkpoint.config.activation, .geluTanh)
        XCTAssertEqual(over.checkpoint.config.activation, .gelu)
    }

    func testMalformedOverrideIsAnError() {
        XCTAssertThrowsError(try MegatronArgs.parseOverrides(["ffn_hidden_size"])) { e in XCTAssertTrue("\(e)".contains("key=value"), "\(e)") }
        XCTAssertEqual(try MegatronArgs.parseOverrides(["a=3", "b=1e-5", "c=True", "d=rope"]).count, 4)
    }
}
