"""Where media bytes live, and what is let in.

`LocalStorage` keeps files under a folder (DATA_DIR/media), so a single-machine install needs
nothing else; `S3Storage` talks to S3 or anything speaking its API (MinIO, R2, Ceph) when
AWS_S3_BUCKET is set. Both pass the same contract and accept the same keys, so the rest of the
code never knows which one it has.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import tempfile
import uuid
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from botplatform.config import Settings
from botplatform.kit.tokens import InvalidToken, LinkSigner

MAX_MEDIA_BYTES = 100 * 1024 * 1024
MAX_KEY_LENGTH = 1024  # S3's own limit, kept for local files too so keys move between them
DEFAULT_CONTENT_TYPE = "application/octet-stream"

# What WhatsApp accepts, with the extension media_key() gives each type.
ALLOWED_MIME_TYPES: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/3gpp": "3gp",
    "audio/aac": "aac",
    "audio/mp4": "m4a",
    "audio/mpeg": "mp3",
    "audio/amr": "amr",
    "audio/ogg": "ogg",
    "application/pdf": "pdf",
    "text/plain": "txt",
    "application/msword": "doc",
    "application/vnd.ms-excel": "xls",
    "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
}


class MediaNotFound(Exception):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no media stored under {key!r}")


RejectReason = Literal["empty", "too_large", "not_allowed", "mismatch"]


class MediaRejected(ValueError):
    """The upload is refused; `reason` is stable for API errors, the message is for humans."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class InvalidMediaUrl(Exception):
    pass


class MediaStorage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> tuple[bytes, str]:
        """The bytes and their content type; raises MediaNotFound."""
        ...

    async def delete(self, key: str) -> None:
        """Removes the object; deleting what is not there is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def keys(self, skip_prefix: str = "") -> list[str]:
        """Every stored key, sorted, but those under `skip_prefix` (backups kept alongside)."""
        ...


# --- keys --------------------------------------------------------------------------------------

_KEY_PATTERN = re.compile(r"[A-Za-z0-9/._-]+")
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_EXTENSION_PATTERN = re.compile(r"[a-z0-9]{1,10}")


def validate_key(key: str) -> str:
    """Returns `key` if it is a plain relative path; raises ValueError otherwise.

    The alphabet leaves out "~", which LocalStorage uses for its own sidecar and temporary
    files, so no key can ever name one of them.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"a media key must be 1 to {MAX_KEY_LENGTH} characters long")
    if not _KEY_PATTERN.fullmatch(key):
        raise ValueError("a media key may only contain letters, digits and / . _ -")
    # An empty part means a leading "/" (absolute) or "//"; "." and ".." walk the tree.
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError("a media key must be a relative path without '.' or '..' parts")
    return key


def media_key(workspace_id: uuid.UUID, sha256_hex: str, extension: str) -> str:
    """The content-addressed key of a file: the same bytes in a workspace are stored once, and
    a workspace's media all sit under one prefix (easy to export or erase)."""
    digest = sha256_hex.lower()
    ext = extension.lower().removeprefix(".")
    if not _SHA256_PATTERN.fullmatch(digest):
        raise ValueError("sha256_hex must be 64 hex digits")
    if not _EXTENSION_PATTERN.fullmatch(ext):
        raise ValueError("extension must be 1 to 10 letters or digits")
    return f"ws/{workspace_id}/{digest[:2]}/{digest}.{ext}"


# --- local folder ------------------------------------------------------------------------------


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + "~meta")


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of either."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix="~tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


