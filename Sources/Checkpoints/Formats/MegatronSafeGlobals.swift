// MegatronSafeGlobals: the classes megatron-core itself declares safe to unpickle in its checkpoints
// (`megatron/core/safe_globals.py`, `SAFE_GLOBALS`), admitted by name and decoded as inert data.
//
// Owns: the exact list (each under the module paths CPython/numpy pickle it by) and the decoding of
// each instance, done on the finished pickle tree (after BUILD), never by calling anything:
//   * enum members (signal.Signals, ModelType, AttnBackend, CudaGraphScope, RerunDiagnostic,
//     RerunMode, RerunState) -> `.enumMember` (class, member name from the table below, value);
//   * pathlib.PosixPath -> `.string` (the path); io.BytesIO -> `.bytes` (its buffer);
//   * megatron-core OptimizerConfig (a dataclass) -> `.dict` of its fields, className kept;
//   * numpy arrays (`_reconstruct` + BUILD) -> `.object` "numpy.ndarray" with dtype, shape, data bytes;
//   * torch Generator -> `.object` "torch.Generator" holding its state unread (opaque);
//   * argparse.Namespace, types.SimpleNamespace, numpy dtype: as before (objects with a state).
// A module of the list that was forbidden before (signal, pathlib, io/_io, torch._C) admits exactly
// these names: `signal.signal`, `pathlib.Path`, `io.open`, `torch._C._jit_*` ... are still refused
// (GlobalPolicy.check). Does not own: the VM or the rest of the policy (Pickle.swift).

enum MegatronSafeGlobals {
    enum Kind { case enumeration([String: String]), path, bytesIO, dataclass, ndarray, generator, plain }

    /// Full pickled name -> how it is decoded.
    static let names: [String: Kind] = {
        var m: [String: Kind] = [
            "types.SimpleNamespace": .plain, "argparse.Namespace": .plain,
            "pathlib.PosixPath": .path, "pathlib._local.PosixPath": .path,
            "io.BytesIO": .bytesIO, "_io.BytesIO": .bytesIO,
            "numpy.core.multiarray._reconstruct": .ndarray, "numpy._core.multiarray._reconstruct": .ndarray,
            "numpy.ndarray": .plain, "numpy.dtype": .plain, "numpy.dtypes.UInt32DType": .plain,
            "torch._C.Generator": .generator, "torch.Generator": .generator,
            "megatron.core.optimizer.optimizer_config.OptimizerConfig": .dataclass,
            "megatron.core.optimizer.OptimizerConfig": .dataclass,
            "signal.Signals": .enumeration(table(signals)),
            "megatron.core.enums.ModelType": .enumeration(table([(1, "encoder_or_decoder"), (2, "encoder_and_decoder"),
                                                                 (3, "retro_encoder"), (4, "retro_decoder")])),
            "megatron.core.transformer.enums.AttnBackend": .enumeration(table([(1, "flash"), (2, "fused"), (3, "unfused"), (4, "local"), (5, "auto")])),
            "megatron.core.transformer.enums.CudaGraphScope": .enumeration(table([(1, "full_iteration"), (2, "attn"), (3, "mlp"), (4, "moe"),
                (5, "moe_router"), (6, "moe_preprocess"), (7, "mamba"), (8, "full_iteration_inference")])),
            "megatron.core.rerun_state_machine.RerunState": .enumeration(table([(0, "NOT_RUNNING_YET"), (1, "INITIAL_RUN"), (2, "RERUNNING_IN_PLACE"),
                (3, "WILL_RERUN_FROM_CHECKPOINT"), (4, "RERUNNING_FROM_CHECKPOINT"), (5, "RERUNNING_AGAIN_FROM_CHECKPOINT")])),
        ]
        // String-valued enums: the member name is the value upper-cased.
        for (cls, values) in [("RerunDiagnostic", ["correct_result", "transient_error", "persistent_error"]),
                              ("RerunMode", ["disabled", "validate_results", "report_determinism_stats"])] {
            var t: [String: String] = [:]
            for v in values { t[v] = v.uppercased() }
            m["megatron.core.rerun_state_machine." + cls] = .enumeration(t)
        }
        return m
    }()

    /// Names admitted inside modules that are otherwise forbidden (GlobalPolicy.forbiddenModules).
    static func admits(_ full: String) -> Bool { names[full] != nil }

