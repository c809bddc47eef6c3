"""What a resume trusts and what it refuses, through real `tessera train` launches (one rank):

- a stage's recipe (batch size, seq_len, ...) changed under its run state is refused naming the key,
  unless `resume_changes` allows it; the allowed change is logged and enters the history;
- a damaged run state (same size, other bytes) is skipped for the previous intact one, saying so;
  damaged published weights are neither exported nor verified as intact;
- a run state of the old pickle format is never unpickled;
- a second job on a locked stage is refused naming the holder; a dead holder's lock is taken over.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tessera.layout import RunLayout
from tessera.train.callbacks.loggers import read_metrics
from tessera.train.lock import STALE_AFTER_S, LockHolder, StageLock
from tests.train.mini_run import make_mini_run, run_tessera

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def eight_steps(tmp_path_factory) -> RunLayout:
    """Stage s1 trained to step 8 (run states at 4 and 8) and its losses."""
    config, layout = make_mini_run(tmp_path_factory.mktemp("eight"))
    run_tessera(config, "train", "--stage", "s1", "--until-step", "8")
    return layout


def _copy(source: RunLayout, tmp_path: Path, **train) -> tuple[Path, RunLayout]:
    config, layout = make_mini_run(tmp_path, **train)
    shutil.rmtree(layout.root)
    shutil.copytree(source.root, layout.root)
    return config, layout


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def _stages(**changes) -> list[dict]:
    from tests.train.mini_run import mini_config

    stages = mini_config(Path("."))["train"]["stages"]
    stages[0].update(changes)
    return stages


def test_changed_batch_size_is_refused_unless_allowed(eight_steps, tmp_path):
    config, layout = _copy(eight_steps, tmp_path, stages=_stages(batch_size=16))
    proc = run_tessera(config, "train", "--stage", "s1", "--until-step", "12", check=False)
    assert proc.returncode == 1
    assert "resuming stage s1 with another batch_size (batch_size: 8 -> 16)" in proc.stderr
    assert "resume_changes: [batch_size]" in proc.stderr

    raw = yaml.safe_load(config.read_text())
    raw["train"]["stages"] = _stages(batch_size=16, resume_changes=["batch_size"])
    config.write_text(yaml.safe_dump(raw))
    proc = run_tessera(config, "train", "--stage", "s1", "--until-step", "12")
    assert "batch_size changes from 8 to 16" in proc.stdout
    records = read_metrics(layout.state_dir("s1") / "metrics.jsonl")
    assert records[8]["resume_changes"] == "batch_size" and "resume_changes" not in records[9]
    history = json.loads((layout.checkpoint("s1", 12) / "tessera.json").read_text())["history"]
    assert [(h["first_step"], h["last_step"], h["resume_changes"]) for h in history] == [
        (1, 8, []), (9, 12, ["batch_size"])]
    # The data continues at the first unseen sample: 8 x 8 seen, so step 9 is the loader's 16-sample step 4.
    meta = json.loads((layout.state_dir("s1") / "step-000012" / "meta.json").read_text())
    assert (meta["samples_seen"], meta["data_shift"]) == (8 * 8 + 4 * 16, 4 - 8)


def test_a_batch_size_the_samples_seen_do_not_divide_is_refused(eight_steps, tmp_path):
    """64 samples seen are no whole number of 12-sample batches: the data could not continue exactly."""
    config, _ = _copy(eight_steps, tmp_path, stages=_stages(batch_size=12, resume_changes=["batch_size"]))
    proc = run_tessera(config, "train", "--stage", "s1", "--until-step", "12", check=False)
    assert proc.returncode == 1
    assert "the 64 samples seen by step 8 are not a whole number of batches of 12" in proc.stderr


def test_damaged_state_falls_back_to_the_previous_one(eight_steps, tmp_path):
    config, layout = _copy(eight_steps, tmp_path)
    losses = [r["loss"] for r in read_metrics(layout.state_dir("s1") / "metrics.jsonl")]
    _flip_a_byte(layout.state_dir("s1") / "step-000008" / "rank-00000.safetensors")
    proc = run_tessera(config, "train", "--stage", "s1", "--until-step", "12")
    assert "skipping damaged run states (step-000008: rank-00000.safetensors: sha256 differs" in proc.stdout
    assert "resuming from" in proc.stdout and "at step 4: steps 5 on are retrained" in proc.stdout
    again = [r["loss"] for r in read_metrics(layout.state_dir("s1") / "metrics.jsonl")]
    assert again[:8] == losses  # steps 5-8 retrained bitwise


def test_deleting_the_newest_state_resumes_from_the_one_before(eight_steps, tmp_path):
    """What the non-finite guard advises: delete the states after the bad point; `latest` may still
    name a deleted one."""
    config, layout = _copy(eight_steps, tmp_path)
    shutil.rmtree(layout.state_dir("s1") / "step-000008")
    proc = run_tessera(config, "train", "--stage", "s1", "--until-step", "12")
    assert "resumed s1 at step 4" in proc.stdout and "damaged" not in proc.stdout


def test_no_intact_state_says_how_to_restart(eight_steps, tmp_path):
    config, layout = _copy(eight_steps, tmp_path)
    for step in (4, 8):
        _flip_a_byte(layout.state_dir("s1") / f"step-{step:06d}" / "rank-00000.safetensors")
    proc = run_tessera(config, "train", "--stage", "s1", "--until-step", "12", check=False)
    assert proc.returncode == 1
    assert "no intact run state" in proc.stderr and "to train stage s1 again from step 1" in proc.stderr


def test_damaged_published_weights_are_not_exported(eight_steps, tmp_path):
    config, layout = _copy(eight_steps, tmp_path)
    ok = run_tessera(config, "state", "verify", str(layout.root))
    assert "intact" in ok.stdout
    _flip_a_byte(layout.checkpoint("s1", 8) / "model.safetensors")
    proc = run_tessera(config, "export-hf", "--checkpoint", str(layout.checkpoint("s1", 8)),
                       "--out", str(tmp_path / "hf"), check=False)
    assert proc.returncode == 1 and "model.safetensors: sha256 differs from the manifest" in proc.stderr
    assert not (tmp_path / "hf").exists()
    proc = run_tessera(config, "state", "verify", str(layout.root), check=False)
    assert proc.returncode == 1 and "step-000008: model.safetensors: sha256 differs" in proc.stderr


class _Marker:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_an_old_pickled_state_is_never_unpickled(tmp_path):
    config, layout = make_mini_run(tmp_path)
    state = layout.state_dir("s1") / "step-000004"
    state.mkdir(parents=True)
    marker = tmp_path / "unpickled"
    (state / "rank-00000.pt").write_bytes(pickle.dumps({"model": _Marker(str(marker))}))
    (state / "meta.json").write_text(json.dumps({"stage": "s1", "step": 4}))
    (layout.state_dir("s1") / "latest").write_text("step-000004\n")
    proc = run_tessera(config, "train", "--stage", "s1", "--until-step", "8", check=False)
    assert proc.returncode == 1 and "run state of an older tessera" in proc.stderr
    assert not marker.exists()


def test_stage_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    lock = StageLock(tmp_path)
    holder = LockHolder(socket.gethostname(), os.getppid(), "777", 0.0)  # alive: pytest's parent
    lock.path.write_text(json.dumps(holder.__dict__))
    with pytest.raises(Exception, match=f"pid {os.getppid()}, SLURM job 777"):
        lock.acquire()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    lock.path.write_text(json.dumps({**holder.__dict__, "pid": int(dead)}))
    assert "took over the stale lock" in lock.acquire()[0]
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not lock.path.exists()


def test_a_second_job_on_a_locked_stage_is_refused(tmp_path):
    config, layout = make_mini_run(tmp_path)
    lock = StageLock(layout.state_dir("s1"))
    lock.acquire()
    proc = run_tessera(config, "train", "--stage", "s1", "--until-step", "4", check=False)
    assert proc.returncode == 1
    holder = f"stage is being trained by another job (host {socket.gethostname()}, pid {os.getpid()}"
    assert holder in proc.stderr
    lock.release()


def test_a_lock_of_another_host_is_stale_once_its_heartbeat_is_old(tmp_path):
    """Without SLURM (no job id), another host's lock is judged by its heartbeat (the file's mtime)."""
    lock = StageLock(tmp_path)
    lock.path.write_text(json.dumps(LockHolder("elsewhere", 12345, None, 0.0).__dict__))
    with pytest.raises(Exception, match="host elsewhere, pid 12345"):
        lock.acquire()
    old = time.time() - STALE_AFTER_S - 60
    os.utime(lock.path, (old, old))
    assert "took over the stale lock" in lock.acquire()[0]
    lock.release()
