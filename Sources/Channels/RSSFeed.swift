import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// The items of an RSS 2.0 feed of torrents (BEP 36): each item's title, its torrent (the enclosure's URL, else
/// its link: a magnet link or an http(s) URL of a .torrent file), its size when the feed says it, and an id
/// (its guid, else its torrent link). At most `maxItems` are read; text is bounded.
public struct RSSFeed: Sendable {
    public struct Item: Sendable, Equatable {
        public var id: String
        public var title: String
        public var torrent: String
        public var size: Int64?
    }

    public var title: String
    public var items: [Item]

    public static let maxItems = 2000

    /// Reads a feed. Items without a title or a torrent link are left out.
    public init(data: Data) throws(ChannelRefusal) {
        let reader = Reader()
        let parser = XMLParser(data: data)
        parser.shouldResolveExternalEntities = false
        parser.delegate = reader
        guard parser.parse() || reader.full else {
            throw .badRevision("not an RSS feed: \(parser.parserError.map { "\($0)" } ?? "it does not parse")")
        }
        guard reader.root == "rss" else {
            throw .badRevision("not an RSS feed (its root element is \(reader.root.map { "<\($0)>" } ?? "missing"))")
        }
        self.title = reader.channelTitle
        self.items = reader.items
    }

    private final class Reader: NSObject, XMLParserDelegate {
        var channelTitle = ""
        var items: [Item] = []
        /// `maxItems` read: parsing stopped there.
        var full = false
        /// The first element's name.
        var root: String?
        private var inItem = false
        private var text = ""
        private var title = ""
        private var link = ""
        private var guid = ""
        private var enclosure: (url: String, length: Int64?)?

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:])
        {
            self.text = ""
            if self.root == nil { self.root = name }
            switch name {
            case "item":
                self.inItem = true
                (self.title, self.link, self.guid, self.enclosure) = ("", "", "", nil)
            case "enclosure" where self.inItem:
                if let url = attributes["url"] { self.enclosure = (url, attributes["length"].flatMap { Int64($0) }) }
            default: break
            }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if self.text.utf8.count < 8192 { self.text += string }
        }

        func parser(_ parser: XMLParser, foundCDATA block: Data) {
            if self.text.utf8.count < 8192 { self.text += String(decoding: block, as: UTF8.self) }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            let value = self.text.trimmingCharacters(in: .whitespacesAndNewlines)
            switch name {
            case "title" where self.inItem: self.title = value
            case "title" where self.channelTitle.isEmpty: self.channelTitle = value
            case "link" where self.inItem: self.link = value
            case "guid" where self.inItem: self.guid = value
            case "item":
                self.inItem = false
                let torrent = self.enclosure?.url ?? self.link
                guard !self.title.isEmpty, !torrent.isEmpty else { break }
                self.items.append(Item(id: self.guid.isEmpty ? torrent : self.guid, title: self.title, torrent: torrent,
                    size: self.enclosure?.length))
                if self.items.count >= RSSFeed.maxItems {
                    self.full = true
                    parser.abortParsing()
                }
            default: break
            }
            self.text = ""
        }
    }
}
