// SentencePieceModel: the fields of sentencepiece's ModelProto (sentencepiece_model.proto) that encoding and
// decoding use, read from a `tokenizer.model` with ProtobufReader.
// Contract: unknown fields are skipped; features Turing does not implement are refused naming the field
// (TokenizerError.unsupported): model_type WORD/CHAR, treat_whitespace_as_suffix, a denormalizer charsmap,
// normalization_rule_tsv without a precompiled charsmap. Duplicate pieces, a missing or repeated <unk>, and byte
// fallback without all 256 byte pieces are refused as sentencepiece itself refuses them.

import Foundation

public struct SentencePieceModel: Sendable {
    public enum PieceType: Int, Sendable { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }
    public enum ModelType: Int, Sendable { case unigram = 1, bpe = 2, word = 3, char = 4 }

    public var pieces: [String] = []
    public var pieceBytes: [[UInt8]] = []
    public var scores: [Float] = []
    public var types: [PieceType] = []
    public var modelType: ModelType = .unigram
    public var byteFallback = false
    public var unkPiece = "<unk>", bosPiece = "<s>", eosPiece = "</s>", padPiece = "<pad>"
    public var unkSurface: [UInt8] = Array(" \u{2047} ".utf8)
    // normalizer_spec
    public var normalizerName = ""
    public var precompiledCharsmap: [UInt8] = []
    public var addDummyPrefix = true
    public var removeExtraWhitespaces = true
    public var escapeWhitespaces = true

    public init(path: String) throws { try self.init(bytes: [UInt8](readTokenizerFile(path)), source: path) }

