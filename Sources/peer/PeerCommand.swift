import ArgumentParser

@main
struct PeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer",
        abstract: "A peer-to-peer node that speaks BitTorrent: make, inspect, share and fetch torrents.",
        discussion: """
            Examples:
              peer create ~/Videos/holiday            make holiday.torrent (hybrid v1+v2) and print its magnet link
              peer create song.flac --v1 -o song.torrent --tracker udp://tracker.example:6969/announce
              peer info holiday.torrent               show name, size, hashes, trackers and files
              peer info 'magnet:?xt=urn:btih:…' --json
            """,
        version: PeerVersion.current,
        subcommands: [Create.self, Info.self]
    )
}

enum PeerVersion {
    static let current = "0.1.0"
}
