// Pickle: a protocol 0-5 unpickler that never executes anything.
//
// Owns: the stack machine (opcodes of protocols 0-5 except EXT*/out-of-band buffers), the memo
// with reference semantics (containers are filled after being memoised), and the GLOBAL policy:
//   * allowed and interpreted: collections.OrderedDict, torch._utils._rebuild_tensor_v2/_v3,
//     _rebuild_parameter(_with_state), torch._tensor._rebuild_from_type_v2, torch.*Storage,
//     torch dtypes, argparse.Namespace, types.SimpleNamespace, _codecs.encode, builtins set/frozenset/...
//   * forbidden (CheckpointError.forbiddenGlobal): os, posix, subprocess, sys, shutil, importlib,
//     builtins.eval/exec/getattr/__import__/open (any builtin not on a small safe list), and more;
//   * allowed as data (decoded to inert objects, never called): PyTorch Distributed Checkpoint's
//     `.metadata` classes (`dcpDataClasses`: Metadata, TensorStorageMetadata, ChunkStorageMetadata,
//     MetadataIndex, _StorageInfo, ...), torch.Size, and torch.serialization._get_layout (how
//     torch.strided pickles; the rest of torch.serialization stays forbidden);
//   * what megatron-core lists as safe (`MegatronSafeGlobals`: signal.Signals, pathlib.PosixPath,
//     io.BytesIO, its enums and OptimizerConfig, numpy arrays, torch Generator), admitted by exact
//     name even inside forbidden modules (signal, pathlib, io, torch._C: any other name there is
//     refused) and decoded as inert data by the Converter;
//   * anything else (other megatron/deepspeed enums, loss scalers, ...) becomes an opaque placeholder.
// Does not own: zip access or storage bytes (TorchFile supplies a `StorageSource`).

import Foundation
import TensorCore

public enum Pickle {
    /// The deepest container nesting a pickle may have (real checkpoints nest fewer than 12 levels;
    /// deeper input is refused rather than allowed to exhaust the stack).
    public static let maxDepth = 200

    /// Decode `bytes`. `file` names the source in errors; `source` resolves tensor storages.
    public static func load(_ bytes: [UInt8], file: String, source: StorageSource? = nil) throws -> PickleValue {
        try decode(Data(bytes), from: 0, file: file, source: source).value
    }

    public static func load(data: Data, file: String, source: StorageSource? = nil) throws -> PickleValue {
        try decode(data, from: 0, file: file, source: source).value
    }

    /// Decode one pickle starting at `from`; also returns where it ended (after STOP) and the dtype of
    /// every storage root key it referenced (the legacy stream needs them to size its data records).
    static func decode(_ bytes: Data, from: Int, file: String, source: StorageSource?) throws
        -> (value: PickleValue, end: Int, storages: [String: StorageDType]) {
        var vm = PickleVM(bytes: bytes, file: file, source: source)
        vm.pos = from
        let item = try vm.run()
        var conv = Converter()
        do { return (try conv.value(item), vm.pos, vm.storages) }
        catch is Converter.TooDeep { throw CheckpointError.badPickle(file: file, "containers nest deeper than \(maxDepth) levels") }
    }
}

// MARK: - Global policy

enum GlobalPolicy {
    static let forbiddenModules: Set<String> = [
        "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "sys", "shutil", "importlib", "imp",
        "socket", "pty", "runpy", "code", "codeop", "ctypes", "pickle", "_pickle", "cPickle", "marshal",
        "webbrowser", "commands", "platform", "multiprocessing", "tempfile", "io", "_io", "pathlib", "glob",
        "signal", "threading", "_thread", "asyncio", "operator", "_operator", "pdb", "bdb", "timeit", "trace",
        "profile", "cProfile", "pydoc", "zipimport", "site", "sysconfig", "venv", "ensurepip", "pip",
        "setuptools", "distutils", "urllib", "http", "ftplib", "smtplib", "telnetlib", "requests",
        "_posixsubprocess", "resource", "fcntl", "mmap", "gc", "inspect", "ctypes.util", "dill", "joblib",
        "torch.hub", "torch.jit", "torch.ops", "torch._ops", "torch.serialization", "torch.package",
        "torch.utils.cpp_extension", "numpy.testing", "numpy.f2py", "numpy.distutils", "torch._C",
    ]
    static let safeBuiltins: Set<String> = [
        "set", "frozenset", "bytearray", "bytes", "slice", "complex", "list", "dict", "tuple", "int",
        "float", "str", "bool", "object", "range",
    ]
    static let forbiddenNames: Set<String> = [
        "eval", "exec", "execfile", "compile", "open", "__import__", "getattr", "setattr", "delattr",
        "globals", "locals", "vars", "input", "breakpoint", "apply", "system", "popen", "load", "loads",
        "_load_from_bytes", "runstring",
    ]

