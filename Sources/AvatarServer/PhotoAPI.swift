import AvatarAnimation
import AvatarCore
import AvatarEngines
import AvatarMedia
import AvatarStore
import Crypto
import Foundation
import Hummingbird

/// What a photo upload answers: where the face is, the aligned preview, and warnings a person can act on.
struct PhotoResponse: ResponseEncodable {
    var avatarId: String
    var url: String
    var previewUrl: String
    var format: String
    var width: Int
    var height: Int
    var orientation: Int
    var faceBox: PhotoState.Box
    var headPose: [String: Double]
    var faces: Int
    var warnings: [String]
    var bytes: Int64
    var sha256: String
    /// What is kept of it: usually a smaller JPEG (see `PhotoCompaction`).
    var stored: StoredPhoto
}

/// The photo as stored: what `GET …/photo` serves and the video renderer decodes.
struct StoredPhoto: Codable {
    var format: String
    var width: Int
    var height: Int
    /// EXIF orientation of the stored file (1 when it was re-encoded: the rotation is in the pixels).
    var orientation: Int
    var bytes: Int64
    var sha256: String
    /// True when re-encoded as JPEG; false when the upload itself was kept (it was already as small).
    var reencoded: Bool
    /// Stored size / uploaded size (1: full resolution).
    var scale: Double
}

/// Stored photos are kept compact: re-encoded as a JPEG (quality about 90, EXIF orientation applied, other EXIF
/// such as GPS dropped) at most `maxSide` pixels on the long side — but never so small that the face is under
/// `minFaceHeight` pixels tall, more than the rig's 512² crop uses (forehead to chin is 45 % of it, 230 px).
/// The upload itself is kept instead when it needs no rotation or scaling and is no larger than the JPEG.
enum PhotoCompaction {
    static let maxSide = 2048
    static let minFaceHeight = 320.0
    /// ffmpeg's MJPEG qscale (2 best … 31): 3 is about libjpeg quality 90.
    static let qscale = 3

    /// The factor (≤ 1) to scale a `width`×`height` photo by, with the face `faceHeight` px tall.
    static func scale(width: Int, height: Int, faceHeight: Double) -> Double {
        let longSide = Double(max(width, height))
        guard longSide > Double(maxSide) else { return 1 }
        let bySide = Double(maxSide) / longSide
        let byFace = faceHeight > 0 ? minFaceHeight / faceHeight : 1
        return min(1, max(bySide, byFace))
    }

    /// The oriented image as a JPEG of `width`×`height` (ffmpeg, its own process: no encoding on the concurrency pool).
    static func jpeg(_ image: RGBImage, width: Int, height: Int) async throws -> Data {
        var arguments = ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "\(image.width)x\(image.height)", "-i", "-"]
        if width != image.width || height != image.height { arguments += ["-vf", "scale=\(width):\(height):flags=lanczos"] }
        arguments += ["-frames:v", "1", "-c:v", "mjpeg", "-q:v", String(qscale), "-pix_fmt", "yuvj420p", "-f", "mjpeg", "-"]
        let result = await ChildProcess.output(of: arguments, input: Data(image.pixels))
        guard result.status == 0, ImageFormat.sniff(result.output.prefix(12)) == .jpeg else {
            let reason = result.status == 127 ? "ffmpeg is not installed (run `avatar setup`)" : (result.lastErrorLine ?? "no JPEG came out")
            throw MediaError.storage("re-encoding the photo failed: \(reason)")
        }
        return result.output
    }
}

extension FaceLandmarks {
    /// The same face in a photo scaled by `sx`, `sy` (z scales with x, as MediaPipe's z is in x's units).
    func scaled(_ sx: Double, _ sy: Double, width newWidth: Int, height newHeight: Int) -> FaceLandmarks {
        var copy = self
        copy.width = newWidth
        copy.height = newHeight
        copy.landmarks = landmarks.map { point in
            var p = point
            if p.count > 0 { p[0] *= sx }
            if p.count > 1 { p[1] *= sy }
            if p.count > 2 { p[2] *= sx }
            return p
        }
        copy.faceBox.x *= sx
        copy.faceBox.y *= sy
        copy.faceBox.width *= sx
        copy.faceBox.height *= sy
        return copy
    }
}

/// The client's file name, from `?filename=` or `Content-Disposition`; only recorded, never used as a path.
func uploadName(_ request: Request) throws -> String? {
    var name = request.uri.queryParameters["filename"].map { String($0).removingPercentEncoding ?? String($0) }
    if name == nil, let disposition = request.headers[.contentDisposition],
       let range = disposition.range(of: "filename=") {
        name = disposition[range.upperBound...].split(separator: ";").first.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")) }
    }
    guard let name else { return nil }
    return try FileName.validate(name)
}

