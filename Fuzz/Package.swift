// swift-tools-version: 6.1
// libFuzzer harnesses for Peer's decoders, kept out of the main build. Build and run (see README):
//   swift build -c release -Xswiftc -sanitize=fuzzer,address --product FuzzBencode
//   .build/release/FuzzBencode corpus/bencode -max_total_time=30
import PackageDescription

let package = Package(
    name: "PeerFuzz",
    dependencies: [.package(name: "Peer", path: "..")],
    targets: [
        .target(name: "FuzzShim"),
        .executableTarget(
            name: "FuzzBencode",
            dependencies: ["FuzzShim", .product(name: "Bencode", package: "Peer")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "FuzzMetainfo",
            dependencies: [
                "FuzzShim", .product(name: "Bencode", package: "Peer"), .product(name: "Metainfo", package: "Peer"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "FuzzUTP",
            dependencies: ["FuzzShim", .product(name: "UTP", package: "Peer"), .product(name: "PeerBase", package: "Peer")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "FuzzKRPC",
            dependencies: [
                "FuzzShim", .product(name: "DHT", package: "Peer"), .product(name: "PeerBase", package: "Peer"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
