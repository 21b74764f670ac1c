// swift-tools-version:6.0
// Turing: evaluation and inference harness for Megatron-style GPT checkpoints.
import PackageDescription
import Foundation

let package = Package(
    name: "Turing",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "turing", targets: ["turing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .target(name: "CKernels", path: "Sources/C/CKernels", cSettings: [.unsafeFlags(["-O3"])]),   // run-time ISA dispatch inside; no -march
        .target(name: "TensorCore", dependencies: ["CKernels"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "Tokenizers"),
        .systemLibrary(name: "CMPI", path: "Sources/C/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CMPIShim", dependencies: ["CMPI"], path: "Sources/C/CMPIShim"),
        .target(name: "Collectives", dependencies: ["TensorCore", "CMPIShim"]),
        .target(name: "Model", dependencies: ["TensorCore", "Collectives", "CKernels"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "CChecksum", path: "Sources/C/CChecksum", cSettings: [.unsafeFlags(["-O3"])]),   // zip CRC-32 (checked on every tensor record read)
        .target(name: "Checkpoints", dependencies: ["TensorCore", "Model", "CChecksum"],
                swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),   // bounds and overflow checks stay on: hostile files
        .target(name: "Engine", dependencies: ["TensorCore", "Collectives", "Model", "Tokenizers"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "Training", dependencies: ["TensorCore", "Collectives", "Model"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .systemLibrary(name: "CBZip2", path: "Sources/C/CBZip2", providers: [.apt(["libbz2-dev"])]),
        .target(name: "Tasks", dependencies: ["CBZip2", .product(name: "Yams", package: "Yams")]),
        .target(name: "Evaluation", dependencies: ["Tasks", "Engine", "Model", "Tokenizers"]),
        .target(name: "Serving", dependencies: ["Engine", "Model", "Tokenizers", "Evaluation", "TensorCore", "Collectives",
                                                .product(name: "Hummingbird", package: "hummingbird")]),
        .target(name: "TuringKit", dependencies: ["TensorCore", "Collectives", "Model", "Checkpoints", "Tokenizers", "Engine", "Training", "Tasks", "Evaluation"]),
        .executableTarget(name: "turing", dependencies: [
            "TuringKit", "TensorCore", "Collectives", "Model", "Checkpoints", "Tokenizers", "Engine", "Training", "Tasks", "Evaluation", "Serving",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "TestSupport", dependencies: ["TensorCore"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TestSupport", "TensorCore", "CKernels"]),
        .testTarget(name: "TokenizersTests", dependencies: ["TestSupport", "Tokenizers", "Tasks"]),   // Tasks: BZip2 for the compressed fixtures
        .testTarget(name: "CollectivesTests", dependencies: ["TestSupport", "Collectives"]),
        .testTarget(name: "ModelTests", dependencies: ["TestSupport", "Model", "TensorCore"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["TestSupport", "Checkpoints", "Model", "TensorCore"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "turing"]),
        .testTarget(name: "TuringKitTests", dependencies: ["TestSupport", "TuringKit", "Checkpoints", "Model", "Engine", "TensorCore",
                                                           "Tasks", "Training", "Evaluation"]),
        .testTarget(name: "TrainingTests", dependencies: ["TestSupport", "Training", "Model", "TensorCore", "Checkpoints", "Engine"]),
        .testTarget(name: "TasksTests", dependencies: ["TestSupport", "Tasks"]),
        .testTarget(name: "EvaluationTests", dependencies: ["TestSupport", "Evaluation", "Tasks", "Engine", "Checkpoints", "Model", "Tokenizers"]),
        .testTarget(name: "ServingTests", dependencies: ["TestSupport", "Serving", "Engine", "Checkpoints", "Model", "Tokenizers", "Evaluation",
                                                         .product(name: "Hummingbird", package: "hummingbird"),
                                                         .product(name: "HummingbirdTesting", package: "hummingbird")]),
        .testTarget(name: "EngineTests", dependencies: ["TestSupport", "Engine", "Checkpoints", "Model", "Tokenizers", "TensorCore",
                                                        .product(name: "PropertyBased", package: "swift-property-based")]),
    ],
    swiftLanguageModes: [.v5]
)

// Fuzz targets (Fuzz/, libFuzzer): only with TURING_FUZZ=1, built by scripts/fuzz.sh with
// -sanitize=fuzzer,address into .build-fuzz; never part of the normal build (libFuzzer owns main).
if ProcessInfo.processInfo.environment["TURING_FUZZ"] == "1" {
    package.targets.append(.executableTarget(
        name: "turing-fuzz", dependencies: ["Checkpoints", "Tasks", "Tokenizers", "Evaluation", "Training", "TensorCore"],
        path: "Fuzz", swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
}