/// Streams an upload to a temp file: the raw body, or the file part of a `multipart/form-data` body (the seed's
/// clients send forms). Returns the file and the client's (checked) file name.
func receiveUpload(_ request: Request, services: APIServices, limit: Int64, headBytes: Int,
                   inspect: @escaping (_ head: [UInt8], _ finished: Bool) throws -> Void = { _, _ in }) async throws -> (ReceivedFile, String?) {
    guard let boundary = MultipartFilePart<RequestBody>.boundary(contentType: request.headers[.contentType]) else {
        let name = try uploadName(request)
        return (try await services.media.receive(request.body, limit: limit, headBytes: headBytes, inspect: inspect), name)
    }
    let part = MultipartFilePart(base: request.body, boundary: boundary)
    let file = try await services.media.receive(part, limit: limit, headBytes: headBytes, inspect: inspect)
    do {
        let name = try part.info.filename.flatMap { $0.isEmpty ? nil : try FileName.validate($0) } ?? uploadName(request)
        return (file, name)
    } catch {
        try? FileManager.default.removeItem(atPath: file.tempPath)
        throw error
    }
}

extension APIServices {
    /// Refuses an upload when the account's stored bytes are at its quota; the upload limit is what is left.
    func uploadLimit(account: String, kindLimit: Int64) throws -> Int64 {
        let used = try runtime.database.mediaBytes(accountId: account)
        guard used < limits.accountBytes else { throw MediaError.quotaExceeded(used: used, limit: limits.accountBytes) }
        return min(kindLimit, limits.accountBytes - used)
    }

    func sha256Hex(_ data: some DataProtocol) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// Stores bytes under their content hash for the account and records them.
    func storeDerived(_ data: Data, account: String, avatarId: String, kind: String, ext: String, contentType: String, details: String? = nil) throws -> MediaRecord {
        let hash = sha256Hex(data)
        let relative = "\(account)/\(hash).\(ext)"
        try media.write(data, relative: relative)
        let record = MediaRecord(accountId: account, avatarId: avatarId, kind: kind, path: relative, sha256: hash, bytes: Int64(data.count),
                                 contentType: contentType, details: details)
        try runtime.database.insert(record)
        return record
    }

    /// Removes an avatar's media rows of these kinds, and their files when nothing else uses them.
    func replaceMedia(avatarId: String, kinds: [String]) throws {
        for path in try runtime.database.deleteMedia(avatarId: avatarId, kinds: kinds) { media.remove(path) }
    }
}

enum PhotoDecoder {
    /// Decodes a stored photo with ffmpeg (on its own thread) and applies the EXIF orientation.
    static func decode(path: String, header: ImageHeader) async throws -> RGBImage {
        let result = await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-noautorotate", "-i", path, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        guard result.status == 0, result.output.count == header.width * header.height * 3 else {
            let reason = result.status == 127 ? "ffmpeg is not installed (run `avatar setup`)" : (result.lastErrorLine ?? "decoded \(result.output.count) bytes, expected \(header.width * header.height * 3)")
            throw MediaError.unreadable("the \(header.format.rawValue.uppercased()) image could not be decoded: \(reason)")
        }
        return RGBImage(width: header.width, height: header.height, pixels: [UInt8](result.output)).oriented(header.orientation)
    }
}

extension RGBImage {
    /// The image as it is meant to be seen, for EXIF orientation 1…8.
    func oriented(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let swap = orientation >= 5
        let outW = swap ? height : width, outH = swap ? width : height
        var out = [UInt8](repeating: 0, count: outW * outH * 3)
        for y in 0..<outH {
            for x in 0..<outW {
                let (sx, sy): (Int, Int)
                switch orientation {
                case 2: (sx, sy) = (width - 1 - x, y)
                case 3: (sx, sy) = (width - 1 - x, height - 1 - y)
                case 4: (sx, sy) = (x, height - 1 - y)
                case 5: (sx, sy) = (y, x)
                case 6: (sx, sy) = (y, height - 1 - x)
                case 7: (sx, sy) = (width - 1 - y, height - 1 - x)
                default: (sx, sy) = (width - 1 - y, x)
                }
                let s = (sy * width + sx) * 3, d = (y * outW + x) * 3
                out[d] = pixels[s]
                out[d + 1] = pixels[s + 1]
                out[d + 2] = pixels[s + 2]
            }
        }
        return RGBImage(width: outW, height: outH, pixels: out)
    }

