"""Media storage: the local folder and S3 (a real moto server over HTTP) pass one contract; keys
cannot escape the folder; signed URLs open one key for a while; uploads are checked by their
bytes, not by what they claim to be."""

from __future__ import annotations

import struct
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest

from botplatform.config import Settings
from botplatform.media.storage import (
    ALLOWED_MIME_TYPES,
    MAX_MEDIA_BYTES,
    InvalidMediaUrl,
    LocalStorage,
    MediaNotFound,
    MediaRejected,
    MediaStorage,
    S3Storage,
    SignedMediaUrls,
    check_media,
    create_storage,
    media_key,
)

FAKE_KEY_ID = "testing-key-id"
FAKE_SECRET = "testing-secret"
BAD_KEYS = [
    "../x",
    "a/../../x",
    "/etc/passwd",
    "a\\b",
    "a\x00b",
    "",
    ".",
    "a//b",
    "a/./b",
    "a b",
    "~meta",
]


def _s3_settings(tmp_path: Path, endpoint: str, bucket: str) -> Settings:
    return Settings(
        env="test",
        secret_key="test-secret",
        data_dir=tmp_path / "data",
        aws_s3_bucket=bucket,
        aws_endpoint_url=endpoint,
        aws_region="us-east-1",
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )


def _create_bucket(endpoint: str) -> str:
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )
    client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaStorage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "media")
        return
    endpoint: str = request.getfixturevalue("s3_endpoint")
    yield S3Storage.from_settings(_s3_settings(tmp_path, endpoint, _create_bucket(endpoint)))


# --- the contract both storages keep ----------------------------------------------------------


async def test_put_get_exists_delete_round_trip(storage: MediaStorage) -> None:
    key = "ws/one/ab/abcdef.png"
    assert not await storage.exists(key)

    await storage.put(key, b"\x89PNG bytes", "image/png")

    assert await storage.exists(key)
    assert await storage.get(key) == (b"\x89PNG bytes", "image/png")
    await storage.delete(key)
    assert not await storage.exists(key)
    with pytest.raises(MediaNotFound):
        await storage.get(key)


async def test_content_type_is_kept_per_key(storage: MediaStorage) -> None:
    await storage.put("a/doc.pdf", b"%PDF-1.4", "application/pdf")
    await storage.put("a/voice.ogg", b"OggS", "audio/ogg; codecs=opus")

    assert (await storage.get("a/doc.pdf"))[1] == "application/pdf"
    assert (await storage.get("a/voice.ogg"))[1] == "audio/ogg; codecs=opus"


async def test_missing_key_is_media_not_found(storage: MediaStorage) -> None:
    with pytest.raises(MediaNotFound) as caught:
        await storage.get("nothing/here.txt")
    assert caught.value.key == "nothing/here.txt"
    assert not await storage.exists("nothing/here.txt")


async def test_keys_lists_every_object_sorted_but_the_skipped_prefix(
    storage: MediaStorage,
) -> None:
    assert await storage.keys() == []
    for key in ("ws/b/2.png", "ws/a/1.png", "backups/x.tar"):
        await storage.put(key, b"data", "image/png")
    assert await storage.keys() == ["backups/x.tar", "ws/a/1.png", "ws/b/2.png"]
    assert await storage.keys("backups/") == ["ws/a/1.png", "ws/b/2.png"]
    await storage.delete("ws/a/1.png")
    assert await storage.keys("backups/") == ["ws/b/2.png"]


async def test_delete_is_idempotent(storage: MediaStorage) -> None:
    await storage.delete("never/stored.bin")
    await storage.put("once.bin", b"x", "application/octet-stream")
    await storage.delete("once.bin")
    await storage.delete("once.bin")
    assert not await storage.exists("once.bin")


async def test_overwrite_replaces_bytes_and_type(storage: MediaStorage) -> None:
    await storage.put("same/key", b"first", "text/plain")
    await storage.put("same/key", b"second, longer", "application/pdf")

    assert await storage.get("same/key") == (b"second, longer", "application/pdf")


