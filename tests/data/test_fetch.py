"""`tessera data fetch` for downloaded file sources (tessera.data.fetch): FineWeb-2-style parquet
served from a file:// URL is downloaded, resumed, checked against size and sha256, then read in place
by the data stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tessera.data.fetch import fetch_source
from tessera.data.prepare import prepare_data
from tessera.data.sources import FETCHED, cache_dir
from tessera.errors import DataError
from tessera.io import sha256_file
from tessera.layout import RunLayout

ITALIAN = ("Quel ramo del lago di Como, che volge a mezzogiorno, tra due catene non interrotte di monti, "
           "tutto a seni e a golfi, a seconda dello sporgere e del rientrare di quelli, vien, quasi a un "
           "tratto, a ristringersi, e a prender corso e figura di fiume, tra un promontorio a destra, e "
           "un'ampia costiera dall'altra parte. Numero {i}: il ponte congiunge le due rive {i} volte.")
FILES = ("data/ita_Latn/train/000_00000.parquet", "data/ita_Latn/train/000_00001.parquet")


@pytest.fixture
def remote(tmp_path: Path, write_fineweb_parquet) -> Path:
    """A hub-like folder: <remote>/<revision>/<FILES>."""
    root = tmp_path / "remote"
    for n, name in enumerate(FILES):
        texts = [ITALIAN.format(i=f"{n}-{i}") * 2 for i in range(20)]
        write_fineweb_parquet(root / "rev1" / name, texts, "ita_Latn", rows_per_group=5)
    return root


def _source(remote: Path, **file_overrides) -> dict:
    files = [{"path": name, "sha256": sha256_file(remote / "rev1" / name),
              "size": (remote / "rev1" / name).stat().st_size, **file_overrides.get(name, {})}
             for name in FILES]
    return {"name": "fineweb2_ita", "kind": "parquet", "id_field": "id", "language": "ita", "num_shards": 2,
            "license": "ODC-By-1.0", "attribution": "FineWeb-2 by Hugging Face (ODC-By 1.0)",
            "origin": "https://huggingface.co/datasets/HuggingFaceFW/fineweb-2",
            "tdm_opt_out": "test", "download": {"url": f"file://{remote}/{{revision}}", "revision": "rev1",
                                                "files": files}}


def _config(make_config, source: dict):
    return make_config([source], allowed_licenses=["ODC-By-1.0"], filters={"min_chars": 100})


def test_download_then_read_in_place(make_config, remote):
    cfg = _config(make_config, _source(remote))
    with pytest.raises(DataError, match="run `tessera data fetch --source fineweb2_ita`"):
        prepare_data(cfg)
    fetch_source(cfg, "fineweb2_ita")
    folder = cache_dir(cfg, cfg.data.sources[0])
    assert all((folder / name).read_bytes() == (remote / "rev1" / name).read_bytes() for name in FILES)
    assert json.loads((folder / FETCHED).read_text())["revision"] == "rev1"
    prepare_data(cfg)
    source = json.loads(RunLayout(cfg.out_dir).manifest.read_text())["sources"]["fineweb2_ita"]
    assert source["documents_in"] == 40 and source["documents_out"] == 40 - sum(source["dropped"].values())
    assert [i["path"] for i in source["inputs"]] == list(FILES)
    assert all(i["revision"] == "rev1" and len(i["sha256"]) == 64 for i in source["inputs"])
    assert source["duties"] == {"attribution": True, "share_alike": False,
                                "credit": "FineWeb-2 by Hugging Face (ODC-By 1.0)"}
    # A file cut after the fetch is named, not read short.
    damaged = folder / FILES[1]
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(DataError, match=r"000_00001\.parquet has 100 bytes, \d+ when it was fetched"):
        prepare_data(cfg)


def test_an_interrupted_download_resumes(make_config, remote):
    cfg = _config(make_config, _source(remote))
    folder = cache_dir(cfg, cfg.data.sources[0])
    whole = (remote / "rev1" / FILES[0]).read_bytes()
    part = folder / f"{FILES[0]}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(whole[: len(whole) // 2])
    fetch_source(cfg, "fineweb2_ita")
    assert (folder / FILES[0]).read_bytes() == whole and not part.exists()
    # A second fetch finds both files verified and downloads nothing.
    (remote / "rev1" / FILES[0]).unlink()
    fetch_source(cfg, "fineweb2_ita")


def test_a_checksum_mismatch_is_refused_and_names_the_file(make_config, remote):
    cfg = _config(make_config, _source(remote, **{FILES[1]: {"sha256": "0" * 64}}))
    with pytest.raises(DataError, match=r"000_00001\.parquet has sha256 [0-9a-f]{64}, expected 0{64}"):
        fetch_source(cfg, "fineweb2_ita")
    folder = cache_dir(cfg, cfg.data.sources[0])
    assert not (folder / FETCHED).exists() and not (folder / f"{FILES[1]}.part").exists()


def test_a_truncated_download_is_refused_and_names_the_file(make_config, remote):
    size = (remote / "rev1" / FILES[0]).stat().st_size
    cfg = _config(make_config, _source(remote, **{FILES[0]: {"size": size + 10}}))
    with pytest.raises(DataError, match=rf"000_00000\.parquet is truncated: {size} of {size + 10} bytes"):
        fetch_source(cfg, "fineweb2_ita")
    assert not (cache_dir(cfg, cfg.data.sources[0]) / FETCHED).exists()
