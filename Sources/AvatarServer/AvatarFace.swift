import AvatarAnimation
import AvatarEngines
import AvatarMedia
import AvatarStore
import Foundation

/// The animatable face of a stored avatar: its photo and the landmarks found at upload.
enum AvatarFace {
    /// The stored photo's absolute path, or nil when the avatar has none (or its file is gone).
    static func photoPath(of avatar: OwnedAvatar, accountId: String, services: APIServices) throws -> String? {
        guard let stateJSON = avatar.photo, let state = try? APIJSON.decoder.decode(PhotoState.self, from: Data(stateJSON.utf8)),
              let photo = try services.runtime.database.media(id: state.mediaId, accountId: accountId) else { return nil }
        let path = services.media.absolute(photo.path)
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// The rig built from the avatar's photo, or nil when it has none (or its files are gone).
    static func rig(of avatar: OwnedAvatar, accountId: String, services: APIServices) async throws -> FaceRig? {
        let database = services.runtime.database
        guard let stateJSON = avatar.photo, let state = try? APIJSON.decoder.decode(PhotoState.self, from: Data(stateJSON.utf8)),
              let photo = try database.media(id: state.mediaId, accountId: accountId),
              let landmarksRecord = try database.media(id: state.landmarksMediaId, accountId: accountId),
              let landmarksData = try? await FileRead.data(services.media.absolute(landmarksRecord.path), limit: 16 * 1024 * 1024) else {
            return nil
        }
        let face = try JSONDecoder().decode(FaceLandmarks.self, from: landmarksData)
        // The stored file: the compacted JPEG (or the kept upload) — or, for photos stored before compaction, the upload.
        let format = state.stored?.format ?? state.format, orientation = state.stored?.orientation ?? state.orientation
        let width = state.stored?.width ?? state.width, height = state.stored?.height ?? state.height
        let swap = orientation >= 5
        let header = ImageHeader(format: ImageFormat(rawValue: format) ?? .png, width: swap ? height : width,
                                 height: swap ? width : height, orientation: orientation)
        let image = try await PhotoDecoder.decode(path: services.media.absolute(photo.path), header: header)
        return try FaceRig(photo: image, landmarks: face.landmarks)
    }
}
