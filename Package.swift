// swift-tools-version: 6.1
// Peer: a peer-to-peer node that speaks the BitTorrent protocol family.
// Layers (docs/ARCHITECTURE.md): PeerBase -> Bencode -> Metainfo -> ... -> PeerKit -> peer.
// Protocol cores (PeerBase, Bencode, Metainfo, PeerWire, Tracker, DHT, Swarm, and Storage but for its file
// backend) do no I/O: no sockets, no clock; PeerKit drives them.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Peer",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PeerBase", targets: ["PeerBase"]),
        .library(name: "Bencode", targets: ["Bencode"]),
        .library(name: "Metainfo", targets: ["Metainfo"]),
        .library(name: "PeerWire", targets: ["PeerWire"]),
        .library(name: "Tracker", targets: ["Tracker"]),
        .library(name: "DHT", targets: ["DHT"]),
        .library(name: "UTP", targets: ["UTP"]),
        .library(name: "PortMap", targets: ["PortMap"]),
        .library(name: "Storage", targets: ["Storage"]),
        .library(name: "Swarm", targets: ["Swarm"]),
        .library(name: "Search", targets: ["Search"]),
        .library(name: "Channels", targets: ["Channels"]),
        .library(name: "Live", targets: ["Live"]),
        .library(name: "PeerKit", targets: ["PeerKit"]),
        .library(name: "PeerServer", targets: ["PeerServer"]),
        .library(name: "PeerSimulation", targets: ["PeerSimulation"]),
        .executable(name: "peer", targets: ["peer"]),
        .executable(name: "peer-sim", targets: ["peer-sim"]),
        .executable(name: "peer-bench", targets: ["peer-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/attaswift/BigInt.git", from: "6.0.1"),
        // multipart/form-data bodies: qBittorrent's torrents/add (Sources/PeerServer/Compat).
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.7.1"),
    ],
    targets: [
        .target(name: "PeerBase", swiftSettings: strict),
        .target(name: "Bencode", dependencies: ["PeerBase"], swiftSettings: strict),
        .target(
            name: "Metainfo",
            dependencies: ["PeerBase", "Bencode", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .target(
            name: "PeerWire",
            dependencies: [
                "PeerBase", "Bencode", "Metainfo", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                // Message stream encryption: SHA-1 for its hashes, and the 768-bit Diffie-Hellman exchange.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "BigInt", package: "BigInt"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Tracker",
            dependencies: ["PeerBase", "Bencode", "Metainfo", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .target(
            name: "DHT",
            dependencies: ["PeerBase", "Bencode", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // BEP 29: uTP connections and LEDBAT, sans I/O.
        .target(
            name: "UTP",
            dependencies: ["PeerBase", .product(name: "DequeModule", package: "swift-collections")],
            swiftSettings: strict
        ),
        // Port mapping through home routers: NAT-PMP, PCP and UPnP IGD messages, sans I/O.
        .target(name: "PortMap", swiftSettings: strict),
        .target(
            name: "PeerSimulation",
            dependencies: [
                "DHT", "PeerBase", "Bencode", "Metainfo", "PeerWire", "Storage", "Swarm",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "peer-sim", dependencies: ["PeerSimulation", "DHT", "PeerBase"], swiftSettings: strict),
        .executableTarget(name: "peer-bench", dependencies: ["Search", "PeerBase"], swiftSettings: strict),
        .target(
            name: "Storage",
            dependencies: [
                "PeerBase", "Bencode", "Metainfo", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Swarm",
            dependencies: [
                "PeerBase", "Metainfo", "PeerWire", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                // SHA-1 of the blocks of failed pieces, to tell who sent the corrupt ones (TrustLedger).
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Search",
            dependencies: [
                "PeerBase", "Bencode", "Metainfo", .product(name: "GRDB", package: "GRDB.swift"),
                // SHA-1 and SHA-256: a hit's info dictionary checked against its info-hash.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Channels",
            dependencies: [
                "PeerBase", "Bencode", "Metainfo", "DHT", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Live",
            dependencies: [
                "PeerBase", "Bencode", "Metainfo", "Channels", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PeerKit",
            dependencies: [
                "PeerBase", "Bencode", "Metainfo", "PeerWire", "Storage", "Swarm", "Tracker", "DHT", "Search", "Channels",
                "Live", "UTP", "PortMap", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PeerServer",
            dependencies: [
                "PeerKit", "PeerBase", "Metainfo", "Bencode", "DHT", "Search", "Channels",
                .product(name: "Hummingbird", package: "hummingbird"),
                // The server's own channel handlers (Connections.swift) sit between these two.
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MultipartKit", package: "multipart-kit"),
            ],
            resources: [.copy("Web"), .copy("openapi.json")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "peer",
            dependencies: [
                "PeerBase", "Bencode", "Metainfo", "PeerKit", "PeerServer", "Storage", "DHT", "Search", "Channels",
                "Live", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "PeerBaseTests", dependencies: ["PeerBase"], swiftSettings: strict),
        .testTarget(
            name: "BencodeTests",
            dependencies: ["Bencode", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MetainfoTests",
            dependencies: [
                "Metainfo", "Bencode", "PeerBase", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PeerWireTests",
            dependencies: ["PeerWire", "PeerBase", "Metainfo", "Bencode", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TrackerTests",
            dependencies: ["Tracker", "Metainfo", "Bencode", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DHTTests",
            dependencies: [
                "DHT", "PeerBase", "Bencode", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SearchTests",
            dependencies: [
                "Search", "Metainfo", "PeerBase", "Bencode", .product(name: "PropertyBased", package: "swift-property-based"),
                // ed25519 keys for the index node's signed announces.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ChannelsTests",
            dependencies: [
                "Channels", "DHT", "Bencode", "PeerBase", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "UTPTests", dependencies: ["UTP", "PeerBase"], swiftSettings: strict),
        .testTarget(name: "PortMapTests", dependencies: ["PortMap"], swiftSettings: strict),
        .testTarget(
            name: "LiveTests",
            dependencies: ["Live", "PeerBase", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .testTarget(name: "PeerSimulationTests", dependencies: ["PeerSimulation", "DHT", "PeerBase"], swiftSettings: strict),
        .testTarget(
            name: "StorageTests",
            dependencies: [
                "Storage", "PeerBase", "Metainfo", "Bencode", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwarmTests",
            dependencies: [
                "Swarm", "PeerWire", "PeerBase", "Metainfo", "PeerSimulation", "Storage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PeerKitTests",
            dependencies: [
                "PeerKit", "Metainfo", "PeerBase", "DHT", "UTP", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PeerServerTests",
            dependencies: [
                "PeerServer", "PeerKit", "Metainfo", "PeerBase", "DHT", "Bencode", "Search", "Channels",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strict
        ),
    ]
)
