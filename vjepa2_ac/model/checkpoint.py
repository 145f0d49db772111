"""Checkpoint helpers: official key clean-up, strict loading with named errors, local/URL/hub resolution.

Nothing here is half-loaded: a state dict is fully checked against the module before any tensor is copied.
"""

from __future__ import annotations

import os
import pickle
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

OFFICIAL_PREFIXES = ("module.", "backbone.")
RELEASED_AC_URL = "https://dl.fbaipublicfiles.com/vjepa2/vjepa2-ac-vitg.pt"


class CheckpointError(ValueError):
    """A checkpoint that does not match the module it is loaded into (names the offending keys)."""


def strip_official_prefixes(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Delete ``module.`` and ``backbone.`` wherever they occur in a key (as the official loader does)."""
    out = {}
    for key, value in state_dict.items():
        new = key
        for prefix in OFFICIAL_PREFIXES:
            new = new.replace(prefix, "")
        if new in out:
            raise CheckpointError(f"two keys map to {new!r} after deleting {OFFICIAL_PREFIXES}")
        out[new] = value
    return out


LAYOUTS = ("official", "jepa-wms")


def predictor_layout(state_dict: Mapping[str, Any]) -> str:
    """``"jepa-wms"`` for a predictor state dict saved by jepa-wms (``proprio_encoder.*``, or no conditioning
    encoder but the action's: its ``vjepa2_ac_droid``), else ``"official"`` (prefixes already deleted)."""
    if any(k.startswith("proprio_encoder.") for k in state_dict):
        return "jepa-wms"
    if not any(k.startswith(("state_encoder.", "extrinsics_encoder.")) for k in state_dict):
        return "jepa-wms"
    return "official"


def from_jepawms_layout(state_dict: Mapping[str, Tensor], *, use_extrinsics: bool = False) -> dict[str, Tensor]:
    """A jepa-wms predictor state dict (prefixes deleted) in the official names: ``proprio_encoder.*`` ->
    ``state_encoder.*``. jepa-wms stores no ``extrinsics_encoder`` when extrinsics are off (both DROID
    checkpoints); the official module always has that (unused) layer, so it is filled with zeros then."""
    out = {}
    for key, value in state_dict.items():
        new = "state_encoder." + key.removeprefix("proprio_encoder.") if key.startswith("proprio_encoder.") else key
        if new in out:
            raise CheckpointError(f"both {key!r} and another key map to {new!r}")
        out[new] = value
    if not use_extrinsics and "extrinsics_encoder.weight" not in out and "action_encoder.weight" in out:
        width, action_dim = out["action_encoder.weight"].shape
        like = out["action_encoder.weight"]
        out["extrinsics_encoder.weight"] = like.new_zeros(width, action_dim - 1)
        out["extrinsics_encoder.bias"] = like.new_zeros(width)
    return out


def to_official_layout(state_dict: Mapping[str, Tensor], layout: str | None = None, *,
                       use_extrinsics: bool = False) -> tuple[dict[str, Tensor], str]:
    """A predictor state dict as it was saved (official or jepa-wms, with ``module.`` prefixes) -> the official
    names (:func:`strip_official_prefixes`, then :func:`from_jepawms_layout` for jepa-wms) and the layout, which
    ``layout=None`` detects (:func:`predictor_layout`)."""
    sd = strip_official_prefixes(state_dict)
    layout = layout or predictor_layout(sd)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS} (or None to detect it), got {layout!r}")
    if layout == "jepa-wms":
        sd = from_jepawms_layout(sd, use_extrinsics=use_extrinsics)
    return sd, layout


def check_tensors(expected: Mapping[str, torch.Size], state_dict: Mapping[str, Any], *, what: str,
                  ignore_unexpected: Iterable[str] = (), floating: bool = False) -> None:
    """Raise :class:`CheckpointError` listing missing, unexpected, non-tensor (or, with ``floating``,
    non-floating-point), mis-shaped and non-finite (NaN / inf) entries of ``state_dict`` against ``expected``
    key -> shape."""
    ignore = set(ignore_unexpected)
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected) - ignore)
    common = set(expected) & set(state_dict)
    kind = "floating-point tensor" if floating else "tensor"
    bad = sorted(k for k in common if not isinstance(state_dict[k], Tensor)
                 or (floating and not state_dict[k].is_floating_point()))
    shapes = sorted(f"{k}: expected {tuple(expected[k])}, got {tuple(state_dict[k].shape)}"
                    for k in common if k not in bad and tuple(expected[k]) != tuple(state_dict[k].shape))
    nonfinite = sorted(k for k in common if k not in bad and isinstance(state_dict[k], Tensor)
                       and state_dict[k].is_floating_point() and not bool(torch.isfinite(state_dict[k]).all()))
    problems = [f"{label} ({len(items)}): {_preview(items)}" for label, items in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("bad values", [f"{k} is not a {kind}" for k in bad]), ("mis-shaped tensors", shapes),
        ("tensors with NaN or inf (a corrupted file?)", nonfinite)) if items]
    if problems:
        raise CheckpointError(f"{what} does not match the model: " + "; ".join(problems))


