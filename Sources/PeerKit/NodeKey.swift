#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Crypto
import Foundation
import PeerBase

/// A file that holds a secret for its owner alone (mode 0600): the API token, the Torznab API key, the node's
/// ed25519 key.
public enum SecretFile {
    /// The file's text without surrounding white space, its mode made 0600 again; nil when it cannot be read.
    public static func read(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else { return nil }
        chmod(path, 0o600)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes `text` and a newline to `path`, created (or truncated) with mode 0600 before a byte is written.
    public static func create(_ text: String, at path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SecretFileError(path: path, action: "create", errno: errno) }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let bytes = Array((text + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            throw SecretFileError(path: path, action: "write", errno: errno)
        }
    }

    /// The secret in `path`, or a new one (32 random bytes in hex) written there when the file is missing or
    /// `accept` refuses what it holds.
    public static func loadOrCreate(_ path: String, accept: (String) -> Bool = { $0.count >= 32 }) throws -> String {
        if let text = Self.read(path), accept(text) { return text }
        let secret = Self.randomHex(32)
        try Self.create(secret, at: path)
        return secret
    }

    public static func randomHex(_ bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return Hex.encode((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &g) })
    }
}

public struct SecretFileError: Error, CustomStringConvertible {
    public var path: String
    public var action: String
    public var errno: Int32
    public var description: String { "cannot \(self.action) \(self.path): \(String(cString: strerror(self.errno)))" }
}

/// An ed25519 key in a file: 64 hex digits of its seed, mode 0600. The node's own key (`STATE/node-key`) signs
/// its announces to index nodes; `peer dht keygen` writes keys for BEP 44 mutable items.
public enum NodeKey {
    /// The node's key in its state folder.
    public static let fileName = "node-key"

    /// The key in `path`.
    /// - Throws: `NodeKeyError` when the file cannot be read or does not hold a key.
    public static func load(_ path: String) throws(NodeKeyError) -> Curve25519.Signing.PrivateKey {
        guard let text = SecretFile.read(path) else { throw NodeKeyError(path: path, reason: "cannot read it") }
        guard let seed = Hex.decode(text), seed.count == 32,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        else { throw NodeKeyError(path: path, reason: "not a key file (64 hex digits of an ed25519 seed)") }
        return key
    }

    /// The key in `path`, or a new one written there when there is no such file (a file that holds something
    /// else is an error, never overwritten).
    public static func loadOrCreate(_ path: String) throws -> Curve25519.Signing.PrivateKey {
        if FileManager.default.fileExists(atPath: path) { return try Self.load(path) }
        let key = Curve25519.Signing.PrivateKey()
        try Self.write(key, to: path)
        return key
    }

    /// Writes `key` to a new file of mode 0600.
    public static func write(_ key: Curve25519.Signing.PrivateKey, to path: String) throws {
        try SecretFile.create(Hex.encode(Array(key.rawRepresentation)), at: path)
    }

    /// The public half in hex, as BEP 44 and the index node show it.
    public static func publicHex(_ key: Curve25519.Signing.PrivateKey) -> String {
        Hex.encode(Array(key.publicKey.rawRepresentation))
    }
}

public struct NodeKeyError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(self.path): \(self.reason)" }
}
