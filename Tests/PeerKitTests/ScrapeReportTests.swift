import Foundation
import PeerKit
import Testing

@Suite("ScrapeReport")
struct ScrapeReportTests {
    @Test("every key is written, absent values as null; answered counts the trackers that answered")
    func shape() throws {
        let report = ScrapeReport(id: String(repeating: "ab", count: 20), infoHash: Array(repeating: 0xab, count: 20),
            name: nil,
            trackers: [
                .init(tracker: "udp://t:1", ok: true, seeders: 2, completed: 5, leechers: 1, listed: true, error: nil),
                .init(tracker: "http://u/announce", ok: false, seeders: nil, completed: nil, leechers: nil, listed: nil,
                    error: "connection refused"),
            ])
        #expect(report.answered == 1)
        let decoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report))
        let object = try #require(decoded as? [String: Any])
        #expect(Set(object.keys) == ["kind", "id", "info_hash", "name", "trackers", "answered"])
        #expect(object["kind"] as? String == "scrape")
        #expect(object["info_hash"] as? String == String(repeating: "ab", count: 20))
        #expect(object["name"] is NSNull)
        let trackers = try #require(object["trackers"] as? [[String: Any]])
        #expect(trackers.map { Set($0.keys) } == Array(repeating: [
            "tracker", "ok", "seeders", "completed", "leechers", "listed", "error",
        ], count: 2))
        #expect(trackers[0]["seeders"] as? Int == 2 && trackers[0]["error"] is NSNull)
        #expect(trackers[1]["seeders"] is NSNull && trackers[1]["error"] as? String == "connection refused")
    }
}
