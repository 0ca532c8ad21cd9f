"""Images that are not on this machine's disk: objects in an S3-compatible bucket (``s3://``) and
files behind ``http(s)://`` URLs, read through fsspec (s3fs for buckets, aiohttp for URLs).

The endpoint and the credentials come from the environment the AWS tools read, when a file is
read: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the shared config and
credentials files. Nothing here stores them: a job records the URIs only, and every worker reads
the bucket with its own environment. No message written here carries them (:func:`scrub`), nor a
URL's user name, password or query string (:func:`display`: a presigned URL's signature).

Reads are streamed in chunks up to a size limit, retried on transient failures (connection
errors, timeouts, 5xx answers, a body that ends before the size the server gave; never on a
missing object or a refusal) and turned into one-line reasons: a file that cannot be read is one
failed file of the ingest, like a local file. Whether objects are still there is answered by a
listing (:func:`list_objects`) or by one ``HEAD`` request per object (:func:`missing_objects`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import urlsplit, urlunsplit

from simsearch.errors import Forbidden, ImageDecodeError, InvalidInput, NotFound, SourceUnavailable

SCHEMES = ("s3", "http", "https")
SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
ATTEMPTS = 3  # reads of one file (the first and two retries)
BACKOFF = 0.5  # seconds before the first retry, doubled for each next
CHUNK = 1 << 20
MAX_BYTES = 512 << 20  # a larger object is not read (an image larger than this is not one we decode)
CONNECT_TIMEOUT, READ_TIMEOUT = 5, 30
HEAD_THREADS = 16  # HEAD requests in flight at once (missing_objects); the connection pool holds as many

_filesystems: dict[tuple, object] = {}
_lock = threading.Lock()


def is_remote(location) -> bool:
    """Whether ``location`` (a string or a path) names a bucket object or a URL."""
    text = str(location)
    return "://" in text and text.split("://", 1)[0].lower() in SCHEMES


def display(uri: str) -> str:
    """``uri`` as it may be shown and stored: without user name, password, query string or fragment."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def scrub(text: str) -> str:
    """``text`` with the values of the credential variables of this process's environment hidden."""
    for var in SECRET_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def endpoint() -> str | None:
    """The S3 endpoint the AWS tools would use (None: AWS itself)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def filesystem(scheme: str):
    """An fsspec filesystem for ``scheme`` ('s3' or 'http'), made from the current environment.
    One per process, endpoint and credentials (kept under a digest of them, never the values)."""
    scheme = "http" if scheme in ("http", "https") else scheme
    creds = hashlib.sha256("\0".join(os.environ.get(v, "") for v in (*SECRET_VARS, "AWS_PROFILE")).encode()).hexdigest()
    key = (scheme, os.getpid(), endpoint(), creds)
    with _lock:
        fs = _filesystems.get(key)
        if fs is None:
            fs = _filesystems[key] = _open_filesystem(scheme)
    return fs


def _open_filesystem(scheme: str):
    import fsspec

    if scheme == "s3":
        # response_checksum_validation: botocore checks a GET's x-amz-checksum-* header against the
        # body by default, and some S3-compatible servers (`rclone serve s3` after a boto3 upload)
        # send the whole object's checksum with a byte range: every object read in more than one
        # range (over 2 MiB here) then failed with FlexibleChecksumError. "when_required" checks
        # only when a request asks for it (ChecksumMode), as AWS advises for such servers.
        options = {"config_kwargs": {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT,
                                     "retries": {"max_attempts": 2, "mode": "standard"},
                                     "max_pool_connections": max(10, HEAD_THREADS),
                                     "response_checksum_validation": "when_required"}}
        if endpoint():
            options["endpoint_url"] = endpoint()
        return fsspec.filesystem("s3", skip_instance_cache=True, **options)
    import aiohttp

    return fsspec.filesystem("http", skip_instance_cache=True,
                             client_kwargs={"timeout": aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT,
                                                                             sock_read=READ_TIMEOUT)})


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower()


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request, where the exception carries one."""
    for attr in ("status", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        value = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(value, int):
            return value
    return None


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "")
    return ""


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, one-line reason) for a failed read or listing: kind is ``missing``, ``denied``,
    ``unreachable`` (worth a retry) or ``other``."""
    cause = exc.__cause__ or exc.__context__
    status = _status(exc) or (_status(cause) if cause is not None else None)
    names = {type(e).__name__ for e in (exc, cause) if e is not None}
    code = _error_code(exc) or (_error_code(cause) if cause is not None else "")
    if code == "NoSuchBucket":
        return "missing", "the bucket does not exist"
    # (fsspec's http files raise FileNotFoundError for any failed look-up: its cause says why)
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ServerDisconnectedError",
                "ReadTimeoutError", "ConnectionRefusedError", "TimeoutError", "ClientOSError", "ConnectionError"}:
        return "unreachable", "the endpoint is unreachable (connection failed or timed out)"
    if status is not None and status >= 500:
        return "unreachable", f"the server answered HTTP {status}"
    if isinstance(exc, FileNotFoundError) or status == 404 or code in ("NoSuchKey", "404"):
        return "missing", "not found"
    if isinstance(exc, PermissionError) or status in (401, 403) or code in ("AccessDenied", "403"):
        return "denied", "access denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "unreachable", "the endpoint is unreachable (connection failed or timed out)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return "other", scrub(f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__)


def read_bytes(uri: str, *, name: str | None = None, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of one object or URL, streamed in chunks and retried on transient failures;
    ImageDecodeError (one line, naming the file as :func:`display` shows it) when it cannot be read."""
    name = name or display(uri)
    reason = "cannot be read"
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(BACKOFF * 2 ** (attempt - 1))
        try:
            data, size = _read(uri, name, max_bytes)
        except ImageDecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 (every failure becomes this file's reason)
            kind, reason = classify(exc)
            if kind != "unreachable":
                break
            continue
        if size is None or len(data) == size:
            return data
        # A body that ended early without an error (the server closed it, an empty range answer):
        # read again rather than hand a cut image to the decoder, which would blame the file.
        reason = f"the read was cut short ({len(data)} of {size} bytes)"
    raise ImageDecodeError(name, reason)


def _read(uri: str, name: str, max_bytes: int) -> tuple[bytes, int | None]:
    """The bytes read and the size the server gave for the object (None: not given)."""
    parts: list[bytes] = []
    total = 0
    with filesystem(_scheme(uri)).open(uri, "rb", block_size=CHUNK) as f:
        size = getattr(f, "size", None)
        if isinstance(size, int) and size > max_bytes:
            raise ImageDecodeError(name, f"is {size} bytes, more than the {max_bytes} read from a bucket or URL")
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise ImageDecodeError(name, f"is more than the {max_bytes} bytes read from a bucket or URL")
            parts.append(chunk)
    return b"".join(parts), size if isinstance(size, int) else None


def _head_bucket(fs, bucket: str) -> None:
    """Ask for the bucket itself (s3fs's ``exists`` answers False for any failure): raises
    FileNotFoundError, PermissionError or the connection's error."""
    from fsspec.asyn import sync

    sync(fs.loop, fs._call_s3, "head_bucket", Bucket=bucket)


def list_objects(uri: str) -> list[str]:
    """The keys (as ``s3://bucket/key``) of the objects under ``uri`` (a bucket, a prefix or one
    object), sorted. Raises NotFound (no bucket / nothing there), Forbidden (access denied) or
    SourceUnavailable (the endpoint cannot be reached), each one line naming the bucket."""
    if _scheme(uri) != "s3":
        raise InvalidInput(f"{display(uri)}: only s3:// locations can be listed; give a URL in a manifest (--manifest)",
                           field="path")
    path = uri.split("://", 1)[1].strip("/")
    bucket = path.split("/", 1)[0]
    if not bucket:
        raise InvalidInput(f"{uri}: no bucket named (s3://BUCKET/PREFIX)", field="path")
    where = _where(bucket)
    last: BaseException | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(BACKOFF * 2 ** (attempt - 1))
        try:
            fs = filesystem("s3")
            fs.invalidate_cache()
            _head_bucket(fs, bucket)
            found = fs.find(path, withdirs=False)
            break
        except (NotFound, InvalidInput):
            raise
        except Exception as exc:  # noqa: BLE001
            last = exc
            kind, reason = classify(exc)
            if kind == "missing":
                raise NotFound(f"{where}: the bucket does not exist", field="path") from None
            if kind == "denied":
                raise Forbidden(f"{where}: {reason}", field="path") from None
            if kind != "unreachable":
                raise SourceUnavailable(f"{where}: cannot be listed ({reason})", field="path") from None
    else:
        raise SourceUnavailable(f"{where}: {classify(last)[1]}", field="path")
    return sorted(f"s3://{key}" for key in found)


def _where(bucket: str) -> str:
    return f"s3://{bucket}" + (f" at {display(endpoint())}" if endpoint() else "")


def _head(fs, uri: str) -> tuple[str, str] | None:
    """None when the object is there, else (kind, reason) as :func:`classify` gives them; a
    transient failure is asked again (ATTEMPTS, as a read)."""
    from fsspec.asyn import sync

    bucket, _, key = uri.split("://", 1)[1].partition("/")
    failure = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(BACKOFF * 2 ** (attempt - 1))
        try:
            sync(fs.loop, fs._call_s3, "head_object", Bucket=bucket, Key=key)
            return None
        except Exception as exc:  # noqa: BLE001 (every failure becomes a kind and a reason)
            failure = classify(exc)
            if failure[0] != "unreachable":
                break
    return failure


def missing_objects(uris: list[str], *, threads: int = HEAD_THREADS) -> list[str]:
    """The objects among ``uris`` (``s3://bucket/key``, all of one bucket) that are not there, in
    their order: one ``HEAD`` request per object (no body is read), ``threads`` at a time, so the
    cost follows the number of objects asked for, not the size of the bucket as a listing's does.
    An object the server does not find (404, NoSuchKey; every object of a bucket that does not
    exist) is missing. Any other failure stops the check (no further request is sent) and raises,
    as :func:`list_objects` does: Forbidden (access denied; S3 also answers 403 for a missing
    object to keys not allowed to list the bucket) or SourceUnavailable (the endpoint unreachable
    after the retries, or another error), one line naming the bucket."""
    if not uris:
        return []
    if any(_scheme(u) != "s3" for u in uris):
        raise InvalidInput("only s3:// objects can be checked with HEAD requests", field="path")
    where = _where(uris[0].split("://", 1)[1].split("/", 1)[0])
    fs = filesystem("s3")
    missing = []
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="s3-head") as pool:
        for uri, failure in zip(uris, pool.map(partial(_head, fs), uris)):
            if failure is None:
                continue
            kind, reason = failure
            if kind == "missing":
                missing.append(uri)
                continue
            pool.shutdown(wait=False, cancel_futures=True)
            if kind == "denied":
                raise Forbidden(f"{where}: {reason}", field="path")
            if kind == "unreachable":
                raise SourceUnavailable(f"{where}: {reason}", field="path")
            raise SourceUnavailable(f"{where}: {display(uri)} cannot be checked ({reason})", field="path")
    return missing