class LocalStorage:
    """Files under `root`, each with a "<file>~meta" JSON sidecar holding its content type."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        validate_key(key)
        root = self.root.resolve()
        path = (root / key).resolve()
        # The key is already clean; this catches a symlink inside the root that points out.
        if not path.is_relative_to(root) or path == root:
            raise ValueError("media key resolves outside the storage root")
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        validate_key(key)
        await anyio.to_thread.run_sync(self._put, key, data, content_type)

    async def get(self, key: str) -> tuple[bytes, str]:
        validate_key(key)
        return await anyio.to_thread.run_sync(self._get, key)

    async def delete(self, key: str) -> None:
        validate_key(key)
        await anyio.to_thread.run_sync(self._delete, key)

    async def exists(self, key: str) -> bool:
        validate_key(key)
        return await anyio.to_thread.run_sync(self._exists, key)

    async def keys(self, skip_prefix: str = "") -> list[str]:
        return await anyio.to_thread.run_sync(self._keys, skip_prefix)

    def _keys(self, skip_prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            # "~" never appears in a key: sidecars and temporary files are not objects.
            if (
                path.is_file()
                and "~" not in key
                and not (skip_prefix and key.startswith(skip_prefix))
            ):
                found.append(key)
        return sorted(found)

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The sidecar goes first: a new key only "exists" once its data file is in place, and
        # by then its content type is already there.
        _write_atomic(_meta_path(path), json.dumps({"content_type": content_type}).encode())
        _write_atomic(path, data)

    def _get(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise MediaNotFound(key) from exc
        return data, self._content_type(path)

    @staticmethod
    def _content_type(path: Path) -> str:
        # A lost or damaged sidecar should not make the file itself unreadable.
        try:
            meta = json.loads(_meta_path(path).read_bytes())
        except (OSError, ValueError):
            return DEFAULT_CONTENT_TYPE
        content_type = meta.get("content_type") if isinstance(meta, dict) else None
        return content_type if isinstance(content_type, str) else DEFAULT_CONTENT_TYPE

    def _delete(self, key: str) -> None:
        path = self._path(key)
        # Data first, so the key stops existing before its sidecar goes.
        for target in (path, _meta_path(path)):
            if target.is_dir():  # a folder of other keys, not an object of this name
                continue
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                target.unlink()

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()


# --- S3 and compatible -------------------------------------------------------------------------


class S3Client(Protocol):
    """The part of boto3's S3 client this module uses (boto3 clients are thread-safe)."""

    def put_object(self, **kwargs: Any) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...
    def delete_object(self, **kwargs: Any) -> Any: ...
    def head_object(self, **kwargs: Any) -> Any: ...
    def list_objects_v2(self, **kwargs: Any) -> Any: ...


def s3_client(settings: Settings) -> S3Client:
    endpoint = settings.aws_endpoint_url or None
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
        # S3-compatible servers (MinIO, Ceph, a local moto) seldom serve bucket sub-domains.
        s3={"addressing_style": "path" if endpoint else "auto"},
        # Several of them reject the CRC checksums newer boto3 adds to every upload.
        request_checksum_calculation="when_required" if endpoint else None,
        response_checksum_validation="when_required" if endpoint else None,
    )
    # A session of its own: boto3's module-level default session is not thread-safe.
    session = boto3.session.Session()
    # Empty credentials mean boto3's usual chain (environment, profile, instance role).
    client: S3Client = session.client(
        "s3",
        region_name=settings.aws_region or None,
        endpoint_url=endpoint,
        aws_access_key_id=settings.aws_access_key_id or None,
        aws_secret_access_key=settings.aws_secret_access_key or None,
        config=config,
    )
    return client


def _is_not_found(error: ClientError) -> bool:
    # get_object says NoSuchKey; head_object has no body, so only the status code: 404.
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "NotFound", "404")


class S3Storage:
    """Objects in one bucket; every boto3 call (blocking HTTP) runs in a worker thread."""

    def __init__(self, bucket: str, client: S3Client) -> None:
        self.bucket = bucket
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        return cls(settings.aws_s3_bucket, s3_client(settings))

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        validate_key(key)
        call = partial(
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
        )
        await anyio.to_thread.run_sync(call)

    async def get(self, key: str) -> tuple[bytes, str]:
        validate_key(key)
        return await anyio.to_thread.run_sync(self._get, key)

    async def delete(self, key: str) -> None:
        validate_key(key)
        # S3 answers 204 for a missing key too, so this is idempotent as it stands.
        call = partial(self._client.delete_object, Bucket=self.bucket, Key=key)
        await anyio.to_thread.run_sync(call)

    async def exists(self, key: str) -> bool:
        validate_key(key)
        return await anyio.to_thread.run_sync(self._exists, key)

    async def keys(self, skip_prefix: str = "") -> list[str]:
        return await anyio.to_thread.run_sync(self._keys, skip_prefix)

    def _keys(self, skip_prefix: str) -> list[str]:
        found: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._client.list_objects_v2(Bucket=self.bucket, **token)
            found.extend(
                item["Key"]
                for item in page.get("Contents", [])
                if not (skip_prefix and item["Key"].startswith(skip_prefix))
            )
            if not page.get("IsTruncated"):
                return sorted(found)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def _get(self, key: str) -> tuple[bytes, str]:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                raise MediaNotFound(key) from exc
            raise
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data, str(response.get("ContentType") or DEFAULT_CONTENT_TYPE)

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True


