// BEP 19: web seeds (GetRight style): a torrent's bytes from plain HTTP(S) servers, by Range request.
// BEP 47: padding files are zeros and never requested.
import AsyncHTTPClient
import Metainfo
import NIOCore
import Storage

/// One web seed (a `url-list` entry or a magnet's `ws`): fetches whole pieces from an HTTP(S) server with
/// Range requests, one per file the piece touches.
///
/// URLs follow BEP 19: for a multi-file torrent the URL is a folder, and a file's URL is the folder, the
/// torrent's name and the file's path, each component percent-encoded (a "/" is added after the folder
/// when it has none); for a single-file torrent a URL ending in "/" gets the name appended, any other is
/// the file itself.
///
/// Every body is bounded by the bytes asked for. A `206` must carry exactly the range asked for. A server
/// that ignores Range and answers `200` with the whole file is still used when the wanted bytes lie within
/// the file's first `maxSkippedBytes` (small files, the first pieces of a big one): the bytes before them
/// are read and dropped, and the transfer is cut off after them. Further in, such a server is refused with
/// `.rangeIgnored`: every piece would cost the whole file up to it.
///
/// The bytes are not checked here: the engine verifies the piece against its hash like any peer's.
public final class WebSeed: Sendable {
    /// The URL as the torrent lists it.
    public let url: String
    private let map: PieceMap
    private let name: String
    private let isMultiFile: Bool
    private let client: HTTPClient
    private let timeout: Duration

    /// The most bytes read and dropped from a `200` response that ignored the Range header.
    public static let maxSkippedBytes = 4 << 20

    /// - Parameters:
    ///   - url: A `url-list` entry (http:// or https://).
    ///   - client: The node's client (its `localAddress`, TLS trust and timeouts apply).
    ///   - timeout: The most one Range request may take, connect to last byte.
    public init(url: String, metainfo: TorrentMetainfo, client: HTTPClient, timeout: Duration = .seconds(60)) {
        self.url = url
        self.map = PieceMap(metainfo)
        self.name = metainfo.name
        self.isMultiFile = metainfo.isMultiFile
        self.client = client
        self.timeout = timeout
    }

    /// True for the URLs a web seed can use: http:// and https:// (BEP 19 also names FTP, which Peer does not
    /// speak).
    public static func supports(_ url: String) -> Bool {
        let lower = url.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://")
    }

    /// One Range request of a piece: which URL, which bytes of the file, where they go in the piece.
    public struct Request: Equatable, Sendable {
        public var url: String
        /// Offset of the first byte in the file.
        public var fileOffset: Int64
        public var length: Int
        /// Offset of the first byte in the piece.
        public var pieceOffset: Int

        public init(url: String, fileOffset: Int64, length: Int, pieceOffset: Int) {
            self.url = url
            self.fileOffset = fileOffset
            self.length = length
            self.pieceOffset = pieceOffset
        }

        /// The `Range` header value: `bytes=first-last` (inclusive).
        public var rangeHeader: String { "bytes=\(self.fileOffset)-\(self.fileOffset + Int64(self.length) - 1)" }
    }

    /// The requests that make up `piece` (padding spans need none), or nil when there is no such piece.
    public func requests(piece: Int) -> [Request]? {
        guard let index = self.map.index(piece) else { return nil }
        return self.map.spans(piece: index).filter { !$0.isPadding }.map { span in
            Request(url: Self.fileURL(base: self.url, file: self.map.files[span.fileIndex], name: self.name,
                isMultiFile: self.isMultiFile), fileOffset: span.fileOffset, length: span.length,
                pieceOffset: span.pieceOffset)
        }
    }

    /// The size of `piece` in bytes, or nil when there is no such piece.
    public func pieceSize(_ piece: Int) -> Int? {
        self.map.index(piece).map(self.map.pieceSize)
    }

    /// A file's URL under a web seed's URL (BEP 19).
    /// - Parameters:
    ///   - base: The `url-list` entry.
    ///   - file: The file; in a multi-file torrent its `path` starts with the torrent's name.
    public static func fileURL(base: String, file: TorrentFile, name: String, isMultiFile: Bool) -> String {
        if isMultiFile {
            let folder = base.hasSuffix("/") ? base : base + "/"
            return folder + file.path.map(Self.percentEncode).joined(separator: "/")
        }
        return base.hasSuffix("/") ? base + Self.percentEncode(name) : base
    }