    /// PyTorch Distributed Checkpoint (torch 2.x) dataclasses and enums found in `.metadata` files.
    static let dcpDataClasses: Set<String> = [
        "torch.distributed.checkpoint.metadata.Metadata", "torch.distributed.checkpoint.metadata.TensorStorageMetadata",
        "torch.distributed.checkpoint.metadata.BytesStorageMetadata", "torch.distributed.checkpoint.metadata.ChunkStorageMetadata",
        "torch.distributed.checkpoint.metadata.TensorProperties", "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING",
        "torch.distributed.checkpoint.metadata.MetadataIndex", "torch.distributed.checkpoint.metadata.StorageMeta",
        "torch.distributed.checkpoint.filesystem._StorageInfo", "torch.distributed.checkpoint.filesystem._StoragePrefix",
        "torch.distributed.checkpoint.planner.SavePlan", "torch.distributed.checkpoint.planner.WriteItem",
        "torch.distributed.checkpoint.planner.WriteItemType", "torch.distributed.checkpoint.planner.TensorWriteData",
        "torch.Size", "torch.serialization._get_layout",
    ]

    /// Throws for dangerous globals; returns normally for anything the VM may represent.
    static func check(_ module: String, _ name: String, file: String) throws {
        let full = module + "." + name
        if dcpDataClasses.contains(full) || MegatronSafeGlobals.admits(full) { return }
        let top = String(module.split(separator: ".").first ?? "")
        var prefixes: [String] = []
        var acc = ""
        for part in module.split(separator: ".") { acc = acc.isEmpty ? String(part) : acc + "." + part; prefixes.append(acc) }
        if prefixes.contains(where: forbiddenModules.contains) { throw CheckpointError.forbiddenGlobal(file: file, full) }
        if top == "builtins" || top == "__builtin__" || top == "__builtins__" {
            if !safeBuiltins.contains(name) { throw CheckpointError.forbiddenGlobal(file: file, full) }
        }
        if top == "types" && name != "SimpleNamespace" { throw CheckpointError.forbiddenGlobal(file: file, full) }
        // Dotted names (protocol 4 qualnames such as `Path.unlink`) are judged part by part.
        for part in name.split(separator: ".") {
            if forbiddenNames.contains(String(part)) { throw CheckpointError.forbiddenGlobal(file: file, full) }
            if part.hasPrefix("__") && part != "__builtin__" { throw CheckpointError.forbiddenGlobal(file: file, full) }
        }
    }

    static func storageDType(_ name: String) -> StorageDType? {
        switch name {
        case "FloatStorage": return .float32
        case "DoubleStorage": return .float64
        case "HalfStorage": return .float16
        case "BFloat16Storage": return .bfloat16
        case "LongStorage": return .int64
        case "IntStorage": return .int32
        case "ShortStorage": return .int16
        case "CharStorage": return .int8
        case "ByteStorage": return .uint8
        case "BoolStorage": return .bool
        default: return nil
        }
    }

    static func torchDType(_ name: String) -> StorageDType? {
        switch name {
        case "float32", "float": return .float32
        case "float64", "double": return .float64
        case "float16", "half": return .float16
        case "bfloat16": return .bfloat16
        case "int64", "long": return .int64
        case "int32", "int": return .int32
        case "int16", "short": return .int16
        case "int8": return .int8
        case "uint8": return .uint8
        case "bool": return .bool
        default: return nil
        }
    }
}