    /// Mean luma (0…255) inside a box.
    func meanLuma(x: Int, y: Int, width boxW: Int, height boxH: Int) -> Double {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + boxW), y1 = min(height, y + boxH)
        guard x1 > x0, y1 > y0 else { return 0 }
        var sum = 0.0
        for row in y0..<y1 {
            for column in x0..<x1 {
                let i = (row * width + column) * 3
                sum += 0.299 * Double(pixels[i]) + 0.587 * Double(pixels[i + 1]) + 0.114 * Double(pixels[i + 2])
            }
        }
        return sum / Double((x1 - x0) * (y1 - y0))
    }
}

/// Warnings from the photo itself, on top of the landmark engine's.
enum PhotoWarnings {
    static func of(face: FaceLandmarks, image: RGBImage) -> [String] {
        var warnings = face.warnings ?? []
        if face.faceBox.width < 200 {
            warnings.append("The face is \(Int(face.faceBox.width)) px wide; a photo where it is at least 200 px wide animates more sharply.")
        }
        let yaw = abs(face.headPose.yaw), pitch = abs(face.headPose.pitch)
        if yaw > 20 || pitch > 20 {
            warnings.append(String(format: "The head is turned (yaw %.0f°, pitch %.0f°); a frontal photo looking into the camera animates better.", face.headPose.yaw, face.headPose.pitch))
        }
        let luma = image.meanLuma(x: Int(face.faceBox.x), y: Int(face.faceBox.y), width: Int(face.faceBox.width), height: Int(face.faceBox.height))
        if luma < 70 {
            warnings.append(String(format: "The face is dark (mean brightness %.0f of 255); a photo in brighter, even light looks better.", luma))
        }
        return warnings
    }
}

