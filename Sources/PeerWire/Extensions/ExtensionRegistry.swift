// BEP 10: the extension protocol's local message ids, in one place.

/// The extensions this node offers in its extended handshake, by name, with the id it wants each sent with
/// (the `m` dictionary of BEP 10). ut_metadata and ut_pex are built in; later extensions (search, channels,
/// live streams, hole punching) register a name and get the next free id, and their messages reach whoever
/// registered them instead of being dropped as unknown.
public struct ExtensionRegistry: Sendable, Equatable {
    /// Our id for ut_pex (BEP 11).
    public static let utPex: UInt8 = 1
    /// Our id for ut_metadata (BEP 9).
    public static let utMetadata: UInt8 = 3

    public private(set) var ids: [String: UInt8]

    /// The built-in extensions: ut_metadata, and ut_pex unless `pex` is false (private torrents, BEP 27).
    public init(pex: Bool = true) {
        self.ids = [UTMetadataMessage.name: Self.utMetadata]
        if pex { self.ids[PEXMessage.name] = Self.utPex }
    }

    /// Adds an extension and returns its id (the one it has, if it is registered already).
    @discardableResult
    public mutating func register(_ name: String) -> UInt8 {
        if let id = self.ids[name] { return id }
        let used = Set(self.ids.values)
        let id = (UInt8(1)...UInt8.max).first { !used.contains($0) }!
        self.ids[name] = id
        return id
    }

    /// The name of the extension a message sent to us with `id` belongs to.
    public func name(of id: UInt8) -> String? { self.ids.first { $0.value == id }?.key }
}
