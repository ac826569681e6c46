/// MediaPipe FaceMesh landmark indices of the regions the rig moves.
enum FaceIndex {
    static let upperInnerLip = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
    static let lowerInnerLip = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
    static let upperOuterLip = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
    static let lowerOuterLip = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
    static let mouthCorners = [61, 291, 78, 308]
    /// The two rings of landmarks inside each lip, between its outer and inner contours (MediaPipe's 80-point lip
    /// set), left to right like the contours: the first a third of the way in from the outer contour, the second
    /// two thirds. Their ends lie between the mouth corners (`lipRingCorners`).
    static let upperLipRings = [[76, 184, 74, 73, 72, 11, 302, 303, 304, 408, 306],
                                [62, 183, 42, 41, 38, 12, 268, 271, 272, 407, 292]]
    static let lowerLipRings = [[76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306],
                                [62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292]]
    static let lipRingCorners = [76, 306, 62, 292]
    static let chin = 152
    static let noseTip = 1
    static let foreheadTop = 10
    /// Upper and lower lid of each eye, paired point by point from corner to corner.
    static let rightEyeUpper = [33, 246, 161, 160, 159, 158, 157, 173, 133]
    static let rightEyeLower = [33, 7, 163, 144, 145, 153, 154, 155, 133]
    static let leftEyeUpper = [263, 466, 388, 387, 386, 385, 384, 398, 362]
    static let leftEyeLower = [263, 249, 390, 373, 374, 380, 381, 382, 362]
    static let rightIris = [468, 469, 470, 471, 472]
    static let leftIris = [473, 474, 475, 476, 477]
    static let faceOval = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                           152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
    static let rightBrow = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
    static let leftBrow = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
}
