"""Where durable files live: a local (or NFS) folder, or any pyarrow filesystem URI — `s3://`,
`gs://`, `hdfs://` — that every node of a cluster reaches.

    files = Files("s3://bucket/cl_sim/store?endpoint_override=host:9000&scheme=http")
    files.write("manifest/k.json", data)      # local: temp file + rename; object store: one PUT
    files.read("manifest/k.json")

Atomicity: a local write goes to a temporary file in the same folder and is renamed into place.
Object stores have no rename, but a single PUT is atomic (readers see the whole object or none),
so there a write is one PUT. The store builds its commit protocol on that: the state blob first,
the manifest (which names the blob's sha256) last, so a listed entry is complete, and readers
verify the blob against the manifest anyway.

`check_reachable(root)` writes and deletes one probe file there (short timeouts, no retries), so
`cl-sim validate` and `run` reject a store they cannot reach or write before any work starts.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Optional

from cl_sim.errors import ConfigError
from cl_sim.io import atomic_save_file

PROBE_TIMEOUT_S = 5.0  # connect and request timeout of the reachability probe (object stores)


def is_uri(root: str | Path) -> bool:
    return "://" in str(root)


class Files:
    def __init__(self, root: str | Path):
        self.uri = is_uri(root)
        if self.uri:
            from pyarrow import fs

            self.fs, base = fs.FileSystem.from_uri(str(root))
            self.base = base.rstrip("/")
            self.fs.create_dir(self.base, recursive=True)
        else:
            self.fs, self.base = None, str(Path(root))
            Path(self.base).mkdir(parents=True, exist_ok=True)

    def _p(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def exists(self, rel: str) -> bool:
        if not self.uri:
            return Path(self._p(rel)).is_file()
        from pyarrow import fs

        return self.fs.get_file_info(self._p(rel)).type == fs.FileType.File

    def read(self, rel: str) -> bytes:
        if not self.uri:
            return Path(self._p(rel)).read_bytes()
        with self.fs.open_input_stream(self._p(rel)) as f:
            return f.read()

    def write(self, rel: str, data: bytes) -> None:
        if not self.uri:
            def write(tmp: str) -> None:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    import os

                    os.fsync(f.fileno())

            atomic_save_file(Path(self._p(rel)), write)
            return
        with self.fs.open_output_stream(self._p(rel)) as f:  # one PUT: atomic visibility
            f.write(data)

    def names(self, folder: str, suffix: str) -> list[str]:
        """Names (without `suffix`) of the files directly in `folder` that end with `suffix`."""
        if not self.uri:
            d = Path(self._p(folder))
            return sorted(p.name[: -len(suffix)] for p in d.glob(f"*{suffix}")) if d.is_dir() else []
        from pyarrow import fs

        infos = self.fs.get_file_info(fs.FileSelector(self._p(folder), allow_not_found=True))
        return sorted(i.base_name[: -len(suffix)] for i in infos
                      if i.type == fs.FileType.File and i.base_name.endswith(suffix))

    def mtime(self, rel: str) -> Optional[float]:
        """Last modification, seconds since the epoch (None when the filesystem does not say)."""
        if not self.uri:
            return Path(self._p(rel)).stat().st_mtime
        info = self.fs.get_file_info(self._p(rel))
        return info.mtime.timestamp() if info.mtime is not None else None

    def delete(self, rel: str) -> None:
        """Remove one file (gone already is fine)."""
        if not self.uri:
            Path(self._p(rel)).unlink(missing_ok=True)
        elif self.exists(rel):
            self.fs.delete_file(self._p(rel))

    def leftovers(self) -> list[str]:
        """Temporary files of interrupted local writes (`folder/.name.tmp`); an object store has
        none: its writes are single PUTs."""
        if self.uri:
            return []
        return sorted(p.relative_to(self.base).as_posix() for p in Path(self.base).glob("*/.*.tmp"))

    def size(self, rel: str) -> Optional[int]:
        if not self.uri:
            return Path(self._p(rel)).stat().st_size
        return self.fs.get_file_info(self._p(rel)).size


def resolve(root: str | Path) -> str:
    """A store location every process agrees on: an absolute folder, or the URI as given."""
    return str(root) if is_uri(root) else str(Path(root).resolve())


def train_storage(root: str | Path, sub: str) -> tuple[str, object]:
    """(storage_path, storage_filesystem) for Ray Train's `RunConfig`, under `root/sub`: a local
    path and None, or the bucket path and its pyarrow filesystem (as Ray documents for S3/GCS)."""
    if not is_uri(root):
        return str(Path(root).resolve() / sub), None
    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(str(root))
    return f"{base.rstrip('/')}/{sub}", filesystem


def remove_train_run(storage: str, filesystem, name: str) -> bool:
    """Delete Ray Train run `name`'s folder under `train_storage`'s path (its checkpoints), locally
    or on the object store. A folder already gone is fine; a folder that cannot be removed (say, no
    delete permission on the bucket) is logged with its path and left, never raised: this runs in a
    `finally` and must not hide the training error it follows. True when nothing is left."""
    path = f"{storage}/{name}"
    try:
        if filesystem is None:
            if Path(path).exists():
                shutil.rmtree(path)
        else:
            from pyarrow import fs

            if filesystem.get_file_info(path).type != fs.FileType.NotFound:
                filesystem.delete_dir(path)
        return True
    except OSError as e:
        logging.getLogger("cl_sim.storage").warning("could not remove the Train checkpoints at %s: %s", path, e)
        return False


def _reason(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:240]


def _probe_filesystem(root: str):
    """(filesystem, base path) for `root`, rebuilt with short timeouts and no retries where the
    filesystem has them (S3, GCS): their SDKs otherwise retry an unreachable endpoint for seconds
    (S3) or minutes (GCS)."""
    import datetime

    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(root)
    limits = {fs.S3FileSystem: dict(connect_timeout=PROBE_TIMEOUT_S, request_timeout=PROBE_TIMEOUT_S,
                                    retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1))}
    if getattr(fs, "GcsFileSystem", None):
        limits[fs.GcsFileSystem] = dict(retry_time_limit=datetime.timedelta(seconds=PROBE_TIMEOUT_S))
    if type(filesystem) in limits:
        options = dict(filesystem.__reduce__()[1][0])  # what the URI (and the environment) set
        filesystem = type(filesystem)(**{**options, **limits[type(filesystem)]})
    return filesystem, base.rstrip("/")


def _check_folder(key: str, folder: Path) -> None:
    """A local store: the folder, or the nearest existing folder above it (where it will be
    created), takes a file; the probe file is removed at once, so nothing is left behind."""
    place = folder.expanduser().absolute()
    while not place.exists():
        place = place.parent
    if not place.is_dir():
        raise ConfigError(f"{key}: {place} is not a folder, so {folder} cannot be created")
    try:
        with tempfile.NamedTemporaryFile(dir=place, prefix=".cl_sim-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{key}: cannot write in {place} ({exc.strerror or _reason(exc)})") from None


def check_reachable(root: str | Path, key: str = "execution.store_dir") -> None:
    """Raise ConfigError (one line naming `key`) unless the store at `root` can be reached and
    written: a local folder takes a file, an object store takes a probe object that is then deleted.

    An S3 bucket that does not exist passes only when the URI allows creating it
    (`allow_bucket_creation=true`); it is not created here, so its write permission shows at the
    first write of the run. On S3, deleting the probe of a store that holds nothing yet leaves the
    empty folder marker that `Files` creates at the run's start anyway.
    """
    if not is_uri(root):
        _check_folder(key, Path(root))
        return
    from pyarrow import fs

    root = str(root)
    try:
        filesystem, base = _probe_filesystem(root)
    except ValueError as exc:  # pyarrow.ArrowInvalid: an unknown scheme, a malformed option
        raise ConfigError(f"{key}: {root} is not a filesystem URI pyarrow can open ({_reason(exc)})") from None
    except OSError as exc:  # S3 without a region asks the bucket for it
        raise ConfigError(f"{key}: cannot reach {root}: {_reason(exc)}") from None
    probe = f"{base}/.cl_sim-probe-{uuid.uuid4().hex}"
    try:
        if isinstance(filesystem, fs.S3FileSystem):
            bucket = base.split("/", 1)[0]
            if filesystem.get_file_info(bucket).type == fs.FileType.NotFound:
                if filesystem.__reduce__()[1][0].get("allow_bucket_creation"):
                    return  # created by the run's first write
                raise ConfigError(f"{key}: bucket '{bucket}' does not exist (create it, or add "
                                  f"allow_bucket_creation=true to the URI)")
        with filesystem.open_output_stream(probe) as f:
            f.write(b"cl_sim store probe\n")
        filesystem.delete_file(probe)
    except OSError as exc:
        where = os.environ.get("AWS_ENDPOINT_URL", "") if "endpoint_override" not in root else ""
        raise ConfigError(f"{key}: cannot reach or write {root}{f' (endpoint {where})' if where else ''}: "
                          f"{_reason(exc)}") from None
