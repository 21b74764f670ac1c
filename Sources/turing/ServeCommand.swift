// turing serve: an HTTP server (OpenAI completions, lm-eval's remote tokenizer, Megatron's PUT /api)
// over one loaded model; the server is the `Serving` library, this is its command line.

import ArgumentParser
import Collectives
import Dispatch
import Foundation
import Serving

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve",
        abstract: "Serve the model over HTTP: POST /v1/completions (OpenAI), lm-eval's tokenizer endpoints, Megatron's PUT /api.")

    @OptionGroup var model: CheckpointOptions
    @OptionGroup var layout: LayoutOptions
    @OptionGroup var compute: ComputeOptions
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port = 8000
    @Option(name: .customLong("model-name"), help: "Model id reported by /v1/models (default: the checkpoint's folder name).") var modelName: String?
    @Option(name: .customLong("api-key"), help: "Require 'Authorization: Bearer KEY' on every route but /health.") var apiKey: String?
    @Option(name: .customLong("max-batch"), help: "Sequences decoded together at most (continuous batching).") var maxBatch = 16
    @Option(name: .customLong("max-queue"), help: "Sequences waiting for a batch slot at most; beyond, 503 with Retry-After.") var maxQueue = 256

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, found \(port)") }
        guard maxBatch >= 1 else { throw ValidationError("--max-batch must be >= 1, found \(maxBatch)") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be >= 0, found \(maxQueue)") }
    }

    func run() throws {
        if MPIRuntime.isActive {
            throw CLIError("turing serve does not run under mpirun yet: start it as one process (in-process --tp/--pp work)")
        }
        let loaded = try model.open(layout, compute)
        var options = ServerOptions()
        options.host = host; options.port = port; options.apiKey = apiKey
        options.maxBatch = maxBatch; options.maxQueue = maxQueue
        options.modelName = modelName ?? URL(fileURLWithPath: model.checkpoint).standardizedFileURL.lastPathComponent
        let server = try TuringServer(model: loaded.engine, tokenizer: loaded.tokenizer!, options: options)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        Task.detached {
            do {
                try await server.run { host, port in
                    FileHandle.standardError.write(Data("listening on http://\(host):\(port)\n".utf8))
                }
            } catch { failure = error }
            done.signal()
        }
        done.wait()
        if let failure { throw failure }
        log("stopped")
    }
}
