"""Source readers: each configured source -> a stream of raw documents (key, alignment unit, text).

Kinds: `sqlite` (rows of a query, consecutive rows of one `doc` joined into a document), `text` (one
document per file), `jsonl` and `parquet` (one document per record), `hf` (a Hugging Face dataset that
`tessera data fetch` saved into a cache folder beforehand, because compute nodes have no internet).

Every way a source can be unusable (missing file, not UTF-8, truncated SQLite, a query that fails, no
documents at all) raises a DataError naming the source and the file, before anything is written.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from tessera.config import RunConfig
from tessera.data.config import SourceConfig
from tessera.errors import DataError

__all__ = ["RawDocument", "resolve_path", "input_files", "source_inputs", "workflow_inputs", "read_documents",
           "read_slice", "count_documents", "slice_bounds", "cache_root", "cache_dir",
           "downloaded_files", "FETCHED"]

PKG_SCHEME = "pkg://"
FETCHED = "fetched.json"
"""Written last by `tessera data fetch` into a download's cache: revision, files, sizes and sha256."""


@dataclass(frozen=True)
class RawDocument:
    """One document as the source gives it, before any filter."""

    key: str
    """Key within the source (the document id is `<source>/<key>`)."""
    unit: str | None
    """Alignment key shared with the same content in other languages; None when not parallel."""
    text: str


def resolve_path(path: str, source_name: str) -> Path:
    """`pkg://<package>/<file>` -> the file inside the installed package; anything else as a Path."""
    if not path.startswith(PKG_SCHEME):
        return Path(path)
    package, _, inner = path[len(PKG_SCHEME):].partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"source {source_name}: path {path}: Python package {package!r} is not installed; "
            f"install it (pip install {package}) or point the source at a file"
        )
    return Path(next(iter(spec.submodule_search_locations))) / inner


def _glob_base(pattern: str) -> Path:
    """The folder a text source's files are named relative to: a glob's longest fixed prefix, or a
    single file's folder (so document keys do not depend on where the repository sits)."""
    parts = Path(pattern).parts
    stop = next((i for i, part in enumerate(parts) if glob.has_magic(part)), None)
    if stop is None:
        return Path(pattern).parent
    return Path(*parts[:stop]) if stop else Path(".")


def _local_files(cfg: RunConfig, source: SourceConfig) -> list[Path]:
    """The files a file-based source reads, in sorted order (a download's: in its listed order); a
    DataError when there are none."""
    if source.download is not None:
        return downloaded_files(cfg, source)
    assert source.path is not None  # noqa: S101 SourceConfig.check requires it for file kinds
    path = resolve_path(source.path, source.name)
    if glob.has_magic(str(path)):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"source {source.name}: no file matches {source.path}; check data.sources path")
        return files
    if not path.is_file():
        raise DataError(f"source {source.name}: file {path} does not exist; check data.sources path")
    return [path]


def cache_root(cfg: RunConfig) -> Path:
    """The folder holding every hub source's cache: `data.cache_dir`, or `<run>/sources` when unset."""
    return cfg.data.cache_dir if cfg.data.cache_dir is not None else cfg.out_dir / "sources"


def cache_dir(cfg: RunConfig, source: SourceConfig) -> Path:
    """Where `tessera data fetch` keeps a hub source: `<cache_root>/<name>`."""
    return cache_root(cfg) / source.name


def downloaded_files(cfg: RunConfig, source: SourceConfig) -> list[Path]:
    """A downloaded source's files in its cache, as `tessera data fetch` left them; DataError if it has
    not run (or not to the end), or a file's size changed since (a stat each: cheap, unlike a hash)."""
    assert source.download is not None  # noqa: S101 callers pass downloaded sources only
    folder = cache_dir(cfg, source)
    if not (folder / FETCHED).is_file():
        raise DataError(f"source {source.name}: download {folder} is missing or incomplete; run `tessera "
                        f"data fetch --source {source.name}` on the login node (rule fetch_source does it)")
    record = json.loads((folder / FETCHED).read_text(encoding="utf-8"))
    fetched = {f["path"]: f["size"] for f in record["files"]}
    files = []
    for remote in source.download.files:
        path = folder / remote.path
        size = path.stat().st_size if path.exists() else None
        if size != fetched.get(remote.path):
            raise DataError(f"source {source.name}: {path} has {size} bytes, {fetched.get(remote.path)} when "
                            f"it was fetched and verified; rerun `tessera data fetch --source {source.name}`")
        files.append(path)
    if source.path:
        files = [f for f in files if f.relative_to(folder).match(source.path)]
    return files


def input_files(cfg: RunConfig, source: SourceConfig) -> list[Path]:
    """Every file the source's documents come from (hashed into the manifest; Snakemake inputs)."""
    if source.kind != "hf":
        return _local_files(cfg, source)
    folder = cache_dir(cfg, source)
    if not folder.is_dir():
        raise DataError(
            f"source {source.name}: hub cache {folder} is missing; run `tessera data fetch --source "
            f"{source.name}` on a machine with internet (the workflow's fetch_source rule does this)"
        )
    return sorted(p for p in folder.rglob("*") if p.is_file())