def create_storage(settings: Settings) -> MediaStorage:
    if settings.aws_s3_bucket:
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.data_dir / "media")


# --- signed URLs -------------------------------------------------------------------------------


class SignedMediaUrls:
    """Short-lived links to one media key, for users the API has already authorized: the link
    can go in an <img src> or to WhatsApp without carrying the user's session."""

    def __init__(self, secret_key: str, base_url: str, ttl_seconds: int = 300) -> None:
        self._signer = LinkSigner(secret_key, "media")
        self._base_url = base_url.rstrip("/")
        self._ttl_seconds = ttl_seconds

    def url_for(self, key: str) -> str:
        # Key characters are all URL-safe and so is the token, so nothing needs quoting.
        token = self._signer.sign({"key": validate_key(key)})
        return f"{self._base_url}/media/{key}?token={token}"

    def key_from(self, key: str, token: str) -> str:
        """The key, if `token` was signed for exactly this key and has not expired."""
        try:
            payload = self._signer.load(token, max_age_seconds=self._ttl_seconds)
        except InvalidToken as exc:
            raise InvalidMediaUrl(exc.reason) from exc
        if payload.get("key") != key:
            raise InvalidMediaUrl("invalid")
        return key


# --- what is let in ----------------------------------------------------------------------------

# Labels for formats that are containers of several allowed types, or never allowed.
_OLE = "ole-compound"  # .doc / .xls / .ppt
_ZIP = "zip"  # .docx / .xlsx / .pptx / .odt / .ods / .odp
_EXECUTABLE = "executable"

_SIGNATURES: tuple[tuple[str, tuple[tuple[int, bytes], ...]], ...] = (
    ("image/jpeg", ((0, b"\xff\xd8\xff"),)),
    ("image/png", ((0, b"\x89PNG\r\n\x1a\n"),)),
    ("image/webp", ((0, b"RIFF"), (8, b"WEBP"))),
    ("application/pdf", ((0, b"%PDF-"),)),
    ("audio/ogg", ((0, b"OggS"),)),
    ("audio/amr", ((0, b"#!AMR"),)),
    ("audio/mpeg", ((0, b"ID3"),)),
    ("audio/aac", ((0, b"ADIF"),)),
    (_OLE, ((0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),)),
    (_ZIP, ((0, b"PK\x03\x04"),)),
    (_EXECUTABLE, ((0, b"\x7fELF"),)),
    (_EXECUTABLE, ((0, b"MZ"), (0x4E, b"This program cannot be run in DOS"))),
)

