// PickleDisplay: a decoded pickle value as short readable text, for `turing inspect --args`.
//
// Owns: the rendering only (Python-like: None/True/False, quoted strings inside containers, enum
// members by name (`SIGTERM`), bytes and tensors by size, long containers cut after 8 items).
// Does not own: decoding (Pickle.swift, MegatronSafeGlobals).

extension PickleValue {
    /// Top-level rendering: a string without quotes, everything else as `repr`.
    public var readable: String {
        if case .string(let s) = self { return s }
        return repr
    }

    /// Rendering inside containers: strings quoted.
    public var repr: String {
        func seq(_ xs: [PickleValue], _ open: String, _ close: String) -> String {
            let shown = xs.prefix(8).map(\.repr).joined(separator: ", ")
            return open + shown + (xs.count > 8 ? ", ... (\(xs.count) items)" : "") + (xs.count == 1 && open == "(" ? "," : "") + close
        }
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return String(d)
        case .string(let s): return "'" + s + "'"
        case .bytes(let b): return "<\(b.count) bytes>"
        case .list(let xs): return seq(xs, "[", "]")
        case .tuple(let xs): return seq(xs, "(", ")")
        case .set(let xs): return seq(xs, "{", "}")
        case .dict(let d):
            let pairs = d.items.prefix(8).map { "\($0.0.repr): \($0.1.repr)" }.joined(separator: ", ")
            let body = pairs + (d.items.count > 8 ? ", ... (\(d.items.count) items)" : "")
            if let c = d.className, c != "collections.OrderedDict" { return Self.short(c) + "(" + body + ")" }
            return "{" + body + "}"
        case .object(let o):
            switch o.className {
            case "numpy.ndarray": return "ndarray(dtype \(o.attribute("dtype")?.readable ?? "?"), shape \(o.attribute("shape")?.repr ?? "?"))"
            case "torch.Generator": return "Generator(\(o.args.first?.readable ?? "?"))"
            case "argparse.Namespace", "types.SimpleNamespace":
                if case .dict(let d)? = o.state { return "\(Self.short(o.className))(\(d.items.count) fields)" }
                return Self.short(o.className) + "()"
            default: return "<\(o.className)>"
            }
        case .global(let g): return g
        case .storage(let s): return "<storage \(s.numel) \(s.dtype.rawValue)>"
        case .tensor(let t): return "tensor(\(t.shape), \(t.dtype.rawValue))"
        case .enumMember(let e): return e.name
        case .opaque(let s): return "<\(s)>"
        }
    }

    static func short(_ cls: String) -> String { String(cls.split(separator: ".").last ?? Substring(cls)) }

    /// `args` as (field, readable value) pairs in saved order (Namespace, SimpleNamespace or dict).
    public var fields: [(String, String)] {
        var d: PickleDict?
        switch self {
        case .dict(let x): d = x
        case .object(let o):
            if case .dict(let x)? = o.state { d = x }
            else { for case .dict(let x) in o.args { d = x; break } }
        default: break
        }
        return (d?.items ?? []).compactMap { k, v in k.stringValue.map { ($0, v.readable) } }
    }
}
