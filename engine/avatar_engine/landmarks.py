"""Face landmarks: MediaPipe FaceLandmarker (Tasks API), 478 points + 52 blendshapes + head pose."""

from __future__ import annotations

import io
import logging
import math
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import EngineError, bad_request, server_error, unprocessable

log = logging.getLogger("avatar_engine.landmarks")

MAX_FACES = 4
MAX_PIXELS = 80_000_000  # refuse decompression bombs above ~80 MP
MULTIPLE_MODES = ("error", "largest")


def decode_image(data: bytes) -> np.ndarray:
    """Any image Pillow (or, failing that, OpenCV) can decode -> HxWx3 uint8 RGB, EXIF-upright."""
    if not data:
        raise bad_request("empty_input", "The uploaded image is empty (0 bytes). Send a JPEG/PNG/WebP "
                                         "image as the 'file' field.", param="file")
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                if im.mode in ("RGBA", "LA", "P", "PA"):
                    im = im.convert("RGBA")
                    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(bg, im)
                return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise bad_request("image_too_large", f"The image has more than {MAX_PIXELS // 1_000_000} megapixels; "
                                             "scale it down before sending.", param="file") from None
    except Exception:
        pass
    try:  # OpenCV knows a few formats Pillow does not (e.g. some EXR/HDR/PFM variants)
        import cv2

        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if arr is not None and arr.size:
            if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
                raise bad_request("image_too_large", "The image is too large; scale it down.", param="file")
            return np.ascontiguousarray(arr[:, :, ::-1])
    except EngineError:
        raise
    except Exception:
        pass
    raise bad_request("unsupported_media", "The uploaded file could not be decoded as an image. Send a "
                                           "JPEG, PNG, WebP, BMP, GIF or TIFF image.", param="file")


def head_pose_degrees(matrix: np.ndarray) -> dict[str, float]:
    """Yaw/pitch/roll (degrees) from MediaPipe's 4x4 facial transformation matrix.

    R = Ry(yaw) @ Rx(pitch) @ Rz(roll) decomposition in MediaPipe's canonical face space (x to the
    subject's left in the image = image right, y up, z towards the camera).
    """
    r = np.asarray(matrix, dtype=np.float64)[:3, :3]
    # remove any uniform scale
    scale = np.cbrt(max(abs(np.linalg.det(r)), 1e-12))
    r = r / scale
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, -r[1, 2]))))
    yaw = math.degrees(math.atan2(r[0, 2], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[1, 1]))
    return {"yaw": round(yaw, 2), "pitch": round(pitch, 2), "roll": round(roll, 2)}


