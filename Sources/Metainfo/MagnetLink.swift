// BEP 9 (magnet links), BEP 53 (select-only `so`), BEP 52 (`urn:btmh:` for v2).
import PeerBase

/// A magnet link: `magnet:?xt=urn:btih:…&xt=urn:btmh:1220…&dn=…&tr=…&ws=…&x.pe=…&so=…&xl=…`.
public struct MagnetLink: Hashable, Sendable, CustomStringConvertible {
    public var infoHashes: InfoHashes
    /// Display name (`dn`).
    public var displayName: String?
    /// Trackers (`tr`), in order, without duplicates.
    public var trackers: [String]
    /// Web seeds (`ws`).
    public var webSeeds: [String]
    /// Peer addresses (`x.pe`) as written: `host:port`, `[v6]:port`.
    public var peers: [String]
    /// File indices to download (`so`, BEP 53), expanded; empty means all.
    public var selectedFiles: [Int]
    /// Exact total length (`xl`).
    public var exactLength: Int64?

    public init(
        infoHashes: InfoHashes, displayName: String? = nil, trackers: [String] = [], webSeeds: [String] = [],
        peers: [String] = [], selectedFiles: [Int] = [], exactLength: Int64? = nil
    ) {
        self.infoHashes = infoHashes
        self.displayName = displayName
        self.trackers = trackers
        self.webSeeds = webSeeds
        self.peers = peers
        self.selectedFiles = selectedFiles
        self.exactLength = exactLength
    }

    /// The longest magnet link accepted.
    public static let maxLength = 64 * 1024
    /// The most file indices a `so` range may expand to.
    public static let maxSelectedFiles = 1 << 20

