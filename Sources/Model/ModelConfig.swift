// ModelConfig: the blueprint of one decoder, GPT family (LayerNorm, learned positions, GeLU, biases)
// or Llama family (RMSNorm, RoPE, SwiGLU, grouped-query attention, no biases).
//
// Owns: the fields, their defaults, strict JSON decoding (unknown keys are rejected), and
// consistency checks. Does not own: how a checkpoint format spells these (Checkpoints adapters).

public enum NormKind: String, Codable, Sendable { case layernorm, rmsnorm }
public enum Activation: String, Codable, Sendable {
    /// tanh approximation (Megatron fused bias-GeLU, openai_gelu, HF gelu_new / gelu_fast / gelu_pytorch_tanh)
    case geluTanh = "gelu_tanh"
    /// exact erf GeLU (torch F.gelu, HF "gelu")
    case gelu = "gelu"
    /// silu(gate x) * (up x)
    case swiglu = "swiglu"
}
public enum PositionKind: String, Codable, Sendable { case learned, rope }

public struct ModelConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int            // V: real vocabulary (padding trimmed)
    public var hiddenSize: Int           // C
    public var numLayers: Int            // L
    public var numHeads: Int             // H
    public var numKVHeads: Int           // G (query groups); == H for multi-head attention
    public var headDim: Int              // D (Megatron kv_channels); usually C / H
    public var ffnSize: Int              // F
    public var maxPositions: Int         // P
    public var norm: NormKind
    public var normEpsilon: Float
    public var activation: Activation
    public var positions: PositionKind
    public var ropeTheta: Float
    public var tiedEmbeddings: Bool      // LM head reuses the word embedding
    public var linearBias: Bool          // biases on QKV, projection, FC1, FC2 (GPT: true, Llama: false)
    public var bosToken: Int?
    public var eosToken: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", numLayers = "num_layers",
             numHeads = "num_heads", numKVHeads = "num_kv_heads", headDim = "head_dim",
             ffnSize = "ffn_size", maxPositions = "max_positions", norm, normEpsilon = "norm_epsilon",
             activation, positions, ropeTheta = "rope_theta", tiedEmbeddings = "tied_embeddings",
             linearBias = "linear_bias", bosToken = "bos_token", eosToken = "eos_token"
    }

    public init(vocabSize: Int, hiddenSize: Int, numLayers: Int, numHeads: Int, numKVHeads: Int? = nil,
                headDim: Int? = nil, ffnSize: Int? = nil, maxPositions: Int, norm: NormKind = .layernorm,
                normEpsilon: Float = 1e-5, activation: Activation = .geluTanh, positions: PositionKind = .learned,
                ropeTheta: Float = 10000, tiedEmbeddings: Bool = true, linearBias: Bool = true,
                bosToken: Int? = nil, eosToken: Int? = nil) {
        self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.numLayers = numLayers
        self.numHeads = numHeads; self.numKVHeads = numKVHeads ?? numHeads
        self.headDim = headDim ?? (hiddenSize / max(numHeads, 1)); self.ffnSize = ffnSize ?? 4 * hiddenSize
        self.maxPositions = maxPositions; self.norm = norm; self.normEpsilon = normEpsilon
        self.activation = activation; self.positions = positions; self.ropeTheta = ropeTheta
        self.tiedEmbeddings = tiedEmbeddings; self.linearBias = linearBias
        self.bosToken = bosToken; self.eosToken = eosToken
    }

    /// Strict decoding: unknown keys are an error naming the key.
    public init(from decoder: Decoder) throws {
        let any = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        for k in any.allKeys where !known.contains(k.stringValue) {
            throw ModelError.unknownConfigField(k.stringValue)
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let hidden = try c.decode(Int.self, forKey: .hiddenSize)
        let heads = try c.decode(Int.self, forKey: .numHeads)
        self.init(vocabSize: try c.decode(Int.self, forKey: .vocabSize), hiddenSize: hidden,
                  numLayers: try c.decode(Int.self, forKey: .numLayers), numHeads: heads,
                  numKVHeads: try c.decodeIfPresent(Int.self, forKey: .numKVHeads),
                  headDim: try c.decodeIfPresent(Int.self, forKey: .headDim),
                  ffnSize: try c.decodeIfPresent(Int.self, forKey: .ffnSize),
                  maxPositions: try c.decode(Int.self, forKey: .maxPositions),
                  norm: try c.decodeIfPresent(NormKind.self, forKey: .norm) ?? .layernorm,
                  normEpsilon: try c.decodeIfPresent(Float.self, forKey: .normEpsilon) ?? 1e-5,
                  activation: try c.decodeIfPresent(Activation.self, forKey: .activation) ?? .geluTanh,
                  positions: try c.decodeIfPresent(PositionKind.self, forKey: .positions) ?? .learned,
                  ropeTheta: try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? 10000,
                  tiedEmbeddings: try c.decodeIfPresent(Bool.self, forKey: .tiedEmbeddings) ?? true,
                  linearBias: try c.decodeIfPresent(Bool.self, forKey: .linearBias) ?? true,
                  bosToken: try c.decodeIfPresent(Int.self, forKey: .bosToken),
                  eosToken: try c.decodeIfPresent(Int.self, forKey: .eosToken))
        try validate()
    }

    /// Every inconsistency at once.
    public func problems() -> [String] {
        var p: [String] = []
        func pos(_ v: Int, _ n: String) { if v <= 0 { p.append("\(n) must be positive, found \(v)") } }
        pos(vocabSize, "vocab_size"); pos(hiddenSize, "hidden_size"); pos(numLayers, "num_layers")
        pos(numHeads, "num_heads"); pos(numKVHeads, "num_kv_heads"); pos(headDim, "head_dim")
        pos(ffnSize, "ffn_size"); pos(maxPositions, "max_positions")
        if numKVHeads > 0 && numHeads % numKVHeads != 0 {
            p.append("num_heads (\(numHeads)) must be a multiple of num_kv_heads (\(numKVHeads))")
        }
        if positions == .rope && headDim % 2 != 0 { p.append("rotary positions need an even head_dim, found \(headDim)") }
        if !(normEpsilon > 0 && normEpsilon.isFinite) { p.append("norm_epsilon must be positive and finite, found \(normEpsilon)") }
        if !(ropeTheta > 0 && ropeTheta.isFinite) { p.append("rope_theta must be positive and finite, found \(ropeTheta)") }
        for (t, n) in [(bosToken, "bos_token"), (eosToken, "eos_token")] {
            if let t, !(0..<max(vocabSize, 1)).contains(t) { p.append("\(n) \(t) is outside the vocabulary (0..<\(vocabSize))") }
        }
        // sizes that multiply into allocations: refuse what cannot describe a real model (no overflow later)
        for (v, n) in [(vocabSize, "vocab_size"), (hiddenSize, "hidden_size"), (numLayers, "num_layers"), (numHeads, "num_heads"),
                       (numKVHeads, "num_kv_heads"), (headDim, "head_dim"), (ffnSize, "ffn_size"), (maxPositions, "max_positions")] where v > 1 << 26 {
            p.append("\(n) must be at most 2^26, found \(v)")
        }
        return p
    }

    public func validate() throws {
        let p = problems()
        if !p.isEmpty { throw ModelError.inconsistentConfig(p) }
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unknownConfigField(String)
    case inconsistentConfig([String])
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    case unexpectedTensors([String])

    public var description: String {
        switch self {
        case .unknownConfigField(let k): return "model config: unknown field '\(k)'"
        case .inconsistentConfig(let p): return "model config is inconsistent:\n  - " + p.joined(separator: "\n  - ")
        case .missingTensor(let n): return "weights: tensor '\(n)' is missing"
        case .shapeMismatch(let n, let e, let f): return "weights: tensor '\(n)' has shape \(f), expected \(e)"
        case .unexpectedTensors(let n): return "weights: unexpected tensors \(n.prefix(8).joined(separator: ", "))\(n.count > 8 ? " (and \(n.count - 8) more)" : "")"
        }
    }
}
