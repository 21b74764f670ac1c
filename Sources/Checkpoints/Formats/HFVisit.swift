// HFAdapter's visiting mode (`LoadOptions.visit` for HF folders): the adapter's canonical tensors go
// to a visitor as each is decoded, instead of into a dictionary, so a model is read one tensor at a
// time (safetensors pages are dropped once decoded: Safetensors.swift). The name mapping, transposes
// and checks stay the adapter's own (HFAdapter.swift); this file only says where the tensors go.

import TensorCore
import Model

extension HFAdapter {
    /// Receives the config first, then every canonical tensor once, in the adapter's (layer) order.
    public struct Visitor: Sendable {
        public var begin: (@Sendable (ModelConfig) throws -> Void)?
        public var visit: @Sendable (String, Tensor) throws -> Void
        public init(begin: (@Sendable (ModelConfig) throws -> Void)? = nil, visit: @escaping @Sendable (String, Tensor) throws -> Void) {
            self.begin = begin; self.visit = visit
        }
    }

    /// Where the adapter puts canonical tensors: kept (no visitor), or handed over. A subscript setter
    /// cannot throw, so the visitor's first error is kept (later tensors are not visited) and
    /// `rethrow()` raises it.
    struct Tensors {
        let visitor: Visitor?
        private(set) var tensors: [String: Tensor] = [:]
        private var error: Error? = nil
        init(_ visitor: Visitor?, _ config: ModelConfig) throws {
            self.visitor = visitor
            try visitor?.begin?(config)
        }
        subscript(name: String) -> Tensor? {
            get { tensors[name] }
            set {
                guard let v = newValue else { tensors[name] = nil; return }
                guard let visitor else { tensors[name] = v; return }
                guard error == nil else { return }
                do { try visitor.visit(name, v) } catch { self.error = error }
            }
        }
        func rethrow() throws { if let error { throw error } }
    }
}
