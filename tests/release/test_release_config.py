"""The `release:` section: values checked at config load, naming the key and the allowed values."""

from __future__ import annotations

import pytest

from tessera.config import from_dict, load
from tessera.errors import ConfigError
from tessera.release.config import ReleaseConfig


def test_demo_config_has_every_key_required_at_release(repo_root):
    from tessera.release.validate import check_declared

    check_declared(load(repo_root / "config.yaml").release)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"source_categories": {"wiki": "crawled"}},
            r"release\.source_categories\.wiki: 'crawled' is not a category; "
            r"allowed: public_datasets, licensed_private",
        ),
        ({"default_source_category": "web"}, r"release\.default_source_category: 'web' is not a category"),
        ({"placed_on_market": "March 2026"}, r"release\.placed_on_market: 'March 2026' is not a date"),
        (
            {"model_name": "org/model"},
            r"release\.model_name: 'org/model' must be a bare name; put the Hub namespace",
        ),
        ({"license": " "}, r"release\.license: must not be empty"),
        ({"dtype": "int8"}, r"release\.dtype: 'int8' is not allowed; allowed values: checkpoint, float32"),
        ({"providr": "x"}, r"release: unknown key\(s\) providr"),
    ],
)
def test_bad_values_are_refused_naming_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ReleaseConfig, section, "release")


def test_required_keys_may_be_empty_until_release():
    # A run trains before its provider details are settled; `tessera release` asks for them.
    cfg = from_dict(ReleaseConfig, {}, "release")
    assert cfg.provider == "" and cfg.content_types == []
