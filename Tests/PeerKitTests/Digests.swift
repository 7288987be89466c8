import Crypto

/// Reference digests for checking TorrentCreator's output, straight from swift-crypto.
enum Digest {
    static func sha1(_ message: some Collection<UInt8>) -> [UInt8] { Array(Insecure.SHA1.hash(data: Array(message))) }
    static func sha256(_ message: some Collection<UInt8>) -> [UInt8] { Array(SHA256.hash(data: Array(message))) }
}
