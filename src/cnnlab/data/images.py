"""Image files: which suffixes count as images, and decoding them.

`open_image` reads a user's image (a path or uploaded bytes) for prediction; its errors say why a file
cannot be used, typed (errors.ImageError) so the server can answer 400, 413 or 415. `decode_file`
reads one image of a data set folder as a uint8 array.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import BrokenImage, ImageTooLarge, NotAnImage, UserError

# What Pillow decodes and cnnlab reads, in data set folders and in `cnnlab predict FOLDER` alike.
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
              ".pnm")
MAX_PIXELS = 40_000_000  # refuse decompression bombs: 40 MP is far more than any classifier input needs


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Decode an image file (path or bytes); a UserError names the file when it is not an image."""
    name = name or (str(source) if not isinstance(source, bytes) else "upload")
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise UserError(f"{name}: no such file; give the path of a PNG or JPEG image")
    if isinstance(source, bytes) and not source:
        raise BrokenImage(f"{name}: the file is empty; send a PNG, JPEG, BMP, GIF or WebP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            if img.width * img.height > MAX_PIXELS:
                raise ImageTooLarge(f"{name}: {img.width}x{img.height} pixels is too large (limit "
                                    f"{MAX_PIXELS // 1_000_000} MP); scale it down first")
            img.load()
    except UserError:
        raise
    except UnidentifiedImageError:
        # Pillow's own words name its in-memory buffer, not the user's file: say it in ours.
        raise NotAnImage(f"{name}: not an image file (no known image format); give a PNG, JPEG, BMP, GIF or "
                         "WebP file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"{name}: the image has too many pixels (over {MAX_PIXELS // 1_000_000} MP); "
                            "scale it down first") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BrokenImage(f"{name}: a broken or truncated image ({type(e).__name__}); give a PNG, JPEG, BMP, "
                          "GIF or WebP file") from None
    if img.width < 1 or img.height < 1:
        raise BrokenImage(f"{name}: the image is empty")
    if img.mode == "F" and not np.isfinite(np.asarray(img)).all():  # a float TIFF can hold NaN or infinity
        raise BrokenImage(f"{name}: some pixel values are NaN or infinite; give an image of real numbers")
    return ImageOps.exif_transpose(img)


GREY_MODES_16 = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # 16/32-bit and float grey


def to_array(im: Image.Image, background: str = "white") -> np.ndarray:
    """A decoded image as (H, W) uint8 if its pixels are grey, else (H, W, 3) RGB.

    Palette, CMYK, 1-bit and 16-bit images are converted; transparent pixels are laid over `background`.
    The one conversion both training folders and prediction use, so a file means the same to both."""
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in GREY_MODES_16:  # scaled to 0..255 (16-bit PNGs hold 0..65535, float TIFFs 0..1)
        a = np.asarray(im, dtype=np.float64)
        a = a * 255 if a.max() <= 1 and im.mode == "F" else a / 257 if a.max() > 255 else a
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if im.has_transparency_data:
        im = Image.alpha_composite(Image.new("RGBA", im.size, background), im.convert("RGBA"))
    a = np.asarray(im.convert("L") if im.mode in ("1", "L") else im.convert("RGB"))
    if a.ndim == 3 and (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all():
        return a[..., 0].copy()  # an RGB file with grey pixels counts as grey
    return a


def resize_array(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W[, 3]) uint8 -> (h, w[, 3]) uint8: Pillow's bilinear filter, antialiased when shrinking.

    Training folders and prediction both resize through here, so a file gets the same pixels in both."""
    if a.shape[:2] == (h, w):
        return a
    return np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR))


def image_hw(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file's header, as decode_file will return it (EXIF rotation applied);
    None if the header does not read. Nothing is decoded."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.format == "PNG":  # Pillow's PNG getexif() decodes the whole image to look for a late eXIf
                exif = Image.Exif()
                exif.load(im.info.get("exif", b""))
            else:
                exif = im.getexif()
            turned = exif.get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)  # 90 or 270 degrees
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return (w, h) if turned else (h, w)


def decode_file(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image file as `to_array` gives it (EXIF orientation applied), resized to size=(h, w) if given."""
    try:
        with Image.open(path) as im:
            im.load()
            a = to_array(ImageOps.exif_transpose(im))
    except UnidentifiedImageError:
        raise BrokenImage(f"{path}: not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BrokenImage(f"{path}: cannot decode this image ({e})") from None
    return a if size is None else resize_array(a, *size)