// MARK: - VM items (reference semantics for mutable containers)

/// Every container the VM builds (tuples too) is a Box, so no Item nests another Item directly:
/// `depth` is the nesting the Box had when last changed (a bound checked as items are added), and
/// `deinit` takes its children apart iteratively, so freeing a hostile deep structure (a chain of
/// 50,000 lists) cannot overflow the stack. The Converter checks the true depth.
final class Box {
    enum Kind { case list([Item]), dict([(Item, Item)], attrs: [(String, Item)], cls: String?), set([Item]), object(cls: String, args: [Item], state: Item?), tuple([Item]) }
    var kind: Kind
    var depth: Int
    init(_ k: Kind, depth: Int = 1) { kind = k; self.depth = depth }

    var children: [Item] {
        switch kind {
        case .list(let xs), .set(let xs), .tuple(let xs): return xs
        case .dict(let items, let attrs, _): return items.flatMap { [$0.0, $0.1] } + attrs.map(\.1)
        case .object(_, let args, let state): return args + (state.map { [$0] } ?? [])
        }
    }

    deinit {
        var work = children
        kind = .list([])
        while !work.isEmpty {
            // bind straight from removeLast() so no other copy holds the box: a box only we hold is
            // emptied here (its children join the work list), so its own deinit has nothing to recurse into
            guard case .box(var b) = work.removeLast() else { continue }
            if isKnownUniquelyReferenced(&b) { work.append(contentsOf: b.children); b.kind = .list([]) }
        }
    }
}

enum Item {
    case value(PickleValue)   // immutable scalar or finished value
    case box(Box)
    case global(String, String)
    case mark

    static func tuple(_ xs: [Item]) -> Item { .box(Box(.tuple(xs), depth: 1 + (xs.map(\.depth).max() ?? 0))) }
    /// The items of a tuple, else nil.
    var tupleItems: [Item]? { if case .box(let b) = self, case .tuple(let xs) = b.kind { return xs }; return nil }
    var depth: Int { if case .box(let b) = self { return b.depth }; return 0 }
}

struct PickleVM {
    /// Zero-based bytes (a slice is re-based on init).
    let b: Data
    let file: String
    let source: StorageSource?
    var pos = 0
    var stack: [Item] = []
    var marks: [Int] = []
    var memo: [Int: Item] = [:]
    var storages: [String: StorageDType] = [:]
    /// Globals already through `GlobalPolicy.check` ("module\nname"): files name the same few classes
    /// hundreds of times.
    var allowed: Set<String> = []

    init(bytes: Data, file: String, source: StorageSource?) { b = bytes.startIndex == 0 ? bytes : Data(bytes); self.file = file; self.source = source }

    func fail(_ m: String) -> CheckpointError { .badPickle(file: file, m + " (at byte \(pos))") }

