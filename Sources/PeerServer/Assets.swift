import Foundation
import Hummingbird
import PeerKit

/// The web UI's files (Sources/PeerServer/Web, copied into the bundle) and the OpenAPI document, read once.
enum Assets {
    static let web: [String: [UInt8]] = {
        guard let folder = Bundle.module.url(forResource: "Web", withExtension: nil),
            let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path)
        else { return [:] }
        var files: [String: [UInt8]] = [:]
        for name in names {
            if let data = FileManager.default.contents(atPath: folder.path + "/" + name) { files[name] = [UInt8](data) }
        }
        return files
    }()

    static let openAPI: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
            let data = try? Data(contentsOf: url)
        else { return Array("{}".utf8) }
        return [UInt8](data)
    }()

    /// Pages may load only what this server serves (no other hosts), and no page may frame them.
    static let policy = "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; "
        + "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"

    static func page(_ name: String) -> Response {
        guard let bytes = Self.web[name] else {
            return APIError.notFound("no \(name) in the web UI (the bundle Peer_PeerServer.resources is missing?)").response
        }
        return Response(status: .ok,
            headers: [.contentType: Self.contentType(name), .contentSecurityPolicy: Self.policy, .cacheControl: "no-cache"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The web UI's own types, else the media types PeerKit knows.
    static func contentType(_ name: String) -> String {
        if name.hasSuffix(".js") { return "text/javascript; charset=utf-8" }
        if name.hasSuffix(".css") { return "text/css; charset=utf-8" }
        if name.hasSuffix(".svg") { return "image/svg+xml" }
        if name.hasSuffix(".ico") { return "image/x-icon" }
        return MediaType.of(name)
    }
}