async def test_empty_and_large_bodies(storage: MediaStorage) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB, every byte value
    await storage.put("empty", b"", "text/plain")
    await storage.put("big", big, "application/octet-stream")

    assert await storage.get("empty") == (b"", "text/plain")
    assert (await storage.get("big"))[0] == big


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_both_storages_refuse_the_same_bad_keys(storage: MediaStorage, key: str) -> None:
    with pytest.raises(ValueError, match="media key"):
        await storage.put(key, b"x", "text/plain")
    with pytest.raises(ValueError, match="media key"):
        await storage.get(key)


# --- the local folder -------------------------------------------------------------------------


def _files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_local_keys_cannot_escape_the_root_and_write_nothing(
    tmp_path: Path, key: str
) -> None:
    storage = LocalStorage(tmp_path / "root" / "media")

    for call in (
        storage.put(key, b"owned", "text/plain"),
        storage.get(key),
        storage.exists(key),
        storage.delete(key),
    ):
        with pytest.raises(ValueError, match="media key"):
            await call

    assert _files_under(tmp_path) == []


async def test_local_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "media"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)

    with pytest.raises(ValueError, match="outside the storage root"):
        await LocalStorage(root).put("link/x", b"owned", "text/plain")
    assert list(outside.iterdir()) == []


async def test_local_layout_sidecar_and_no_temp_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("ws/a/photo.jpg", b"jpeg", "image/jpeg")
    await storage.put("ws/a/photo.jpg", b"jpeg again", "image/jpeg")

    folder = tmp_path / "ws" / "a"
    assert sorted(path.name for path in folder.iterdir()) == ["photo.jpg", "photo.jpg~meta"]
    assert (folder / "photo.jpg").read_bytes() == b"jpeg again"


async def test_local_lost_sidecar_falls_back_to_octet_stream(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("f.bin", b"data", "image/png")
    (tmp_path / "f.bin~meta").unlink()

    assert await storage.get("f.bin") == (b"data", "application/octet-stream")


async def test_local_folder_of_keys_is_not_an_object(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("dir/inner", b"x", "text/plain")

    assert not await storage.exists("dir")
    with pytest.raises(MediaNotFound):
        await storage.get("dir")
    with pytest.raises(MediaNotFound):
        await storage.get("dir/inner/deeper")
    await storage.delete("dir")
    assert await storage.exists("dir/inner")


# --- choosing a storage -----------------------------------------------------------------------


async def test_create_storage_picks_s3_when_a_bucket_is_configured(
    tmp_path: Path, s3_endpoint: str
) -> None:
    settings = _s3_settings(tmp_path, s3_endpoint, _create_bucket(s3_endpoint))

    storage = create_storage(settings)

    assert isinstance(storage, S3Storage)
    assert storage.bucket == settings.aws_s3_bucket
    await storage.put("k", b"through the factory", "text/plain")
    assert await storage.get("k") == (b"through the factory", "text/plain")
    assert not (tmp_path / "data" / "media").exists()


def test_create_storage_defaults_to_the_data_folder(tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=tmp_path / "data", aws_s3_bucket="")

    storage = create_storage(settings)

    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "data" / "media"


# --- keys -------------------------------------------------------------------------------------


def test_media_key_is_content_addressed_per_workspace() -> None:
    workspace = uuid.UUID("12345678-1234-5678-1234-567812345678")
    digest = "AB" + "c" * 62

    key = media_key(workspace, digest, ".PNG")

    assert key == f"ws/{workspace}/ab/{digest.lower()}.png"
    assert media_key(workspace, digest, "png") == key


@pytest.mark.parametrize(
    ("digest", "extension"),
    [("abc", "png"), ("g" * 64, "png"), ("a" * 64, ""), ("a" * 64, "p/ng"), ("a" * 64, "../x")],
)
def test_media_key_rejects_bad_parts(digest: str, extension: str) -> None:
    with pytest.raises(ValueError, match=r"sha256_hex|extension"):
        media_key(uuid.uuid4(), digest, extension)


# --- signed URLs ------------------------------------------------------------------------------


def test_signed_url_round_trip() -> None:
    urls = SignedMediaUrls("secret", "https://bots.example.com/", ttl_seconds=60)
    key = "ws/abc/12/1234.jpg"

    url = urls.url_for(key)

    prefix = f"https://bots.example.com/media/{key}?token="
    assert url.startswith(prefix)
    assert urls.key_from(key, url.removeprefix(prefix)) == key


def _token(urls: SignedMediaUrls, key: str) -> str:
    return urls.url_for(key).split("?token=", 1)[1]


def test_signed_url_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = SignedMediaUrls("secret", "https://x", ttl_seconds=60)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    token = _token(urls, "k.jpg")

    monkeypatch.setattr(time, "time", lambda: now + 59)
    assert urls.key_from("k.jpg", token) == "k.jpg"
    monkeypatch.setattr(time, "time", lambda: now + 62)
    with pytest.raises(InvalidMediaUrl, match="expired"):
        urls.key_from("k.jpg", token)


def test_signed_url_for_one_key_does_not_open_another() -> None:
    urls = SignedMediaUrls("secret", "https://x")
    token = _token(urls, "ws/a/one.jpg")

    with pytest.raises(InvalidMediaUrl):
        urls.key_from("ws/a/two.jpg", token)


def _tampered(token: str) -> str:
    # The first character carries six payload bits; the last may only carry padding.
    return ("B" if token[0] == "A" else "A") + token[1:]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        _token(SignedMediaUrls("another-secret", "https://x"), "k.jpg"),
        _tampered(_token(SignedMediaUrls("secret", "https://x"), "k.jpg")),
    ],
)
def test_signed_url_rejects_forged_tokens(token: str) -> None:
    with pytest.raises(InvalidMediaUrl):
        SignedMediaUrls("secret", "https://x").key_from("k.jpg", token)


