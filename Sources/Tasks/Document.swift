// Document: one dataset row as lm-eval sees it, a string-keyed map of JSON values.
//
// Contract: values keep their JSON kind (string, integer, double, bool, null, list, object); equality is
// field-by-field, as Python's dict equality, which is what lm-eval's few-shot self-exclusion compares.
// `text` renders a value as Python's str() would for the kinds templates use (strings as is, ints,
// bools as True/False).

import Foundation

public enum Value: Equatable, Sendable, CustomStringConvertible {
    case string(String), int(Int), double(Double), bool(Bool), null
    case list([Value]), object([String: Value])

    /// From a JSONSerialization object (NSNumber booleans told apart from numbers).
    public init(json: Any) {
        switch json {
        case let s as String: self = .string(s)
        case let n as NSNumber:
            let t = String(cString: n.objCType)
            if t == "c" || t == "B" { self = .bool(n.boolValue) }
            else if t == "d" || t == "f" { self = .double(n.doubleValue) }
            else { self = .int(n.intValue) }
        case let a as [Any]: self = .list(a.map { Value(json: $0) })
        case let o as [String: Any]: self = .object(o.mapValues { Value(json: $0) })
        default: self = .null
        }
    }

    public var description: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return b ? "True" : "False"
        case .null: return "None"
        case .list(let l): return "[" + l.map { "'\($0)'" }.joined(separator: ", ") + "]"
        case .object: return "{...}"
        }
    }

    public var jsonObject: Any {
        switch self {
        case .string(let s): return s
        case .int(let i): return i
        case .double(let d): return d
        case .bool(let b): return b
        case .null: return NSNull()
        case .list(let l): return l.map(\.jsonObject)
        case .object(let o): return o.mapValues(\.jsonObject)
        }
    }
}

public struct Document: Equatable, Sendable {
    public var fields: [String: Value]
    /// Where it came from, for error messages: "file:line".
    public var origin: String
    public init(fields: [String: Value], origin: String) { self.fields = fields; self.origin = origin }
    public subscript(_ k: String) -> Value? { fields[k] }
    public static func == (a: Document, b: Document) -> Bool { a.fields == b.fields }
}
