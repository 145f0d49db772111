"""``WorldModel``: a frozen V-JEPA 2 encoder plus the AC predictor, with KV-cached rollouts and the L1 energy.

Latents are ``[B, T, N, D]`` and always live in the *normalised representation space* of the official code: the
encoder output and every predictor output get a non-affine ``layer_norm`` (eps 1e-5) before they are compared or
fed back (official ``normalize_reps``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa2_ac.atomic import atomic_directory
from vjepa2_ac.model.checkpoint import (
    RELEASED_AC_URL,
    CheckpointError,
    hub_snapshot,
    is_hub_id,
    is_url,
    load_state_dict_strict,
    load_torch_checkpoint,
    resolve_file,
    to_official_layout,
)
from vjepa2_ac.model.predictor import ACPredictor, ACPredictorConfig
from vjepa2_ac.model.space import RobotSpace

if TYPE_CHECKING:
    from vjepa2_ac.model.encoder import Encoder

REP_NORM_EPS = 1e-5
FORMAT_NAME = "vjepa2-ac-world-model"
FORMAT_VERSION = 1
DEFAULT_ENCODER_ID = "facebook/vjepa2-vitg-fpc64-256"


def normalize_reps(z: Tensor) -> Tensor:
    """The official representation normalisation: non-affine layer norm over the channel dim (eps 1e-5)."""
    return F.layer_norm(z, (z.shape[-1],), eps=REP_NORM_EPS)


class WorldModel(nn.Module):
    """Frozen encoder + AC predictor.

    Args:
        encoder: an :class:`~vjepa2_ac.model.encoder.Encoder`, or ``None`` for a latent-only model (no ``encode``).
        predictor: the :class:`ACPredictor`.
        memory_budget_mb: if set, :meth:`rollout` processes samples in chunks sized so that the estimated peak
            activation + cache memory of one chunk stays under this budget.
        cost: the planning energy, ``"l1"`` (official: mean |z - goal|) or ``"l2"`` (jepa-wms's default: mean
            squared difference).
        context_window: ``None`` (official: rollouts see the whole history) or ``W`` (jepa-wms: the last ``W``
            frames, ``W = 2``); the default of :meth:`rollout`. Both are attributes planners pick up.
    """

    def __init__(self, encoder: Encoder | None, predictor: ACPredictor, *, memory_budget_mb: float | None = None,
                 cost: str = "l1", context_window: int | None = None):
        super().__init__()
        self.cost = cost  # validated by the property setters
        self.context_window = context_window
        if encoder is not None:
            if encoder.embed_dim != predictor.config.embed_dim:
                raise ValueError(f"encoder width {encoder.embed_dim} != predictor embed_dim "
                                 f"{predictor.config.embed_dim}")
            if encoder.tokens_per_frame != predictor.config.tokens_per_frame:
                raise ValueError(f"encoder gives {encoder.tokens_per_frame} tokens per frame but the predictor "
                                 f"expects {predictor.config.tokens_per_frame} (img_size / patch_size mismatch)")
        predictor.config.robot_space  # noqa: B018  (a predictor whose numbers have no meaning fails here)
        self.encoder = encoder
        self.predictor = predictor
        self.memory_budget_mb = memory_budget_mb

    @property
    def cost(self) -> str:
        """The planning energy, ``"l1"`` or ``"l2"`` (checked when set)."""
        return self._cost

    @cost.setter
    def cost(self, value: str) -> None:
        check_cost(value)
        self._cost = value

    @property
    def context_window(self) -> int | None:
        """The default rollout window, ``None`` or an int >= 1 (checked when set)."""
        return self._context_window

    @context_window.setter
    def context_window(self, value: int | None) -> None:
        check_context_window(value)
        self._context_window = value

    def compile_predictor(self, **kwargs: Any) -> WorldModel:
        """Compile the two halves of every predictor block around its attention (``ACBlock.pre_attention`` /
        ``post_attention``) with ``torch.compile`` (``dynamic=False`` unless given): fuses the RoPE, norm, bias and
        GELU element-wise work around the matmuls; the attention and KV cache stay eager, so the compiled graphs
        do not depend on the rollout step. Results agree with eager to float rounding. The first call per batch
        size and autocast setting compiles (seconds to a minute on a CPU): it pays off for repeated planning.
        Returns ``self``."""
        kwargs.setdefault("dynamic", False)
        for block in self.predictor.predictor_blocks:
            block.pre_attention = torch.compile(block.pre_attention, **kwargs)
            block.post_attention = torch.compile(block.post_attention, **kwargs)
        return self

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def config(self) -> ACPredictorConfig:
        return self.predictor.config

    @property
    def space(self) -> RobotSpace:
        """The robot's state and action space (``config.robot``; DROID's Franka space by default)."""
        return self.config.robot_space

    @property
    def device(self) -> torch.device:
        return next(self.predictor.parameters()).device

    @property
    def tokens_per_frame(self) -> int:
        return self.config.tokens_per_frame

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    # ------------------------------------------------------------------------------------------------ encode
    @torch.no_grad()
    def encode(self, frames: Any) -> Tensor:
        """uint8 frames ``[B, T, H, W, 3]`` / ``[T, H, W, 3]`` (or normalised float ``[B, T, 3, S, S]``) ->
        normalised latents ``[B, T, N, D]`` (float32, on the model's device)."""
        if self.encoder is None:
            raise RuntimeError("this WorldModel has no encoder (built with encoder=None); pass latents instead")
        return normalize_reps(self.encoder(frames).float())

    # ------------------------------------------------------------------------------------------------ predict
    def predict(self, z: Tensor, actions: Tensor, states: Tensor) -> Tensor:
        """Teacher forcing: ``z [B, T, N, D]``, ``actions, states [B, T, A]`` -> ``[B, T, N, D]`` normalised;
        slot t predicts frame t+1."""
        self._check_latents(z, "z")
        self._check_poses(actions, "actions", z.shape[:2])
        self._check_poses(states, "states", z.shape[:2])
        return normalize_reps(self.predictor(z, actions, states))

    # ------------------------------------------------------------------------------------------------ rollout
    def rollout(self, z0: Tensor, s0: Tensor, actions: Tensor, *, use_cache: bool = True,
                chunk_size: int | None = None, context_window: int | None = None) -> tuple[Tensor, Tensor]:
        """Autoregressive rollout from context latents.

        Args:
            z0: context latents ``[B, T0, N, D]`` (normalised). May be an expanded view of ``[1, T0, N, D]``.
            s0: context states ``[B, T0, A]`` (A = ``space.dim``, 7 for DROID).
            actions: ``[B, T0 - 1 + H, A]``: the ``T0 - 1`` known actions between context frames, then ``H`` new.
            use_cache: KV-cache earlier steps (exact for the block-causal predictor); ``False`` re-runs the
                predictor on the whole prefix every step as the released planner does.
            chunk_size: samples per chunk; default from ``memory_budget_mb`` (all at once when unset).
            context_window: ``W``: every step sees only the last ``W`` frames, their actions and states, with time
                positions counted from the window's first frame, as jepa-wms unrolls (``ctxt_window: 2``); the
                window is recomputed each step (no cache: the positions shift). Default: the model's
                ``context_window`` (``None``: the whole history, official).
        Returns:
            predicted latents ``[B, H, N, D]`` (normalised) and the states after each action ``[B, H, A]``.
        Differentiable with respect to ``actions`` when grad mode is on.
        """
        self._check_latents(z0, "z0")
        B, T0 = z0.shape[:2]
        self._check_poses(s0, "s0", (B, T0))
        self._check_dtype(actions, "actions")
        dim = self.space.dim
        if actions.ndim != 3 or actions.shape[0] != B or actions.shape[2] != dim or actions.shape[1] < T0:
            raise ValueError(f"actions must be [B={B}, T0-1+H >= {T0}, {dim}] (T0-1 known actions then H >= 1 "
                             f"new ones; robot space {self.space.describe()}), got {tuple(actions.shape)}")
        _check_finite(actions, "actions")
        horizon = actions.shape[1] - T0 + 1
        if T0 + horizon - 1 > self.config.max_steps:
            raise ValueError(f"context {T0} + horizon {horizon} - 1 exceeds the predictor's {self.config.max_steps} "
                             "time steps")
        if context_window is None:
            context_window = self.context_window
        else:
            check_context_window(context_window)
        chunk = chunk_size or self.auto_chunk_size(B, T0 + horizon - 1)
        if chunk <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk}")
        if chunk >= B:
            return self._rollout(z0, s0, actions, horizon, use_cache, context_window)
        parts = [self._rollout(z0[i:i + chunk], s0[i:i + chunk], actions[i:i + chunk], horizon, use_cache,
                               context_window) for i in range(0, B, chunk)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _rollout(self, z0: Tensor, s0: Tensor, actions: Tensor, horizon: int, use_cache: bool,
                 window: int | None = None):
        T0 = z0.shape[1]
        latents, states = [], []
        if use_cache and self.config.is_frame_causal and window is None:
            needs_grad = torch.is_grad_enabled() and (actions.requires_grad or z0.requires_grad)
            cache = self.predictor.new_cache(None if needs_grad else T0 + horizon - 1)
            z_in, a_in, s_in = z0, actions[:, :T0], s0
            if T0 == 1 and z0.shape[0] > 1 and _rows_equal(z0) and _rows_equal(s0):
                z_in, s_in = z0[:1], s0[:1]  # one context for every sample (planning): its shared tokens are computed once
            for h in range(horizon):
                z_next = normalize_reps(self.predictor(z_in, a_in, s_in, cache=cache)[:, -1:]).float()
                s_next = self.space.advance(s_in[:, -1:].expand(a_in.shape[0], -1, -1), a_in[:, -1:])
                latents.append(z_next)
                states.append(s_next)
                if h + 1 < horizon:
                    z_in, a_in, s_in = z_next, actions[:, T0 + h:T0 + h + 1], s_next
        else:
            z_all, s_all = z0, s0
            for h in range(horizon):
                a = actions[:, :T0 + h]
                if window is None:
                    z_next = normalize_reps(self.predictor(z_all, a, s_all)[:, -1:]).float()
                else:
                    z_next = normalize_reps(self.predictor(z_all[:, -window:], a[:, -window:],
                                                           s_all[:, -window:])[:, -1:]).float()
                s_next = self.space.advance(s_all[:, -1:], a[:, -1:])
                latents.append(z_next)
                states.append(s_next)
                z_all, s_all = torch.cat([z_all, z_next], 1), torch.cat([s_all, s_next], 1)
        return torch.cat(latents, 1), torch.cat(states, 1)

    def auto_chunk_size(self, batch: int, steps: int) -> int:
        """Samples per chunk so that one chunk's estimated rollout memory fits ``memory_budget_mb``."""
        if self.memory_budget_mb is None:
            return batch
        per_sample = self.rollout_bytes_per_sample(steps)
        return max(1, min(batch, int(self.memory_budget_mb * 2**20 // per_sample)))

    def rollout_bytes_per_sample(self, steps: int, bytes_per_elem: int = 4) -> int:
        """Estimated peak bytes per sample of a cached rollout over ``steps`` predictor steps (KV cache of all
        layers + the largest per-layer activations of one step + attention scores)."""
        c = self.config
        L, C, seq = c.tokens_per_step, c.predictor_embed_dim, steps * c.tokens_per_step
        cache = c.depth * 2 * seq * C
        activations = L * (8 * C + 2 * c.mlp_hidden_dim) + c.num_heads * L * seq + 4 * c.tokens_per_frame * c.embed_dim
        return int((cache + activations) * bytes_per_elem)

    # ------------------------------------------------------------------------------------------------ energy
    def energy(self, z_pred: Tensor, z_goal: Tensor) -> Tensor:
        """``z_pred [B, 1, N, D]`` vs ``z_goal [B or 1, 1, N, D]`` -> ``[B]``: mean |z_pred - z_goal| (``cost="l1"``,
        official) or mean (z_pred - z_goal)^2 (``"l2"``, jepa-wms).

        ``ValueError`` naming the input when either holds a NaN or inf (checked on the ``[B]`` result, so the
        check costs nothing when all is finite)."""
        e = latent_distance(z_pred, z_goal, cost=self.cost)
        if not bool(torch.isfinite(e.detach()).all()):
            _check_finite(z_goal, "z_goal")
            _check_finite(z_pred, "z_pred")
            raise ValueError("energy: the L1 distance overflowed to inf")
        return e

    # ------------------------------------------------------------------------------------------------ checks
    def _check_dtype(self, x: Any, name: str) -> None:
        """A torch tensor of a floating dtype the predictor computes in (float64 only for a float64 model)."""
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__module__}.{type(x).__name__} "
                             "(convert with torch.as_tensor(x, dtype=torch.float32))")
        weights = next(self.predictor.parameters()).dtype
        if not x.is_floating_point() or (x.dtype == torch.float64 and weights != torch.float64):
            raise ValueError(f"{name} must be float32 (or the model's {weights}), got {x.dtype}: cast with .float()")

    def _check_latents(self, z: Tensor, name: str) -> None:
        self._check_dtype(z, name)
        c = self.config
        if not isinstance(z, Tensor) or z.ndim != 4 or z.shape[2:] != (c.tokens_per_frame, c.embed_dim):
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"{name} must be latents [B, T, N={c.tokens_per_frame}, D={c.embed_dim}], got {got}")
        if z.shape[0] == 0 or z.shape[1] == 0:
            raise ValueError(f"{name} must have B >= 1 and T >= 1, got {tuple(z.shape)}")
        _check_finite(z, name)

    def _check_poses(self, x: Tensor, name: str, lead: tuple) -> None:
        self._check_dtype(x, name)
        self.space.check(x, name, lead)
        _check_finite(x, name)

    # ------------------------------------------------------------------------------------------------ save / load
    def save_pretrained(self, directory: str | os.PathLike, *, save_encoder: bool = True,
                        encoder_reference: str | None = None) -> Path:
        """Write ``config.json`` + ``predictor.safetensors`` (+ ``encoder/`` in HF layout) atomically.

        With ``save_encoder=False`` only the encoder's hub id / path is recorded (it must have one).
        ``encoder_reference``: the hub id / path to record for a latent-only model (``encoder=None``), e.g. a
        converted checkpoint's encoder. A non-default ``cost`` / ``context_window`` is saved with the model."""
        from safetensors.torch import save_file

        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            config: dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                                      "predictor": self.config.to_dict(), "encoder": None}
            save_file({k: v.detach().contiguous().cpu() for k, v in self.predictor.state_dict().items()},
                      str(tmp / "predictor.safetensors"))
            if self.encoder is not None:
                if save_encoder:
                    self.encoder.save_pretrained(tmp / "encoder")
                    config["encoder"] = {"path": "encoder"}
                else:
                    source = getattr(self.encoder, "name_or_path", None)
                    if not source:
                        raise ValueError("save_encoder=False needs an encoder loaded from a hub id or directory")
                    config["encoder"] = {"name_or_path": str(source)}
            elif encoder_reference is not None:
                config["encoder"] = {"name_or_path": str(encoder_reference)}
            if self.cost != "l1":
                config["cost"] = self.cost
            if self.context_window is not None:
                config["context_window"] = self.context_window
            (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        return directory

    def push_to_hub(self, repo_id: str, *, token: str | bool | None = None, private: bool | None = None,
                    revision: str | None = None, commit_message: str = "Upload vjepa2-ac world model",
                    save_encoder: bool = True, card: str | None = None) -> str:
        """Save the model (:meth:`save_pretrained`) and upload it to the hub repo ``repo_id`` (created if needed)
        with ``huggingface_hub``; ``card`` (Markdown with YAML metadata) becomes its ``README.md`` (default: a short
        card naming the library, licence and tags). Returns the commit URL."""
        import tempfile

        from huggingface_hub import HfApi

        api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", save_encoder=save_encoder)
            (folder / "README.md").write_text(card if card is not None else default_card(repo_id))
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, revision=revision,
                                       commit_message=commit_message, repo_type="model")
        return str(getattr(commit, "commit_url", commit))

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike, *, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None, load_encoder: bool = True, revision: str | None = None,
                        token: str | bool | None = None, cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool = False, **kwargs) -> WorldModel:
        """Load a model saved by :meth:`save_pretrained`: a local directory, a bundled model name, or a hub repo id.

        Hub repos are fetched with ``huggingface_hub.snapshot_download`` (``revision``, ``token``, ``cache_dir``,
        ``local_files_only``; its cache, resumed downloads and ``HF_HUB_OFFLINE`` apply). ``kwargs`` go to the
        constructor (``memory_budget_mb``, ``cost``, ``context_window``) and override the saved ones."""
        from safetensors.torch import load_file

        directory = resolve_model_dir(name_or_dir, revision=revision, token=token, cache_dir=cache_dir,
                                      local_files_only=local_files_only)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{directory} is not a vjepa2-ac world model directory (no config.json)")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{config_path} is not valid JSON: {err}") from None
        if config.get("format") != FORMAT_NAME:
            raise ValueError(f"{config_path}: format {config.get('format')!r}, expected {FORMAT_NAME!r}")
        predictor = ACPredictor(ACPredictorConfig.from_dict(config["predictor"]))
        weights = directory / "predictor.safetensors"
        try:
            state = load_file(str(weights))
        except Exception as err:  # safetensors raises its own error types for truncated files
            raise CheckpointError(f"cannot read {weights}: {err}") from err
        load_state_dict_strict(predictor, state, what=f"AC predictor ({weights})")
        encoder = None
        enc_cfg = config.get("encoder")
        if load_encoder and enc_cfg is not None:
            from vjepa2_ac.model.encoder import Encoder

            source = directory / enc_cfg["path"] if "path" in enc_cfg else enc_cfg["name_or_path"]
            encoder = Encoder.from_pretrained(source, dtype=dtype, device=device)
        saved = {k: config[k] for k in ("cost", "context_window") if k in config}
        model = cls(encoder, predictor.eval(), **{**saved, **kwargs})
        model.predictor.requires_grad_(False)
        return model.to(device=device, dtype=dtype) if (device or dtype) else model

    @classmethod
    def from_official_checkpoint(cls, path_or_url: str | os.PathLike = RELEASED_AC_URL, *,
                                 encoder: Encoder | str | os.PathLike | None = None,
                                 encoder_config: Any = None,
                                 predictor_config: ACPredictorConfig | Mapping | None = None,
                                 load_encoder: bool = True, device: str | torch.device | None = None,
                                 dtype: torch.dtype | None = None, layout: str | None = None,
                                 sha256: str | None = None, **kwargs) -> WorldModel:
        """Load the released ``vjepa2-ac-vitg.pt``, a jepa-wms checkpoint (``vjepa2_ac_droid``, ``vjepa2_ac_oss``) or a
        file laid out like them, from a path or URL.

        Only ``checkpoint["predictor"]`` (and ``["encoder"]`` when no ``encoder`` is given) are read: the file is
        memory-mapped, so the ~11.7 GB of target encoder and optimizer state are never loaded.

        Args:
            encoder: an ``Encoder``, a hub id / directory to load it from (e.g. the HF port
                ``facebook/vjepa2-vitg-fpc64-256``) or a V-JEPA 2 checkpoint (``vitg.pt`` path or URL, its
                ``"encoder"`` entry, converted with ``encoder_config``); default: convert ``checkpoint["encoder"]``.
                jepa-wms checkpoints hold no encoder: pass one.
            encoder_config: config for converting ``checkpoint["encoder"]``: a ``VJEPA2Config``, an official-style
                dict (``img_size, embed_dim, depth, num_heads, ...``) or a known hub id; default ViT-g/256.
            predictor_config: an ``ACPredictorConfig``, or a mapping of fields over the default: the released config
                with the widths, depth and state tokens read off the weights.
            load_encoder: ``False`` builds a latent-only model (``encoder=None``).
            layout: ``"official"`` or ``"jepa-wms"`` (``proprio_encoder.*``, no ``extrinsics_encoder``; without a
                state encoder the model has ``state_tokens=0``); default: detected from the predictor's keys.
            sha256: the checkpoint's expected SHA-256, checked once after download (see
                :func:`~vjepa2_ac.model.checkpoint.resolve_file`: URLs download with resume, cache and offline mode).
        """
        ckpt = load_torch_checkpoint(resolve_file(path_or_url, sha256=sha256))
        if not isinstance(ckpt, Mapping) or "predictor" not in ckpt:
            keys = list(ckpt)[:10] if isinstance(ckpt, Mapping) else type(ckpt).__name__
            raise CheckpointError(f"{path_or_url}: expected a dict with a 'predictor' entry, got {keys}")
        given = (predictor_config.to_dict() if isinstance(predictor_config, ACPredictorConfig)
                 else dict(predictor_config or {}))
        pred_sd, layout = to_official_layout(ckpt["predictor"], layout,
                                             use_extrinsics=bool(given.get("use_extrinsics", False)))
        if predictor_config is None:
            predictor_config = infer_predictor_config(pred_sd)
        elif isinstance(predictor_config, Mapping):  # fields the weights cannot tell (img_size, num_heads, ...)
            predictor_config = infer_predictor_config(pred_sd, **dict(predictor_config))
        with torch.device("meta"):
            predictor = ACPredictor(predictor_config)
        load_state_dict_strict(predictor, pred_sd, what=f"AC predictor ({path_or_url}, {layout} layout)")
        predictor.eval().requires_grad_(False)

        enc = None
        if load_encoder:
            from vjepa2_ac.model.encoder import Encoder, vjepa2_config_from_official

            official = None  # an official encoder state dict, to convert with encoder_config
            if isinstance(encoder, (str, os.PathLike)) and (is_url(encoder) or Path(encoder).is_file()):
                enc_ckpt = load_torch_checkpoint(resolve_file(encoder))  # a V-JEPA 2 checkpoint (vitg.pt)
                if not isinstance(enc_ckpt, Mapping) or "encoder" not in enc_ckpt:
                    raise CheckpointError(f"encoder {encoder}: expected a V-JEPA 2 checkpoint with an 'encoder' "
                                          "entry (e.g. vitg.pt)")
                official = enc_ckpt["encoder"]
            elif isinstance(encoder, (str, os.PathLike)):
                enc = Encoder.from_pretrained(encoder)
            elif encoder is not None:
                enc = encoder
            else:
                if "encoder" not in ckpt:
                    raise CheckpointError(f"{path_or_url} has no 'encoder' entry; pass encoder= (e.g. "
                                          f"{DEFAULT_ENCODER_ID!r})")
                official = ckpt["encoder"]
            if official is not None:
                if encoder_config is None or isinstance(encoder_config, str):
                    encoder_config = Encoder.config_for(encoder_config or DEFAULT_ENCODER_ID)
                elif isinstance(encoder_config, Mapping):
                    encoder_config = vjepa2_config_from_official(dict(encoder_config))
                enc = Encoder.from_official_state_dict(official, encoder_config)
        model = cls(enc, predictor, **kwargs)
        return model.to(device=device, dtype=dtype) if (device or dtype) else model


