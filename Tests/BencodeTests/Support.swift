import Bencode
import Testing

/// The UTF-8 bytes of `text`.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Decodes `text` with `limits`, returning the error it throws (nil when it decodes).
func decodeError(_ input: [UInt8], limits: BencodeLimits = .default) -> BencodeError? {
    do {
        _ = try BencodeDecoder(limits: limits).decode(input)
        return nil
    } catch {
        return error
    }
}

func decodeError(_ text: String, limits: BencodeLimits = .default) -> BencodeError? {
    decodeError(bytes(text), limits: limits)
}

extension BencodeNode {
    /// Every node of the tree, depth first, this one included.
    var allNodes: [BencodeNode] {
        switch self.kind {
        case .integer, .string: [self]
        case .list(let items): [self] + items.flatMap(\.allNodes)
        case .dictionary(let entries): [self] + entries.flatMap(\.value.allNodes)
        }
    }
}

/// Runs the body of a property, recording a thrown error as an issue. `propertyCheck` (swift-property-based
/// 2.0.1) discards errors thrown by its body (`try?` in `countIssues`), so a bare `try` there can never fail.
func failOnThrow(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
    } catch {
        Issue.record(error, sourceLocation: sourceLocation)
    }
}
