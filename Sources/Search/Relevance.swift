import Foundation

/// How well a name and its file paths answer a query's words: BM25F without IDF, in [0, 1.2].
///
/// Every candidate holds every word (the index matched them all), so the words' rarity would lift every
/// candidate alike and IDF is left out; what separates candidates is where the words are (a word in the name
/// gives 0.7 of its 1; in the BM25 part the name counts 4 times the paths), how often, against how long a text
/// (saturating as BM25 does, k1 = 1.2, b = 0.75), and
/// whether the name has them in the order typed (+0.2). It reads the stored UTF-8 in place: ASCII text, most
/// names, is cut into words byte by byte; other text goes through `SearchQuery.words`, as the query did.
struct Relevance {
    static let k1 = 1.2
    static let b = 0.75
    static let nameWeight = 4.0
    /// Typical lengths in words: a name, and the paths of a few files.
    static let averageName = 8.0
    static let averagePaths = 12.0

    let terms: [[UInt8]]

    init(_ terms: [String]) { self.terms = terms.map { Array($0.utf8) } }

    /// Which term each word of `text` is (-1: none), and the number of words.
    func matches(_ text: Data?) -> [Int] {
        guard let text, !text.isEmpty else { return [] }
        return text.withUnsafeBytes { self.matches(UnsafeRawBufferPointer($0)) }
    }

    func matches(_ text: UnsafeRawBufferPointer) -> [Int] {
        if text.contains(where: { $0 >= 0x80 }) {
            return SearchQuery.words(String(decoding: text, as: UTF8.self)).map { word in
                self.terms.firstIndex(of: Array(word.utf8)) ?? -1
            }
        }
        var out: [Int] = []
        var word: [UInt8] = []
        word.reserveCapacity(32)
        func end() {
            guard !word.isEmpty else { return }
            out.append(self.terms.firstIndex(of: word) ?? -1)
            word.removeAll(keepingCapacity: true)
        }
        for byte in text {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): word.append(byte)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): word.append(byte | 0x20)
            default: end()
            }
        }
        end()
        return out
    }

    func score(name: Data?, paths: Data?) -> Double {
        guard !self.terms.isEmpty else { return 0 }
        let inName = self.matches(name)
        let inPaths = self.matches(paths)
        let nameNorm = 1 - Self.b + Self.b * Double(inName.count) / Self.averageName
        let pathNorm = 1 - Self.b + Self.b * Double(inPaths.count) / Self.averagePaths
        var total = 0.0
        for t in self.terms.indices {
            let tf = Self.nameWeight * Double(inName.count { $0 == t }) / nameNorm
                + Double(inPaths.count { $0 == t }) / pathNorm
            // A word in the name counts most; how often and in how short a text refines.
            total += (inName.contains(t) ? 0.7 : 0) + 0.3 * tf / (Self.k1 + tf)
        }
        var relevance = total / Double(self.terms.count)
        if self.terms.count > 1, Self.inOrder(self.terms.count, inName) { relevance += 0.2 }
        return relevance
    }

    /// The name has the words one after another, in the order typed.
    static func inOrder(_ count: Int, _ words: [Int]) -> Bool {
        guard words.count >= count else { return false }
        for start in 0...(words.count - count) where words[start] == 0 {
            if (0..<count).allSatisfy({ words[start + $0] == $0 }) { return true }
        }
        return false
    }
}
