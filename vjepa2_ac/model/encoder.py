"""Frozen V-JEPA 2 video encoder: a thin wrapper over HF ``transformers``' ``VJEPA2Encoder``.

Only the encoder path of ``VJEPA2Model`` is built and run (never the mask-denoising predictor). Every camera
frame is encoded on its own: fed as a one-frame clip, which HF duplicates into a 2-frame tubelet, bit-identical
to the official AC code's ``repeat(1, 1, 2, 1, 1)``. Output per frame: ``N = (crop_size / patch_size)^2``
tokens in (row, col) order after the encoder's own affine LayerNorm; the extra non-affine representation
``layer_norm`` of V-JEPA 2-AC is *not* applied here (the ``WorldModel`` does that).

Shapes: ``B`` batch, ``T`` frames, ``H, W`` camera pixels, ``S`` crop size, ``N`` tokens per frame, ``D`` width.

Weights come from the HF hub / an HF-layout directory (:meth:`Encoder.from_pretrained`) or from an official
``facebookresearch/vjepa2`` state dict (:meth:`Encoder.from_official_state_dict`, e.g. ``vjepa2-ac-vitg.pt``'s
``"encoder"``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from transformers import VJEPA2Config
from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Encoder

from vjepa2_ac.atomic import atomic_directory, atomic_path
from vjepa2_ac.model.checkpoint import CheckpointError, check_tensors, strip_official_prefixes
from vjepa2_ac.model.preprocess import as_uint8_frames, normalize_frames

__all__ = ["KNOWN_ENCODERS", "Encoder", "vjepa2_config_from_official"]

# Architectures of the released V-JEPA 2 encoders (the official vision_transformer.py and the hub configs).
_VIT_L = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4.0, crop_size=256)
_VIT_H = dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, mlp_ratio=4.0, crop_size=256)
_VIT_G = dict(hidden_size=1408, num_hidden_layers=40, num_attention_heads=22, mlp_ratio=48 / 11, crop_size=256)
KNOWN_ENCODERS: dict[str, dict[str, Any]] = {
    "facebook/vjepa2-vitl-fpc64-256": _VIT_L,
    "facebook/vjepa2-vith-fpc64-256": _VIT_H,
    "facebook/vjepa2-vitg-fpc64-256": _VIT_G,
    "facebook/vjepa2-vitg-fpc64-384": {**_VIT_G, "crop_size": 384},
    "vjepa2-ac-vitg": _VIT_G,  # the encoder inside the released vjepa2-ac-vitg.pt (official vit_giant_xformers)
}
_COMMON = dict(patch_size=16, tubelet_size=2, frames_per_clip=64, in_chans=3, qkv_bias=True, layer_norm_eps=1e-6)

_WEIGHTS_NAME = "model.safetensors"
_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
_CONFIG_NAME = "config.json"
# Key prefixes of the encoder inside HF checkpoints: VJEPA2Model, VJEPA2ForVideoClassification.
_HF_ENCODER_PREFIXES = ("encoder.", "vjepa2.encoder.")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Official keys that exist in checkpoints but have no counterpart in the RoPE encoder.
_HARMLESS_OFFICIAL_KEYS = frozenset({"pos_embed"})


def vjepa2_config_from_official(d: Mapping[str, Any]) -> VJEPA2Config:
    """Official ``VisionTransformer`` kwargs (like the fixtures' ``encoder_config``) -> ``VJEPA2Config``.

    Keys: ``img_size`` (int or square pair), ``patch_size``, ``embed_dim``, ``depth``, ``num_heads`` (required);
    ``tubelet_size`` (2), ``mlp_ratio`` (4.0), ``qkv_bias`` (True), ``use_rope`` (must be True: HF's encoder is
    RoPE-only), ``layer_norm_eps`` (1e-6), ``num_frames`` (64, only recorded), ``in_chans`` (3).
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"official encoder config must be a dict, got {type(d).__name__}")
    required = ("img_size", "patch_size", "embed_dim", "depth", "num_heads")
    optional = ("tubelet_size", "mlp_ratio", "qkv_bias", "use_rope", "layer_norm_eps", "num_frames", "in_chans")
    ignored = ("use_sdpa", "uniform_power", "use_activation_checkpointing", "init_std", "handle_nonsquare_inputs",
               "drop_rate", "attn_drop_rate", "drop_path_rate")
    missing = [k for k in required if k not in d]
    if missing:
        raise ValueError(f"official encoder config lacks {missing} (has {sorted(d)})")
    unknown = sorted(set(d) - set(required) - set(optional) - set(ignored))
    if unknown:
        raise ValueError(f"official encoder config has keys with no VJEPA2Config counterpart: {unknown}")
    if not d.get("use_rope", True):
        raise ValueError("official encoder config has use_rope=False; transformers' VJEPA2 encoder is RoPE-only "
                         "(absolute pos_embed models cannot be represented)")
    img = d["img_size"]
    if isinstance(img, list | tuple):
        if len(img) != 2 or img[0] != img[1]:
            raise ValueError(f"official encoder config img_size must be square, got {img!r}")
        img = img[0]
    if d.get("num_frames", 64) < 2:
        raise ValueError("official encoder config num_frames < 2 means a 2D patch embedding; only the 3D "
                         f"(tubelet) encoder is supported, got num_frames={d['num_frames']}")
    return VJEPA2Config(
        crop_size=int(img),
        patch_size=int(d["patch_size"]),
        tubelet_size=int(d.get("tubelet_size", 2)),
        frames_per_clip=int(d.get("num_frames", 64)),
        hidden_size=int(d["embed_dim"]),
        num_hidden_layers=int(d["depth"]),
        num_attention_heads=int(d["num_heads"]),
        mlp_ratio=float(d.get("mlp_ratio", 4.0)),
        qkv_bias=bool(d.get("qkv_bias", True)),
        layer_norm_eps=float(d.get("layer_norm_eps", 1e-6)),
        in_chans=int(d.get("in_chans", 3)),
    )