_ISO_MEDIA = frozenset({"video/mp4", "video/3gpp", "audio/mp4"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif"})
_OLE_DOCUMENTS = frozenset(
    {"application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint"}
)
_ODF_DOCUMENTS = frozenset(
    mime for mime in ALLOWED_MIME_TYPES if mime.startswith("application/vnd.oasis.")
)
_ZIP_DOCUMENTS = _ODF_DOCUMENTS | {
    mime for mime in ALLOWED_MIME_TYPES if mime.startswith("application/vnd.openxmlformats-")
}
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "audio/mp3": "audio/mpeg"}
_TEXT_SAMPLE_BYTES = 8000


def _iso_media_type(brand: bytes) -> str:
    if brand in _HEIF_BRANDS:
        return "image/heif"  # HEIC photos are ISO media too, and WhatsApp does not take them
    if brand in (b"M4A ", b"M4B ", b"M4P "):
        return "audio/mp4"
    return "video/3gpp" if brand.startswith(b"3g") else "video/mp4"


def _frame_sync_type(head: bytes) -> str | None:
    """MP3 and ADTS AAC have no magic string, only an 11/12-bit frame sync."""
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    if head[1] & 0xF6 == 0xF0:  # 12-bit sync with layer 00: ADTS
        return "audio/aac"
    return "audio/mpeg" if head[1] & 0x06 else None


def sniff_mime(data: bytes) -> str | None:
    """The format the bytes say they are (a mime type or a container label), if known."""
    head = data[:128]
    for label, parts in _SIGNATURES:
        if all(head[offset : offset + len(magic)] == magic for offset, magic in parts):
            return label
    if head[4:8] == b"ftyp":
        return _iso_media_type(head[8:12])
    return _frame_sync_type(head)


def _odf_mimetype(data: bytes) -> str | None:
    """OpenDocument files start with a stored, uncompressed "mimetype" entry naming their type."""
    if data[30:38] != b"mimetype" or data[8:10] != b"\x00\x00":
        return None
    size = int.from_bytes(data[18:22], "little")
    start = 30 + int.from_bytes(data[26:28], "little") + int.from_bytes(data[28:30], "little")
    return data[start : start + min(size, 100)].decode("ascii", errors="replace")


def _looks_like_text(data: bytes) -> bool:
    # Git's rule: no NUL in the first 8000 bytes. A UTF-16 BOM is text that has NULs.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    return b"\x00" not in data[:_TEXT_SAMPLE_BYTES]


def _normalize_mime(declared: str | None) -> str | None:
    """Lower case, parameters dropped ("audio/ogg; codecs=opus"); None when it says nothing."""
    mime = (declared or "").split(";", 1)[0].strip().lower()
    if mime in _GENERIC_TYPES:
        return None
    return _ALIASES.get(mime, mime)


def _expected_formats(declared: str) -> frozenset[str]:
    if declared in _ISO_MEDIA:
        # Brands in the wild do not follow the mime type (many .3gp and .m4a say "isom").
        return _ISO_MEDIA
    if declared in _OLE_DOCUMENTS:
        return frozenset({_OLE})
    if declared in _ZIP_DOCUMENTS:
        return frozenset({_ZIP})
    return frozenset({declared})


def _check_consistent(data: bytes, declared: str, sniffed: str | None) -> None:
    if declared == "text/plain":
        if sniffed is not None or not _looks_like_text(data):
            raise MediaRejected("mismatch", "declared as text/plain but the content is binary")
        return
    if sniffed not in _expected_formats(declared):
        raise MediaRejected("mismatch", f"declared as {declared} but the content is not")
    odf = _odf_mimetype(data) if sniffed == _ZIP else None
    if odf is not None and odf != declared:
        raise MediaRejected("mismatch", f"declared as {declared} but the content is {odf}")


def _infer(data: bytes, sniffed: str | None) -> str:
    """The type of undeclared content, when the bytes alone settle it."""
    if sniffed == _ZIP:
        sniffed = _odf_mimetype(data) or _ZIP
    if sniffed is None and _looks_like_text(data):
        return "text/plain"
    if sniffed in ALLOWED_MIME_TYPES:
        return sniffed
    if sniffed in (_ZIP, _OLE, None):
        raise MediaRejected("not_allowed", "unrecognised content; declare its media type")
    raise MediaRejected("not_allowed", f"{sniffed} is not an allowed media type")


def check_media(data: bytes, declared_mime: str | None) -> str:
    """The effective mime type of an upload, or MediaRejected.

    Refuses what is empty, too large, not a WhatsApp type, or whose bytes contradict the
    declared type: a browser or a client says what a file is, the bytes say what it is.
    """
    if not data:
        raise MediaRejected("empty", "the file is empty")
    if len(data) > MAX_MEDIA_BYTES:
        raise MediaRejected("too_large", f"the file is larger than {MAX_MEDIA_BYTES} bytes")
    sniffed = sniff_mime(data)
    declared = _normalize_mime(declared_mime)
    if declared is None:
        return _infer(data, sniffed)
    if declared not in ALLOWED_MIME_TYPES:
        raise MediaRejected("not_allowed", f"{declared} is not an allowed media type")
    _check_consistent(data, declared, sniffed)
    return declared