class LandmarkEngine:
    def __init__(self, model_path: Path) -> None:
        self.model_path = Path(model_path)
        self.landmarker = None
        self.load_seconds: Optional[float] = None
        self._lock = threading.Lock()

    def load(self) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        t0 = time.monotonic()
        self._mp = mp
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=MAX_FACES,
            min_face_detection_confidence=0.5,
            min_face_presence_confidence=0.5,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self.landmarker = vision.FaceLandmarker.create_from_options(options)
        self.landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                        data=np.zeros((64, 64, 3), dtype=np.uint8)))  # warm-up
        self.load_seconds = round(time.monotonic() - t0, 3)

    def close(self) -> None:
        if self.landmarker is not None:
            try:
                self.landmarker.close()
            except Exception:
                pass
            self.landmarker = None

    def info(self) -> dict[str, Any]:
        return {"ready": self.landmarker is not None, "model": "mediapipe-face_landmarker",
                "max_faces": MAX_FACES, "points": 478, "load_seconds": self.load_seconds}

    def detect(self, data: bytes, multiple: str = "error") -> dict[str, Any]:
        """Blocking: call from a worker thread."""
        if self.landmarker is None:
            raise EngineError(503, "engine_not_ready", "The face landmark model is still loading; "
                                                       "retry when GET /health says ready.")
        if multiple not in MULTIPLE_MODES:
            raise bad_request("invalid_parameter", f"'multiple' must be one of {', '.join(MULTIPLE_MODES)} "
                                                   f"(got {multiple!r}).", param="multiple")
        rgb = decode_image(data)
        h, w = rgb.shape[:2]
        t0 = time.monotonic()
        try:
            with self._lock:
                faces = self._faces_in(rgb, 0, 0, w, h)
                scanned = False
                if not faces:
                    faces, scanned = self._scan_crops(rgb), True
        except Exception as exc:
            log.exception("landmark detection failed")
            raise server_error("landmarks_failed", f"Face landmark detection failed inside the engine "
                                                   f"({exc.__class__.__name__}).") from None
        n = len(faces)
        log.info("landmarks", extra={"fields": {"width": w, "height": h, "faces": n, "scanned": scanned,
                                                "infer_ms": round((time.monotonic() - t0) * 1000, 1)}})
        if n == 0:
            raise unprocessable("no_face", "No face was found in the image. Use a well-lit, frontal photo "
                                           "in which one face is clearly visible.", param="file")
        warnings_out: list[str] = []
        if n > 1:
            if multiple == "error":
                raise unprocessable("multiple_faces",
                                    f"{n} faces were found in the image; the avatar needs exactly one. Crop the "
                                    "photo to one person, or send multiple=largest to use the largest face.",
                                    param="file")
            idx = max(range(n), key=lambda i: faces[i].area)
            warnings_out.append(f"{n} faces detected; using the largest one "
                                f"({faces[idx].box[2]:.0f}x{faces[idx].box[3]:.0f} px).")
        else:
            idx = 0
        face = faces[idx]
        bx, by, bw, bh = face.box
        if scanned:
            warnings_out.append("The face is small in the frame and was found by scanning parts of the image; "
                                "a closer, tighter portrait gives better landmarks.")
        elif bw * bh < 0.002 * w * h:
            warnings_out.append("The face is very small in the image; landmarks may be inaccurate.")
        if bx <= 0 or by <= 0 or bx + bw >= w or by + bh >= h:
            warnings_out.append("The face touches the image border; part of it may be cut off.")
        return {
            "width": w, "height": h, "faces": n,
            "landmarks": [[round(float(x), 2), round(float(y), 2), round(float(z), 5)] for x, y, z in face.points],
            "blendshapes": face.blendshapes,
            "head_pose": head_pose_degrees(face.matrix) if face.matrix is not None else None,
            "face_box": {"x": round(bx, 1), "y": round(by, 1), "width": round(bw, 1), "height": round(bh, 1)},
            "warnings": warnings_out,
        }

    # -- internals ------------------------------------------------------------------------------
    def _faces_in(self, rgb: np.ndarray, x0: int, y0: int, cw: int, ch: int) -> list["_Face"]:
        """Run the landmarker on rgb[y0:y0+ch, x0:x0+cw]; results in full-image pixel coordinates."""
        full_w = rgb.shape[1]
        crop = rgb if (x0, y0, cw, ch) == (0, 0, rgb.shape[1], rgb.shape[0]) else \
            np.ascontiguousarray(rgb[y0:y0 + ch, x0:x0 + cw])
        result = self.landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=crop))
        faces = []
        for i, lms in enumerate(result.face_landmarks):
            # x,y normalised to the crop; z uses the crop width as its scale -> rescale to the full width
            pts = np.array([[x0 + p.x * cw, y0 + p.y * ch, p.z * cw / full_w] for p in lms], dtype=np.float64)
            blend = {}
            if result.face_blendshapes and i < len(result.face_blendshapes):
                blend = {c.category_name: round(float(c.score), 4) for c in result.face_blendshapes[i]}
            matrix = None
            if result.facial_transformation_matrixes and i < len(result.facial_transformation_matrixes):
                matrix = np.asarray(result.facial_transformation_matrixes[i])
            faces.append(_Face(pts, blend, matrix, rgb.shape[1], rgb.shape[0]))
        return faces

    def _scan_crops(self, rgb: np.ndarray) -> list["_Face"]:
        """Fallback for faces that are small in the frame: the landmarker's detector sees the whole
        image at 128x128 and misses small faces, so look at overlapping square crops, coarse to fine."""
        h, w = rgb.shape[:2]
        side = min(w, h)
        budget = 48
        while side >= 160 and budget > 0:
            found: list[_Face] = []
            for y in _positions(h, side):
                for x in _positions(w, side):
                    if budget <= 0:
                        break
                    budget -= 1
                    for face in self._faces_in(rgb, x, y, side, side):
                        if all(_iou(face.box, f.box) < 0.3 for f in found):
                            found.append(face)
            if found:
                return found
            side //= 2
        return []


class _Face:
    def __init__(self, points: np.ndarray, blendshapes: dict, matrix, w: int, h: int) -> None:
        self.points, self.blendshapes, self.matrix = points, blendshapes, matrix
        x0, y0 = max(0.0, float(points[:, 0].min())), max(0.0, float(points[:, 1].min()))
        x1, y1 = min(float(w), float(points[:, 0].max())), min(float(h), float(points[:, 1].max()))
        self.box = (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))
        self.area = self.box[2] * self.box[3]


def _positions(length: int, side: int) -> list[int]:
    """Window starts covering [0, length) with ~50 % overlap, the last one flush with the end."""
    if side >= length:
        return [0]
    step = max(1, side // 2)
    pos = list(range(0, length - side + 1, step))
    if pos[-1] != length - side:
        pos.append(length - side)
    return pos


def _iou(a: tuple, b: tuple) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