def test_signed_url_refuses_bad_keys() -> None:
    with pytest.raises(ValueError, match="media key"):
        SignedMediaUrls("secret", "https://x").url_for("../secret_key")


# --- what is let in ---------------------------------------------------------------------------


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 24
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 16
M4A = b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00M4A isom" + b"\x00" * 16
THREE_GP = b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x00\x003gp4" + b"\x00" * 16
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 16
OGG = b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead"
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 8
MP3_BARE = b"\xff\xfb\x90\x00" * 8
AAC = b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\x00" * 16
AMR = b"#!AMR\n" + b"\x3c" * 16
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 32
DOCX = b"PK\x03\x04\x14\x00\x06\x00\x08\x00" + b"\x00" * 20 + b"[Content_Types].xml"
ODT_MIME = b"application/vnd.oasis.opendocument.text"
ODT = (
    b"PK\x03\x04\x0a\x00\x00\x00\x00\x00"
    + b"\x00" * 8
    + struct.pack("<II", len(ODT_MIME), len(ODT_MIME))
    + struct.pack("<HH", 8, 0)
    + b"mimetype"
    + ODT_MIME
    + b"PK\x03\x04"
)
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 62
EXE_WITH_STUB = EXE[:0x4E] + b"This program cannot be run in DOS mode.\r\r\n$" + b"\x00" * 8
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 32
TEXT = "Hello, wörld!\nSecond line.\n".encode()


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        (_png(), "image/png", "image/png"),
        (JPEG, "image/jpeg", "image/jpeg"),
        (JPEG, "image/jpg", "image/jpeg"),
        (WEBP, "image/webp", "image/webp"),
        (PDF, "application/pdf", "application/pdf"),
        (MP4, "video/mp4", "video/mp4"),
        (THREE_GP, "video/3gpp", "video/3gpp"),
        (MP4, "audio/mp4", "audio/mp4"),  # brands in the wild do not follow the mime type
        (OGG, "audio/ogg; codecs=opus", "audio/ogg"),
        (MP3, "audio/mpeg", "audio/mpeg"),
        (MP3_BARE, "AUDIO/MPEG", "audio/mpeg"),
        (AAC, "audio/aac", "audio/aac"),
        (AMR, "audio/amr", "audio/amr"),
        (TEXT, "text/plain; charset=utf-8", "text/plain"),
        (OLE, "application/msword", "application/msword"),
        (OLE, "application/vnd.ms-excel", "application/vnd.ms-excel"),
        (DOCX, next(m for m, e in ALLOWED_MIME_TYPES.items() if e == "docx"), None),
        (ODT, "application/vnd.oasis.opendocument.text", None),
    ],
)
def test_check_media_accepts_what_the_bytes_confirm(
    data: bytes, declared: str, expected: str | None
) -> None:
    assert check_media(data, declared) == (expected or declared)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_png(), "image/png"),
        (JPEG, "image/jpeg"),
        (WEBP, "image/webp"),
        (PDF, "application/pdf"),
        (MP4, "video/mp4"),
        (M4A, "audio/mp4"),
        (THREE_GP, "video/3gpp"),
        (OGG, "audio/ogg"),
        (MP3_BARE, "audio/mpeg"),
        (AAC, "audio/aac"),
        (AMR, "audio/amr"),
        (TEXT, "text/plain"),
        (ODT, "application/vnd.oasis.opendocument.text"),
    ],
)
@pytest.mark.parametrize("declared", [None, "", "application/octet-stream"])
def test_check_media_infers_undeclared_types(
    data: bytes, expected: str, declared: str | None
) -> None:
    assert check_media(data, declared) == expected


