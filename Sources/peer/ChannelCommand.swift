// `peer channel …`: channels and groups through the running daemon (issue 15).
import ArgumentParser
import Channels
import Foundation
import PeerBase
import PeerKit

struct ChannelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "channel",
        abstract: "Publish channels of torrents and posts, and follow other people's, with no server in between.",
        discussion: """
            A channel is signed news that travels from peer to peer, like a Usenet group: its publisher's key \
            signs every revision, and everyone who follows it seeds it and passes it on, so it lives while its \
            publisher is offline. Its address is a link, magnet:?xs=urn:btpk:KEY&s=SALT (BEP 46); there is no \
            directory of names, so a channel is followed by its link alone.

            Publish:
              peer channel new news --title "Open films"        # prints the link to share
              peer channel add news sintel.torrent --license CC-BY-3.0
              peer channel post news "Sintel is out" --body "Seed it while it is fresh."
            Follow:
              peer channel subscribe 'magnet:?xs=urn:btpk:…&s=…' --must-contain 1080p
              peer channel ls
              peer channel read CHANNEL
            A group is a channel whose founder lists who may post: `peer channel new club --group`, then \
            `peer channel member club KEY`; members post with `peer channel post club …` once they follow it. \
            `peer channel member club --open` lets each listed member vouch for more keys \
            (`peer channel member club KEY` run by the member).
            """,
        subcommands: [
            New.self, Post.self, Add.self, Publish.self, Subscribe.self, Unsubscribe.self, List.self, Show.self,
            Read.self, Member.self, Link.self, Block.self,
        ])

    struct Link: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recommend another channel from one of yours (from its next revision).")
        @Argument(help: "Your channel: its name, id, id prefix or link.") var channel: String
        @Argument(help: "The channel to recommend: its link.") var link: String
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try await Daemon.run("channel link", self.daemon) { client in
                let id = try await ChannelCommand.resolve(self.channel, client)
                let bytes = try await client.send(.POST, "/api/channels/\(id)/links", json: ChannelRequest(link: self.link))
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                print("linked; publish it with: peer channel publish \(self.channel)")
            }
        }
    }

    struct Block: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Refuse a key's channels, posts and pointers (or, with --unblock, take them again).")
        @Argument(help: "The public key (64 hex digits).") var key: String
        @Flag(help: "Lift the block.") var unblock = false
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try await Daemon.run("channel block", self.daemon) { client in
                _ = try await client.send(.POST, "/api/channels/block", json: BlockRequest(key: self.key, blocked: !self.unblock))
                if !self.daemon.json { print(self.unblock ? "unblocked \(self.key.prefix(8))" : "blocked \(self.key.prefix(8))") }
            }
        }
    }

    /// `new`: one of this node's channels.
    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a channel (or a group) signed by this node's key, and print its link.")
        @Argument(help: "Its name: part of its address (salt), so keep it; up to 61 bytes.") var name: String
        @Option(help: "Its title as subscribers see it (default: the name).") var title: String?
        @Option(help: "A line about it.") var description = ""
        @Flag(help: "A group: others post too once its founder lists their keys (peer channel member).") var group = false
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try await Daemon.run("channel new", self.daemon) { client in
                let bytes = try await client.send(.POST, "/api/channels",
                    json: ChannelRequest(name: self.name, title: self.title, description: self.description,
                        group: self.group))
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                let c = try DaemonClient.decode(ChannelInfo.self, bytes)
                print("\(c.kind) \(c.title) (\(c.id.prefix(8))) made; share its link:\n\(c.link)")
                print("add to it with: peer channel post \(self.name) TITLE --body TEXT, or peer channel add \(self.name) FILE.torrent")
            }
        }
    }

    /// `post`: a signed article.
    struct Post: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Post an article to a channel or group (published at once unless --stage).")
        @Argument(help: "The channel: its name, id, id prefix or link.") var channel: String
        @Argument(help: "The title.") var title: String
        @Option(help: "The text (or - to read it from standard input).") var body = ""
        @Option(name: .customLong("reply-to"), help: ArgumentHelp("The id of the post this answers.", valueName: "POST")) var replyTo: [String] = []
        @Option(help: "A licence: an SPDX id (CC-BY-4.0) or a URL.") var license: String?
        @Flag(help: "Stage it for the next `peer channel publish` instead of publishing now.") var stage = false
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            var text = self.body
            if text == "-" { text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) }
            try await Daemon.run("channel post", self.daemon) { client in
                let id = try await ChannelCommand.resolve(self.channel, client)
                let bytes = try await client.send(.POST, "/api/channels/\(id)/posts",
                    json: PostRequest(title: self.title, body: text, replyTo: self.replyTo, license: self.license,
                        publish: !self.stage))
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                let item = try DaemonClient.decode(ChannelItem.self, bytes)
                print("posted \(item.id.prefix(12))" + (self.stage ? " (staged: peer channel publish \(self.channel))" : ""))
            }
        }
    }

    /// `add`: a torrent item.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a torrent to a channel: a .torrent file, or a torrent the daemon holds.")
        @Argument(help: "The channel: its name, id, id prefix or link.") var channel: String
        @Argument(help: "A .torrent file, or the id (prefix) of a torrent the daemon holds.") var torrent: String
        @Option(help: "Its licence: an SPDX id (CC-BY-4.0) or a URL.") var license: String?
        @Flag(help: "Stage it for the next `peer channel publish` instead of publishing now.") var stage = false
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try await Daemon.run("channel add", self.daemon) { client in
                let id = try await ChannelCommand.resolve(self.channel, client)
                var request = ChannelItemRequest(license: self.license, publish: !self.stage)
                if FileManager.default.fileExists(atPath: self.torrent) {
                    guard let data = FileManager.default.contents(atPath: self.torrent) else {
                        throw CommandFailure("cannot read \(self.torrent)")
                    }
                    request.torrent = data.base64EncodedString()
                } else {
                    request.id = try await client.resolve(self.torrent)
                }
                let bytes = try await client.send(.POST, "/api/channels/\(id)/items", json: request)
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                let item = try DaemonClient.decode(ChannelItem.self, bytes)
                print("added \(item.title)" + (self.stage ? " (staged: peer channel publish \(self.channel))" : ""))
            }
        }
    }

    /// `publish`: the staged items as the next revision.
    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Publish what was staged as the channel's next revision.")
        @Argument(help: "The channel: its name, id, id prefix or link.") var channel: String
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try await Daemon.run("channel publish", self.daemon) { client in
                let id = try await ChannelCommand.resolve(self.channel, client)
                let bytes = try await client.send(.POST, "/api/channels/\(id)/publish", timeout: .seconds(120))
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                let r = try DaemonClient.decode(ChannelPublishReport.self, bytes)
                print("revision \(r.seq) of \(r.channel.title): \(r.added) new items, "
                    + (r.storedBy.map { "pointer stored by \($0) DHT nodes" } ?? "its pointer is being put on the DHT"))
            }
        }
    }

    /// `subscribe`: follow a channel.
    struct Subscribe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow a channel by its link (or an RSS feed of torrents by its URL); with a rule, download its new torrents that match.")
        @Argument(help: "The channel's link (magnet:?xs=urn:btpk:…) or key, or an http(s) URL of an RSS feed (BEP 36).") var link: String
        @Option(help: ArgumentHelp("Most disk its revisions may take (default 256MiB).", valueName: "SIZE")) var quota: ByteSize?
        @Option(name: .customLong("must-contain"), help: "Download new torrents whose names hold these words.") var mustContain: [String] = []
        @Option(name: .customLong("must-not-contain"), help: "…and not these words.") var mustNotContain: [String] = []
        @Option(name: .customLong("min-size"), help: "…of at least this size (e.g. 100MiB).") var minSize: ByteSize?
        @Option(name: .customLong("max-size"), help: "…of at most this size.") var maxSize: ByteSize?
        @Option(help: "…saved in this folder (default: the daemon's download folder).") var folder: String?
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            var rule: FeedRule?
            if !self.mustContain.isEmpty || !self.mustNotContain.isEmpty || self.minSize != nil || self.maxSize != nil
                || self.folder != nil
            {
                rule = FeedRule(mustContain: self.mustContain, mustNotContain: self.mustNotContain,
                    minSize: self.minSize.map { Int64($0.bytes) }, maxSize: self.maxSize.map { Int64($0.bytes) },
                    folder: self.folder.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
            }
            let quota = self.quota.map { Int64($0.bytes) }
            try await Daemon.run("channel subscribe", self.daemon) { client in
                let bytes = try await client.send(.POST, "/api/channels/subscribe",
                    json: ChannelRequest(link: self.link, quota: quota, rule: rule))
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                let c = try DaemonClient.decode(ChannelInfo.self, bytes)
                print("following \(c.id.prefix(8)); its revisions arrive in the background (peer channel ls)")
            }
        }
    }

    struct Unsubscribe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop following (or publishing) a channel.")
        @Argument(help: "The channel: its name, id, id prefix or link.") var channel: String
        @Flag(name: .customLong("delete-data"), help: "Delete its files too.") var deleteData = false
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try await Daemon.run("channel unsubscribe", self.daemon) { client in
                let id = try await ChannelCommand.resolve(self.channel, client)
                _ = try await client.send(.DELETE, "/api/channels/\(id)" + (self.deleteData ? "?delete_data=true" : ""))
                if !self.daemon.json { print("removed \(id.prefix(8))") }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the channels this node publishes and follows.")
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try await Daemon.run("channel ls", self.daemon) { client in
                let bytes = try await client.send(.GET, "/api/channels")
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                let list = try DaemonClient.decode([ChannelInfo].self, bytes)
                if list.isEmpty { return print("no channels; make one with peer channel new NAME, or follow one with peer channel subscribe LINK") }
                var rows = [["ID", "TITLE", "KIND", "REV", "ITEMS", "UNREAD", "STATE"]]
                for c in list {
                    let state = c.error ?? (c.mine ? (c.staged > 0 ? "\(c.staged) staged" : "mine") : (c.stale ? "stale" : "following"))
                    rows.append([String(c.id.prefix(8)), Format.truncate(c.title, 40), c.kind, c.seq.map(String.init) ?? "-",
                        String(c.items), String(c.unread), Format.truncate(state, 50)])
                }
                print(Format.table(rows, rightAligned: [3, 4, 5]))
            }
        }
    }

    /// `show`: a channel's items, threaded.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a channel: its link, torrents and posts in thread order.")
        @Argument(help: "The channel: its name, id, id prefix or link.") var channel: String
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try await Daemon.run("channel show", self.daemon) { client in
                let id = try await ChannelCommand.resolve(self.channel, client)
                let bytes = try await client.send(.GET, "/api/channels/\(id)")
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                ChannelCommand.printDetail(try DaemonClient.decode(ChannelDetail.self, bytes), bodies: false)
            }
        }
    }

    /// `read`: the posts with their text, then marked read.
    struct Read: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read a channel's posts (with their text); marks them read.")
        @Argument(help: "The channel: its name, id, id prefix or link.") var channel: String
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try await Daemon.run("channel read", self.daemon) { client in
                let id = try await ChannelCommand.resolve(self.channel, client)
                let bytes = try await client.send(.GET, "/api/channels/\(id)")
                _ = try await client.send(.POST, "/api/channels/\(id)/read", json: ReadRequest(items: nil))
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                ChannelCommand.printDetail(try DaemonClient.decode(ChannelDetail.self, bytes), bodies: true)
            }
        }
    }

    struct Member: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a key post to a group (from its next revision), or open it to the keys its members vouch for.",
            discussion: """
                The founder lists members: peer channel member club KEY. With --open, each listed member may vouch \
                for more keys by running the same command on its own node (the vouch goes out with its next post \
                or `peer channel publish`); --closed takes that back.
                """)
        @Argument(help: "The group: its name, id, id prefix or link.") var channel: String
        @Argument(help: "The key that may post (64 hex digits; `peer channel new` prints each node's).") var key: String?
        @Flag(help: "Open the group to keys its members vouch for.") var open = false
        @Flag(help: "Close it again: only the founder's list may post.") var closed = false
        @OptionGroup var daemon: DaemonOptions

        func validate() throws {
            if self.open && self.closed { throw ValidationError("--open or --closed, not both") }
            if self.key == nil && !self.open && !self.closed { throw ValidationError("give a KEY, or --open or --closed") }
        }

        func run() async throws {
            try await Daemon.run("channel member", self.daemon) { client in
                let id = try await ChannelCommand.resolve(self.channel, client)
                let bytes = try await client.send(.POST, "/api/channels/\(id)/members",
                    json: MemberRequest(key: self.key, open: self.open ? true : self.closed ? false : nil))
                if self.daemon.json { return print(JSONText.pretty(bytes)) }
                let detail = try DaemonClient.decode(ChannelDetail.self, bytes)
                if self.open || self.closed {
                    print(self.open ? "the group takes keys its members vouch for from its next revision"
                        : "the group takes only its founder's list from its next revision")
                }
                if let key = self.key {
                    print("\(key.prefix(8)) may post to the group from the next revision "
                        + (detail.channel.mine ? "(peer channel publish \(self.channel))" : "of your feed in it"))
                }
            }
        }
    }

    /// The id of the channel `text` names: a link, a whole id, an id prefix, or one of this node's channel names.
    static func resolve(_ text: String, _ client: DaemonClient) async throws -> String {
        if let link = try? ChannelLink(parsing: text) { return link.id }
        let list = try DaemonClient.decode([ChannelInfo].self, try await client.send(.GET, "/api/channels"))
        let lower = text.lowercased()
        if let exact = list.first(where: { $0.id == lower }) { return exact.id }
        let byName = list.filter { c in
            c.mine && (try? ChannelLink(parsing: c.link)).map { $0.salt == ChannelLink.salt(forName: text) } == true
        }
        if byName.count == 1 { return byName[0].id }
        let byPrefix = list.filter { $0.id.hasPrefix(lower) }
        guard lower.count >= 4, byPrefix.count == 1 else {
            throw CommandFailure(byPrefix.count > 1 ? "\(text) names more than one channel" : "no channel \(text) (peer channel ls)")
        }
        return byPrefix[0].id
    }

    static func printDetail(_ d: ChannelDetail, bodies: Bool) {
        let c = d.channel
        print("\(c.title) — \(c.kind), revision \(c.seq.map(String.init) ?? "none yet")\(c.stale ? " (stale)" : "")")
        if !c.description.isEmpty { print(c.description) }
        print("link: \(c.link)")
        if let e = c.error { print("last update: \(e)") }
        if !d.members.isEmpty { print("members: " + d.members.map { String($0.prefix(8)) }.joined(separator: " ")) }
        if d.items.isEmpty { return print("no items yet") }
        for i in d.items {
            let indent = String(repeating: "  ", count: i.depth)
            let mark = i.read ? " " : "*"
            let date = Date(timeIntervalSince1970: TimeInterval(i.time)).formatted(.iso8601.year().month().day())
            let licence = i.license.map { " [\($0)]" } ?? ""
            if i.kind == "torrent" {
                print("\(mark) \(indent)\(i.title)  \(ByteCount.format(i.size ?? 0))  \(date)\(licence)")
                print("  \(indent)  \(i.magnet ?? "")")
            } else {
                print("\(mark) \(indent)\(i.title)  — \(i.author.map { String($0.prefix(8)) } ?? "?"), \(date)\(licence)  (\(i.id.prefix(8)))")
                if bodies, let body = i.body, !body.isEmpty {
                    for line in body.split(separator: "\n", omittingEmptySubsequences: false) { print("  \(indent)  \(line)") }
                }
            }
        }
    }
}

