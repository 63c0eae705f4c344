"""How large a decoded image may be: the limits every decode checks before it allocates."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.base import PipelineError

# Defaults of the settings MAX_IMAGE_PIXELS, MAX_DICOM_FRAMES and MAX_DECODED_IMAGE_BYTES.
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_FRAMES = 64
# 40 Mpx at 4 bytes a pixel (16-bit or colour); a 6000x6000x10 8-bit cine (360 MB) is refused.
DEFAULT_MAX_DECODED_BYTES = 160_000_000


@dataclass(frozen=True)
class ImageLimits:
    """Per frame pixels, frames per file, and decoded bytes (all frames) of one input image."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES

    def check(
        self, width: int, height: int, frames: int = 1, samples: int = 1, bytes_per_sample: int = 1
    ) -> None:
        """Refuse (``image_too_large``) a declared size over the limits, before decoding it."""
        if width * height > self.max_pixels:
            raise PipelineError(
                "image_too_large",
                f"{width}x{height} has more than {self.max_pixels} pixels.",
            )
        if frames > self.max_frames:
            raise PipelineError(
                "image_too_large", f"{frames} frames; at most {self.max_frames} are accepted."
            )
        decoded = width * height * frames * samples * bytes_per_sample
        if decoded > self.max_decoded_bytes:
            raise PipelineError(
                "image_too_large",
                f"{width}x{height} x {frames} frame(s) x {samples} sample(s) x "
                f"{bytes_per_sample} byte(s) decodes to {decoded} bytes; the limit is "
                f"{self.max_decoded_bytes}.",
            )


DEFAULT_LIMITS = ImageLimits()