def source_inputs(cfg: RunConfig, source: SourceConfig) -> list[str]:
    """What a job reading the source depends on: its local files (editing one reruns the job), or a hub
    source's cache folder (made by the fetch_source rule). A missing local file raises DataError, so the
    workflow stops before any job runs."""
    if source.kind == "hf":
        return [str(cache_dir(cfg, source))]
    if source.download is not None:
        return [str(cache_dir(cfg, source) / FETCHED)]
    return [str(path) for path in input_files(cfg, source)]


def workflow_inputs(cfg: RunConfig) -> list[str]:
    """Every source's inputs (`source_inputs`), each once (the demo's five sources share one file)."""
    return list(dict.fromkeys(path for source in cfg.data.sources for path in source_inputs(cfg, source)))


def _decode(raw: bytes, source: SourceConfig, file: Path, where: str = "") -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"source {source.name}: {file}{where} is not UTF-8 (invalid byte 0x{raw[err.start]:02x} at "
            f"offset {err.start}); convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def _read_text(cfg: RunConfig, source: SourceConfig) -> Iterator[RawDocument]:
    base = cache_dir(cfg, source) if source.download else _glob_base(str(resolve_path(source.path or "",
                                                                                      source.name)))
    for file in _local_files(cfg, source):
        key = file.relative_to(base).as_posix() if file.is_relative_to(base) else file.name
        yield RawDocument(key=key, unit=None, text=_decode(file.read_bytes(), source, file))


def _record_document(record: dict, source: SourceConfig, number: int, where: str) -> RawDocument:
    if not isinstance(record, dict) or source.text_field not in record:
        raise DataError(f"source {source.name}: {where} has no field {source.text_field!r}; set text_field")
    text = record[source.text_field]
    if not isinstance(text, str):
        raise DataError(f"source {source.name}: {where} field {source.text_field!r} is not a string")
    key = str(record.get(source.id_field, number)) if source.id_field else str(number)
    unit = record.get(source.unit_field) if source.unit_field else None
    return RawDocument(key=key, unit=None if unit is None else str(unit), text=text)


def _jsonl_lines(cfg: RunConfig, source: SourceConfig) -> int:
    """Records of a JSONL source (non-empty lines), counted without decoding them."""
    count = 0
    for file in _local_files(cfg, source):
        with open(file, "rb") as f:
            count += sum(1 for raw in f if raw.strip())
    return count


def _read_jsonl(cfg: RunConfig, source: SourceConfig, start: int = 0, stop: int | None = None
                ) -> Iterator[RawDocument]:
    """Records [start, stop) in file order; the lines before `start` are skipped undecoded."""
    number = 0
    for file in _local_files(cfg, source):
        with open(file, "rb") as f:
            for line_number, raw in enumerate(f, start=1):
                if stop is not None and number >= stop:
                    return
                if number < start:
                    number += bool(raw.strip())
                    continue
                line = _decode(raw, source, file, f" line {line_number}").strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(
                        f"source {source.name}: {file} line {line_number} is not JSON: {err}") from None
                yield _record_document(record, source, number, f"{file} line {line_number}")
                number += 1


def _parquet_row_counts(cfg: RunConfig, source: SourceConfig) -> list[tuple[Path, list[int]]]:
    """Each file's row-group sizes, from the footers alone (no data pages read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts = []
    for file in _local_files(cfg, source):
        try:
            metadata = pq.ParquetFile(file).metadata
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(f"source {source.name}: {file} is not a readable parquet file: {err}; "
                            "re-download it (`tessera data fetch`)") from None
        counts.append((file, [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]))
    return counts


def _read_parquet(cfg: RunConfig, source: SourceConfig, start: int = 0, stop: int | None = None
                  ) -> Iterator[RawDocument]:
    """Rows [start, stop) of the files read in order; row groups wholly outside are never decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [c for c in (source.text_field, source.id_field, source.unit_field) if c]
    number = 0
    for file, groups in _parquet_row_counts(cfg, source):
        try:
            parquet = pq.ParquetFile(file)
            for group, rows in enumerate(groups):
                if stop is not None and number >= stop:
                    return
                if number + rows <= start:
                    number += rows
                    continue
                for batch in parquet.iter_batches(columns=columns, row_groups=[group]):
                    for record in batch.to_pylist():
                        if number >= start and (stop is None or number < stop):
                            yield _record_document(record, source, number, f"{file} row {number}")
                        number += 1
        except (pa.ArrowInvalid, OSError, KeyError) as err:
            raise DataError(f"source {source.name}: {file} is not a readable parquet file with "
                            f"columns {columns}: {err}") from None