/// `peer serve`'s channel options.
struct ChannelOptions: ParsableArguments {
    @Flag(name: .customLong("no-channels"), help: "Neither publish nor follow channels.")
    var noChannels = false

    @Option(name: .customLong("channel-poll"), help: ArgumentHelp(
        "Look each followed channel up every SECONDS (±25%; default 1200, 20 minutes).", valueName: "SECONDS"))
    var poll = 1200.0

    @Option(name: .customLong("channel-republish"), help: ArgumentHelp(
        "Put each held channel pointer on the DHT again every SECONDS (default 3600).", valueName: "SECONDS"))
    var republish = 3600.0

    @Flag(name: .customLong("no-channel-push"), help: "Do not pass newer channel pointers to peers of the same channel, nor take theirs (updates then wait for the next poll).")
    var noPush = false

    func validate() throws {
        guard self.poll >= 1, self.poll <= 86_400 else { throw ValidationError("--channel-poll must be from 1 to 86400") }
        guard self.republish >= 1, self.republish <= 86_400 else {
            throw ValidationError("--channel-republish must be from 1 to 86400")
        }
    }

    func apply(to config: inout Session.Configuration) {
        config.channels = !self.noChannels
        config.channelConfiguration.push = !self.noPush
        config.channelConfiguration.pollInterval = .milliseconds(Int64(self.poll * 1000))
        config.channelConfiguration.republishInterval = .milliseconds(Int64(self.republish * 1000))
    }
}
