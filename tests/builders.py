"""Data builders for tests: users, tokens and images made on the fly."""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import warnings
from datetime import date
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from flask.testing import FlaskClient
from PIL import Image, ImageDraw
from werkzeug.test import TestResponse

from core.database import db
from core.records import Job, JobInput, JobStatus, Subject, User, utcnow

DEFAULT_PASSWORD = "correct horse battery staple"
_emails = itertools.count(1)


def make_user(
    email: str | None = None, password: str = DEFAULT_PASSWORD, confirmed: bool = True
) -> User:
    """A saved user, by default with a confirmed email address (call inside an app context)."""
    user = User(email=email or f"user{next(_emails)}@example.org")
    user.set_password(password)
    if confirmed:
        user.email_confirmed_at = utcnow()
    db.session.add(user)
    db.session.commit()
    return user


def bearer(client: FlaskClient, email: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    """Authorization headers with a fresh token from the API."""
    import base64

    basic = base64.b64encode(f"{email}:{password}".encode()).decode()
    response = client.post("/api/v1/tokens", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def ellipse_mask_png(
    width: int = 400,
    height: int = 300,
    center: tuple[float, float] = (200, 150),
    semi_axes: tuple[float, float] = (120, 80),
    angle_deg: float = 0.0,
    image_format: str = "PNG",
) -> bytes:
    """A white filled ellipse on black, encoded in the given format."""
    image = Image.new("L", (width, height), 0)
    cx, cy = center
    a, b = semi_axes
    theta = math.radians(angle_deg)
    points = [
        (
            cx + a * math.cos(t) * math.cos(theta) - b * math.sin(t) * math.sin(theta),
            cy + a * math.cos(t) * math.sin(theta) + b * math.sin(t) * math.cos(theta),
        )
        for t in (2 * math.pi * i / 720 for i in range(720))
    ]
    ImageDraw.Draw(image).polygon(points, fill=255)
    return encode(image, image_format)


def blank_png(width: int = 64, height: int = 64) -> bytes:
    """An all-black image: a mask with no object."""
    return encode(Image.new("L", (width, height), 0), "PNG")


def encode(image: Image.Image, image_format: str, **options: Any) -> bytes:
    """Encode a Pillow image to bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def submit_job(
    client: FlaskClient,
    headers: dict[str, str],
    files: list[tuple[bytes, str]] | None = None,
    params: object = None,
    job_type: str = "perimeter",
    **extra: object,
) -> TestResponse:
    """POST /api/v1/jobs; defaults to a valid perimeter job (an ellipse mask, 0.1 mm pixels)."""
    if files is None:
        files = [(ellipse_mask_png(), "mask.png")]
    if params is None:
        params = {"pixel_spacing_mm": 0.1}
    data: dict[str, object] = {
        "type": job_type,
        **extra,
        "params": params if isinstance(params, str) else json.dumps(params),
        "files": [(io.BytesIO(content), name) for content, name in files],
    }
    return client.post(
        "/api/v1/jobs", data=data, headers=headers, content_type="multipart/form-data"
    )


def dicom_bytes(pixels: np.ndarray, pixel_spacing: tuple[float, float] | None) -> bytes:
    """A minimal valid DICOM (8-bit MONOCHROME2) holding the pixels and optional PixelSpacing."""
    from pydicom.uid import ExplicitVRLittleEndian

    rows, columns = pixels.shape
    dataset = _dicom_dataset(rows, columns, 1, ExplicitVRLittleEndian)
    if pixel_spacing is not None:
        dataset.PixelSpacing = [f"{pixel_spacing[0]:.6g}", f"{pixel_spacing[1]:.6g}"]
    dataset.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_with_spacing(spacing: str) -> bytes:
    """A valid DICOM whose PixelSpacing is this text twice (even one pydicom calls invalid)."""
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(dicom_bytes(np.zeros((60, 80), dtype=np.uint8), (0.2, 0.2))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom warns that NaN is not a valid DS
        dataset.PixelSpacing = [spacing, spacing]
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# EXIF orientation 6: the stored pixels are turned 90° counter-clockwise; viewers turn them back.
EXIF_ORIENTATION = 0x0112
ROTATED_CCW = 6


def face_photo(image_format: str = "JPEG", exif_rotated: bool = False) -> bytes:
    """The public-domain astronaut portrait (one face), optionally stored sideways with an EXIF
    orientation that turns it upright."""
    from skimage import data

    image = Image.fromarray(data.astronaut())
    if not exif_rotated:
        return encode(image, image_format)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_CCW
    return encode(image.rotate(90, expand=True), image_format, exif=exif)


def no_face_photo() -> bytes:
    """A public-domain photo without a face (a coffee cup), as JPEG."""
    from skimage import data

    return encode(Image.fromarray(data.coffee()), "JPEG")


_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_LINK = re.compile(r"https?://\S+")


def csrf_token(client: FlaskClient, page: str = "/account/signin") -> str:
    """The session's CSRF token, read from a page as a browser would."""
    response = client.get(page)
    found = _CSRF_META.search(response.get_data(as_text=True))
    assert found, f"no CSRF token on {page} ({response.status_code})"
    return found.group(1)


def post_form(
    client: FlaskClient, path: str, data: dict[str, str], page: str | None = None
) -> TestResponse:
    """Submit a form with the CSRF token from its page (``page`` defaults to ``path``)."""
    token = csrf_token(client, page or path)
    return client.post(path, data={**data, "csrf_token": token})


def sign_in(client: FlaskClient, email: str, password: str = DEFAULT_PASSWORD) -> TestResponse:
    """Sign in through the web form."""
    return post_form(client, "/account/signin", {"email": email, "password": password})


def link_path(message: EmailMessage) -> str:
    """The path of the (first) link in an email's body."""
    found = _LINK.search(message.get_content())
    assert found, message.get_content()
    return urlsplit(found.group(0)).path


def make_subject(owner: User, name: str = "Baby", due_date: date | None = None) -> Subject:
    """A saved subject of the owner."""
    subject = Subject(owner_id=owner.id, name=name, due_date=due_date)
    db.session.add(subject)
    db.session.commit()
    return subject


def make_prediction(
    subject: Subject, prediction: str = "second", confidence: float = 0.9, images: int = 1
) -> Job:
    """A finished classification job of the subject, with stored input rows (as the worker
    leaves it)."""
    job = Job(
        owner_id=subject.owner_id,
        subject_id=subject.id,
        type="classification",
        status=JobStatus.SUCCEEDED.value,
        progress=100,
        params={},
        result={
            "prediction": prediction,
            "confidence": confidence,
            "images": [{"position": i, "most_probable": prediction} for i in range(images)],
        },
        model_name="hc18-trimester",
        model_version="1.0.0",
        finished_at=utcnow(),
    )
    for position in range(images):
        job.inputs.append(
            JobInput(
                position=position,
                filename=f"scan{position}.png",
                content_type="image/png",
                size=1,
                sha256="0" * 64,
                storage_path=f"jobs/x/inputs/{position}.png",
            )
        )
    db.session.add(job)
    db.session.commit()
    return job


def _dicom_dataset(rows: int, columns: int, frames: int, transfer_syntax: str) -> Any:
    """File meta and an 8-bit MONOCHROME2 header (no pixel data) for the given size."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    dataset = FileDataset("scan.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "US"
    dataset.Rows, dataset.Columns = rows, columns
    if frames > 1:
        dataset.NumberOfFrames = frames
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    return dataset


def deflated_dicom(
    rows: int, columns: int, frames: int = 1, pixel_bytes: int | None = None, fill: int = 0
) -> bytes:
    """A real Deflated Explicit VR Little Endian DICOM whose pixel data (``fill`` bytes, by
    default rows x columns x frames of them) is streamed through zlib: a 6000x6000x10 file is
    ~350 kB that inflates to 360 MB, built without ever holding the 360 MB."""
    import struct
    import zlib

    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    dataset = _dicom_dataset(rows, columns, frames, DeflatedExplicitVRLittleEndian)
    size = rows * columns * frames if pixel_bytes is None else pixel_bytes
    size += size % 2  # DICOM values have even lengths
    head = DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, dataset.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, dataset)
    # (7FE0,0010) Pixel Data, VR OB, 2 reserved bytes, 32-bit length, then the values.
    body.write(b"\xe0\x7f\x10\x00OB\0\0" + struct.pack("<I", size))
    # After a full flush a deflate stream refers to nothing before it, so one compressed 1 MiB
    # block can be repeated: the file is built in milliseconds, never holding the inflated data.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks = [
        head.getvalue(),
        deflater.compress(body.getvalue()),
        deflater.flush(zlib.Z_FULL_FLUSH),
    ]
    blocks, remainder = divmod(size, 1 << 20)
    if blocks:
        block_deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        block = block_deflater.compress(bytes([fill]) * (1 << 20))
        chunks.append((block + block_deflater.flush(zlib.Z_FULL_FLUSH)) * blocks)
    chunks += [deflater.compress(bytes([fill]) * remainder), deflater.flush()]
    return b"".join(chunks)


def multiframe_dicom(frames: np.ndarray, deflated: bool = True) -> bytes:
    """An 8-bit MONOCHROME2 DICOM of several frames (frames, rows, columns), deflated or not."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    syntax = DeflatedExplicitVRLittleEndian if deflated else ExplicitVRLittleEndian
    count, rows, columns = frames.shape
    dataset = _dicom_dataset(rows, columns, count, syntax)
    dataset.NumberOfFrames = count
    dataset.PixelData = np.ascontiguousarray(frames, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def rgb_dicom(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB DICOM (rows, columns, 3), Explicit VR Little Endian."""
    from pydicom.uid import ExplicitVRLittleEndian

    dataset = _dicom_dataset(*pixels.shape[:2], 1, ExplicitVRLittleEndian)
    dataset.SamplesPerPixel = 3
    dataset.PlanarConfiguration = 0
    dataset.PhotometricInterpretation = "RGB"
    dataset.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def encapsulated_dicom(
    frames: list[bytes], transfer_syntax: str, rows: int = 64, columns: int = 64, samples: int = 1
) -> bytes:
    """An 8-bit DICOM whose pixel data is these already encoded frames (JPEG, RLE...),
    encapsulated as is: the header says ``rows`` x ``columns``, whatever the frames hold."""
    from pydicom.encaps import encapsulate

    dataset = _dicom_dataset(rows, columns, len(frames), transfer_syntax)
    if samples == 3:
        dataset.SamplesPerPixel = 3
        dataset.PlanarConfiguration = 0
        dataset.PhotometricInterpretation = "YBR_FULL_422"
    dataset.PixelData = encapsulate(frames)
    dataset["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def rle_frame(*segments: bytes) -> bytes:
    """One RLE Lossless frame: the 64-byte header of segment offsets, then the segments."""
    import struct

    offsets, start = [], 64
    for segment in segments:
        offsets.append(start)
        start += len(segment)
    return struct.pack("<16L", len(segments), *offsets, *[0] * (15 - len(segments))) + b"".join(
        segments
    )


def rle_bomb_dicom(runs: int, rows: int = 64, columns: int = 64) -> bytes:
    """An RLE DICOM declaring rows x columns whose one segment is ``runs`` 2-byte runs of 128
    zeros: 400 kB (200 000 runs) expand to 25.6 MB."""
    from pydicom.uid import RLELossless

    return encapsulated_dicom([rle_frame(b"\x81\x00" * runs)], RLELossless, rows, columns)


def with_trailing_elements(dicom: bytes, *elements: tuple[int, str, object]) -> bytes:
    """The file with (tag, VR, value) elements appended after its pixel data (Explicit VR
    Little Endian), as a hostile writer could: tags out of order."""
    from pydicom.dataelem import DataElement
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    tail = DicomBytesIO()
    tail.is_little_endian, tail.is_implicit_VR = True, False
    for tag, vr, value in elements:
        write_data_element(tail, DataElement(tag, vr, value))
    return dicom + tail.getvalue()


def ellipse_circumference_mm(a: float, b: float, spacing_mm: float) -> float:
    """An ellipse's perimeter (Ramanujan's second approximation) for semi-axes in pixels."""
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h))) * spacing_mm


# What a job submitted with submit_job's defaults (ellipse_mask_png(), 0.1 mm) should measure;
# the pipeline matches analytic ellipses to 0.5 % (tests/integration/test_perimeter_jobs.py).
DEFAULT_MASK_CIRCUMFERENCE_MM = ellipse_circumference_mm(120, 80, 0.1)