    mutating func byte() throws -> UInt8 {
        guard pos < b.count else { throw CheckpointError.truncated(file: file, "pickle ends at byte \(pos) before STOP") }
        defer { pos += 1 }; return b[pos]
    }
    mutating func take(_ n: Int) throws -> Data {
        guard n >= 0, n <= b.count - pos else { throw CheckpointError.truncated(file: file, "pickle needs \(n) bytes at \(pos), has \(b.count - pos)") }
        defer { pos += n }; return b[pos..<(pos + n)]
    }
    /// An 8-byte length, refused when it cannot be a length.
    mutating func len8() throws -> Int {
        let v = try uint(8)
        guard v <= UInt64(b.count) else { throw CheckpointError.truncated(file: file, "pickle length \(v) at \(pos) exceeds the data") }
        return Int(v)
    }
    mutating func uint(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, x) in try take(n).enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
        return v
    }
    mutating func line() throws -> String {
        guard let nl = b[pos...].firstIndex(of: 0x0A) else { throw CheckpointError.truncated(file: file, "pickle text line at \(pos) has no newline") }
        defer { pos = nl + 1 }
        return String(decoding: b[pos..<nl], as: UTF8.self)
    }
    /// `GlobalPolicy.check`, once per distinct global.
    mutating func allow(_ m: String, _ n: String) throws {
        let key = m + "\n" + n
        if allowed.contains(key) { return }
        try GlobalPolicy.check(m, n, file: file)
        allowed.insert(key)
    }
    mutating func pop() throws -> Item {
        guard let x = stack.popLast() else { throw fail("stack underflow") }
        if case .mark = x { throw fail("unexpected MARK on stack") }
        return x
    }
    mutating func popMark() throws -> [Item] {
        guard let m = marks.popLast() else { throw fail("no MARK") }
        guard m < stack.count else { throw fail("MARK beyond stack") }
        // stack[m] is the MARK item itself
        let items = Array(stack[(m + 1)...]); stack.removeSubrange(m...)
        return items
    }
    mutating func top() throws -> Item { guard let x = stack.last else { throw fail("stack underflow") }; return x }

    static func signedLE(_ bytes: Data) -> PickleValue {
        if bytes.isEmpty { return .int(0) }
        if bytes.count <= 8 {
            var v: UInt64 = 0
            for (i, x) in bytes.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
            let bits = 8 * bytes.count
            if bits < 64 && bytes.last! & 0x80 != 0 { v |= ~UInt64(0) << UInt64(bits) }
            return .int(Int(Int64(bitPattern: v)))
        }
        return .opaque("long(\(bytes.count) bytes)")
    }

    mutating func run() throws -> Item {
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try take(8)                                  // FRAME
            case 0x2E: return try pop()                                 // STOP '.'
            case 0x28: marks.append(stack.count); stack.append(.mark)   // MARK '('
            case 0x30: _ = try pop()                                    // POP '0'
            case 0x31: _ = try popMark()                                // POP_MARK '1'
            case 0x32: stack.append(try top())                          // DUP '2'
            // Integers
            case 0x4A: stack.append(.value(.int(Int(Int32(bitPattern: UInt32(try uint(4)))))))  // BININT
            case 0x4B: stack.append(.value(.int(Int(try byte()))))      // BININT1
            case 0x4D: stack.append(.value(.int(Int(try uint(2)))))     // BININT2
            case 0x8A: let n = Int(try byte()); stack.append(.value(Self.signedLE(try take(n))))      // LONG1
            case 0x8B:                                                   // LONG4
                let n = Int(Int32(bitPattern: UInt32(try uint(4))))
                guard n >= 0 else { throw fail("negative LONG4 length") }
                stack.append(.value(Self.signedLE(try take(n))))
            case 0x49:                                                   // INT 'I'
                let s = try line()
                if s == "01" { stack.append(.value(.bool(true))) } else if s == "00" { stack.append(.value(.bool(false))) }
                else if let v = Int(s) { stack.append(.value(.int(v))) } else { stack.append(.value(.opaque("int \(s)"))) }
            case 0x4C:                                                   // LONG 'L'
                var s = try line(); if s.hasSuffix("L") { s.removeLast() }
                stack.append(.value(Int(s).map { .int($0) } ?? .opaque("long \(s)")))
            // Floats
            case 0x47: stack.append(.value(.float(Double(bitPattern: UInt64(bigEndian: (try uint(8)))))))  // BINFLOAT
            case 0x46:                                                   // FLOAT 'F'
                let s = try line(); guard let v = Double(s) else { throw fail("bad FLOAT \(s)") }
                stack.append(.value(.float(v)))
            // Strings and bytes
            case 0x58: let n = Int(try uint(4)); stack.append(.value(.string(String(decoding: try take(n), as: UTF8.self))))  // BINUNICODE
            case 0x8C: let n = Int(try byte()); stack.append(.value(.string(String(decoding: try take(n), as: UTF8.self)))) // SHORT_BINUNICODE
            case 0x8D: let n = try len8(); stack.append(.value(.string(String(decoding: try take(n), as: UTF8.self)))) // BINUNICODE8
            case 0x56: stack.append(.value(.string(try line())))          // UNICODE 'V' (raw-unicode-escape; ASCII assumed)
            case 0x54: let n = Int(Int32(bitPattern: UInt32(try uint(4)))); stack.append(.value(.string(String(decoding: try take(n), as: UTF8.self)))) // BINSTRING
            case 0x55: let n = Int(try byte()); stack.append(.value(.string(String(decoding: try take(n), as: UTF8.self))))    // SHORT_BINSTRING
            case 0x53:                                                   // STRING 'S' (quoted repr)
                var s = try line()
                if s.count >= 2, let f = s.first, f == "'" || f == "\"", s.last == f { s = String(s.dropFirst().dropLast()) }
                stack.append(.value(.string(s)))
            case 0x42: let n = Int(try uint(4)); stack.append(.value(.bytes(Array(try take(n)))))   // BINBYTES
            case 0x43: let n = Int(try byte()); stack.append(.value(.bytes(Array(try take(n)))))    // SHORT_BINBYTES
            case 0x8E: let n = try len8(); stack.append(.value(.bytes(Array(try take(n)))))   // BINBYTES8
            case 0x96: let n = try len8(); stack.append(.value(.bytes(Array(try take(n)))))   // BYTEARRAY8
            // Constants
            case 0x4E: stack.append(.value(.none))
            case 0x88: stack.append(.value(.bool(true)))
            case 0x89: stack.append(.value(.bool(false)))
            // Tuples
            case 0x29: stack.append(.tuple([]))
            case 0x74: stack.append(try nested(.tuple(try popMark())))
            case 0x85: let a = try pop(); stack.append(try nested(.tuple([a])))
            case 0x86: let b2 = try pop(), a = try pop(); stack.append(try nested(.tuple([a, b2])))
            case 0x87: let c = try pop(), b2 = try pop(), a = try pop(); stack.append(try nested(.tuple([a, b2, c])))
            // Lists
            case 0x5D: stack.append(.box(Box(.list([]))))
            case 0x6C: let xs = try popMark(); stack.append(try nested(.box(Box(.list(xs), depth: 1 + (xs.map(\.depth).max() ?? 0)))))   // LIST 'l'
            case 0x61: let v = try pop(); try append(to: try top(), [v])    // APPEND
            case 0x65: let vs = try popMark(); try append(to: try top(), vs) // APPENDS
            // Dicts
            case 0x7D: stack.append(.box(Box(.dict([], attrs: [], cls: nil))))
            case 0x64:                                                   // DICT 'd'
                let xs = try popMark(); guard xs.count % 2 == 0 else { throw fail("DICT with odd item count") }
                stack.append(try nested(.box(Box(.dict(stride(from: 0, to: xs.count, by: 2).map { (xs[$0], xs[$0 + 1]) }, attrs: [], cls: nil),
                                                 depth: 1 + (xs.map(\.depth).max() ?? 0)))))
            case 0x73: let v = try pop(), k = try pop(); try setItems(try top(), [k, v])  // SETITEM
            case 0x75: let xs = try popMark(); try setItems(try top(), xs)               // SETITEMS
            // Sets
            case 0x8F: stack.append(.box(Box(.set([]))))
            case 0x90:                                                   // ADDITEMS
                let xs = try popMark()
                guard case .box(let bx) = try top(), case .set(var s) = bx.kind else { throw fail("ADDITEMS on non-set") }
                try deepen(bx, xs); s.append(contentsOf: xs); bx.kind = .set(s)
            case 0x91: let xs = try popMark(); stack.append(try nested(.box(Box(.set(xs), depth: 1 + (xs.map(\.depth).max() ?? 0)))))     // FROZENSET
            // Globals and object construction
            case 0x63:                                                   // GLOBAL 'c'
                let m = try line(), n = try line()
                try allow(m, n); stack.append(.global(m, n))
            case 0x93:                                                   // STACK_GLOBAL
                let n = try pop(), m = try pop()
                guard case .value(.string(let ns)) = n, case .value(.string(let ms)) = m else { throw fail("STACK_GLOBAL needs two strings") }
                try allow(ms, ns); stack.append(.global(ms, ns))
            case 0x69:                                                   // INST 'i'
                let m = try line(), n = try line(); try allow(m, n)
                let args = try popMark(); stack.append(try nested(try call(.global(m, n), args)))
            case 0x6F:                                                   // OBJ 'o'
                var xs = try popMark(); guard !xs.isEmpty else { throw fail("OBJ without class") }
                let cls = xs.removeFirst(); stack.append(try nested(try call(cls, xs)))
            case 0x52:                                                   // REDUCE
                let args = try pop(), f = try pop()
                guard let a = args.tupleItems else { throw fail("REDUCE arguments are not a tuple") }
                stack.append(try nested(try call(f, a)))
            case 0x81:                                                   // NEWOBJ
                let args = try pop(), cls = try pop()
                guard let a = args.tupleItems else { throw fail("NEWOBJ arguments are not a tuple") }
                stack.append(try nested(try call(cls, a)))
            case 0x92:                                                   // NEWOBJ_EX
                let kw = try pop(), args = try pop(), cls = try pop()
                guard let a = args.tupleItems else { throw fail("NEWOBJ_EX arguments are not a tuple") }
                stack.append(try nested(try call(cls, a + [kw])))
            case 0x62: let st = try pop(); try build(try top(), st)      // BUILD
            // Memo
            case 0x70: let s = try line(); guard let i = Int(s) else { throw fail("bad PUT") }; memo[i] = try top()
            case 0x71: memo[Int(try byte())] = try top()
            case 0x72: memo[Int(try uint(4))] = try top()
            case 0x94: memo[memo.count] = try top()
            case 0x67: let s = try line(); guard let i = Int(s), let v = memo[i] else { throw fail("bad GET \(s)") }; stack.append(v)
            case 0x68: let i = Int(try byte()); guard let v = memo[i] else { throw fail("BINGET of unknown memo \(i)") }; stack.append(v)
            case 0x6A: let i = Int(try uint(4)); guard let v = memo[i] else { throw fail("LONG_BINGET of unknown memo \(i)") }; stack.append(v)
            // Persistent ids
            case 0x51: stack.append(try persistent(try pop()))           // BINPERSID
            case 0x50: stack.append(try persistent(.value(.string(try line()))))  // PERSID
            default:
                throw fail(String(format: "unsupported opcode 0x%02x", op))
            }
        }
    }

    // MARK: nesting bound

    /// `x`, refused when nested deeper than `Pickle.maxDepth`.
    func nested(_ x: Item) throws -> Item {
        guard x.depth <= Pickle.maxDepth else { throw fail("containers nest deeper than \(Pickle.maxDepth) levels") }
        return x
    }

    /// Record that `xs` go inside `bx`; refused past `Pickle.maxDepth`.
    func deepen(_ bx: Box, _ xs: [Item]) throws {
        let d = 1 + (xs.map(\.depth).max() ?? 0)
        guard d <= Pickle.maxDepth else { throw fail("containers nest deeper than \(Pickle.maxDepth) levels") }
        bx.depth = max(bx.depth, d)
    }

    // MARK: container mutation

    mutating func append(to target: Item, _ vs: [Item]) throws {
        guard case .box(let bx) = target else { throw fail("APPEND on non-list") }
        try deepen(bx, vs)
        switch bx.kind {
        case .list(var l): l.append(contentsOf: vs); bx.kind = .list(l)
        case .set(var s): s.append(contentsOf: vs); bx.kind = .set(s)
        case .object(let c, let a, let s): // list subclass placeholder: keep items as an extra arg
            bx.kind = .object(cls: c, args: a + vs, state: s)
        default: throw fail("APPEND on non-list")
        }
    }

    mutating func setItems(_ target: Item, _ xs: [Item]) throws {
        guard xs.count % 2 == 0 else { throw fail("SETITEMS with odd item count") }
        guard case .box(let bx) = target else { throw fail("SETITEM on non-dict") }
        try deepen(bx, xs)
        switch bx.kind {
        case .dict(var items, let attrs, let cls):
            for i in stride(from: 0, to: xs.count, by: 2) { items.append((xs[i], xs[i + 1])) }
            bx.kind = .dict(items, attrs: attrs, cls: cls)
        case .object(let c, let a, let s):  // dict subclass placeholder (e.g. defaultdict)
            var pairs: [Item] = []
            for i in stride(from: 0, to: xs.count, by: 2) { pairs.append(.tuple([xs[i], xs[i + 1]])) }
            bx.kind = .object(cls: c, args: a + pairs, state: s)
        default: throw fail("SETITEM on non-dict")
        }
    }

    mutating func build(_ target: Item, _ state: Item) throws {
        guard case .box(let bx) = target else { return }  // BUILD on immutable values (tensors): ignore
        try deepen(bx, [state])
        switch bx.kind {
        case .dict(let items, var attrs, let cls):
            // OrderedDict state: {'_metadata': ...} sets attributes, never keys.
            var st = state
            if let t = state.tupleItems, t.count == 2 { st = t[0].isNoneItem ? t[1] : t[0] }
            if case .box(let sb) = st, case .dict(let sItems, _, _) = sb.kind {
                for (k, v) in sItems { if case .value(.string(let s)) = k { attrs.append((s, v)) } }
            }
            bx.kind = .dict(items, attrs: attrs, cls: cls)
        case .object(let c, let a, let old):
            if old != nil, case .box(let ob) = old!, case .dict(var oi, let oa, let oc) = ob.kind,
               case .box(let nb) = state, case .dict(let ni, _, _) = nb.kind {
                oi.append(contentsOf: ni); ob.kind = .dict(oi, attrs: oa, cls: oc)
            } else {
                bx.kind = .object(cls: c, args: a, state: state)
            }
        default: break
        }
    }

    // MARK: calls (interpretation only; nothing is executed)

    mutating func call(_ f: Item, _ args: [Item]) throws -> Item {
        guard case .global(let m, let n) = f else {
            return .box(Box(.object(cls: "<call>", args: [f] + args, state: nil), depth: 1 + (([f] + args).map(\.depth).max() ?? 0)))
        }
        let full = m + "." + n
        switch full {
        case "collections.OrderedDict", "builtins.dict", "__builtin__.dict":
            return .box(Box(.dict([], attrs: [], cls: full == "collections.OrderedDict" ? full : nil)))
        case "builtins.set", "__builtin__.set", "builtins.frozenset", "__builtin__.frozenset":
            if let first = args.first, case .box(let lb) = first, case .list(let l) = lb.kind { return .box(Box(.set(l), depth: lb.depth)) }
            return .box(Box(.set([])))
        case "builtins.list", "__builtin__.list":
            if let first = args.first, case .box(let lb) = first, case .list(let l) = lb.kind { return .box(Box(.list(l), depth: lb.depth)) }
            return .box(Box(.list([])))
        case "_codecs.encode":
            guard let first = args.first, case .value(.string(let s)) = first else { return .value(.bytes([])) }
            let enc = args.count > 1 ? (args[1].stringItem ?? "utf-8") : "utf-8"
            if enc.lowercased().replacingOccurrences(of: "-", with: "") == "latin1" {
                return .value(.bytes(s.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }))
            }
            return .value(.bytes(Array(s.utf8)))
        case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3":
            return try rebuildTensor(full, args)
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let d = args.first else { throw fail("\(full) without data") }
            return d
        case "torch._tensor._rebuild_from_type_v2", "torch.tensor._rebuild_from_type_v2":
            guard args.count >= 3, let inner = args[2].tupleItems else { throw fail("bad _rebuild_from_type_v2") }
            return try call(args[0], inner)
        default:
            if m == "torch" && GlobalPolicy.torchDType(n) != nil { return .value(.global(full)) }
            return .box(Box(.object(cls: full, args: args, state: nil), depth: 1 + (args.map(\.depth).max() ?? 0)))
        }
    }

    func intTuple(_ x: Item, _ what: String) throws -> [Int] {
        guard let t = x.tupleItems else {
            if case .value(.int(let i)) = x { return [i] }
            throw fail("\(what) is not a tuple")
        }
        return try t.map { guard case .value(.int(let i)) = $0 else { throw fail("\(what) holds a non-integer") }; return i }
    }

    mutating func rebuildTensor(_ fn: String, _ args: [Item]) throws -> Item {
        guard args.count >= 4, case .value(.storage(var st)) = args[0], case .value(.int(let off)) = args[1] else {
            throw fail("\(fn): expected (storage, offset, size, stride, ...)")
        }
        let size = try intTuple(args[2], "tensor size"), stride = try intTuple(args[3], "tensor stride")
        guard size.count == stride.count, size.allSatisfy({ $0 >= 0 }), stride.allSatisfy({ $0 >= 0 }), off >= 0 else {
            throw fail("\(fn): size \(size) and stride \(stride) disagree")
        }
        if fn.hasSuffix("_v3") {
            guard args.count >= 7, case .global(let dm, let dn) = args[6], dm == "torch", let dt = GlobalPolicy.torchDType(dn) else {
                throw fail("\(fn): missing or unsupported dtype argument")
            }
            // Untyped storage: numel counts bytes.
            st = StorageRef(dtype: dt, key: st.key, location: st.location, numel: st.numel / dt.byteSize, source: st.source)
        }
        return .value(.tensor(TensorRef(storage: st, offset: off, shape: size, stride: stride)))
    }

    mutating func persistent(_ pid: Item) throws -> Item {
        guard let t = pid.tupleItems, t.count >= 5, case .value(.string("storage")) = t[0] else {
            return .value(.opaque("persistent id"))
        }
        guard case .global(_, let cls) = t[1] else { throw fail("storage type is not a class") }
        let dtype: StorageDType
        if cls == "UntypedStorage" { dtype = .uint8 }
        else if let d = GlobalPolicy.storageDType(cls) { dtype = d }
        else { throw CheckpointError.unsupportedDType(file: file, tensor: "storage", cls) }
        guard let key = t[2].stringItem, case .value(.int(let numel)) = t[4] else { throw fail("bad storage persistent id") }
        storages[key] = dtype
        // Legacy stream 6-tuples may carry view metadata (view_key, offset, size) in elements:
        // the view is addressed as "<root>#<offset>".
        if t.count >= 6, let view = t[5].tupleItems {
            guard view.count == 3, case .value(.int(let off)) = view[1], case .value(.int(let n)) = view[2], off >= 0, n >= 0 else {
                throw fail("bad storage view metadata")
            }
            return .value(.storage(StorageRef(dtype: dtype, key: "\(key)#\(off)", location: t[3].stringItem ?? "", numel: n, source: source)))
        }
        return .value(.storage(StorageRef(dtype: dtype, key: key, location: t[3].stringItem ?? "", numel: numel, source: source)))
    }
}