def check_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], *, what: str,
                     ignore_unexpected: Iterable[str] = ()) -> None:
    """:func:`check_tensors` against ``module``'s own state dict (``what``: e.g. "AC predictor")."""
    check_tensors({k: v.shape for k, v in module.state_dict().items()}, state_dict, what=f"{what} checkpoint",
                  ignore_unexpected=ignore_unexpected)


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, Tensor], *, what: str,
                           ignore_unexpected: Iterable[str] = ()) -> None:
    """Check everything first (:func:`check_state_dict`), then copy (``assign`` for meta-device modules)."""
    check_state_dict(module, state_dict, what=what, ignore_unexpected=ignore_unexpected)
    expected = module.state_dict()
    sd = {k: v for k, v in state_dict.items() if k in expected}
    is_meta = any(t.is_meta for t in expected.values())
    module.load_state_dict(sd, strict=True, assign=is_meta)


def _preview(items: list[str], n: int = 8) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


def is_url(path: str | os.PathLike) -> bool:
    return urllib.parse.urlparse(str(path)).scheme in ("http", "https")


def is_hub_id(name: str | os.PathLike) -> bool:
    """``owner/name`` that is not a local path."""
    text = str(name)
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).exists()


def hub_snapshot(repo_id: str, what: str, *, repo_type: str = "model", **options: Any) -> Path:
    """The local snapshot of hub repo ``repo_id`` (``huggingface_hub.snapshot_download`` with ``options``:
    ``revision``, ``token``, ``cache_dir``, ``local_files_only``; its cache and ``HF_HUB_OFFLINE`` apply).
    ``OSError`` naming ``what`` and the repo when it cannot be had."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, **options))
    except Exception as err:
        raise OSError(f"cannot fetch {what} {repo_id!r} from the Hugging Face hub ({type(err).__name__}: {err}). "
                      "If you are offline, download it elsewhere and pass the local directory.") from err


def resolve_file(path_or_url: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                 sha256: str | None = None) -> Path:
    """A local path for ``path_or_url``: local files are returned as they are; URLs are downloaded once into
    ``cache_dir`` (default ``$VJEPA2_AC_CACHE`` or ``~/.cache/vjepa2_ac``) with ``huggingface_hub``'s HTTP client
    (retries, ``HF_HUB_DOWNLOAD_TIMEOUT``, progress bar): into ``NAME.part``, resumed from there after an interruption, renamed when complete.

    sha256: the file's expected SHA-256 (hex). A download that does not match is deleted and refused; a cached file
        is checked once (a ``NAME.sha256`` file beside it records the check).
    Raises ``FileNotFoundError`` for a missing local file and ``ConnectionError`` naming the URL when it cannot be
    reached, or when ``huggingface_hub`` is in offline mode (``HF_HUB_OFFLINE=1``) and the file is not cached."""
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower())):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if not is_url(path_or_url):
        path = Path(path_or_url).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        if sha256 is not None:
            _check_sha256(path, sha256, path_or_url)
        return path
    url = str(path_or_url)
    cache = Path(cache_dir or os.environ.get("VJEPA2_AC_CACHE", Path.home() / ".cache" / "vjepa2_ac")).expanduser()
    target = cache / Path(urllib.parse.urlparse(url).path).name
    if not target.is_file():
        _download(url, target)
    if sha256 is not None:
        _check_sha256(target, sha256, url)
    return target


def _download(url: str, target: Path) -> None:
    import huggingface_hub
    from huggingface_hub.file_download import http_get

    if huggingface_hub.is_offline_mode():
        raise ConnectionError(f"cannot download {url}: huggingface_hub is in offline mode (HF_HUB_OFFLINE) and "
                              f"{target} is not cached. Download it yourself and pass the local path instead.")
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(part, "ab") as f:
            http_get(url, f, resume_size=f.tell(), displayed_filename=target.name)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()  # nothing to resume from
        if not isinstance(err, Exception):
            raise
        kept = f" ({part} is kept: the next call resumes it)" if part.is_file() else ""
        raise ConnectionError(f"cannot download {url}: {type(err).__name__}: {err}{kept}. Download it yourself and "
                              "pass the local path instead.") from err
    os.replace(part, target)


def _check_sha256(path: Path, sha256: str, source: Any) -> None:
    """``CheckpointError`` (and the file deleted if it is a download) unless ``path`` hashes to ``sha256``."""
    import hashlib

    stamp = path.with_name(path.name + ".sha256")
    want = sha256.lower()
    if stamp.is_file() and stamp.read_text().strip() == want and stamp.stat().st_mtime_ns >= path.stat().st_mtime_ns:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    if digest.hexdigest() != want:
        downloaded = is_url(source)
        if downloaded:
            path.unlink()
        raise CheckpointError(f"{source}: SHA-256 {digest.hexdigest()} is not the expected {want}"
                              f"{' (the download was deleted)' if downloaded else ''}")
    if is_url(source):
        stamp.write_text(want + "\n")


def load_torch_checkpoint(path: str | os.PathLike) -> dict:
    """``torch.load`` with ``mmap=True, weights_only=True`` (tensors are read lazily, only when used).

    A truncated or corrupt file raises ``CheckpointError`` naming the file."""
    try:
        try:
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except RuntimeError as err:  # legacy (non-zip) serialisation cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as err:
        reason = ("the weights-only unpickler refused it" if isinstance(err, pickle.UnpicklingError)
                  else " ".join(str(err).split())[:200] or type(err).__name__)
        raise CheckpointError(f"cannot read checkpoint {path}: not a readable torch checkpoint ({reason}): a "
                              "truncated or corrupt file, or not a torch checkpoint") from err
