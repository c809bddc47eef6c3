"""`tessera data fetch --source NAME`: bring a source onto the cluster's work area, on the login node.

Two kinds of source are fetched (all others are read in place):
- `hf`: a Hugging Face dataset, loaded with `datasets` and saved into the cache folder atomically;
- a file source with `download:` (parquet, jsonl, text): each listed file is downloaded from
  `<url>/<path>` (`{revision}` in the URL replaced by the pinned revision) into `<cache>/<name>/<path>`.
  A download goes to `<path>.part` first and resumes from its end when interrupted (an HTTP Range
  request; `file://` URLs seek). A finished file is checked against its expected size (shorter: refused
  as truncated, the .part kept for the next resume) and sha256 (the config's, else the server's
  published one: Hugging Face's `X-Linked-Etag`; a mismatch deletes the .part), then renamed into place.
  `fetched.json`, written last, records the revision and each file's size and sha256; the data stage
  reads the files in place only once it exists, and names the file whose size no longer matches it.
  A revision that is a branch (`main`) moves: Hugging Face names the commit it served in `X-Repo-Commit`,
  which is recorded per file and for the source, and files from two commits are refused (pin the
  revision to the recorded commit id); the data manifest lists that commit for each input file.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from tessera.config import RunConfig
from tessera.data.config import RemoteFile, SourceConfig
from tessera.data.sources import FETCHED, cache_dir
from tessera.errors import ConfigError, DataError
from tessera.io import atomic_dir, sha256_file, write_json

__all__ = ["fetch_source", "download_file", "fetched_record", "ATTEMPTS"]

ATTEMPTS = 3
"""Tries per file within one fetch (each resumes where the last stopped); a rerun resumes too."""
CHUNK = 1 << 22
PROGRESS = "fetch-progress.json"
"""The files a fetch has verified so far; read by the next fetch when `fetched.json` is not written."""
TIMEOUT_S = 60


@dataclass
class _Response:
    stream: object
    offset: int
    """Where the bytes it yields start in the file (0 when the server ignored the Range request)."""
    total: int | None
    published_sha256: str | None
    commit: str | None = None
    """The commit the server served (Hugging Face's `X-Repo-Commit`); None when it does not say."""


def _open(url: str, offset: int) -> _Response:
    """The file at `url` from byte `offset` (file://: a seek; http(s): a Range request)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        stream = open(path, "rb")  # noqa: SIM115 - closed by the caller
        stream.seek(offset)
        return _Response(stream, offset, path.stat().st_size, None)
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})  # noqa: S310 scheme checked by DownloadConfig.check
    response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - scheme checked by config
    resumed = response.status == 206
    length = response.headers.get("Content-Length")
    total = (offset if resumed else 0) + int(length) if length else None
    etag = (response.headers.get("X-Linked-Etag") or "").strip('"')
    published = etag if len(etag) == 64 else None
    return _Response(response, offset if resumed else 0, total, published,
                     response.headers.get("X-Repo-Commit") or None)


def download_file(url: str, target: Path, remote: RemoteFile, source: str) -> dict:
    """Download (or resume) one file into `target`; returns its {"path", "size", "sha256"} record."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    published = commit = None
    for attempt in range(1, ATTEMPTS + 1):
        have = part.stat().st_size if part.exists() else 0
        try:
            response = _open(url, have)
            published = response.published_sha256 or published
            commit = response.commit or commit
            expected_total = remote.size or response.total
            with response.stream as stream, open(part, "r+b" if part.exists() else "wb") as out:
                out.seek(response.offset)
                out.truncate()
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
            break
        except (urllib.error.URLError, OSError) as err:
            if attempt == ATTEMPTS:
                raise DataError(f"source {source}: downloading {url} failed after {ATTEMPTS} tries ({err}); "
                                f"rerun `tessera data fetch --source {source}` to resume from "
                                f"{part.stat().st_size if part.exists() else 0} bytes") from None
    size = part.stat().st_size
    if expected_total is not None and size != expected_total:
        raise DataError(f"source {source}: {target} is truncated: {size} of {expected_total} bytes arrived "
                        f"from {url}; rerun `tessera data fetch --source {source}` to resume it")
    digest = sha256_file(part)
    expected = remote.sha256 or published
    if expected is not None and digest != expected:
        part.unlink()
        origin = "data.sources[].download.files[].sha256" if remote.sha256 else "published by the server"
        raise DataError(f"source {source}: {target} has sha256 {digest}, expected {expected} ({origin}): the "
                        "file is damaged or the pinned revision changed; deleted, rerun `tessera data fetch "
                        f"--source {source}` to download it again")
    part.replace(target)
    return {"path": remote.path, "size": size, "sha256": digest, **({"commit": commit} if commit else {})}


def fetched_record(folder: Path) -> dict:
    """The `fetched.json` of a download's cache folder ({} when the fetch has not finished)."""
    path = folder / FETCHED
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _download(cfg: RunConfig, source: SourceConfig) -> None:
    assert source.download is not None  # noqa: S101 callers pass downloaded sources only
    folder = cache_dir(cfg, source)
    download = source.download
    earlier = fetched_record(folder).get("files") or _read_progress(folder)
    done = {f["path"]: f for f in earlier}
    (folder / FETCHED).unlink(missing_ok=True)  # from here the folder is incomplete until rewritten
    records = []
    base = download.url.replace("{revision}", download.revision).rstrip("/")
    for remote in download.files:
        target = folder / remote.path
        previous = done.get(remote.path)
        if previous and target.is_file() and target.stat().st_size == previous["size"] and \
                (remote.sha256 or previous["sha256"]) == previous["sha256"] and \
                (not _is_commit_id(download.revision) or previous.get("commit", download.revision) ==
                 download.revision):
            records.append(previous)  # verified by an earlier fetch: not hashed again
            continue
        records.append(download_file(f"{base}/{remote.path}", target, remote, source.name))
        # A killed fetch keeps what it verified: the rerun downloads only the files after it.
        done[remote.path] = records[-1]
        write_json(folder / PROGRESS, {"files": list(done.values())})
        print(f"{source.name}: {remote.path} ({records[-1]['size'] / 1e6:.1f} MB, sha256 verified)")
    write_json(folder / FETCHED, {"source": source.name, "url": download.url, "revision": download.revision,
                                  **_one_commit(source, records), "files": records})
    (folder / PROGRESS).unlink(missing_ok=True)


def _read_progress(folder: Path) -> list[dict]:
    path = folder / PROGRESS
    return json.loads(path.read_text(encoding="utf-8"))["files"] if path.is_file() else []


def _one_commit(source: SourceConfig, records: list[dict]) -> dict:
    """{"commit": id} when the server named the commit of every file it served, the same for all."""
    commits = sorted({r["commit"] for r in records if "commit" in r})
    revision = source.download.revision
    if len(commits) > 1:
        raise DataError(f"source {source.name}: revision {revision!r} moved while its files were fetched; "
                        f"they come from commits {', '.join(commits)}. Set data.sources[{source.name}]."
                        "download.revision to one of them and rerun `tessera data fetch --source "
                        f"{source.name}`: the files of the other commits are downloaded again")
    if commits and _is_commit_id(revision) and commits[0] != revision:
        raise DataError(f"source {source.name}: the server answered revision {revision} with commit "
                        f"{commits[0]}; check data.sources[{source.name}].download.url")
    return {"commit": commits[0]} if commits and all("commit" in r for r in records) else {}


def _is_commit_id(revision: str) -> bool:
    return len(revision) == 40 and not set(revision) - set("0123456789abcdef")


def _load_hub(source: SourceConfig):
    """The dataset named by the source: from the hub, or from a local folder (how tests exercise this)."""
    import datasets

    local = Path(source.hf_name or "")
    if local.is_dir() and ((local / "state.json").exists() or (local / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(local))
        return loaded[source.hf_split] if isinstance(loaded, datasets.DatasetDict) else loaded
    return datasets.load_dataset(source.hf_name, source.hf_config, split=source.hf_split)


def _save_hub(cfg: RunConfig, source: SourceConfig) -> None:
    try:
        dataset = _load_hub(source)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
        raise DataError(f"source {source.name}: cannot load {source.hf_name!r} (config {source.hf_config}, "
                        f"split {source.hf_split}): {err}") from None
    target = cache_dir(cfg, source)
    with atomic_dir(target) as tmp:
        dataset.save_to_disk(str(tmp))


def fetch_source(cfg: RunConfig, name: str) -> None:
    """Fetch source `name` into its cache folder, for offline reading by the data stage."""
    source = cfg.data.source(name)
    if source.kind == "hf":
        _save_hub(cfg, source)
    elif source.download is not None:
        _download(cfg, source)
    else:
        raise ConfigError(f"data.sources[{name}]: {source.kind} sources without `download` are read in "
                          "place; only kind hf and sources with a download are fetched")

