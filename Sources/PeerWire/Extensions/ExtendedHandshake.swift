// BEP 10: the extended handshake (extension message id 0).
import Bencode
import NIOCore

/// The BEP 10 handshake dictionary: which extensions a peer speaks and under which message ids.
public struct ExtendedHandshake: Equatable, Sendable {
    /// Extension name -> the message id the sender wants to receive it under (0 means disabled).
    public var extensions: [String: UInt8]
    /// Client name and version (`v`).
    public var client: String?
    /// The sender's listen port (`p`).
    public var listenPort: UInt16?
    /// How many outstanding requests the sender accepts (`reqq`).
    public var requestQueue: Int?
    /// The receiver's address as the sender sees it (`yourip`, 4 or 16 bytes).
    public var yourIP: [UInt8]?
    /// BEP 9: the size of the info dictionary.
    public var metadataSize: Int?
    /// BEP 21: the sender only uploads.
    public var uploadOnly: Bool

    public init(
        extensions: [String: UInt8] = [:], client: String? = nil, listenPort: UInt16? = nil,
        requestQueue: Int? = nil, yourIP: [UInt8]? = nil, metadataSize: Int? = nil, uploadOnly: Bool = false
    ) {
        self.extensions = extensions
        self.client = client
        self.listenPort = listenPort
        self.requestQueue = requestQueue
        self.yourIP = yourIP
        self.metadataSize = metadataSize
        self.uploadOnly = uploadOnly
    }

    /// Parses the payload of an extended message with id 0. Unknown keys are ignored; values of the
    /// wrong type are ignored too (clients disagree on some), but the payload must be a bencoded dictionary.
    public init(decoding payload: ByteBuffer) throws(PeerWireError) {
        let bytes = Array(payload.readableBytesView)
        let root: BencodeValue
        do { root = try BencodeDecoder(limits: .message).decodeValue(bytes) } catch {
            throw .badExtension("extended handshake: \(error)")
        }
        guard let d = root.dictionary else { throw .badExtension("extended handshake is not a dictionary") }
        var exts: [String: UInt8] = [:]
        if let m = d["m"]?.dictionary {
            for (k, v) in m {
                guard let name = String(validating: k, as: UTF8.self), let id = v.integer, id >= 0, id <= 255
                else { continue }
                exts[name] = UInt8(id)
            }
        }
        self.extensions = exts
        self.client = d["v"]?.utf8
        self.listenPort = d["p"]?.integer.flatMap { $0 > 0 && $0 <= 65535 ? UInt16($0) : nil }
        self.requestQueue = d["reqq"]?.integer.flatMap { $0 > 0 && $0 <= 100_000 ? Int($0) : nil }
        self.yourIP = d["yourip"]?.bytes.flatMap { $0.count == 4 || $0.count == 16 ? $0 : nil }
        self.metadataSize = d["metadata_size"]?.integer.flatMap {
            $0 > 0 && $0 <= Int64(WireLimits.maxMetadataSize) ? Int($0) : nil
        }
        self.uploadOnly = (d["upload_only"]?.integer ?? 0) != 0
    }

    /// The bencoded payload (without the extended message id).
    public func encoded() -> ByteBuffer {
        var d = BencodeDictionary()
        var m = BencodeDictionary()
        for (k, v) in self.extensions { m[k] = .integer(Int64(v)) }
        d["m"] = .dictionary(m)
        if let v = self.client { d["v"] = .text(v) }
        if let p = self.listenPort { d["p"] = .integer(Int64(p)) }
        if let q = self.requestQueue { d["reqq"] = .integer(Int64(q)) }
        if let ip = self.yourIP { d["yourip"] = .string(ip) }
        if let s = self.metadataSize { d["metadata_size"] = .integer(Int64(s)) }
        if self.uploadOnly { d["upload_only"] = 1 }
        return ByteBuffer(bytes: BencodeEncoder.encode(.dictionary(d)))
    }
}
