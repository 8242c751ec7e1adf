// swift-tools-version:6.1
import PackageDescription

/// Settings every Swift target shares: Swift 6 mode (strict concurrency), explicit `any`,
/// and imports that are internal unless a declaration needs them public.
let strictSwift: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
]

/// A C library found with pkg-config and installed from Debian.
func systemLibrary(_ name: String, pkgConfig: String, apt: [String]) -> Target {
  .systemLibrary(name: name, path: "Sources/\(name)", pkgConfig: pkgConfig, providers: [.apt(apt)])
}

let package = Package(
  name: "Shoal",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "shoal", targets: ["shoal"]),
    .executable(name: "shoal-protogen", targets: ["shoal-protogen"]),
    .executable(name: "shoal-fuzz", targets: ["shoal-fuzz"]),
    .library(name: "ShoalProto", targets: ["ShoalProto"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
    // HTTP for the gateway; without swift-configuration and full Foundation (traits off).
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
  ],
  targets: [
    // C libraries from Debian.
    systemLibrary("CProtobufC", pkgConfig: "libprotobuf-c", apt: ["libprotobuf-c-dev"]),
    systemLibrary("CZstd", pkgConfig: "libzstd", apt: ["libzstd-dev"]),
    systemLibrary("CLibPQ", pkgConfig: "libpq", apt: ["libpq-dev"]),
    systemLibrary("CSQLite", pkgConfig: "sqlite3", apt: ["libsqlite3-dev"]),
    systemLibrary("COpenBLAS", pkgConfig: "openblas", apt: ["libopenblas-dev"]),
    systemLibrary("CCrypto", pkgConfig: "libcrypto", apt: ["libssl-dev"]),
    // Images: PNG and JPEG decoding for model inputs.
    systemLibrary("CPNG", pkgConfig: "libpng", apt: ["libpng-dev"]),
    systemLibrary("CJPEG", pkgConfig: "libjpeg", apt: ["libjpeg62-turbo-dev"]),
    // GEOS: polygon validity and simplification.
    systemLibrary("CGEOS", pkgConfig: "geos", apt: ["libgeos-dev"]),
    // libcurl: imagery tiles over HTTP(S).
    systemLibrary("CCurl", pkgConfig: "libcurl", apt: ["libcurl4-openssl-dev"]),
    // cairo: metric plots as PNG.
    systemLibrary("CCairo", pkgConfig: "cairo", apt: ["libcairo2-dev"]),
    // Audio: decoding (WAV, FLAC, OGG/Vorbis and Opus, MP3), resampling, and the FFT (BSD).
    systemLibrary("CSndfile", pkgConfig: "sndfile", apt: ["libsndfile1-dev"]),
    systemLibrary("CSoxr", pkgConfig: "soxr", apt: ["libsoxr-dev"]),
    // kissfft's pkg-config file sets -D flags, which SwiftPM refuses: its header path instead.
    .systemLibrary(name: "CKissFFT", path: "Sources/CKissFFT", providers: [.apt(["libkissfft-dev"])]),

    // Generated code: protoc-c output for Protos/ and the Swift types generated from the same files.
    .target(name: "ShoalProtoC", dependencies: ["CProtobufC"]),
    .target(name: "ShoalProto", dependencies: ["ShoalProtoC", "CProtobufC"], swiftSettings: strictSwift),

    // The RPC runtime: wire protocol v1 (framing, compression, streams) on SwiftNIO.
    .target(
      name: "ShoalRPC",
      dependencies: [
        "ShoalProto", "CZstd",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ],
      swiftSettings: strictSwift
    ),

    // Storage: SQLite and PostgreSQL behind one Database API, migrations, the blob store.
    .target(
      name: "ShoalStore",
      dependencies: ["CSQLite", "CLibPQ", "CCrypto", .product(name: "NIOPosix", package: "swift-nio")],
      swiftSettings: strictSwift
    ),

    // Typed clients and server protocols generated for every service in the contract.
    .target(name: "ShoalServiceStubs", dependencies: ["ShoalProto", "ShoalRPC"], swiftSettings: strictSwift),

    // The client SDK: registry location, service resolution through Watch, balancing, leases.
    .target(
      name: "ShoalClient", dependencies: ["ShoalProto", "ShoalRPC", "ShoalServiceStubs"], swiftSettings: strictSwift),

    // The mesh: mesh files and the `shoal up` supervisor.
    // Certificates for a mesh's TLS, made with libcrypto.
    .target(name: "CCertificates", dependencies: ["CCrypto"]),
    .target(name: "ShoalMesh", dependencies: ["ShoalProto", "ShoalRPC", "CCertificates"], swiftSettings: strictSwift),

    // Metrics in Prometheus' text format, served over HTTP by every service.
    .target(
      name: "ShoalMetrics",
      dependencies: [
        .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
      ],
      swiftSettings: strictSwift
    ),

    // Services.
    .target(name: "Bench", dependencies: ["ShoalProto", "ShoalRPC", "ShoalServiceStubs"], swiftSettings: strictSwift),
    .target(
      name: "ShoalService",
      dependencies: ["ShoalProto", "ShoalRPC", "ShoalServiceStubs", "ShoalStore", "ShoalMetrics"],
      swiftSettings: strictSwift),
    .target(
      name: "Registry",
      dependencies: ["ShoalProto", "ShoalRPC", "ShoalServiceStubs", "ShoalStore", "ShoalService"],
      swiftSettings: strictSwift
    ),
    .target(
      name: "Inference",
      dependencies: [
        "ShoalProto", "ShoalRPC", "ShoalServiceStubs", "ShoalStore", "ShoalService", "ShoalModel", "ShoalMetrics",
        "ShoalImage", "ShoalGeo", "ShoalImagery",
      ],
      swiftSettings: strictSwift
    ),
    .target(
      name: "Feedback",
      dependencies: [
        "ShoalProto", "ShoalRPC", "ShoalServiceStubs", "ShoalStore", "ShoalService", "ShoalGeo", "ShoalImagery",
        "ShoalImage",
      ],
      swiftSettings: strictSwift
    ),
    .target(
      name: "Pipeline",
      dependencies: [
        "ShoalProto", "ShoalRPC", "ShoalServiceStubs", "ShoalService", "ShoalMesh", "ShoalImagery", "ShoalStore",
        "ShoalModel", "ShoalImage",
      ],
      swiftSettings: strictSwift
    ),
    .target(
      name: "AudioClassifier",
      dependencies: [
        "ShoalProto", "ShoalRPC", "ShoalServiceStubs", "ShoalStore", "ShoalService", "ShoalAudio", "ShoalImage",
        "ShoalImagery", "ShoalModel",
      ],
      swiftSettings: strictSwift
    ),
    .target(
      name: "Gateway",
      dependencies: [
        "ShoalProto", "ShoalRPC", "ShoalServiceStubs", "ShoalClient", "ShoalMetrics", "ShoalImagery",
        .product(name: "Hummingbird", package: "hummingbird"),
      ],
      // The review pages, built into the binary.
      resources: ["index.html", "map.html", "clips.html", "runs.html", "review.js", "review.css"].map {
        .embedInCode("Pages/\($0)")
      },
      swiftSettings: strictSwift
    ),
    .target(
      name: "Tracking",
      dependencies: ["ShoalProto", "ShoalRPC", "ShoalServiceStubs", "ShoalStore", "ShoalService"],
      swiftSettings: strictSwift
    ),

    // The model core: tensors, ONNX loading, the SIMD/BLAS executor. Knows nothing about RPC.
    .target(
      name: "ShoalModel",
      dependencies: [
        "ShoalProto", "COpenBLAS", "CModelKernels", .product(name: "RealModule", package: "swift-numerics"),
      ],
      swiftSettings: strictSwift
    ),
    // Web-Mercator tiles, quadkeys, covers and GeoJSON.
    .target(name: "ShoalGeo", dependencies: ["CGEOS"], swiftSettings: strictSwift),
    // libpng and libjpeg behind functions that return errors instead of jumping.
    .target(name: "CImageCodecs", dependencies: ["CPNG", "CJPEG"]),
    // One blocking GET on a reusable libcurl handle (libcurl's options are C varargs).
    .target(name: "CHTTPGet", dependencies: ["CCurl"]),
    // Imagery sources: URL templates, fetching with retries and a concurrency limit, a tile cache.
    .target(
      name: "ShoalImagery", dependencies: ["CHTTPGet", "ShoalGeo", "ShoalStore", "ShoalProto"],
      swiftSettings: strictSwift),
    // Audio decoding, resampling and spectrograms as librosa computes them.
    .target(
      name: "ShoalAudio", dependencies: ["CSndfile", "CSoxr", "CKissFFT", "ShoalImage"], swiftSettings: strictSwift),
    // Image decoding, resizing and model-input preprocessing.
    .target(name: "ShoalImage", dependencies: ["CImageCodecs", "ShoalModel"], swiftSettings: strictSwift),
    // Inner loops built with AVX2 and FMA or AVX-512 per function, chosen at run time by the CPU.
    .target(name: "CModelKernels"),

    // The code generator: protoc-c's build of descriptor.proto, the generator library, its command.
    .target(name: "CProtobufDescriptor", dependencies: ["CProtobufC"]),
    .target(
      name: "ShoalProtoGen",
      dependencies: ["CProtobufDescriptor", "CProtobufC"],
      swiftSettings: strictSwift
    ),
    // The fuzz targets (scripts/fuzz builds it with --sanitize=fuzzer; plainly built, it replays
    // the corpora in the tests).
    .executableTarget(
      name: "shoal-fuzz",
      dependencies: [
        "ShoalProto", "ShoalRPC", "ShoalModel", "ShoalImage", "ShoalAudio", "ShoalGeo", "Pipeline", "Tracking",
        .product(name: "NIOCore", package: "swift-nio"),
      ],
      swiftSettings: strictSwift
    ),
    .executableTarget(
      name: "shoal-protogen",
      dependencies: ["ShoalProtoGen", .product(name: "ArgumentParser", package: "swift-argument-parser")],
      swiftSettings: strictSwift
    ),

    // The one binary.
    .executableTarget(
      name: "shoal",
      dependencies: [
        "ShoalProto", "ShoalRPC", "ShoalServiceStubs", "ShoalClient", "ShoalStore", "ShoalService", "ShoalMesh",
        "Bench", "Registry", "Tracking", "Inference", "Feedback", "ShoalMetrics", "ShoalModel", "ShoalGeo", "CCairo",
        "ShoalImagery", "ShoalImage", "ShoalAudio", "AudioClassifier", "Pipeline", "Gateway",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Histogram", package: "hdrhistogram-swift"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strictSwift
    ),

    .testTarget(
      name: "CLibraryTests",
      dependencies: ["CProtobufC", "CZstd", "CLibPQ", "CSQLite", "COpenBLAS"],
      swiftSettings: strictSwift
    ),
    .target(
      name: "ShoalTestSupport",
      dependencies: [
        "ShoalStore", "ShoalProto", "ShoalModel", .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
      ],
      path: "Tests/ShoalTestSupport",
      swiftSettings: strictSwift),
    .testTarget(
      name: "ShoalProtoTests",
      dependencies: ["ShoalProto", "ShoalTestSupport"],
      exclude: ["Python"],
      swiftSettings: strictSwift
    ),
    .testTarget(
      name: "ShoalRPCTests",
      dependencies: [
        "ShoalRPC", "ShoalServiceStubs", "Bench", "CZstd", "ShoalTestSupport",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strictSwift
    ),
    .testTarget(
      name: "RegistryTests",
      dependencies: [
        "Registry", "ShoalClient", "ShoalRPC", "ShoalServiceStubs", "ShoalStore", "ShoalService", "Bench",
        "ShoalTestSupport", "shoal",
      ],
      swiftSettings: strictSwift
    ),
    .testTarget(
      name: "TrackingTests",
      dependencies: ["Tracking", "ShoalRPC", "ShoalServiceStubs", "ShoalStore", "ShoalTestSupport"],
      swiftSettings: strictSwift
    ),
    .testTarget(
      name: "InferenceTests",
      dependencies: [
        "Inference", "ShoalGeo", "ShoalModel", "ShoalMetrics", "ShoalProto", "ShoalRPC", "ShoalService",
        "ShoalTestSupport",
      ],
      swiftSettings: strictSwift
    ),
    .testTarget(
      name: "FeedbackTests",
      dependencies: [
        "Feedback", "ShoalGeo", "ShoalImagery", "ShoalImage", "ShoalProto", "ShoalRPC", "ShoalServiceStubs",
        "ShoalStore", "ShoalTestSupport", "Tracking",
      ],
      swiftSettings: strictSwift
    ),
    .testTarget(
      name: "GatewayTests",
      dependencies: [
        "Gateway", "ShoalTestSupport", "ShoalProto", "ShoalRPC", "ShoalServiceStubs",
        .product(name: "HummingbirdTesting", package: "hummingbird"),
      ],
      swiftSettings: strictSwift),
    .testTarget(
      name: "ShoalGeoTests", dependencies: ["ShoalGeo", "ShoalTestSupport"], swiftSettings: strictSwift),
    .testTarget(
      name: "ShoalImageryTests", dependencies: ["ShoalImagery", "ShoalGeo", "ShoalTestSupport"],
      swiftSettings: strictSwift),
    .testTarget(
      name: "PipelineTests", dependencies: ["Pipeline", "ShoalTestSupport"], swiftSettings: strictSwift),
    .testTarget(
      name: "AudioClassifierTests", dependencies: ["AudioClassifier", "ShoalTestSupport"], swiftSettings: strictSwift),
    .testTarget(
      name: "ShoalAudioTests", dependencies: ["ShoalAudio", "ShoalModel", "ShoalTestSupport"],
      swiftSettings: strictSwift),
    .testTarget(
      name: "ShoalImageTests", dependencies: ["ShoalImage", "ShoalModel", "ShoalTestSupport"],
      swiftSettings: strictSwift),
    .testTarget(
      name: "ShoalModelTests", dependencies: ["ShoalModel", "ShoalProto", "ShoalTestSupport"],
      swiftSettings: strictSwift),
    .testTarget(
      name: "ShoalStoreTests", dependencies: ["ShoalStore", "ShoalRPC", "ShoalTestSupport"], swiftSettings: strictSwift),
    .testTarget(
      name: "ShoalProtoGenTests",
      dependencies: ["ShoalProtoGen", "ShoalTestSupport"],
      swiftSettings: strictSwift
    ),
    .testTarget(
      name: "ShoalCLITests",
      dependencies: [
        "shoal", "ShoalTestSupport", "ShoalMesh", "ShoalClient", "ShoalProto", "ShoalRPC", "ShoalServiceStubs",
        "ShoalModel", "Inference", "ShoalGeo", "ShoalImage", "ShoalAudio", "ShoalImagery",
      ],
      exclude: ["Python"],
      swiftSettings: strictSwift
    ),
  ]
)
