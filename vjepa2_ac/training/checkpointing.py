"""Atomic training checkpoints and the RNG states that make ``--resume`` bit-exact.

A checkpoint is written to a hidden temp file in the same directory, flushed to disk and renamed over the old one
(``os.replace`` is atomic), so a process killed mid-write leaves the previous checkpoint intact. Files load with
``torch.load(weights_only=True)``: every value is a tensor, a number, a string or a container of those.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa2_ac.atomic import atomic_write_bytes


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU and every CUDA device)."""
    py = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global state is what we restore
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy(), n[2], n[3], n[4]))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """``torch.save(payload)`` to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err


@dataclasses.dataclass
class RunSettings:
    """What a run needs besides its weights: the config (with the effective ``init``), the dataset paths and, when
    resuming, the loaded checkpoint. ``record`` goes into every checkpoint (``payload["run"]``)."""

    config: Any
    data: list[str]
    val_data: list[str] | None = None
    checkpoint: dict[str, Any] | None = None

    @property
    def record(self) -> dict[str, Any]:
        return {"data": self.data, "val_data": self.val_data}


def _abs_paths(paths: Sequence[str | os.PathLike] | str | os.PathLike | None) -> list[str] | None:
    if paths is None:
        return None
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [os.path.abspath(os.path.expanduser(str(p))) for p in paths]


def _same_ref(a: str | None, b: str | None) -> bool:
    """``a`` and ``b`` name the same model: equal strings, or local paths to the same file / directory."""
    if a is None or b is None or str(a) == str(b):
        return str(a) == str(b)
    pa, pb = Path(str(a)).expanduser(), Path(str(b)).expanduser()
    return pa.exists() and pb.exists() and os.path.samefile(pa, pb)


def _restore_paths(name: str, given: list[str] | None, recorded: list[str] | None, known: bool) -> list[str] | None:
    """The run's paths for ``--data`` / ``--val-data``: the recorded ones unless given; a different value is refused
    while the recorded paths still exist (a moved dataset may be given once the old location is gone)."""
    if given is None:
        return recorded
    if known and given != recorded and (recorded is None or all(Path(p).exists() for p in recorded)):
        raise ValueError(f"--resume: {name} differs from the run's (run: {recorded}, given: {given}); omit it to "
                         "use the run's")
    return given


def resolve_run(config_cls: type, config: Any | None, ckpt_path: Path, *, resume: bool, init: str | None,
                data: Sequence[str | os.PathLike] | None, val_data: Sequence[str | os.PathLike] | None = None
                ) -> RunSettings:
    """The settings of a new run (``init`` stored in its config) or, with ``resume``, of the run saved in
    ``ckpt_path``: its config, ``init`` and data, each of which may be given again but not changed.

    Raises ``ValueError`` naming the setting and both values when a given one differs from the run's."""
    if not resume:
        if config is None:
            raise ValueError("a config is needed to start a run (--config)")
        if ckpt_path.exists():
            raise FileExistsError(f"{ckpt_path.parent.parent} already holds a run ({ckpt_path}); pass --resume to "
                                  "continue it or choose another --out")
        if not data:
            raise ValueError("no dataset given (--data DIR [DIR ...])")
        if init is not None:
            config = dataclasses.replace(config, init=str(init))
        return RunSettings(config, _abs_paths(data), _abs_paths(val_data) if val_data else None)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
    ckpt = load_checkpoint(ckpt_path)
    saved = config_cls.from_dict(ckpt["config"])
    record = ckpt.get("run")  # None: written before the run's --init and --data were recorded
    given_init = init if init is not None else (config.init if config is not None else None)
    if given_init is not None and not _same_ref(given_init, saved.init):
        if record is not None or saved.init is not None:
            raise ValueError(f"--resume: --init differs from the run's (run: {saved.init!r}, given: {given_init!r})")
        saved = dataclasses.replace(saved, init=str(given_init))  # an older run: its --init was not recorded
    if config is not None:
        given, run = dataclasses.replace(config, init=saved.init).to_dict(), saved.to_dict()
        changed = [f"{k} (run: {run[k]!r}, given: {given[k]!r})" for k in run if run[k] != given.get(k)]
        if changed:
            raise ValueError(f"--resume: the config differs from the run's saved config in {', '.join(changed)}")
    record = record or {}
    data_paths = _restore_paths("--data", _abs_paths(data) if data else None, record.get("data"), "data" in record)
    if not data_paths:
        raise ValueError("--resume: this run's checkpoint does not record its datasets (an older version wrote it); "
                         "pass --data")
    val_paths = _restore_paths("--val-data", _abs_paths(val_data) if val_data else None, record.get("val_data"),
                               "val_data" in record)
    return RunSettings(saved, data_paths, val_paths, ckpt)


class MetricsLogger:
    """Metrics as JSON lines in ``RUN_DIR/metrics.jsonl`` (+ TensorBoard under ``RUN_DIR/tb`` if installed).

    ``resume_step``: drop lines logged after that step by an interrupted run (they are logged again)."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            atomic_write_bytes(self.path, ("\n".join(kept) + "\n" if kept else "").encode())
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except ImportError:
                self._tb = None

    def log(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
                                   for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
