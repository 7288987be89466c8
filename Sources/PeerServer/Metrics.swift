import PeerKit

/// `/metrics` in the Prometheus text format (0.0.4): session figures and one progress gauge per torrent.
enum Metrics {
    static func render(_ session: Session) async -> String {
        let s = await session.stats()
        let torrents = await session.list()
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples { out += "\(name)\(sample.labels) \(sample.value)\n" }
        }
        metric("peer_torrents", "gauge", "Torrents in the session.", [("", "\(s.torrents)")])
        var byState: [TorrentState: Int] = [:]
        for t in torrents { byState[t.state, default: 0] += 1 }
        metric("peer_torrents_by_state", "gauge", "Torrents by state.",
            byState.sorted { $0.key.rawValue < $1.key.rawValue }.map { ("{state=\"\($0.key.rawValue)\"}", "\($0.value)") })
        metric("peer_download_rate_bytes", "gauge", "Bytes per second received from peers.", [("", "\(s.downloadRate)")])
        metric("peer_upload_rate_bytes", "gauge", "Bytes per second sent to peers.", [("", "\(s.uploadRate)")])
        metric("peer_downloaded_bytes_total", "counter", "Bytes received from peers.", [("", "\(s.downloaded)")])
        metric("peer_uploaded_bytes_total", "counter", "Bytes sent to peers.", [("", "\(s.uploaded)")])
        metric("peer_peers", "gauge", "Connected peers.", [("", "\(s.peers)")])
        metric("peer_dht_nodes", "gauge", "Nodes in the DHT routing table.", [("", "\(s.dhtNodes)")])
        metric("peer_uptime_seconds", "gauge", "Seconds since the session started.", [("", "\(s.uptime)")])
        metric("peer_torrent_progress", "gauge", "Fraction of the wanted pieces verified.",
            torrents.map { ("{id=\"\($0.id)\",name=\"\(Self.escape($0.name))\"}", "\($0.progress)") })
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
