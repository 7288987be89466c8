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
        if let header = request.headers[.range], !ByteRange.countsInAnotherUnit(header) {
            guard let r = ByteRange.parse(header, length: file.length) else {
                var e = APIError(.rangeNotSatisfiable, "range_not_satisfiable",
                    "\(header) names no bytes of the file (\(file.length) bytes); expected bytes=A-B, bytes=A- or bytes=-N")
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

/// `Range: bytes=A-B`, `bytes=A-` and `bytes=-N` (RFC 9110 §14.1.2), several separated by commas.
///
/// The answer is the first satisfiable range of the list, as one part that `Content-Range` names: players ask
/// for one range, and multipart/byteranges would be code for nobody. Nil (416) for a header that names no
/// byte of the file, and also for one that does not parse: a client that sent it wants part of the file, and
/// all of it with 200 would look like an answer to what it asked (RFC 9110 §14.2 lets a server reject an
/// invalid range set). A range in another unit (`items=0-5`) is ignored instead, as §14.2 requires.
enum ByteRange {
    /// `UNIT=…` with a unit other than `bytes`: the header is ignored (the whole file, 200).
    static func countsInAnotherUnit(_ header: String) -> Bool {
        guard let eq = header.firstIndex(of: "=") else { return false }
        let unit = header[..<eq]
        return !unit.isEmpty && unit.lowercased() != "bytes"
            && unit.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "!#$%&'*+-.^_`|~".contains($0)) }
    }

    static func parse(_ header: String, length: Int64) -> ClosedRange<Int64>? {
        guard header.prefix(6).lowercased() == "bytes=" else { return nil }
        // List elements may be empty and have spaces around them (RFC 9110 §5.6.1).
        let elements = header.dropFirst(6).split(separator: ",").map { $0.trimmingCharacters(in: [" ", "\t"]) }
            .filter { !$0.isEmpty }
        var specs: [(first: Int64?, last: Int64?)] = []
        for element in elements {
            let parts = element.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !(parts[0].isEmpty && parts[1].isEmpty),
                parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } })
            else { return nil }
            // More digits than Int64 holds: past the end of any file.
            let first = parts[0].isEmpty ? nil : Int64(parts[0]) ?? .max
            let last = parts[1].isEmpty ? nil : Int64(parts[1]) ?? .max
            if let first, let last, last < first { return nil }
            specs.append((first, last))
        }
        for spec in specs {
            if let first = spec.first {
                if first < length { return first...min(spec.last ?? (length - 1), length - 1) }
            } else if let suffix = spec.last, suffix > 0, length > 0 {
                return max(0, length - suffix)...(length - 1)
            }
        }
        return nil
    }
}
