import AvatarAnimation
import AvatarEngines
import AvatarMedia
import AvatarStore
import Foundation

/// The animatable face of a stored avatar: its photo and the landmarks found at upload.
enum AvatarFace {
    /// The rig built from the avatar's photo, or nil when it has none (or its files are gone).
    static func rig(of avatar: OwnedAvatar, accountId: String, services: APIServices) async throws -> FaceRig? {
        let database = services.runtime.database
        guard let stateJSON = avatar.photo, let state = try? APIJSON.decoder.decode(PhotoState.self, from: Data(stateJSON.utf8)),
              let photo = try database.media(id: state.mediaId, accountId: accountId),
              let landmarksRecord = try database.media(id: state.landmarksMediaId, accountId: accountId),
              let landmarksData = FileManager.default.contents(atPath: services.media.absolute(landmarksRecord.path)) else {
            return nil
        }
        let face = try JSONDecoder().decode(FaceLandmarks.self, from: landmarksData)
        let swap = state.orientation >= 5
        let header = ImageHeader(format: ImageFormat(rawValue: state.format) ?? .png, width: swap ? state.height : state.width,
                                 height: swap ? state.width : state.height, orientation: state.orientation)
        let image = try await PhotoDecoder.decode(path: services.media.absolute(photo.path), header: header)
        return try FaceRig(photo: image, landmarks: face.landmarks)
    }
}
