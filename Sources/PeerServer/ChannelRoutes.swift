import Channels
import Foundation
import Hummingbird
import PeerKit

extension PeerServer {
    /// `/api/channels…`: channels and groups (docs/api.md). The node's private key never leaves the daemon.
    static func addChannels<Context: RequestContext>(to router: Router<Context>, session: Session) {
        let api = router.group("api/channels")
        api.get { _, _ in try JSON.response(try await session.channelService().list()) }
        api.post { request, _ -> Response in
            let body = try await JSON.decode(ChannelRequest.self, from: request)
            guard let name = body.name else { throw APIError.badRequest("name: the channel's name (its salt)") }
            let info = try await session.channelService().create(
                name: name, title: body.title, description: body.description ?? "", group: body.group ?? false)
            return try JSON.response(info, status: .created)
        }
        api.post("subscribe") { request, _ -> Response in
            let body = try await JSON.decode(ChannelRequest.self, from: request)
            guard let link = body.link else { throw APIError.badRequest("link: the channel's magnet:?xs=urn:btpk: link") }
            let info = try await session.channelService().subscribe(link, quota: body.quota, rule: body.rule)
            return try JSON.response(info, status: .created)
        }
        api.get("stats") { _, _ in try JSON.response(try await session.channelService().stats()) }
        api.get("identity") { _, _ in try JSON.response(try await session.channelService().identity()) }
        api.post("block") { request, _ -> Response in
            let body = try await JSON.decode(BlockRequest.self, from: request)
            try await session.channelService().setBlocked(body.key, body.blocked ?? true)
            return Response(status: .noContent)
        }
        api.get(":id") { _, context in
            try JSON.response(try await session.channelService().detail(context.parameters.require("id")))
        }
        api.delete(":id") { request, context -> Response in
            let delete = request.uri.queryParameters.get("delete_data").map { Self.truthy($0) } ?? false
            try await session.channelService().unsubscribe(context.parameters.require("id"), deleteData: delete)
            return Response(status: .noContent)
        }
        api.post(":id/posts") { request, context -> Response in
            let id = try context.parameters.require("id")
            let body = try await JSON.decode(PostRequest.self, from: request, limit: 128 << 10)
            let channels = try await session.channelService()
            let item = try await channels.post(
                id, title: body.title, body: body.body, replyTo: body.replyTo ?? [], license: body.license)
            if body.publish ?? true { _ = try await channels.publish(id) }
            return try JSON.response(item, status: .created)
        }
        api.post(":id/items") { request, context -> Response in
            let id = try context.parameters.require("id")
            let body = try await JSON.decode(ChannelItemRequest.self, from: request, limit: Session.maxTorrentBytes * 4 / 3 + 4096)
            let bytes: [UInt8]
            if let b64 = body.torrent {
                guard let data = Data(base64Encoded: b64, options: .ignoreUnknownCharacters) else {
                    throw APIError.badRequest("torrent: expected the .torrent file in base64")
                }
                bytes = [UInt8](data)
            } else if let held = body.id {
                bytes = try await session.torrentFile(held)
            } else {
                throw APIError.badRequest("give torrent (a .torrent file in base64) or id (a torrent the daemon holds)")
            }
            let channels = try await session.channelService()
            let item = try await channels.addTorrent(id, torrent: bytes, license: body.license)
            if body.publish ?? true { _ = try await channels.publish(id) }
            return try JSON.response(item, status: .created)
        }
        api.delete(":id/items/:item") { _, context -> Response in
            try await session.channelService().removeItem(
                context.parameters.require("id"), item: context.parameters.require("item"))
            return Response(status: .noContent)
        }
        api.post(":id/publish") { _, context in
            try JSON.response(try await session.channelService().publish(context.parameters.require("id")))
        }
        api.post(":id/members") { request, context -> Response in
            let body = try await JSON.decode(MemberRequest.self, from: request)
            guard body.key != nil || body.open != nil else {
                throw APIError.badRequest("give key (a key that may post) or open (true or false)")
            }
            let channels = try await session.channelService()
            let id = try context.parameters.require("id")
            if let open = body.open { try await channels.setOpen(id, open) }
            if let key = body.key { try await channels.addMember(id, key: key) }
            return try JSON.response(try await channels.detail(id))
        }
        api.post(":id/links") { request, context -> Response in
            let body = try await JSON.decode(ChannelRequest.self, from: request)
            guard let link = body.link else { throw APIError.badRequest("link: the channel to recommend") }
            let channels = try await session.channelService()
            try await channels.addLink(context.parameters.require("id"), link: link)
            return try JSON.response(try await channels.detail(context.parameters.require("id")))
        }
        api.post(":id/read") { request, context -> Response in
            let body = try await JSON.decode(ReadRequest.self, from: request)
            try await session.channelService().markRead(context.parameters.require("id"), items: body.items)
            return Response(status: .noContent)
        }
        api.get(":id/rss") { request, context -> Response in
            let xml = try await session.channelService().rss(context.parameters.require("id"), baseURL: "")
            var headers = HTTPFields()
            headers[.contentType] = "application/rss+xml; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: xml)))
        }
    }
}