def _hf_to_official_key(key: str) -> str:
    """``VJEPA2Encoder`` state-dict key -> official ``VisionTransformer`` key (q/k/v all map to ``qkv``)."""
    key = key.replace("embeddings.patch_embeddings.proj.", "patch_embed.proj.")
    key = re.sub(r"^layer\.(\d+)\.attention\.(query|key|value)\.", r"blocks.\1.attn.qkv.", key)
    key = re.sub(r"^layer\.(\d+)\.attention\.proj\.", r"blocks.\1.attn.proj.", key)
    key = re.sub(r"^layer\.(\d+)\.", r"blocks.\1.", key)
    return re.sub(r"^layernorm\.", "norm.", key)


class Encoder(nn.Module):
    """Frozen V-JEPA 2 encoder: frames -> per-frame patch tokens ``[B, T, N, D]``.

    ``Encoder(config)`` builds random weights (tests, experiments); use :meth:`from_pretrained` or
    :meth:`from_official_state_dict` for trained ones. Always in ``eval()``, parameters never require grad,
    :meth:`forward` runs under ``torch.no_grad()``. Frames are encoded in chunks of at most
    ``max_batch_frames`` to bound activation memory.
    """

    def __init__(
        self,
        config: VJEPA2Config,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        attn_implementation: str = "sdpa",
        max_batch_frames: int = 64,
    ) -> None:
        super().__init__()
        if not isinstance(config, VJEPA2Config):
            raise TypeError(f"config must be a transformers.VJEPA2Config, got {type(config).__name__}")
        if attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation must be 'sdpa' or 'eager', got {attn_implementation!r}")
        _check_config(config)
        config = copy.deepcopy(config)
        config._attn_implementation = attn_implementation
        with torch.device(device) if device is not None else contextlib.nullcontext():  # else: ambient default
            self.encoder = VJEPA2Encoder(config)
        if dtype is not None:
            self.encoder.to(dtype=dtype)
        self.max_batch_frames = max_batch_frames
        self.name_or_path: str | None = None  # hub id or directory, set by from_pretrained
        self.requires_grad_(False)
        self.eval()

    # ------------------------------------------------------------------ properties
    @property
    def config(self) -> VJEPA2Config:
        return self.encoder.config

    @property
    def embed_dim(self) -> int:
        return self.config.hidden_size

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    @property
    def crop_size(self) -> int:
        return self.config.crop_size

    @property
    def grid_size(self) -> int:
        return self.crop_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_size**2

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.embeddings.patch_embeddings.proj.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.encoder.embeddings.patch_embeddings.proj.weight.device

    def train(self, mode: bool = True) -> Encoder:
        """The encoder is frozen: stays in eval mode whatever ``mode`` is."""
        return super().train(False)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, depth={self.config.num_hidden_layers}, "
                f"heads={self.config.num_attention_heads}, crop_size={self.crop_size}, "
                f"patch_size={self.patch_size}, dtype={self.dtype}, max_batch_frames={self.max_batch_frames}")

    # ------------------------------------------------------------------ encoding
    def preprocess(self, frames: np.ndarray | Tensor) -> Tensor:
        """uint8 ``[B, T, H, W, 3]`` / ``[T, H, W, 3]`` / ``[H, W, 3]`` -> float32 ``[B, T, 3, S, S]`` on
        ``self.device`` (centre square crop, bilinear resize to ``crop_size``, /255, ImageNet mean/std)."""
        x = as_uint8_frames(frames).to(self.device)
        return normalize_frames(x.flatten(0, 1), self.crop_size).unflatten(0, x.shape[:2])

    @torch.no_grad()
    def forward(self, frames: np.ndarray | Tensor, *, out_dtype: torch.dtype | None = None) -> Tensor:
        """Encode every frame on its own.

        Args:
            frames: uint8 camera frames ``[B, T, H, W, 3]``, ``[T, H, W, 3]`` or ``[H, W, 3]`` (numpy or torch;
                preprocessed here), or float ``[B, T, 3, S, S]`` taken as already normalised (``S == crop_size``).
            out_dtype: dtype of the result (default: the module's dtype, e.g. ``torch.float32`` to get fp32
                tokens from a bf16 encoder).

        Returns:
            ``[B, T, N, D]`` tokens after the encoder's final LayerNorm, on ``self.device``.
        """
        x, is_pixels = self._check_frames(frames)
        chunk = self.max_batch_frames
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
            raise ValueError(f"max_batch_frames must be a positive int, got {chunk!r}")
        b, t = x.shape[:2]
        flat = x.flatten(0, 1)
        out = torch.empty(b * t, self.tokens_per_frame, self.embed_dim, dtype=out_dtype or self.dtype,
                          device=self.device)
        for start in range(0, b * t, chunk):
            part = flat[start : start + chunk].to(self.device)
            if is_pixels:
                part = normalize_frames(part, self.crop_size)
            part = part.to(self.dtype).unsqueeze(1)  # [n, 1, 3, S, S]: T=1 -> duplicated into one tubelet
            out[start : start + chunk] = self.encoder(part).last_hidden_state
        return out.unflatten(0, (b, t))

    def _check_frames(self, frames: np.ndarray | Tensor) -> tuple[Tensor, bool]:
        if isinstance(frames, np.ndarray):
            frames = torch.from_numpy(np.ascontiguousarray(frames))
        if not isinstance(frames, Tensor):
            raise TypeError(f"frames must be a numpy array or torch tensor, got {type(frames).__name__}")
        if frames.dtype == torch.uint8:
            return as_uint8_frames(frames), True
        if not frames.is_floating_point():
            raise TypeError(f"frames must be uint8 [..., H, W, 3] or float [B, T, 3, S, S], got dtype {frames.dtype}")
        s = self.crop_size
        if frames.ndim != 5 or frames.shape[2] != 3:
            hint = " (uint8 is required for channels-last [..., H, W, 3] frames)" if frames.shape[-1:] == (3,) else ""
            raise ValueError(
                f"float frames must be normalised [B, T, 3, {s}, {s}], got shape {tuple(frames.shape)}{hint}")
        if frames.shape[-2:] != (s, s):
            raise ValueError(
                f"float frames must be {s}x{s} (the encoder's crop_size; HF RoPE positions come from "
                f"config.crop_size), got {tuple(frames.shape[-2:])}; pass uint8 frames to have them resized, or "
                "load the encoder with crop_size=<your size>")
        if frames.numel() == 0:
            raise ValueError(f"frames is empty: shape {tuple(frames.shape)}")
        if not torch.isfinite(frames).all():
            raise ValueError("float frames contain NaN or inf")
        return frames, False

    # ------------------------------------------------------------------ configs
    @staticmethod
    def config_for(name: str) -> VJEPA2Config:
        """Architecture of a released encoder, without downloading: one of :data:`KNOWN_ENCODERS`."""
        if name not in KNOWN_ENCODERS:
            raise ValueError(f"unknown encoder {name!r}; known: {sorted(KNOWN_ENCODERS)}")
        return VJEPA2Config(**_COMMON, **KNOWN_ENCODERS[name])

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_official_state_dict(
        cls,
        state_dict: Mapping[str, Tensor],
        config: VJEPA2Config | Mapping[str, Any],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> Encoder:
        """Load an official ``facebookresearch/vjepa2`` ViT state dict (e.g. ``torch.load(ac_ckpt)["encoder"]``).

        ``module.`` / ``backbone.`` are deleted wherever they occur, the fused ``attn.qkv`` is split into
        query/key/value, ``norm.*`` becomes the final ``layernorm``, ``pos_embed`` is dropped. Any missing key,
        other unexpected key or shape mismatch raises :class:`~vjepa2_ac.model.checkpoint.CheckpointError` naming the
        official key; nothing is half-loaded. ``config`` is a ``VJEPA2Config`` or an official-style dict.
        Tensors are used as they are when ``dtype``/``device`` need no conversion (no copy).
        """
        if isinstance(config, Mapping):
            config = vjepa2_config_from_official(config)
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of tensors, got {type(state_dict).__name__}")
        if isinstance(state_dict.get("encoder"), Mapping):
            raise CheckpointError("got a whole checkpoint (it has an 'encoder' dict); pass checkpoint['encoder']")
        sd = strip_official_prefixes(state_dict)
        enc = cls(config, device="meta", **kwargs)

        expected: dict[str, torch.Size] = {}
        for key, ref in enc.encoder.state_dict().items():
            off = _hf_to_official_key(key)
            expected[off] = ref.shape if ".attn.qkv." not in off else torch.Size((3 * ref.shape[0], *ref.shape[1:]))
        check_tensors(expected, sd, what="official encoder state dict", ignore_unexpected=_HARMLESS_OFFICIAL_KEYS,
                      floating=True)

        hf: dict[str, Tensor] = {}
        for key in enc.encoder.state_dict():
            off = _hf_to_official_key(key)
            value = sd[off]
            if ".attn.qkv." in off:
                value = value.chunk(3, dim=0)[("query", "key", "value").index(key.split(".")[3])]
            hf[key] = value
        return enc._assign(hf, dtype=dtype, device=device)

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | os.PathLike,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        attn_implementation: str = "sdpa",
        max_batch_frames: int = 64,
        **config_overrides: Any,
    ) -> Encoder:
        """Load from a local HF-layout directory (``config.json`` + ``model.safetensors`` or a sharded index) or a
        hub id such as ``facebook/vjepa2-vitg-fpc64-256``.

        Only the encoder weights are read (``encoder.*`` of ``VJEPA2Model``, ``vjepa2.encoder.*`` of
        ``VJEPA2ForVideoClassification``); others are ignored. ``dtype=None`` keeps the stored dtype.
        ``config_overrides`` replace config fields, e.g. ``crop_size=384`` (RoPE positions follow it).
        ``revision``, ``cache_dir``, ``local_files_only`` go to ``huggingface_hub.snapshot_download``; an
        unreachable hub (offline, ``HF_HUB_OFFLINE=1``, unknown repo) raises ``OSError`` naming the id.
        """
        path = Path(os.fspath(name_or_dir)).expanduser()
        if not path.is_dir():
            path = _download(os.fspath(name_or_dir), revision=revision, cache_dir=cache_dir,
                             local_files_only=local_files_only)
        config = _read_config(path, config_overrides)
        tensors = _read_encoder_tensors(path, dtype=dtype, device=device)
        enc = cls(config, device="meta", attn_implementation=attn_implementation, max_batch_frames=max_batch_frames)
        check_tensors({f"encoder.{k}": v.shape for k, v in enc.encoder.state_dict().items()},
                      {f"encoder.{k}": v for k, v in tensors.items()}, what=f"encoder weights in {path}")
        enc.name_or_path = os.fspath(name_or_dir)
        return enc._assign(tensors, dtype=dtype, device=device)

    def _assign(self, hf_state: dict[str, Tensor], *, dtype: torch.dtype | None,
                device: torch.device | str | None) -> Encoder:
        """Put fully checked tensors into this (meta-device) module."""
        if dtype is None:
            dtype = hf_state["embeddings.patch_embeddings.proj.weight"].dtype
        state = {k: v.to(device=device if device is not None else v.device, dtype=dtype) for k, v in hf_state.items()}
        self.encoder.load_state_dict(state, strict=True, assign=True)
        left = [n for n, t in [*self.named_parameters(), *self.named_buffers()] if t.is_meta]
        if left:  # pragma: no cover - VJEPA2Encoder has no buffers today
            raise RuntimeError(f"encoder tensors left uninitialised after loading: {left}")
        self.requires_grad_(False)
        return self.eval()

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (keys ``encoder.*``, like ``VJEPA2Model``) atomically.

        The directory loads with :meth:`from_pretrained` and with ``transformers.VJEPA2Model.from_pretrained``
        (which then initialises its unused mask predictor at random). A new directory appears whole (written
        to a temporary sibling, then renamed); in an existing directory each file is replaced atomically.
        """
        from safetensors.torch import save_file

        target = Path(save_directory).expanduser()
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"save_directory {target} exists and is not a directory")
        config = copy.deepcopy(self.config)
        config.architectures = ["VJEPA2Model"]
        config.dtype = str(self.dtype).removeprefix("torch.")
        state = {f"encoder.{k}": v.detach().contiguous().cpu() for k, v in self.encoder.state_dict().items()}
        if not target.exists():
            with atomic_directory(target) as tmp:
                save_file(state, tmp / _WEIGHTS_NAME, metadata={"format": "pt"})
                config.to_json_file(tmp / _CONFIG_NAME)
            return target
        with atomic_path(target / _WEIGHTS_NAME, suffix=".safetensors") as tmp:
            save_file(state, tmp, metadata={"format": "pt"})
        with atomic_path(target / _CONFIG_NAME, suffix=".json") as tmp:
            config.to_json_file(tmp)
        (target / _WEIGHTS_INDEX_NAME).unlink(missing_ok=True)  # a stale shard index would shadow the new weights
        return target


# ---------------------------------------------------------------------- helpers
def _check_config(config: VJEPA2Config) -> None:
    if not isinstance(config.patch_size, int):
        raise ValueError(f"config.patch_size must be an int, got {config.patch_size!r}")
    if config.crop_size <= 0 or config.crop_size % config.patch_size:
        raise ValueError(f"config.crop_size ({config.crop_size}) must be a positive multiple of "
                         f"patch_size ({config.patch_size})")
    if config.in_chans != 3:
        raise ValueError(f"config.in_chans must be 3 (RGB), got {config.in_chans}")
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(f"config.hidden_size ({config.hidden_size}) must be divisible by "
                         f"num_attention_heads ({config.num_attention_heads})")


def _download(name: str, *, revision: str | None, cache_dir: str | os.PathLike | None,
              local_files_only: bool) -> Path:
    if not _HUB_ID.match(name):
        raise OSError(f"{name!r} is neither an existing local directory nor a hub id like "
                      "'facebook/vjepa2-vitg-fpc64-256'")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                  allow_patterns=[_CONFIG_NAME, "*.safetensors", _WEIGHTS_INDEX_NAME])
    except Exception as err:  # network, offline mode, missing repo, auth: one clear message
        raise OSError(
            f"could not get V-JEPA 2 encoder {name!r} from the Hugging Face hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); no local directory of that name exists. If you are offline or HF_HUB_OFFLINE=1 is set, "
            f"download it once elsewhere (`hf download {name}`) and pass the local directory holding "
            "config.json and model.safetensors: Encoder.from_pretrained('/path/to/dir')"
        ) from None
    return Path(local)


def _read_config(path: Path, overrides: Mapping[str, Any]) -> VJEPA2Config:
    cfg_file = path / _CONFIG_NAME
    if not cfg_file.is_file():
        raise OSError(f"{path} has no {_CONFIG_NAME}; expected an HF-layout V-JEPA 2 directory "
                      f"({_CONFIG_NAME} + {_WEIGHTS_NAME})")
    try:
        try:
            raw = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{cfg_file} is not valid JSON: {err}") from None
    except json.JSONDecodeError as err:
        raise OSError(f"{cfg_file} is not valid JSON: {err}") from None
    if raw.get("model_type") != "vjepa2":
        raise ValueError(f"{cfg_file} has model_type {raw.get('model_type')!r}, expected 'vjepa2'")
    fields = set(VJEPA2Config().to_dict())
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown config override(s) {unknown}; VJEPA2Config fields include "
                        "crop_size, patch_size, layer_norm_eps, ...")
    config = VJEPA2Config.from_dict({**raw, **overrides})
    _check_config(config)
    return config


def _read_encoder_tensors(path: Path, *, dtype: torch.dtype | None = None,
                          device: torch.device | str | None = None) -> dict[str, Tensor]:
    """Encoder tensors (prefix removed) from ``model.safetensors`` or a sharded index, read one key at a time
    and converted to ``dtype``/``device`` right away (peak memory: the result plus one stored tensor)."""
    from safetensors import safe_open

    if (path / _WEIGHTS_INDEX_NAME).is_file():
        weight_map: dict[str, str] = json.loads((path / _WEIGHTS_INDEX_NAME).read_text())["weight_map"]
    elif (path / _WEIGHTS_NAME).is_file():
        weight_map = None  # type: ignore[assignment]
    else:
        raise OSError(f"{path} has no {_WEIGHTS_NAME} (or {_WEIGHTS_INDEX_NAME}); only safetensors are supported")
    files = sorted(set(weight_map.values())) if weight_map else [_WEIGHTS_NAME]
    out: dict[str, Tensor] = {}
    for file in files:
        if not (path / file).is_file():
            raise OSError(f"{path / file} (listed in {_WEIGHTS_INDEX_NAME}) is missing")
        try:
            with safe_open(path / file, framework="pt", device="cpu") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                    prefix = next((p for p in _HF_ENCODER_PREFIXES if key.startswith(p)), None)
                    if prefix is not None:
                        out[key[len(prefix):]] = f.get_tensor(key).to(device=device, dtype=dtype)
        except OSError:
            raise
        except Exception as err:  # safetensors raises its own error type for truncated / corrupt files
            raise OSError(f"cannot read {path / file}: {err}") from None
    if not out:
        raise OSError(f"no encoder weights (keys starting with {_HF_ENCODER_PREFIXES}) in {path}")
    return out