# ---------------------------------------------------------------------------------------------------- helpers


def latent_distance(z_pred: Tensor, z_goal: Tensor, rows_per_chunk: int = 64, *, cost: str = "l1") -> Tensor:
    """Mean absolute (``cost="l1"``) or squared (``"l2"``) difference per sample: ``[B, 1, N, D]`` (or
    ``[B, N, D]``) vs ``[B or 1, ...]`` -> ``[B]``.

    Computed in row chunks so that ``B`` large does not materialise a full ``[B, N, D]`` difference."""
    if z_pred.ndim == 4:
        if z_pred.shape[1] != 1:
            raise ValueError(f"z_pred must hold one frame per sample [B, 1, N, D], got {tuple(z_pred.shape)}")
        z_pred = z_pred[:, 0]
    if z_goal.ndim == 4:
        if z_goal.shape[1] != 1:
            raise ValueError(f"z_goal must hold one frame [B or 1, 1, N, D], got {tuple(z_goal.shape)}")
        z_goal = z_goal[:, 0]
    if z_pred.ndim != 3 or z_goal.ndim != 3 or z_goal.shape[1:] != z_pred.shape[1:] \
            or z_goal.shape[0] not in (1, z_pred.shape[0]):
        raise ValueError(f"z_goal {tuple(z_goal.shape)} does not match z_pred {tuple(z_pred.shape)} "
                         "(expected [B or 1, 1, N, D] against [B, 1, N, D])")
    B = z_pred.shape[0]

    def distance(diff: Tensor) -> Tensor:
        return (diff.square() if cost == "l2" else diff.abs()).mean(dim=(-2, -1))

    if B <= rows_per_chunk:
        return distance(z_pred - z_goal)
    out = []
    for i in range(0, B, rows_per_chunk):
        goal = z_goal if z_goal.shape[0] == 1 else z_goal[i:i + rows_per_chunk]
        out.append(distance(z_pred[i:i + rows_per_chunk] - goal))
    return torch.cat(out)