def test_every_allowed_type_has_a_distinct_extension() -> None:
    assert len(set(ALLOWED_MIME_TYPES.values())) == len(ALLOWED_MIME_TYPES)


def test_check_media_rejects_oversize() -> None:
    data = _png() + bytes(MAX_MEDIA_BYTES)

    with pytest.raises(MediaRejected) as caught:
        check_media(data, "image/png")
    assert caught.value.reason == "too_large"


def test_check_media_rejects_empty() -> None:
    with pytest.raises(MediaRejected) as caught:
        check_media(b"", "text/plain")
    assert caught.value.reason == "empty"


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (EXE, "application/x-msdownload"),
        (b"GIF89a" + b"\x00" * 16, "image/gif"),
        (TEXT, "text/html"),
        (HEIC, None),
        (HEIC, "image/heic"),
        (EXE, None),
        (EXE_WITH_STUB, None),
        (ELF, None),
        (OLE, None),  # a .doc, .xls or .ppt: the bytes do not say which
        (DOCX, None),
    ],
)
def test_check_media_rejects_types_not_allowed(data: bytes, declared: str | None) -> None:
    with pytest.raises(MediaRejected) as caught:
        check_media(data, declared)
    assert caught.value.reason == "not_allowed"


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (EXE, "image/jpeg"),
        (EXE_WITH_STUB, "image/jpeg"),
        (ELF, "image/png"),
        (TEXT, "image/jpeg"),
        (_png(), "image/jpeg"),
        (JPEG, "image/webp"),
        (HEIC, "video/mp4"),
        (PDF, "image/png"),
        (TEXT, "application/pdf"),
        (EXE, "text/plain"),
        (PDF, "text/plain"),
        (_png(), "video/mp4"),
        (MP3, "audio/ogg"),
        (AAC, "audio/mpeg"),
        (MP3_BARE, "audio/aac"),
        (OLE, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (DOCX, "application/msword"),
        (ODT, "application/vnd.oasis.opendocument.spreadsheet"),
        (EXE, "application/vnd.ms-excel"),
    ],
)
def test_check_media_rejects_bytes_that_contradict_the_declared_type(
    data: bytes, declared: str
) -> None:
    with pytest.raises(MediaRejected) as caught:
        check_media(data, declared)
    assert caught.value.reason == "mismatch"