/// `PUT /api/v1/avatars/:id/photo` (body: the image bytes), `GET …/photo`, `GET …/photo/preview`.
func addPhotoRoutes(_ api: RouterGroup<AppRequestContext>, alias: RouterGroup<AppRequestContext>, services: APIServices) {
    let runtime = services.runtime
    @Sendable func upload(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<PhotoResponse> {
        let account = try context.requireAccount()
        var avatar = try services.owned(context)
        try await services.limiter.check(account: account.id, kind: .upload)
        let check = PhotoCheck(maxPixels: services.limits.photoPixels)
        let limit = try services.uploadLimit(account: account.id, kindLimit: services.limits.photoBytes)
        let (file, originalName) = try await receiveUpload(request, services: services, limit: limit, headBytes: PhotoCheck.headerWindow) { head, finished in
            try check.inspect(head, finished: finished)
        }
        var committed = false
        defer { if !committed { try? FileManager.default.removeItem(atPath: file.tempPath) } }
        let header = try check.verifyComplete(file)
        let image = try await PhotoDecoder.decode(path: file.tempPath, header: header)

        guard let host = runtime.engineHost else {
            throw Problem(.serviceUnavailable, "engines-disabled", "Engines disabled", detail: "the landmark engine is off (AVATAR_ENGINES_ENABLED=false); a face cannot be found",
                          fix: "start the server with engines enabled")
        }
        let bytes = try await FileRead.data(file.tempPath)
        let face = try await host.landmarks(image: bytes, filename: "photo.\(header.format.fileExtension)", multiple: .largest)
        guard face.width == image.width, face.height == image.height else {
            throw MediaError.unreadable("the landmark engine saw \(face.width)×\(face.height), the decoder \(image.width)×\(image.height) (EXIF orientation \(header.orientation))")
        }
        let rig = try FaceRig(photo: image, landmarks: face.landmarks)
        let preview = try rig.image.pixels.withUnsafeBufferPointer { try JPEGEncoder(quality: 90).encode($0.baseAddress!, width: FaceRig.size, height: FaceRig.size) }
        let warnings = PhotoWarnings.of(face: face, image: image)

        // Store: the photo (compacted, see `PhotoCompaction`) under its content hash, the aligned preview, the
        // landmarks in the stored photo's pixels (the rig is rebuilt from photo + landmarks).
        let scale = PhotoCompaction.scale(width: image.width, height: image.height, faceHeight: face.faceBox.height)
        let storedWidth = max(1, Int((Double(image.width) * scale).rounded())), storedHeight = max(1, Int((Double(image.height) * scale).rounded()))
        let jpeg = try await PhotoCompaction.jpeg(image, width: storedWidth, height: storedHeight)
        let keepUpload = header.orientation == 1 && scale == 1 && file.bytes <= Int64(jpeg.count)
        try services.replaceMedia(avatarId: avatar.id, kinds: ["photo", "preview", "landmarks"])
        let photoRecord: MediaRecord
        let stored: StoredPhoto
        if keepUpload {
            let relative = try services.media.commit(file, account: account.id, fileExtension: header.format.fileExtension)
            committed = true
            photoRecord = MediaRecord(accountId: account.id, avatarId: avatar.id, kind: "photo", path: relative, sha256: file.sha256, bytes: file.bytes,
                                      contentType: header.format.contentType, originalName: originalName)
            try runtime.database.insert(photoRecord)
            stored = StoredPhoto(format: header.format.rawValue, width: image.width, height: image.height, orientation: 1, bytes: file.bytes,
                                 sha256: file.sha256, reencoded: false, scale: 1)
        } else {
            let hash = services.sha256Hex(jpeg)
            let relative = "\(account.id)/\(hash).jpg"
            try services.media.write(jpeg, relative: relative)
            photoRecord = MediaRecord(accountId: account.id, avatarId: avatar.id, kind: "photo", path: relative, sha256: hash, bytes: Int64(jpeg.count),
                                      contentType: "image/jpeg", originalName: originalName)
            try runtime.database.insert(photoRecord)
            stored = StoredPhoto(format: "jpeg", width: storedWidth, height: storedHeight, orientation: 1, bytes: Int64(jpeg.count),
                                 sha256: hash, reencoded: true, scale: (scale * 10000).rounded() / 10000)
        }
        runtime.logger.info("photo stored", metadata: [
            "avatar": .string(avatar.id), "uploaded": .string("\(header.format.rawValue) \(header.width)×\(header.height) \(file.bytes) B"),
            "stored": .string("\(stored.format) \(stored.width)×\(stored.height) \(stored.bytes) B"), "reencoded": .stringConvertible(stored.reencoded),
        ])
        let previewRecord = try services.storeDerived(Data(preview), account: account.id, avatarId: avatar.id, kind: "preview", ext: "jpg", contentType: "image/jpeg")
        let storedFace = face.scaled(Double(storedWidth) / Double(image.width), Double(storedHeight) / Double(image.height), width: storedWidth, height: storedHeight)
        let landmarks = try JSONEncoder().encode(keepUpload ? face : storedFace)
        let landmarksRecord = try services.storeDerived(landmarks, account: account.id, avatarId: avatar.id, kind: "landmarks", ext: "json", contentType: "application/json")

        let box = PhotoState.Box(x: face.faceBox.x, y: face.faceBox.y, width: face.faceBox.width, height: face.faceBox.height)
        let pose = ["yaw": face.headPose.yaw, "pitch": face.headPose.pitch, "roll": face.headPose.roll]
        let state = PhotoState(mediaId: photoRecord.id, previewMediaId: previewRecord.id, landmarksMediaId: landmarksRecord.id, sha256: file.sha256,
                               format: header.format.rawValue, width: image.width, height: image.height, orientation: header.orientation,
                               faceBox: box, headPose: pose, faces: face.faces, warnings: warnings, uploadedAt: Date(), stored: stored)
        avatar.photo = APIJSON.string(state)
        avatar.updatedAt = Date()
        try runtime.database.update(avatar)
        return EditedResponse(status: .created, response: PhotoResponse(
            avatarId: avatar.id, url: "/api/v1/avatars/\(avatar.id)/photo", previewUrl: "/api/v1/avatars/\(avatar.id)/photo/preview",
            format: header.format.rawValue, width: image.width, height: image.height, orientation: header.orientation,
            faceBox: box, headPose: pose, faces: face.faces, warnings: warnings, bytes: file.bytes, sha256: file.sha256, stored: stored))
    }
    api.put("/avatars/:id/photo", use: upload)
    api.post("/avatars/:id/photo", use: upload)
    alias.post("/upload-photo", use: upload)

    api.get("/avatars/:id/photo") { request, context -> Response in
        let avatar = try services.owned(context)
        guard let record = try runtime.database.media(avatarId: avatar.id, kind: "photo").last else { throw Problem.notFound("a photo of avatar \(avatar.id)") }
        return try await FileResponder.respond(services.media.absolute(record.path), contentType: record.contentType, request: request, context: context)
    }
    api.get("/avatars/:id/photo/preview") { request, context -> Response in
        let avatar = try services.owned(context)
        guard let record = try runtime.database.media(avatarId: avatar.id, kind: "preview").last else { throw Problem.notFound("a photo of avatar \(avatar.id)") }
        return try await FileResponder.respond(services.media.absolute(record.path), contentType: record.contentType, request: request, context: context)
    }
}