    /// Parses a magnet link.
    /// - Throws: `MetainfoError.magnet` saying what is wrong.
    public init(parsing text: String) throws(MetainfoError) {
        guard text.utf8.count <= Self.maxLength else {
            throw .magnet("longer than \(Self.maxLength) bytes")
        }
        guard text.lowercased().hasPrefix("magnet:?") else {
            throw .magnet("it must start with \"magnet:?\"")
        }
        let query = text.dropFirst("magnet:?".count)
        var v1: InfoHashV1?
        var v2: InfoHashV2?
        var name: String?
        var trackers: [String] = []
        var webSeeds: [String] = []
        var peers: [String] = []
        var selected: [Int] = []
        var length: Int64?
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            var key = kv[0].lowercased()
            // Numbered parameters (`xt.1`, `tr.2`) mean the same as the plain ones.
            if let dot = key.lastIndex(of: "."), key[key.index(after: dot)...].allSatisfy(\.isNumber),
                dot != key.index(before: key.endIndex)
            {
                key = String(key[..<dot])
            }
            let raw = kv.count > 1 ? String(kv[1]) : ""
            guard let value = Self.percentDecode(raw, plusIsSpace: key == "dn") else {
                throw .magnet("parameter \"\(key)\" has a bad percent escape")
            }
            switch key {
            case "xt":
                let lower = value.lowercased()
                if lower.hasPrefix("urn:btih:") {
                    let h = value.dropFirst("urn:btih:".count)
                    let bytes: [UInt8]?
                    switch h.count {
                    case 40: bytes = Hex.decode(h)
                    case 32: bytes = Base32.decode(h)
                    default:
                        throw .magnet("urn:btih: needs 40 hex or 32 base32 characters, found \(h.count)")
                    }
                    guard let bytes, bytes.count == 20 else { throw .magnet("urn:btih: hash \"\(h)\" is not valid") }
                    if let v1, v1.bytes != bytes { throw .magnet("two different urn:btih: hashes") }
                    v1 = InfoHashV1(bytes)
                } else if lower.hasPrefix("urn:btmh:") {
                    let h = value.dropFirst("urn:btmh:".count)
                    guard let mh = Hex.decode(h) else { throw .magnet("urn:btmh: hash is not hexadecimal") }
                    guard mh.count == 34, mh[0] == 0x12, mh[1] == 0x20 else {
                        throw .magnet("urn:btmh: must be a SHA-256 multihash (1220 followed by 64 hex digits)")
                    }
                    let bytes = Array(mh[2...])
                    if let v2, v2.bytes != bytes { throw .magnet("two different urn:btmh: hashes") }
                    v2 = InfoHashV2(bytes)
                }  // other URNs (ed2k, sha1 of files) are ignored, as other clients do
            case "dn": name = value
            case "tr": if !value.isEmpty && !trackers.contains(value) { trackers.append(value) }
            case "ws": if !value.isEmpty && !webSeeds.contains(value) { webSeeds.append(value) }
            case "x.pe": if !value.isEmpty && !peers.contains(value) { peers.append(value) }
            case "so": selected = try Self.parseSelection(value)
            case "xl":
                guard let n = Int64(value), n >= 0 else { throw .magnet("xl \"\(value)\" is not a length") }
                length = n
            default: break  // unknown parameters are ignored
            }
        }
        guard v1 != nil || v2 != nil else {
            throw .magnet("no info-hash (xt=urn:btih:… or xt=urn:btmh:…)")
        }
        self.init(infoHashes: InfoHashes(v1: v1, v2: v2), displayName: name, trackers: trackers,
            webSeeds: webSeeds, peers: peers, selectedFiles: selected, exactLength: length)
    }

    /// The magnet link as text: info-hashes first, then `dn`, `xl`, `tr`, `ws`, `x.pe`, `so`.
    public var description: String {
        var parts: [String] = []
        if let v1 = self.infoHashes.v1 { parts.append("xt=urn:btih:\(v1.hex)") }
        if let v2 = self.infoHashes.v2 { parts.append("xt=urn:btmh:1220\(v2.hex)") }
        if let n = self.displayName { parts.append("dn=" + Self.percentEncode(n)) }
        if let l = self.exactLength { parts.append("xl=\(l)") }
        parts += self.trackers.map { "tr=" + Self.percentEncode($0) }
        parts += self.webSeeds.map { "ws=" + Self.percentEncode($0) }
        parts += self.peers.map { "x.pe=" + Self.percentEncode($0) }
        if !self.selectedFiles.isEmpty { parts.append("so=" + Self.formatSelection(self.selectedFiles)) }
        return "magnet:?" + parts.joined(separator: "&")
    }

    /// The magnet link of a torrent: its hashes, name, trackers and web seeds.
    public init(_ torrent: TorrentMetainfo) {
        self.init(infoHashes: torrent.infoHashes, displayName: torrent.name, trackers: torrent.trackers.flatMap { $0 },
            webSeeds: torrent.webSeeds)
    }

    // MARK: helpers

    static func parseSelection(_ text: String) throws(MetainfoError) -> [Int] {
        var out: [Int] = []
        for item in text.split(separator: ",") {
            let bounds = item.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard let lo = Int(bounds[0]), lo >= 0 else { throw .magnet("so has a bad file index \"\(item)\"") }
            var hi = lo
            if bounds.count == 2 {
                guard let h = Int(bounds[1]), h >= lo else { throw .magnet("so has a bad range \"\(item)\"") }
                hi = h
            }
            guard hi - lo < Self.maxSelectedFiles, out.count + (hi - lo + 1) <= Self.maxSelectedFiles else {
                throw .magnet("so selects more than \(Self.maxSelectedFiles) files")
            }
            out.append(contentsOf: lo...hi)
        }
        return Array(Set(out)).sorted()
    }

    static func formatSelection(_ indices: [Int]) -> String {
        let sorted = Array(Set(indices)).sorted()
        var parts: [String] = []
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    public static func percentDecode(_ s: String, plusIsSpace: Bool) -> String? {
        var out: [UInt8] = []
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, let b = Hex.decode(String(decoding: bytes[i + 1...i + 2], as: UTF8.self))
                else { return nil }
                out.append(b[0])
                i += 3
            } else {
                out.append(plusIsSpace && c == UInt8(ascii: "+") ? UInt8(ascii: " ") : c)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: ":"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
