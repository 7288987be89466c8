import Foundation

/// An auto-download rule, for channel items and RSS (BEP 36) feeds alike: the words an item's name must hold and
/// must not hold, size bounds, and the folder it goes to. Words match whole words of the name, case and accents
/// ignored, as search does (`.`, `_`, `-` and brackets separate words).
public struct FeedRule: Codable, Hashable, Sendable {
    public var mustContain: [String]
    public var mustNotContain: [String]
    public var minSize: Int64?
    public var maxSize: Int64?
    /// Where matching items are saved (nil: the daemon's download folder).
    public var folder: String?

    public init(
        mustContain: [String] = [], mustNotContain: [String] = [], minSize: Int64? = nil, maxSize: Int64? = nil,
        folder: String? = nil
    ) {
        self.mustContain = mustContain
        self.mustNotContain = mustNotContain
        self.minSize = minSize
        self.maxSize = maxSize
        self.folder = folder
    }

    enum CodingKeys: String, CodingKey {
        case mustContain = "must_contain", mustNotContain = "must_not_contain", minSize = "min_size"
        case maxSize = "max_size", folder
    }

    /// Every part may be left out.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            mustContain: try c.decodeIfPresent([String].self, forKey: .mustContain) ?? [],
            mustNotContain: try c.decodeIfPresent([String].self, forKey: .mustNotContain) ?? [],
            minSize: try c.decodeIfPresent(Int64.self, forKey: .minSize),
            maxSize: try c.decodeIfPresent(Int64.self, forKey: .maxSize),
            folder: try c.decodeIfPresent(String.self, forKey: .folder))
    }

    /// True when an item called `name` of `size` bytes (nil: not known) passes every part of the rule.
    public func matches(name: String, size: Int64?) -> Bool {
        let words = Set(Self.words(name))
        for w in self.mustContain.flatMap(Self.words) where !words.contains(w) { return false }
        for w in self.mustNotContain.flatMap(Self.words) where words.contains(w) { return false }
        if let min = self.minSize, (size ?? 0) < min { return false }
        if let max = self.maxSize, let size, size > max { return false }
        return true
    }

    /// A name's words: runs of letters and digits, case and accents folded.
    static func words(_ text: String) -> [String] {
        text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil)
            .split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }
}
