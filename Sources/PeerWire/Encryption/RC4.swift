/// The RC4 stream cipher, as message stream encryption uses it (keys from SHA-1, the first 1024 bytes of
/// keystream thrown away). Obfuscation against traffic shaping, not secrecy: RC4 is broken, and MSE knows it.
///
/// No maintained Swift package offers RC4 any more (swift-crypto and BoringSSL dropped it), and it is 30 lines.
public struct RC4: Sendable {
    private var state: [UInt8]
    private var i: UInt8 = 0
    private var j: UInt8 = 0

    /// - Parameter key: 1–256 bytes.
    public init(key: [UInt8]) {
        precondition(!key.isEmpty && key.count <= 256, "an RC4 key is 1 to 256 bytes")
        var s = (0...255).map { UInt8($0) }
        var j: UInt8 = 0
        for i in 0..<256 {
            j = j &+ s[i] &+ key[i % key.count]
            s.swapAt(i, Int(j))
        }
        self.state = s
    }

    /// Advances the keystream by `count` bytes without using them.
    public mutating func discard(_ count: Int) {
        var scratch = [UInt8](repeating: 0, count: count)
        self.apply(&scratch)
    }

    /// XORs `bytes` with the next keystream bytes (encrypting and decrypting are the same).
    public mutating func apply(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { self.apply($0) }
    }

    public mutating func apply(_ bytes: UnsafeMutableRawBufferPointer) {
        var (i, j) = (self.i, self.j)
        self.state.withUnsafeMutableBufferPointer { s in
            for n in 0..<bytes.count {
                i &+= 1
                let si = s[Int(i)]
                j &+= si
                let sj = s[Int(j)]
                s[Int(i)] = sj
                s[Int(j)] = si
                bytes[n] ^= s[Int(si &+ sj)]
            }
        }
        (self.i, self.j) = (i, j)
    }
}