extension Item {
    var isNoneItem: Bool { if case .value(.none) = self { return true }; return false }
    var stringItem: String? { if case .value(.string(let s)) = self { return s }; return nil }
}

// MARK: - Item -> PickleValue (shared boxes converted once; cycles become opaque)

struct Converter {
    struct TooDeep: Error {}
    var done: [ObjectIdentifier: PickleValue] = [:]
    var inProgress: Set<ObjectIdentifier> = []
    var level = 0

    mutating func value(_ it: Item) throws -> PickleValue {
        switch it {
        case .value(let v): return v
        case .global(let m, let n): return .global(m + "." + n)
        case .mark: return .opaque("mark")
        case .box(let b):
            let id = ObjectIdentifier(b)
            if let v = done[id] { return v }
            if inProgress.contains(id) { return .opaque("<cycle>") }
            level += 1; defer { level -= 1 }
            if level > Pickle.maxDepth { throw TooDeep() }
            inProgress.insert(id); defer { inProgress.remove(id) }
            let v: PickleValue
            switch b.kind {
            case .tuple(let xs): v = .tuple(try xs.map { try value($0) })
            case .list(let xs): v = .list(try xs.map { try value($0) })
            case .set(let xs): v = .set(try xs.map { try value($0) })
            case .dict(let items, let attrs, let cls):
                v = .dict(PickleDict(items: try items.map { (try value($0.0), try value($0.1)) },
                                     attributes: try attrs.map { ($0.0, try value($0.1)) }, className: cls))
            case .object(let cls, let args, let state):
                let a = try args.map { try value($0) }, s = try state.map { try value($0) }
                v = MegatronSafeGlobals.decode(cls, args: a, state: s) ?? .object(PickleObject(className: cls, args: a, state: s))
            }
            done[id] = v
            return v
        }
    }
}