COSTS = ("l1", "l2")


def default_card(repo_id: str) -> str:
    """A minimal hub model card: YAML metadata (licence, library, tags, pipeline) and how to load the model."""
    return (f"---\nlicense: mit\nlibrary_name: vjepa2-ac\npipeline_tag: robotics\ntags:\n- robotics\n"
            f"- world-model\n- v-jepa-2\n- vjepa2-ac\n---\n\n# {repo_id}\n\nA V-JEPA 2-AC world model (frozen "
            f"encoder and action-conditioned predictor) saved by the vjepa2-ac library.\n\n```python\n"
            f"from vjepa2_ac import WorldModel"
            f"\n\nwm = WorldModel.from_pretrained(\"{repo_id}\")\n```\n")


def check_cost(cost: Any) -> None:
    """``ValueError`` unless ``cost`` is a planning energy of :data:`COSTS`."""
    if cost not in COSTS:
        raise ValueError(f"cost must be {' or '.join(map(repr, COSTS))}, got {cost!r}")


def check_context_window(window: Any) -> None:
    """``ValueError`` unless ``window`` is ``None`` (the whole history) or an int >= 1 (frames a rollout step sees)."""
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ValueError(f"context_window must be None or an int >= 1, got {window!r}")


def infer_predictor_config(state_dict: Mapping[str, Tensor], **overrides) -> ACPredictorConfig:
    """The released config with ``embed_dim``, ``predictor_embed_dim``, ``depth``, ``mlp_ratio`` and
    ``state_tokens`` read off (cleaned, official-layout) predictor weights. ``num_heads`` and ``img_size`` cannot be inferred: pass them if not released."""
    try:
        embed = state_dict["predictor_embed.weight"]
        fc1 = state_dict["predictor_blocks.0.mlp.fc1.weight"]
        action = state_dict["action_encoder.weight"]
    except KeyError as err:
        raise CheckpointError(f"cannot infer the predictor config: key {err} missing") from err
    depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("predictor_blocks."))
    fields = {"embed_dim": embed.shape[1], "predictor_embed_dim": embed.shape[0], "depth": depth,
              "mlp_ratio": fc1.shape[0] / embed.shape[0], "action_embed_dim": action.shape[1],
              "state_tokens": int("state_encoder.weight" in state_dict)}
    fields.update(overrides)
    return ACPredictorConfig(**fields)