    /// Linux signal numbers (Megatron trains on Linux; `signal.Signals` pickles by number).
    static let signals: [(Int, String)] = [
        (1, "SIGHUP"), (2, "SIGINT"), (3, "SIGQUIT"), (4, "SIGILL"), (5, "SIGTRAP"), (6, "SIGABRT"), (7, "SIGBUS"),
        (8, "SIGFPE"), (9, "SIGKILL"), (10, "SIGUSR1"), (11, "SIGSEGV"), (12, "SIGUSR2"), (13, "SIGPIPE"), (14, "SIGALRM"),
        (15, "SIGTERM"), (16, "SIGSTKFLT"), (17, "SIGCHLD"), (18, "SIGCONT"), (19, "SIGSTOP"), (20, "SIGTSTP"), (21, "SIGTTIN"),
        (22, "SIGTTOU"), (23, "SIGURG"), (24, "SIGXCPU"), (25, "SIGXFSZ"), (26, "SIGVTALRM"), (27, "SIGPROF"), (28, "SIGWINCH"),
        (29, "SIGIO"), (30, "SIGPWR"), (31, "SIGSYS"), (34, "SIGRTMIN"), (64, "SIGRTMAX"),
    ]

    /// Member names keyed by value (an int's decimal digits, a string itself).
    static func table(_ xs: [(Int, String)]) -> [String: String] {
        var t: [String: String] = [:]
        for (v, n) in xs { t[String(v)] = n }
        return t
    }

    /// The inert value of a finished instance of a listed class, or nil when `cls` is not listed
    /// (the caller keeps its generic object).
    static func decode(_ cls: String, args: [PickleValue], state: PickleValue?) -> PickleValue? {
        guard let kind = names[cls] else { return nil }
        switch kind {
        case .plain: return nil
        case .enumeration(let t):
            // Enum.__reduce_ex__: (cls, (value,)).
            let v = args.first ?? .none
            let key: String
            switch v { case .int(let i): key = String(i); case .string(let s): key = s; default: key = "\(v.readable)" }
            let short = String(cls.split(separator: ".").last ?? "")
            return .enumMember(PickleEnumMember(className: cls, name: t[key] ?? "\(short)(\(v.readable))", value: v))
        case .path:
            // PurePath.__reduce__: (cls, parts) -- "/" then the components, or one string.
            let parts = args.compactMap(\.stringValue)
            guard parts.count == args.count else { return nil }
            if parts.first == "/" { return .string("/" + parts.dropFirst().joined(separator: "/")) }
            return .string(parts.joined(separator: "/"))
        case .bytesIO:
            // BytesIO.__getstate__: (buffer, position, __dict__); BytesIO(initial) also pickles as an argument.
            if case .tuple(let t)? = state, case .bytes(let b)? = t.first { return .bytes(b) }
            if case .bytes(let b)? = args.first { return .bytes(b) }
            return .bytes([])
        case .dataclass:
            var d = PickleDict(); d.className = cls
            var st = state
            if case .tuple(let t)? = state, t.count == 2 { st = t[0].isNone ? t[1] : t[0] }   // (dict, slots)
            if case .dict(let fields)? = st { d.items = fields.items }
            return .dict(d)
        case .ndarray:
            // _reconstruct(ndarray, (0,), b'b') then BUILD (version, shape, dtype, is_fortran, raw).
            guard case .tuple(let t)? = state, t.count >= 5 else { return nil }
            var dtype = "?"
            if case .object(let o) = t[2], let s = o.args.first?.stringValue { dtype = s }
            var raw: PickleValue = .opaque("array data")
            if case .bytes = t[4] { raw = t[4] }
            var d = PickleDict(); d.className = "numpy.ndarray"
            d.items = [(.string("dtype"), .string(dtype)), (.string("shape"), t[1]), (.string("data"), raw)]
            return .object(PickleObject(className: "numpy.ndarray", args: [], state: .dict(d)))
        case .generator:
            // Generator(device) then BUILD (state tensor, ...); a torch.device argument is kept as its string.
            let device = args.map { a -> PickleValue in
                if case .object(let d) = a, d.className == "torch.device", let s = d.args.first { return s }
                return a
            }
            return .object(PickleObject(className: "torch.Generator", args: device, state: state.map { _ in .opaque("generator state") }))
        }
    }
}

/// A member of an enum named by `MegatronSafeGlobals` (e.g. signal.Signals SIGTERM = 15).
public struct PickleEnumMember: Sendable {
    public let className: String
    public let name: String
    public let value: PickleValue
}
