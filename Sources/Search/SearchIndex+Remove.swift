import Foundation
import GRDB
import Synchronization

extension SearchIndex {
    /// Deletes rows, verified or not (an index node's rows whose every announcer withdrew or was refused).
    public func remove(infoHashes: [[UInt8]]) throws {
        guard !infoHashes.isEmpty else { return }
        let deleted = try self.database.write { db -> Int in
            let statement = try db.cachedStatement(sql: "DELETE FROM item WHERE ih = ?")
            var count = 0
            for ih in infoHashes {
                try statement.execute(arguments: [Data(ih)])
                count += db.changesCount
            }
            return count
        }
        if deleted > 0 { self.rowCount.subtract(deleted, ordering: .relaxed) }
    }
}