def resolve_model_dir(name_or_dir: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None,
                      cache_dir: str | os.PathLike | None = None, local_files_only: bool = False) -> Path:
    """A local directory for a world model: an existing directory, a bundled model name, or a hub repo id
    (``huggingface_hub.snapshot_download`` with the given options; a clear ``OSError`` when it cannot be had)."""
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    from vjepa2_ac.model import bundled

    if str(name_or_dir) in bundled.MODELS:
        return bundled.model_dir(str(name_or_dir))
    name = str(name_or_dir)
    if not is_hub_id(name):
        raise FileNotFoundError(f"no world model directory {name!r}; bundled models: {sorted(bundled.MODELS)}; "
                                "or give a hub repo id 'owner/name'")
    return hub_snapshot(name, "world model", revision=revision, token=token, cache_dir=cache_dir,
                        local_files_only=local_files_only)


def _rows_equal(x: Tensor) -> bool:
    """True when every batch row of ``x`` equals the first (an expanded view is recognised without comparing)."""
    return x.stride(0) == 0 or bool(torch.equal(x, x[:1].expand_as(x)))


def _check_finite(x: Tensor, name: str) -> None:
    """``ValueError`` naming ``name`` when ``x`` holds a NaN or inf (a broadcast view is checked once)."""
    while x.ndim and x.stride(0) == 0 and x.shape[0] > 1:
        x = x[:1]
    if x.is_floating_point() and not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{name} contains NaN or inf")
