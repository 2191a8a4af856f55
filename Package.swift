// swift-tools-version:6.1
//
// Sextant — an embedded vector database.
//
// Targets are split by dependency weight: the core library `Sextant` depends only on a tiny C target
// (SIMD kernels and CRC32C, selected at run time so no compiler flags are needed) and swift-collections.
// The CLI adds swift-argument-parser. Nothing in the core depends on the CLI.
// The core also depends on swift-crypto, for encrypted exports, backups and snapshot archives only.

import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),  // SE-0335: make the cost of `any` visible
    .enableUpcomingFeature("MemberImportVisibility"),  // SE-0444: imports are not leaked between files
    // .define("SEXTANT_INTERNAL_CHECKS"),     // O(n) invariant checks after every mutation; never in prod
]

let package = Package(
    name: "Sextant",
    products: [
        .library(name: "Sextant", targets: ["Sextant"]),
        .executable(name: "sextant", targets: ["SextantCLI"]),
        .executable(name: "sextant-fuzz", targets: ["SextantFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        // AES-256-GCM, HKDF-SHA256 and SHA-256 for `--encrypt` (Backup/EncryptedContainer.swift). It vendors
        // BoringSSL (AES-NI, CLMUL), so it builds from source with only the toolchain; 3.x supports Swift 5.9+.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Distance kernels (AVX-512 / AVX2+FMA / scalar, chosen at run time with __builtin_cpu_supports)
        // and CRC32C (SSE4.2 instruction or a table). No -march flags: the package stays usable as a
        // dependency. See Docs/Architecture.md, "Kernels".
        .target(name: "CSextantKernels"),
        // Streaming gzip (zlib, linked) and zstd (libzstd, dlopen'ed at run time: its headers are not on a
        // fresh machine) for exports and backups.
        .target(name: "CSextantCodecs", linkerSettings: [.linkedLibrary("z"), .linkedLibrary("dl")]),
        .target(
            name: "Sextant",
            dependencies: [
                "CSextantKernels", "CSextantCodecs",
                .product(name: "OrderedCollections", package: "swift-collections"),
                // Encrypted backups: authenticated encryption of every chunk (see Docs/FileFormat.md,
                // "Encrypted container"). Only the backup layer imports it.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SextantCLI",
            dependencies: [
                "Sextant",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // libFuzzer targets for every parser of untrusted input (Fuzz/README.md). A plain build replays files
        // through them (the CI regression check); Fuzz/run.sh rebuilds it with -sanitize=fuzzer,address and
        // -DSEXTANT_FUZZ into its own scratch path. In the package (not nested) for `package` access.
        .executableTarget(
            name: "SextantFuzz",
            dependencies: ["Sextant"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SextantTestSupport",
            dependencies: ["Sextant"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SextantTests",
            dependencies: [
                "Sextant", "SextantTestSupport", "CSextantKernels",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SextantCLITests",
            dependencies: ["Sextant", "SextantTestSupport"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
