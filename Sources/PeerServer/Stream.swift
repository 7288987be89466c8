import Hummingbird
import PeerKit

extension PeerServer {
    /// The largest piece of a stream read at once.
    static let streamChunk = 1 << 20

    /// A file's bytes with HTTP Range: verified pieces at once, missing ones fetched first and waited for.
    static func stream(_ request: Request, session: Session, id: String, index: Int) async throws -> Response {
        let file = try await session.streamFile(id, index: index)
        var headers: HTTPFields = [.contentType: file.mime, .acceptRanges: "bytes", .cacheControl: "no-store"]
        let range: ClosedRange<Int64>
        var status = HTTPResponse.Status.ok
        if let header = request.headers[.range] {
            guard let r = ByteRange.parse(header, length: file.length) else {
                var e = APIError(.rangeNotSatisfiable, "range_not_satisfiable",
                    "\(header) is outside the file (\(file.length) bytes)")
                e.headers[.contentRange] = "bytes */\(file.length)"
                throw e
            }
            range = r
            status = .partialContent
            headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound)/\(file.length)"
        } else if file.length == 0 {
            headers[.contentLength] = "0"
            return Response(status: .ok, headers: headers)
        } else {
            range = 0...(file.length - 1)
        }
        // The first bytes before the status line: a piece that never comes is a 503, not a cut response.
        let first = try await session.read(id, index: index, offset: range.lowerBound,
            maxLength: Int(min(Int64(Self.streamChunk), range.upperBound - range.lowerBound + 1)))
        let total = Int(range.upperBound - range.lowerBound + 1)
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: total) { writer in
            try await writer.write(ByteBuffer(bytes: first))
            var offset = range.lowerBound + Int64(first.count)
            while offset <= range.upperBound {
                let bytes = try await session.read(id, index: index, offset: offset,
                    maxLength: Int(min(Int64(Self.streamChunk), range.upperBound - offset + 1)))
                try await writer.write(ByteBuffer(bytes: bytes))
                offset += Int64(bytes.count)
            }
            try await writer.finish(nil)
        })
    }
}

/// `Range: bytes=A-B`, `bytes=A-` and `bytes=-N` (one range; several are answered with the first).
enum ByteRange {
    static func parse(_ header: String, length: Int64) -> ClosedRange<Int64>? {
        guard header.hasPrefix("bytes="), length > 0 else { return nil }
        let first = header.dropFirst(6).split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let parts = first.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let n = Int64(parts[1]), n > 0 else { return nil }
            return max(0, length - n)...(length - 1)
        }
        guard let start = Int64(parts[0]), start >= 0, start < length else { return nil }
        if parts[1].isEmpty { return start...(length - 1) }
        guard let end = Int64(parts[1]), end >= start else { return nil }
        return start...min(end, length - 1)
    }
}
