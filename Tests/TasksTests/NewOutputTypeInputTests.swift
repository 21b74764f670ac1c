// generate_until, loglikelihood_rolling and the hellaswag_text / paragraphs formats: well-formed YAML parses into
// the fields lm-eval has, and each malformed case is a TaskError naming the file and what was expected.

import XCTest
import Foundation
@testable import Tasks

final class NewOutputTypeInputTests: XCTestCase {
    let gen = """
    task: g
    output_type: generate_until
    data:
      test: {file: g.jsonl}
    test_split: test
    doc_to_text: "{{q}}"
    doc_to_target: "{{a}}"
    generation_kwargs:
      until: ["\\n", "."]
      max_gen_toks: 5
      do_sample: false
    metrics:
      - {metric: exact_match, ignore_case: true, regexes_to_ignore: ["^ +"]}
    """

    /// A directory holding `text` as data.txt.
    func write(_ text: String) throws -> String { try tmpDir(["data.txt": text]) }

    func testGenerateUntilParses() throws {
        let s = try TaskSpec.parse(yaml: gen, file: "g.yaml")
        XCTAssertEqual(s.outputType, .generateUntil)
        XCTAssertEqual(s.generation, GenerationConfig(until: ["\n", "."], maxGenToks: 5))
        XCTAssertEqual(s.exactMatch, ExactMatchOptions(regexesToIgnore: ["^ +"], ignoreCase: true, ignorePunctuation: false))
        XCTAssertEqual(s.metrics, [.exactMatch])
    }

    /// lm-eval TaskConfig.__post_init__: no `until` (or no generation_kwargs at all) stops at the few-shot delimiter.
    func testUntilDefaultsToFewshotDelimiter() throws {
        let noUntil = gen.replacingOccurrences(of: "  until: [\"\\n\", \".\"]\n", with: "")
        XCTAssertEqual(try TaskSpec.parse(yaml: noUntil, file: "g.yaml").generation, GenerationConfig(until: ["\n\n"], maxGenToks: 5))
        let noKwargs = """
        task: g
        output_type: generate_until
        data:
          test: {file: g.jsonl}
        test_split: test
        doc_to_text: "{{q}}"
        doc_to_target: "{{a}}"
        fewshot_delimiter: "###"
        metrics: [exact_match]
        """
        XCTAssertEqual(try TaskSpec.parse(yaml: noKwargs, file: "g.yaml").generation, GenerationConfig(until: ["###"], maxGenToks: 256))
    }

    func testGenerationErrors() {
        expectError({ _ = try TaskSpec.parse(yaml: gen.replacingOccurrences(of: "do_sample: false", with: "do_sample: true"), file: "g.yaml") },
                    contains: ["g.yaml:", "do_sample", "greedy"])
        expectError({ _ = try TaskSpec.parse(yaml: gen.replacingOccurrences(of: "max_gen_toks: 5", with: "max_gen_toks: 0"), file: "g.yaml") },
                    contains: ["g.yaml:", "max_gen_toks", "positive"])
        expectError({ _ = try TaskSpec.parse(yaml: gen.replacingOccurrences(of: "max_gen_toks: 5", with: "top_k: 5"), file: "g.yaml") },
                    contains: ["g.yaml:", "generation_kwargs.top_k", "allowed"])
        expectError({ _ = try TaskSpec.parse(yaml: gen.replacingOccurrences(of: "ignore_case: true", with: "ignore_numbers: true"), file: "g.yaml") },
                    contains: ["g.yaml:", "ignore_numbers", "exact_match"])
        expectError({ _ = try TaskSpec.parse(yaml: gen.replacingOccurrences(of: "\"^ +\"", with: "\"[\""), file: "g.yaml") },
                    contains: ["g.yaml:", "not a valid pattern"])
        expectError({ _ = try TaskSpec.parse(yaml: gen.replacingOccurrences(of: "metric: exact_match", with: "metric: acc_norm"), file: "g.yaml") },
                    contains: ["g.yaml:", "acc_norm", "does not apply to output_type generate_until"])
        expectError({ _ = try TaskSpec.parse(yaml: gen.replacingOccurrences(of: "generate_until", with: "loglikelihood")
                                                .replacingOccurrences(of: "{metric: exact_match, ignore_case: true, regexes_to_ignore: [\"^ +\"]}", with: "perplexity"), file: "g.yaml") },
                    contains: ["g.yaml:", "generation_kwargs applies only to output_type generate_until"])
    }

    func testRollingRejectsShots() throws {
        let spec = try TaskSpec.parse(yaml: """
        task: r
        output_type: loglikelihood_rolling
        data:
          test: {file: data.txt, format: paragraphs}
        test_split: test
        doc_to_text: ""
        doc_to_target: "{{text}}"
        metrics: [word_perplexity, bits_per_byte]
        """, file: "r.yaml")
        XCTAssertEqual(spec.docToText, "")
        let dir = try write("a b\nc\n\n \nd\n")
        let docs = try DataReader.read(spec.data["test"]!, from: DataLocator(dataDir: dir), task: "r.yaml")
        XCTAssertEqual(docs.map(\.fields), [["text": .string("a b\nc")], ["text": .string("d")]])
        var b = PromptBuilder(spec: spec, pool: docs, seed: 1234)
        XCTAssertEqual(try b.build(docs[0], docID: 0, k: 0).requests.map(\.continuation), ["a b\nc"])
        expectError({ _ = try b.build(docs[0], docID: 0, k: 1) }, contains: ["r.yaml", "1-shot", "0 shots"])
    }

    func testHellaswagTextFormatErrors() throws {
        let src = DataSource(file: "data.txt", format: .hellaswagText, labels: nil, labelField: "label", intFields: [])
        let ok = "Cat: a cat sits\n2\ne0\ne1\ne2\ne3\n"
        let docs = try DataReader.read(src, from: DataLocator(dataDir: try write(ok)), task: "h.yaml")
        XCTAssertEqual(docs[0]["activity_label"], .string("Cat"))
        XCTAssertEqual(docs[0]["ctx_a"], .string("a cat sits"))
        XCTAssertEqual(docs[0]["label"], .string("2"))
        expectError({ _ = try DataReader.read(src, from: DataLocator(dataDir: try self.write(ok + "X: y\n")), task: "h.yaml") },
                    contains: ["data.txt", "7 lines", "6 per document"])
        expectError({ _ = try DataReader.read(src, from: DataLocator(dataDir: try self.write(ok.replacingOccurrences(of: "\n2\n", with: "\n7\n"))), task: "h.yaml") },
                    contains: ["data.txt:2", "gold label", "\"7\""])
        expectError({ _ = try DataReader.read(src, from: DataLocator(dataDir: try self.write(ok.replacingOccurrences(of: "Cat: ", with: "Cat "))), task: "h.yaml") },
                    contains: ["data.txt:1", "activity_label: context"])
    }
}
