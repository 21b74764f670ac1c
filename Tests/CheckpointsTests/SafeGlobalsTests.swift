// megatron-core's safe globals (megatron/core/safe_globals.py): each decoded as inert data from what
// CPython really pickles (Tests/Fixtures/pickles, written by scripts/fixtures_pickles.py), and every
// other name of the same modules (signal.signal, pathlib.Path.unlink, io.open, ...) still refused.

import Foundation
import XCTest
import TestSupport
@testable import Checkpoints

final class SafeGlobalsTests: XCTestCase {
    static let dir = Paths.fixture("pickles")

    func checkArgs(_ v: PickleValue, _ what: String) throws {
        guard case .enumMember(let sig)? = v["exit_signal"] else { return XCTFail("\(what): exit_signal is \(String(describing: v["exit_signal"]))") }
        XCTAssertEqual(sig.className, "signal.Signals"); XCTAssertEqual(sig.name, "SIGTERM"); XCTAssertEqual(sig.value.intValue, 15)
        XCTAssertEqual(v["save"]?.stringValue, "/ckpt/run1", what)
        XCTAssertEqual(v["rel"]?.stringValue, "runs/a", what)
        guard case .bytes(let b)? = v["buf"] else { return XCTFail("\(what): BytesIO is not bytes") }
        XCTAssertEqual(b, Array("abc".utf8))
        let members: [(String, String, String)] = [("model_type", "megatron.core.enums.ModelType", "encoder_or_decoder"),
            ("rerun_mode", "megatron.core.rerun_state_machine.RerunMode", "DISABLED"),
            ("rerun_state", "megatron.core.rerun_state_machine.RerunState", "INITIAL_RUN"),
            ("attention_backend", "megatron.core.transformer.enums.AttnBackend", "auto")]
        for (k, cls, name) in members {
            guard case .enumMember(let e)? = v[k] else { XCTFail("\(what): \(k) is not an enum member"); continue }
            XCTAssertEqual(e.className, cls); XCTAssertEqual(e.name, name)
        }
        XCTAssertEqual(v["rerun_mode"]?.readable, "DISABLED")
        guard case .dict(let opt)? = v["opt"] else { return XCTFail("\(what): OptimizerConfig is not a dict") }
        XCTAssertEqual(opt.className, "megatron.core.optimizer.optimizer_config.OptimizerConfig")
        XCTAssertEqual(opt["optimizer"]?.stringValue, "adam"); XCTAssertEqual(opt["lr"]?.doubleValue, 3e-4)
        XCTAssertEqual(opt["use_distributed_optimizer"]?.boolValue, true)
        guard case .tuple(let rng)? = v["rng"], rng.count == 5, case .object(let arr) = rng[1] else { return XCTFail("\(what): numpy RNG state") }
        XCTAssertEqual(rng[0].stringValue, "MT19937")
        XCTAssertEqual(arr.className, "numpy.ndarray")
        XCTAssertEqual(arr.attribute("dtype")?.stringValue, "u4")
        guard case .bytes(let raw)? = arr.attribute("data") else { return XCTFail("\(what): array data") }
        XCTAssertEqual(raw.count, 624 * 4)
        XCTAssertEqual(v["signals"]?.readable, "[SIGUSR2, SIGINT]")
        XCTAssertEqual(v["cuda_graph_scope"]?.readable, "[attn]")
        let fields = Dictionary(v.fields, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(fields["exit_signal"], "SIGTERM")
        XCTAssertEqual(fields["save"], "/ckpt/run1")
        XCTAssertEqual(fields["hidden_size"], "64")
        XCTAssertEqual(fields["rng"], "('MT19937', ndarray(dtype u4, shape (624,)), 624, 0, 0.0)")
    }

    func testSafeGlobalsDecodeAsInertData() throws {
        for p in [2, 4] {
            let url = Self.dir.appendingPathComponent("megatron_safe_p\(p).pkl")
            try checkArgs(try Pickle.load(Array(try Data(contentsOf: url)), file: url.path), "protocol \(p)")
        }
        let root = try TorchFile.load(Self.dir.appendingPathComponent("megatron_safe.pt"))
        try checkArgs(try XCTUnwrap(root["args"]), "torch.save")
        guard case .list(let rng)? = root["rng_state"], case .object(let g)? = rng.first?["generator"] else { return XCTFail("generator") }
        XCTAssertEqual(g.className, "torch.Generator")
        XCTAssertEqual(PickleValue.object(g).readable, "Generator(cpu)")
        guard case .bytes(let te)? = root["extra"]?["decoder.layers.0.self_attention.core_attention._extra_state"] else { return XCTFail("BytesIO extra state") }
        XCTAssertEqual(te, Array("te".utf8))
    }

    func testOtherNamesOfListedModulesAreRefused() {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("turing-pwned-\(UUID().uuidString)").path
        func global(_ m: String, _ n: String, _ arg: String = "x") -> [UInt8] { Array("c\(m)\n\(n)\n(S'\(arg)'\ntR.".utf8) }
        func stackGlobal(_ m: String, _ n: String) -> [UInt8] {
            [0x80, 0x04, 0x8C, UInt8(m.utf8.count)] + Array(m.utf8) + [0x8C, UInt8(n.utf8.count)] + Array(n.utf8) + [0x93, 0x29, 0x52, 0x2E]
        }
        let cases: [(String, [UInt8])] = [
            ("signal.signal", global("signal", "signal")), ("signal.Handlers", global("signal", "Handlers")),
            ("signal.pthread_kill", global("signal", "pthread_kill")), ("signal.Signals.__new__", global("signal", "Signals.__new__")),
            ("pathlib.Path.unlink", global("pathlib", "Path.unlink", marker)), ("pathlib.Path", global("pathlib", "Path", marker)),
            ("pathlib.PosixPath.unlink", global("pathlib", "PosixPath.unlink", marker)), ("pathlib.PosixPath.write_text", global("pathlib", "PosixPath.write_text", marker)),
            ("pathlib.WindowsPath", global("pathlib", "WindowsPath")),
            ("io.open", global("io", "open", marker)), ("_io.open", global("_io", "open", marker)), ("io.FileIO", global("io", "FileIO", marker)),
            ("_io.BytesIO.write", global("_io", "BytesIO.write")), ("io.BytesIO.__init__", global("io", "BytesIO.__init__")),
            ("torch._C._jit_pass_inline", global("torch._C", "_jit_pass_inline")), ("torch._C.Generator.manual_seed", global("torch._C", "Generator.manual_seed")),
            ("megatron.core.enums.ModelType.__call__", global("megatron.core.enums", "ModelType.__call__")),
            ("signal.signal", stackGlobal("signal", "signal")), ("io.open", stackGlobal("io", "open")),
            ("pathlib.Path.unlink", stackGlobal("pathlib", "Path.unlink")),
        ]
        for (name, bytes) in cases {
            XCTAssertThrowsError(try Pickle.load(bytes, file: "evil.pkl"), name) { e in
                XCTAssertEqual(e as? CheckpointError, .forbiddenGlobal(file: "evil.pkl", name))
                XCTAssertEqual("\(e)", "evil.pkl: refusing pickle global '\(name)': it could execute code (nothing was executed)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
    }

    func testUnknownSignalNumberAndEnumValueStayReadable() throws {
        let v = try Pickle.load(Array("csignal\nSignals\n(I99\ntR.".utf8), file: "x.pkl")
        guard case .enumMember(let e) = v else { return XCTFail("\(v)") }
        XCTAssertEqual(e.name, "Signals(99)"); XCTAssertEqual(e.value.intValue, 99)
    }
}
