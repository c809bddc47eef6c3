"""`tessera data fetch` over HTTP from a hub-like server (a local http.server speaking what Hugging Face's
`resolve` endpoint answers: Range requests, `X-Linked-Etag` with the file's sha256, `X-Repo-Commit` with the
commit a branch pointed at). Checks the published sha256, resume through Range, the recorded commit, and
that files from two commits of a moving branch are refused."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tessera.data.fetch import PROGRESS, fetch_source
from tessera.data.sources import FETCHED, cache_dir
from tessera.errors import DataError

FILES = ("data/ita_Latn/train/000_00000.parquet", "data/ita_Latn/train/000_00001.parquet")
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


class Hub:
    """Files per commit, a branch `main` pointing at one of them, and a log of the requests served."""

    def __init__(self, root: Path) -> None:
        self.root, self.main, self.requests, self.corrupt = root, COMMIT_A, [], False

    def resolve(self, revision: str) -> str:
        return self.main if revision == "main" else revision


def _handler(hub: Hub):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 http.server's name
            revision, _, path = self.path.lstrip("/").partition("/")
            commit = hub.resolve(revision)
            file = hub.root / commit / path
            if not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers["Range"] else 0
            hub.requests.append((path, start))
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("X-Linked-Etag", f'"{"0" * 64 if hub.corrupt else digest}"')
            self.send_header("X-Repo-Commit", commit)
            self.end_headers()
            self.wfile.write(data[start:])

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def hub(tmp_path: Path, write_fineweb_parquet) -> Iterator[tuple[Hub, str]]:
    root = tmp_path / "hub"
    for commit in (COMMIT_A, COMMIT_B):
        for n, name in enumerate(FILES):
            texts = [f"Testo numero {n}-{i} del commit {commit[0]}: " + "parole italiane qui. " * 20
                     for i in range(10)]
            write_fineweb_parquet(root / commit / name, texts, "ita_Latn", rows_per_group=5)
    state = Hub(root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _config(make_config, url: str, revision: str = "main"):
    source = {"name": "fineweb2_ita", "kind": "parquet", "id_field": "id", "language": "ita",
              "license": "ODC-By-1.0", "origin": "test hub", "tdm_opt_out": "test",
              "download": {"url": f"{url}/{{revision}}", "revision": revision,
                           "files": [{"path": name} for name in FILES]}}
    return make_config([source], allowed_licenses=["ODC-By-1.0"])


def test_published_sha256_checked_and_commit_recorded(make_config, hub):
    state, url = hub
    cfg = _config(make_config, url)
    fetch_source(cfg, "fineweb2_ita")
    record = json.loads((cache_dir(cfg, cfg.data.sources[0]) / FETCHED).read_text())
    assert record["revision"] == "main" and record["commit"] == COMMIT_A
    assert [f["commit"] for f in record["files"]] == [COMMIT_A, COMMIT_A]
    assert [f["sha256"] for f in record["files"]] == [
        hashlib.sha256((state.root / COMMIT_A / name).read_bytes()).hexdigest() for name in FILES]
    assert not (cache_dir(cfg, cfg.data.sources[0]) / PROGRESS).exists()


def test_a_wrong_published_sha256_is_refused_and_names_the_file(make_config, hub):
    state, url = hub
    state.corrupt = True
    cfg = _config(make_config, url)
    with pytest.raises(DataError, match=r"000_00000\.parquet has sha256 \w+, expected 0{64} \(published by"):
        fetch_source(cfg, "fineweb2_ita")


def test_an_interrupted_fetch_resumes_through_range_and_keeps_verified_files(make_config, hub):
    state, url = hub
    cfg = _config(make_config, url)
    folder = cache_dir(cfg, cfg.data.sources[0])
    fetch_source(cfg, "fineweb2_ita")
    # Killed during the second file: the first is verified, half of the second arrived.
    (folder / FETCHED).unlink()
    verified = {"path": FILES[0], "size": (folder / FILES[0]).stat().st_size, "commit": COMMIT_A,
                "sha256": hashlib.sha256((folder / FILES[0]).read_bytes()).hexdigest()}
    (folder / PROGRESS).write_text(json.dumps({"files": [verified]}))
    second = folder / FILES[1]
    half = second.read_bytes()[: second.stat().st_size // 2]
    second.unlink()
    second.with_name(second.name + ".part").write_bytes(half)
    state.requests.clear()
    fetch_source(cfg, "fineweb2_ita")
    assert state.requests == [(FILES[1], len(half))]
    assert second.read_bytes() == (state.root / COMMIT_A / FILES[1]).read_bytes()


def test_a_branch_that_moved_between_fetches_is_refused_until_pinned(make_config, hub):
    state, url = hub
    cfg = _config(make_config, url)
    folder = cache_dir(cfg, cfg.data.sources[0])
    fetch_source(cfg, "fineweb2_ita")
    # The second file is lost, and main has moved on before the rerun fetches it again.
    (folder / FILES[1]).unlink()
    state.main = COMMIT_B
    with pytest.raises(DataError, match=rf"moved while its files were fetched; they come from commits "
                                        rf"{COMMIT_A}, {COMMIT_B}\. Set data\.sources\[fineweb2_ita\]"):
        fetch_source(cfg, "fineweb2_ita")
    assert not (folder / FETCHED).exists()  # the data stage will not read a mixed corpus
    state.requests.clear()
    pinned = _config(make_config, url, revision=COMMIT_B)
    fetch_source(pinned, "fineweb2_ita")
    assert state.requests == [(FILES[0], 0)]  # only the file of the other commit is downloaded again
    assert json.loads((folder / FETCHED).read_text())["commit"] == COMMIT_B
