import Foundation
import PeerKit
import Search

/// The Torznab API's XML (torznab.github.io/spec-1.3-draft), which Prowlarr, Sonarr and Radarr read from an
/// indexer: `caps`, a search's RSS 2.0 feed, and the error element. Every text and attribute is escaped, and
/// characters XML 1.0 cannot carry (control characters other than tab, line feed and carriage return) are left
/// out, so a torrent's name cannot break the document.
enum Torznab {
    static let namespace = "http://torznab.com/schemas/2015/feed"
    /// Results per request: the default and the most (`caps` says so).
    static let defaultLimit = 100
    static let maxLimit = 100
    /// Torrents carry no category: every item is Other (8000).
    static let category = 8000

    /// The error codes of the newznab API that Torznab uses.
    enum ErrorCode: Int {
        case badCredentials = 100
        case missingParameter = 200
        case badParameter = 201
        case noSuchFunction = 202
        case unknown = 900
    }

    static func error(_ code: ErrorCode, _ description: String) -> String {
        #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
            + #"<error code="\#(code.rawValue)" description="\#(Self.escape(description))"/>"# + "\n"
    }

    /// What the indexer can do: plain searches with `q` (TV and movie searches are plain searches too).
    static func caps(version: String) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <caps>
          <server version="\(Self.escape(version))" title="Peer index node"/>
          <limits default="\(Self.defaultLimit)" max="\(Self.maxLimit)"/>
          <searching>
            <search available="yes" supportedParams="q"/>
            <tv-search available="yes" supportedParams="q"/>
            <movie-search available="yes" supportedParams="q"/>
          </searching>
          <categories>
            <category id="\(Self.category)" name="Other"/>
          </categories>
        </caps>

        """
    }

    /// A search's answer: one item per hit, its magnet link as link, enclosure and `magneturl`.
    static func feed(_ hits: [IndexHit], offset: Int, link: String) -> String {
        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:torznab="\(Self.namespace)">
            <channel>
            <title>Peer index node</title>
            <description>Torrents announced to this Peer index node</description>
            <link>\(Self.escape(link))</link>
            <torznab:response offset="\(offset)"/>

            """
        for h in hits {
            let magnet = Self.escape(h.magnet)
            let size = h.hit.size
            let seeders = h.hit.seeders ?? 0
            let peers = seeders + (h.hit.leechers ?? 0)
            var item = "<item>\n"
            item += "<title>\(Self.escape(h.hit.name))</title>\n"
            item += "<guid isPermaLink=\"false\">urn:btih:\(Self.escape(h.hit.infoHash))</guid>\n"
            item += "<link>\(magnet)</link>\n"
            item += "<pubDate>\(Self.rfc822(h.hit.firstSeen))</pubDate>\n"
            item += "<size>\(size)</size>\n"
            item += "<category>\(Self.category)</category>\n"
            item += "<enclosure url=\"\(magnet)\" length=\"\(size)\" type=\"application/x-bittorrent\"/>\n"
            let attributes: [(String, String)] = [
                ("category", String(Self.category)), ("size", String(size)), ("files", String(h.hit.files)),
                ("seeders", String(seeders)), ("leechers", String(h.hit.leechers ?? 0)), ("peers", String(peers)),
                ("infohash", h.hit.infoHash), ("magneturl", h.magnet),
                ("downloadvolumefactor", "0"), ("uploadvolumefactor", "1"),
            ]
            for (name, value) in attributes {
                item += "<torznab:attr name=\"\(name)\" value=\"\(Self.escape(value))\"/>\n"
            }
            out += item + "</item>\n"
        }
        return out + "</channel>\n</rss>\n"
    }

    /// Text fit for XML 1.0 character data and attribute values (in double or single quotes).
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            // Kept as references: a literal one in an attribute would be read back as a space.
            case "\t": out += "&#9;"
            case "\n": out += "&#10;"
            case "\r": out += "&#13;"
            case "\u{0}"..."\u{1F}", "\u{FFFE}", "\u{FFFF}": break  // no XML 1.0 document may hold these
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// RSS's date (RFC 822, in English whatever the locale): `Mon, 04 May 2026 12:34:56 +0000`.
    static func rfc822(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var t = tm()
        gmtime_r(&seconds, &t)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(t.tm_wday)]), \(two(t.tm_mday)) \(months[Int(t.tm_mon)]) \(1900 + t.tm_year) "
            + "\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) +0000"
    }
}