def _check_sqlite_file(source: SourceConfig, path: Path) -> None:
    """Catch a truncated or foreign file from its header before SQLite reads pages that are not there.

    The header (https://sqlite.org/fileformat.html) stores the page size (offset 16) and the page count
    (offset 28, valid when the change counter at 24 equals the one at 92); their product is the file size.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise DataError(f"source {source.name}: {path} is not an SQLite database (bad header); "
                        "re-download or reinstall it")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    page_count = int.from_bytes(header[28:32], "big")
    if header[24:28] == header[92:96] and page_count and size < page_size * page_count:
        raise DataError(
            f"source {source.name}: {path} is truncated ({size} bytes, its header says "
            f"{page_size * page_count}); re-download or reinstall it"
        )


def _read_sqlite(cfg: RunConfig, source: SourceConfig) -> Iterator[RawDocument]:
    (path,) = _local_files(cfg, source)
    _check_sqlite_file(source, path)
    # Read-only and immutable: package files may sit on read-only file systems, and no lock is needed.
    uri = f"file:{path.resolve()}?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise DataError(f"source {source.name}: cannot open {path}: {err}") from None
    try:
        cursor = connection.execute(source.query or "")
        columns = [d[0] for d in cursor.description or []]
        if "doc" not in columns or "text" not in columns:
            raise DataError(
                f"source {source.name}: query must return columns named doc and text (and optionally unit); "
                f"it returns {columns}"
            )
        doc_i, text_i = columns.index("doc"), columns.index("text")
        unit_i = columns.index("unit") if "unit" in columns else None
        key: str | None = None
        unit: str | None = None
        lines: list[str] = []
        for row in cursor:
            row_key = str(row[doc_i])
            row_unit = None if unit_i is None or row[unit_i] is None else str(row[unit_i])
            if row_key != key and key is not None:
                yield RawDocument(key=key, unit=unit, text="\n".join(lines))
                lines = []
            elif row_key == key and row_unit != unit:
                raise DataError(
                    f"source {source.name}: document {key} has rows with units {unit!r} and {row_unit!r}; "
                    "a document belongs to one unit: make the query's unit a function of its doc"
                )
            key, unit = row_key, row_unit
            lines.append(str(row[text_i]))
        if key is not None:
            yield RawDocument(key=key, unit=unit, text="\n".join(lines))
    except sqlite3.Error as err:
        raise DataError(f"source {source.name}: reading {path} failed ({err}); the file may be damaged or "
                        "the query wrong") from None
    finally:
        connection.close()


def _read_hf(cfg: RunConfig, source: SourceConfig) -> Iterator[RawDocument]:
    import datasets

    folder = cache_dir(cfg, source)
    input_files(cfg, source)  # the "missing cache" message
    dataset = datasets.load_from_disk(str(folder))
    for number, record in enumerate(dataset):
        yield _record_document(record, source, number, f"{folder} row {number}")


def _stream(cfg: RunConfig, source: SourceConfig) -> Iterator[RawDocument]:
    readers = {"text": _read_text, "jsonl": _read_jsonl, "parquet": _read_parquet, "sqlite": _read_sqlite,
               "hf": _read_hf}
    return readers[source.kind](cfg, source)


def _no_documents(source: SourceConfig) -> DataError:
    return DataError(f"source {source.name}: yielded no documents (path {source.path or source.hf_name}); "
                     "check that the file is not empty and the query/fields select something")


def read_documents(cfg: RunConfig, source: SourceConfig) -> Iterator[RawDocument]:
    """The source's documents in a stable order, at most `max_documents`; DataError if it has none."""
    stream = _stream(cfg, source)
    count = 0
    try:
        for document in islice(stream, source.max_documents):
            count += 1
            yield document
    finally:
        stream.close()  # a capped read stops early: close the SQLite connection / file now, not at GC
    if count == 0:
        raise _no_documents(source)


def count_documents(cfg: RunConfig, source: SourceConfig) -> int:
    """Documents the source yields (capped by `max_documents`): parquet from its footers, JSONL by its
    non-empty lines, other kinds by reading through once (small: the demo's SQLite, local text files)."""
    if source.kind == "parquet":
        total = sum(sum(groups) for _, groups in _parquet_row_counts(cfg, source))
    elif source.kind == "jsonl":
        total = _jsonl_lines(cfg, source)
    else:
        stream = _stream(cfg, source)
        try:
            total = sum(1 for _ in islice(stream, source.max_documents))
        finally:
            stream.close()
    total = min(total, source.max_documents or total)
    if total == 0:
        raise _no_documents(source)
    return total


def slice_bounds(total: int, index: int, num_slices: int) -> tuple[int, int]:
    """Documents [start, stop) of slice `index` when `total` documents are cut into `num_slices`."""
    return total * index // num_slices, total * (index + 1) // num_slices


def read_slice(cfg: RunConfig, source: SourceConfig, index: int, num_slices: int) -> Iterator[RawDocument]:
    """Slice `index` of `num_slices` contiguous, near-equal slices of the source's documents."""
    if num_slices == 1:
        yield from read_documents(cfg, source)
        return
    start, stop = slice_bounds(count_documents(cfg, source), index, num_slices)
    # Parquet and JSONL skip to their slice (footers, undecoded lines); the small kinds read through.
    ranged = {"parquet": _read_parquet, "jsonl": _read_jsonl}.get(source.kind)
    stream = ranged(cfg, source, start, stop) if ranged else _stream(cfg, source)
    try:
        yield from stream if ranged else islice(stream, start, stop)
    finally:
        stream.close()
