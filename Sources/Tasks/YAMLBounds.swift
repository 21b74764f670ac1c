// YAMLBounds: checks a YAML text with libyaml's event parser (iterative, no tree) before Yams
// composes it, because composing recurses once per nesting level: a hostile task file nesting
// 100,000 `[` would exhaust the stack. Refused: nesting deeper than `maxDepth`, more than
// `maxAliases` alias references (a "billion laughs" expansion). Syntax errors are left to Yams,
// which reports them with their line.

import CYaml

enum YAMLBounds {
    static let maxDepth = 64
    static let maxAliases = 256

    /// nil when within bounds (or not parseable: Yams then says why), else what is wrong, with its line.
    static func problem(_ text: String) -> String? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buf -> String? in
            yaml_parser_set_input_string(&parser, buf.baseAddress, buf.count)
            var depth = 0, aliases = 0
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return nil }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1
                switch event.type {
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    depth += 1
                    if depth > maxDepth { return "line \(line): collections nest deeper than \(maxDepth) levels" }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT: depth -= 1
                case YAML_ALIAS_EVENT:
                    aliases += 1
                    if aliases > maxAliases { return "line \(line): more than \(maxAliases) alias references" }
                case YAML_STREAM_END_EVENT: return nil
                default: break
                }
            }
        }
    }
}