    /// Percent-encodes one path component: RFC 3986 unreserved characters stay, every other UTF-8 byte
    /// becomes `%XX`.
    public static func percentEncode(_ component: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in component.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0x0f)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Fetches the bytes of one whole piece (padding as zeros).
    /// - Throws: `WebSeedError`.
    public func fetch(piece: Int) async throws -> [UInt8] {
        guard let requests = self.requests(piece: piece), let size = self.pieceSize(piece) else {
            throw WebSeedError.noSuchPiece(piece)
        }
        var bytes = [UInt8](repeating: 0, count: size)
        for r in requests {
            let part = try await self.fetch(r)
            bytes.replaceSubrange(r.pieceOffset..<r.pieceOffset + r.length, with: part)
        }
        return bytes
    }

    /// One Range request, its body bounded by the length asked for.
    func fetch(_ r: Request) async throws -> [UInt8] {
        do {
            return try await PeerHTTP.stream(self.client, url: r.url, headers: [("Range", r.rangeHeader)],
                timeout: self.timeout, accept: [200, 206]) { head, body in
                if head.status.code == 206 {
                    try Self.checkContentRange(head, r)
                    return try await Self.read(body, skip: 0, length: r.length, exact: true)
                }
                // 200: the server ignored Range and sends the file from its first byte.
                guard r.fileOffset <= Int64(Self.maxSkippedBytes) else { throw WebSeedError.rangeIgnored(url: r.url) }
                if let total = head.contentLength, Int64(total) < r.fileOffset + Int64(r.length) {
                    throw HTTPFetchError.shortBody(expected: Int(r.fileOffset) + r.length, received: total)
                }
                return try await Self.read(body, skip: Int(r.fileOffset), length: r.length, exact: false)
            }
        } catch let e as WebSeedError {
            throw e
        } catch let e as HTTPFetchError {
            throw WebSeedError.http(url: r.url, e)
        } catch {
            throw WebSeedError.http(url: r.url, HTTPFetchError(error))
        }
    }

    /// A 206's `Content-Range` must be the range asked for; without one, `Content-Length` must be its length.
    private static func checkContentRange(_ head: PeerHTTP.Head, _ r: Request) throws {
        let last = r.fileOffset + Int64(r.length) - 1
        if let range = head.headers.first(name: "content-range") {
            let expected = "bytes \(r.fileOffset)-\(last)/"
            guard range.lowercased().hasPrefix(expected) else {
                throw HTTPFetchError.badResponse("Content-Range \"\(range)\" is not the \(r.rangeHeader) asked for")
            }
        } else if let length = head.contentLength, length != r.length {
            throw HTTPFetchError.badResponse("206 without Content-Range, of \(length) bytes instead of \(r.length)")
        }
    }

    /// Reads `skip` bytes and drops them, then `length` bytes. With `exact`, more bytes than that is an error;
    /// otherwise the rest is not read (the request is cancelled).
    private static func read(_ body: HTTPClientResponse.Body, skip: Int, length: Int, exact: Bool) async throws
        -> [UInt8]
    {
        var out: [UInt8] = []
        out.reserveCapacity(length)
        var toSkip = skip
        for try await chunk in body {
            var view = chunk.readableBytesView[...]
            if toSkip > 0 {
                let n = min(toSkip, view.count)
                toSkip -= n
                view = view.dropFirst(n)
            }
            guard out.count + view.count <= length else {
                if exact { throw HTTPFetchError.tooLarge(limit: length) }
                out.append(contentsOf: view.prefix(length - out.count))
                return out
            }
            out.append(contentsOf: view)
            if !exact && out.count == length { return out }
        }
        guard out.count == length else {
            throw HTTPFetchError.shortBody(expected: skip + length, received: skip - toSkip + out.count)
        }
        return out
    }
}

/// Why a web seed could not deliver a piece.
public enum WebSeedError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The request failed: status, body too short or too long, a wrong Content-Range, timeout, connection.
    case http(url: String, HTTPFetchError)
    /// The server ignored the Range header for bytes far into a file (see `WebSeed.maxSkippedBytes`).
    case rangeIgnored(url: String)
    /// The torrent has no such piece.
    case noSuchPiece(Int)

    /// True when retrying cannot help: the server will answer the same way (the engine drops the web seed).
    public var isPermanent: Bool {
        switch self {
        case .rangeIgnored, .noSuchPiece: true
        case .http(_, let e):
            switch e {
            case .status(let code, _): code == 404 || code == 410 || code == 416 || code == 403 || code == 401
            case .badResponse, .untrusted: true
            default: false
            }
        }
    }

    public var description: String {
        switch self {
        case .http(let url, let e): "\(url): \(e)"
        case .rangeIgnored(let url):
            "\(url): the server ignores Range requests (answers 200 with the whole file), and the piece lies more "
                + "than \(WebSeed.maxSkippedBytes >> 20) MiB into it"
        case .noSuchPiece(let p): "no piece \(p) in this torrent"
        }
    }
}
