// swift-tools-version:6.1
// Oasis: a library-OS network toolkit. See README.md and DESIGN.md.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // Spans returned from properties (`Packet.bytes`) and non-escapable views over
    // them (the wire module's parsers): the feature swift-collections builds with.
    .enableExperimentalFeature("Lifetimes"),
]

let package = Package(
    name: "Oasis",
    products: [
        .executable(name: "oasis", targets: ["oasis"]),
        .library(name: "OasisBits", targets: ["OasisBits"]),
        .library(name: "OasisWire", targets: ["OasisWire"]),
        .library(name: "OasisLoop", targets: ["OasisLoop"]),
        .library(name: "OasisDevices", targets: ["OasisDevices"]),
        .library(name: "OasisXen", targets: ["OasisXen"]),
        .library(name: "OasisNet", targets: ["OasisNet"]),
        .library(name: "OasisTCP", targets: ["OasisTCP"]),
        .library(name: "OasisOpenFlow", targets: ["OasisOpenFlow"]),
        .library(name: "OasisSwitch", targets: ["OasisSwitch"]),
        .library(name: "OasisController", targets: ["OasisController"]),
        .library(name: "OasisDNS", targets: ["OasisDNS"]),
        .library(name: "OasisServices", targets: ["OasisServices"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // bench/ only: counts heap allocations per packet (LD_PRELOADed by bench/run.sh).
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
    ],
    targets: [
        // C shims: only what Swift cannot call directly.
        .target(
            name: "CTap", path: "CShims/CTap"),
        .target(
            name: "CPcap", path: "CShims/CPcap",
            linkerSettings: [.linkedLibrary("pcap")]),
        .target(name: "CSocket", path: "CShims/CSocket"),
        .target(name: "CXdp", path: "CShims/CXdp"),
        .target(name: "CPrefetch", path: "CShims/CPrefetch"),
        .target(name: "CBlock", path: "CShims/CBlock"),
        .target(
            name: "CXen", path: "CShims/CXen",
            linkerSettings: [
                .linkedLibrary("xenctrl"), .linkedLibrary("xengnttab"),
                .linkedLibrary("xenevtchn"), .linkedLibrary("xenstore"),
            ]),

        // Swift core.
        .target(
            name: "OasisBits",
            exclude: ["README.md"],
            swiftSettings: strict),
        // Every header as a view and a representation, parse and emit, checksums,
        // addresses: used by the stack, the switch, the controller and the pcap tools.
        .target(
            name: "OasisWire",
            dependencies: ["OasisBits"],
            exclude: ["README.md"],
            swiftSettings: strict),
        .target(
            name: "OasisLoop",
            dependencies: [
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            exclude: ["README.md"],
            swiftSettings: strict),
        .target(
            name: "OasisDevices",
            dependencies: [
                "OasisWire",
                "CTap", "CPcap", "CXdp", "CBlock", "OasisBits", "OasisLoop",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict),
        .target(
            name: "OasisXen",
            dependencies: [
                "OasisWire",
                "CXen", "OasisBits", "OasisLoop", "OasisDevices",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict),
        .target(
            name: "OasisTCP",
            dependencies: ["OasisWire", "OasisBits"],
            swiftSettings: strict),
        .target(
            name: "OasisNet",
            dependencies: [
                "OasisWire", "OasisTCP",
                "CSocket", "OasisBits", "OasisLoop", "OasisDevices",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            exclude: ["README.md"],
            swiftSettings: strict),
        .target(
            name: "OasisOpenFlow",
            dependencies: ["OasisWire", "OasisBits"],
            exclude: ["README.md"],
            swiftSettings: strict),
        // The OpenFlow 1.0 controller (NOX-style) and its applications, on the Stream
        // surface: kernel sockets or the Oasis stack's TCP.
        .target(
            name: "OasisController",
            dependencies: [
                "OasisOpenFlow", "OasisNet", "OasisLoop", "OasisBits", "OasisWire",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            exclude: ["README.md"],
            swiftSettings: strict),
        .target(
            name: "OasisSwitch",
            dependencies: [
                "OasisWire", "OasisBits", "OasisLoop", "OasisDevices", "OasisNet", "OasisOpenFlow",
            ],
            swiftSettings: strict),
        .target(
            name: "OasisDNS",
            dependencies: ["CPrefetch", "OasisBits", "OasisWire"],
            exclude: ["README.md"],
            swiftSettings: strict),
        // Applications written against the Datagram and Stream surfaces: they run on
        // the Oasis stack or on kernel sockets unchanged.
        .target(
            name: "OasisServices",
            dependencies: [
                "OasisWire",
                "OasisBits", "OasisLoop", "OasisNet", "OasisDNS",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "oasis",
            dependencies: [
                "OasisWire",
                "OasisBits", "OasisLoop", "OasisDevices", "OasisXen", "OasisNet", "OasisOpenFlow",
                "OasisController", "OasisDNS", "OasisServices", "OasisSwitch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            // The stack is specialised here, once per device. LLVM's function merging
            // would fold twin specialisations (AF_XDP's and pcap's) into one that calls
            // through a pointer; bench/dispatch.sh counts what is left on the path.
            swiftSettings: strict + [
                .unsafeFlags(
                    ["-Xfrontend", "-disable-llvm-merge-functions-pass"],
                    .when(configuration: .release))
            ]),

        // The benchmark harness (bench/README.md): built with the package so it never
        // rots, run by `make bench`.
        .target(name: "CFloor", path: "bench/Sources/CFloor"),
        .executableTarget(
            name: "oasis-bench",
            dependencies: [
                "OasisWire",
                "CFloor", "OasisBits", "OasisLoop", "OasisDevices", "OasisNet", "OasisOpenFlow",
                "OasisXen", "OasisDNS", "OasisServices",
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            path: "bench/Sources/oasis-bench",
            swiftSettings: strict),

        // Fuzz targets, one per parser (Fuzz/README.md, scripts/fuzz.sh).
        .target(name: "FuzzSupport", path: "Fuzz/FuzzSupport", swiftSettings: strict),
        .executableTarget(
            name: "FuzzBits", dependencies: ["FuzzSupport", "OasisBits"], path: "Fuzz/FuzzBits",
            exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzEthernet", dependencies: ["FuzzSupport", "OasisBits", "OasisWire"],
            path: "Fuzz/FuzzEthernet", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzARP", dependencies: ["FuzzSupport", "OasisBits", "OasisNet", "OasisWire"],
            path: "Fuzz/FuzzARP", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzIPv4", dependencies: ["FuzzSupport", "OasisBits", "OasisNet", "OasisWire"],
            path: "Fuzz/FuzzIPv4", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzICMP", dependencies: ["FuzzSupport", "OasisBits", "OasisWire"],
            path: "Fuzz/FuzzICMP", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzDHCP", dependencies: ["FuzzSupport", "OasisBits", "OasisWire"],
            path: "Fuzz/FuzzDHCP", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzUDP", dependencies: ["FuzzSupport", "OasisBits", "OasisWire"],
            path: "Fuzz/FuzzUDP", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzStack",
            dependencies: [
                "FuzzSupport", "OasisBits", "OasisDevices", "OasisLoop", "OasisNet",
                "OasisServices",
                "OasisWire",
            ],
            path: "Fuzz/FuzzStack", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzTCP", dependencies: ["FuzzSupport", "OasisBits", "OasisWire"],
            path: "Fuzz/FuzzTCP", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzTCPConnection",
            dependencies: ["FuzzSupport", "OasisBits", "OasisTCP", "OasisWire"],
            path: "Fuzz/FuzzTCPConnection", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzOpenFlow", dependencies: ["FuzzSupport", "OasisBits", "OasisOpenFlow"],
            path: "Fuzz/FuzzOpenFlow", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzSwitch",
            dependencies: [
                "FuzzSupport", "OasisBits", "OasisDevices", "OasisLoop", "OasisOpenFlow",
                "OasisSwitch",
            ],
            path: "Fuzz/FuzzSwitch", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzXenRing", dependencies: ["FuzzSupport", "OasisXen"],
            path: "Fuzz/FuzzXenRing", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzDNSMessage", dependencies: ["FuzzSupport", "OasisBits", "OasisDNS"],
            path: "Fuzz/FuzzDNSMessage", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzZoneFile", dependencies: ["FuzzSupport", "OasisDNS"],
            path: "Fuzz/FuzzZoneFile", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzZoneDisk", dependencies: ["FuzzSupport", "OasisDNS"],
            path: "Fuzz/FuzzZoneDisk", exclude: ["corpus"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzZoneInclude", dependencies: ["FuzzSupport", "OasisDNS"],
            path: "Fuzz/FuzzZoneInclude", exclude: ["corpus"], swiftSettings: strict),

        // Tests.
        .testTarget(name: "OasisBitsTests", dependencies: ["OasisBits"], swiftSettings: strict),
        .testTarget(name: "OasisLoopTests", dependencies: ["OasisLoop"], swiftSettings: strict),
        .target(
            name: "OasisTestSupport", dependencies: ["OasisWire", "OasisDevices"],
            path: "Tests/OasisTestSupport",
            swiftSettings: strict),
        .testTarget(
            name: "OasisStackTests", dependencies: ["OasisWire", "OasisTestSupport", "oasis"],
            swiftSettings: strict),
        .testTarget(
            name: "OasisDevicesTests",
            dependencies: ["OasisWire", "OasisDevices", "OasisLoop", "OasisTestSupport"],
            swiftSettings: strict),
        // Xen's io/ring.h macros wrapped for the ring tests (the reference implementation).
        .target(
            name: "CXenRingReference", dependencies: ["CXen"], path: "Tests/CXenRingReference"),
        .testTarget(
            name: "OasisXenTests",
            dependencies: ["OasisWire", "OasisXen", "CXenRingReference", "OasisTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "OasisWireTests",
            dependencies: ["OasisBits", "OasisWire", "OasisDevices", "OasisTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "OasisNetTests", dependencies: ["OasisWire", "OasisNet", "OasisTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "OasisTCPTests",
            dependencies: ["OasisWire", "OasisTCP", "OasisBits", "OasisTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "OasisCommandTests",
            dependencies: [
                "OasisWire", "oasis", "OasisLoop", "OasisOpenFlow", "OasisBits", "OasisTestSupport",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "OasisDNSTests", dependencies: ["OasisDNS", "OasisTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "OasisServicesTests",
            dependencies: [
                "OasisServices", "OasisNet", "OasisLoop", "OasisWire", "OasisTestSupport",
                "OasisDNS",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "OasisControllerTests",
            dependencies: [
                "OasisController", "OasisOpenFlow", "OasisNet", "OasisLoop", "OasisBits",
                "OasisWire", "OasisTestSupport", "oasis",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "OasisOpenFlowTests",
            dependencies: [
                "OasisWire", "OasisOpenFlow", "OasisTestSupport", "OasisSwitch", "OasisDevices",
                "OasisLoop", "OasisBits",
            ],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
