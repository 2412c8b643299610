"""The distilled table's cache: reused, keyed by its sources, rebuilt when it cannot be
trusted. A stand-in distillation (counted) over a stand-in model folder keeps these fast; the
real distillation is exercised by test_static_embedder.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from keel_memory.adapters.static import distill
from keel_memory.adapters.static.table_cache import load_table, source_key, table_path

SHAPE = (50, 8)


class CountingDistil:
    def __init__(self, shape: tuple[int, int] = SHAPE) -> None:
        self.calls = 0
        self.shape = shape

    def __call__(self, model_dir: Path) -> npt.NDArray[np.float32]:
        self.calls += 1
        return np.random.default_rng(self.calls).standard_normal(self.shape).astype(np.float32)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (folder / name).write_text(f"{name} v1")
    return folder


def test_the_table_is_distilled_once_then_read_from_the_cache(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    distil = CountingDistil()
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO):
        first, path = load_table(model_dir, SHAPE, cache, distil=distil)
    assert "distilling it from MiniLM once" in caplog.text
    second, again = load_table(model_dir, SHAPE, cache, distil=distil)
    assert distil.calls == 1
    assert again == path == table_path(cache, source_key(model_dir))
    assert np.array_equal(first, second)


def test_new_model_files_or_a_new_recipe_get_a_table_of_their_own(
    model_dir: Path, tmp_path: Path
) -> None:
    distil = CountingDistil()
    _, path = load_table(model_dir, SHAPE, tmp_path, distil=distil)
    (model_dir / "model.safetensors").write_text("model.safetensors v2")
    _, newer = load_table(model_dir, SHAPE, tmp_path, distil=distil)
    assert newer != path
    assert distil.calls == 2
    assert source_key(model_dir, distill.VERSION + 1) != source_key(model_dir)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other key", "wrong shape", "nan"])
def test_an_unsound_cache_file_is_distilled_again_with_a_warning(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    distil = CountingDistil()
    _, path = load_table(model_dir, SHAPE, tmp_path, distil=distil)
    good = np.zeros(SHAPE, dtype=np.float32)
    key = source_key(model_dir)
    if damage == "garbage":
        path.write_bytes(b"not a table")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "other key":
        np.savez(path.with_suffix(".tmp.npz"), key=np.array("another"), table=good)
        path.with_suffix(".tmp.npz").replace(path)
    elif damage == "wrong shape":
        np.savez(path.with_suffix(".tmp.npz"), key=np.array(key), table=good[:10])
        path.with_suffix(".tmp.npz").replace(path)
    else:
        bad = good.copy()
        bad[3, 3] = np.nan
        np.savez(path.with_suffix(".tmp.npz"), key=np.array(key), table=bad)
        path.with_suffix(".tmp.npz").replace(path)
    with caplog.at_level(logging.WARNING):
        table, _ = load_table(model_dir, SHAPE, tmp_path, distil=distil)
    assert distil.calls == 2
    assert "distilling it again" in caplog.text
    assert table.shape == SHAPE
    assert np.isfinite(table).all()
    # The rebuilt file is sound: the next start reads it.
    load_table(model_dir, SHAPE, tmp_path, distil=distil)
    assert distil.calls == 2


def test_a_distillation_of_the_wrong_shape_is_refused(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"shape \(50, 4\), expected \(50, 8\)"):
        load_table(model_dir, SHAPE, tmp_path, distil=CountingDistil((50, 4)))
    assert not list(tmp_path.glob("*.npz"))


def test_weights_keep_special_tokens_out_and_rare_tokens_heavier() -> None:
    special = np.array([True, False, False, False, True])
    weights = distill.token_weights(special)
    assert weights[0] == weights[4] == 0.0
    assert 0.0 < weights[1] < weights[2] < weights[3] <= 1.0