    public init(bytes: [UInt8], source: String) throws {
        var r = ProtobufReader(bytes, source: source)
        var treatSuffix = false
        var sawTrainer = false
        while let (field, wire) = try r.tag() {
            switch field {
            case 1:
                try r.expect(wire, 2, field: "pieces")
                var m = try r.message()
                var piece: String?, score: Float = 0, type = PieceType.normal
                while let (f, w) = try m.tag() {
                    switch f {
                    case 1: try m.expect(w, 2, field: "pieces[\(pieces.count)].piece"); piece = try m.string()
                    case 2: try m.expect(w, 5, field: "pieces[\(pieces.count)].score"); score = try m.float()
                    case 3:
                        try m.expect(w, 0, field: "pieces[\(pieces.count)].type")
                        let t = try m.varint()
                        guard let pt = PieceType(rawValue: Int(clamping: t)) else {
                            throw TokenizerError.invalidFormat("\(source): pieces[\(pieces.count)].type: expected 1...6, found \(t)")
                        }
                        type = pt
                    default: try m.skip(wireType: w)
                    }
                }
                guard let p = piece, !p.isEmpty else { throw TokenizerError.invalidFormat("\(source): pieces[\(pieces.count)]: empty piece") }
                pieces.append(p); pieceBytes.append(Array(p.utf8)); scores.append(score); types.append(type)
            case 2:
                try r.expect(wire, 2, field: "trainer_spec")
                sawTrainer = true
                var m = try r.message()
                while let (f, w) = try m.tag() {
                    switch f {
                    case 3:
                        try m.expect(w, 0, field: "trainer_spec.model_type")
                        let t = try m.varint()
                        guard let mt = ModelType(rawValue: Int(clamping: t)) else {
                            throw TokenizerError.invalidFormat("\(source): trainer_spec.model_type: expected 1...4, found \(t)")
                        }
                        modelType = mt
                    case 24: try m.expect(w, 0, field: "treat_whitespace_as_suffix"); treatSuffix = try m.bool()
                    case 35: try m.expect(w, 0, field: "byte_fallback"); byteFallback = try m.bool()
                    case 44: try m.expect(w, 2, field: "unk_surface"); unkSurface = try m.bytesField()
                    case 45: try m.expect(w, 2, field: "unk_piece"); unkPiece = try m.string()
                    case 46: try m.expect(w, 2, field: "bos_piece"); bosPiece = try m.string()
                    case 47: try m.expect(w, 2, field: "eos_piece"); eosPiece = try m.string()
                    case 48: try m.expect(w, 2, field: "pad_piece"); padPiece = try m.string()
                    default: try m.skip(wireType: w)
                    }
                }
            case 3:
                try r.expect(wire, 2, field: "normalizer_spec")
                var m = try r.message()
                var tsv = false
                while let (f, w) = try m.tag() {
                    switch f {
                    case 1: try m.expect(w, 2, field: "normalizer_spec.name"); normalizerName = try m.string()
                    case 2: try m.expect(w, 2, field: "precompiled_charsmap"); precompiledCharsmap = try m.bytesField()
                    case 3: try m.expect(w, 0, field: "add_dummy_prefix"); addDummyPrefix = try m.bool()
                    case 4: try m.expect(w, 0, field: "remove_extra_whitespaces"); removeExtraWhitespaces = try m.bool()
                    case 5: try m.expect(w, 0, field: "escape_whitespaces"); escapeWhitespaces = try m.bool()
                    case 6: try m.expect(w, 2, field: "normalization_rule_tsv"); tsv = try !m.bytesField().isEmpty
                    default: try m.skip(wireType: w)
                    }
                }
                if tsv && precompiledCharsmap.isEmpty {
                    throw TokenizerError.unsupported("\(source): normalizer_spec.normalization_rule_tsv without a precompiled_charsmap")
                }
            case 5:
                try r.expect(wire, 2, field: "denormalizer_spec")
                var m = try r.message()
                while let (f, w) = try m.tag() {
                    if f == 2, w == 2, try !m.bytesField().isEmpty {
                        throw TokenizerError.unsupported("\(source): denormalizer_spec.precompiled_charsmap (denormalization)")
                    } else if !(f == 2 && w == 2) { try m.skip(wireType: w) }
                }
            default: try r.skip(wireType: wire)
            }
        }
        guard sawTrainer || !pieces.isEmpty else { throw TokenizerError.invalidFormat("\(source): not a sentencepiece ModelProto (no pieces, no trainer_spec)") }
        if treatSuffix { throw TokenizerError.unsupported("\(source): trainer_spec.treat_whitespace_as_suffix") }
        if modelType == .word || modelType == .char {
            throw TokenizerError.unsupported("\(source): trainer_spec.model_type \(modelType == .word ? "WORD" : "CHAR") (UNIGRAM and BPE are read)")
        }
        var seen = Set<[UInt8]>(), unk = 0, bytesFound = Set<Int>()
        for (i, p) in pieceBytes.enumerated() {
            guard seen.insert(p).inserted else { throw TokenizerError.invalidFormat("\(source): piece \(i) \(pieces[i]) is already defined") }
            if types[i] == .unknown { unk += 1 }
            if types[i] == .byte {
                guard byteFallback else { throw TokenizerError.invalidFormat("\(source): byte piece \(pieces[i]) although byte_fallback is false") }
                guard let b = SentencePieceModel.byteOfPiece(p) else { throw TokenizerError.invalidFormat("\(source): byte piece \(pieces[i]) is invalid") }
                bytesFound.insert(b)
            }
        }
        guard unk == 1 else { throw TokenizerError.invalidFormat("\(source): expected one UNKNOWN piece, found \(unk)") }
        if byteFallback && bytesFound.count != 256 {
            throw TokenizerError.invalidFormat("\(source): byte_fallback is true but only \(bytesFound.count) of 256 byte pieces exist")
        }
    }

    /// 0...255 for a piece spelled `<0xXX>` (two upper-case hex digits), else nil.
    static func byteOfPiece(_ p: [UInt8]) -> Int? {
        guard p.count == 6, p[0] == 0x3C, p[1] == 0x30, p[2] == 0x78, p[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> Int? {
            switch c { case 0x30...0x39: return Int(c - 0x30); case 0x41...0x46: return Int(c - 0x41 + 10); default: return nil }
        }
        guard let h = hex(p[3]), let l = hex(p[4]) else { return nil }
        return h * 16 + l
    }
}
