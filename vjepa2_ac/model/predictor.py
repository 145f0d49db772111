"""The V-JEPA 2-AC action-conditioned predictor: a block-causal transformer over ``[a_t, s_t, patches_t]`` steps.

A re-implementation of the official ``VisionTransformerPredictorAC`` (facebookresearch/vjepa2,
``src/models/ac_predictor.py``) that loads the released checkpoint key for key and gives the same numbers, with
three additions for planning speed:

* RoPE sin/cos tables are precomputed once per (steps, device, dtype) instead of on every call;
* a KV cache (:class:`KVCache`) lets an autoregressive rollout compute only the new step's tokens. Attention is
  block-causal over time steps, so caching earlier steps' keys/values is exact.
* on a CPU without gradients, the linear layers and the bf16 attention run through
  :mod:`vjepa2_ac.model.kernels` (oneDNN matmuls with cached bf16 weights and a fused GELU; two matmuls per head
  instead of the flash kernel). fp32 results agree to float rounding; the tested fp32 plans are the same bit for bit.

Shapes: ``B`` batch, ``T`` time steps, ``N = (img/patch)^2`` patch tokens per frame, ``D`` encoder width,
``C`` predictor width, ``L = N + 2`` tokens per step (``N + 3`` with extrinsics, ``N + 1`` without the state token).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa2_ac.model.kernels import Linear, attention
from vjepa2_ac.model.space import DROID_FRANKA, RobotSpace

ROPE_BASE = 10000.0


@dataclass
class ACPredictorConfig:
    """Architecture of the AC predictor. Defaults are the released ViT-g AC predictor (305,220,992 params).

    Field names follow the official constructor (``vit_ac_predictor``)."""

    img_size: int = 256
    patch_size: int = 16
    num_frames: int = 64  # with tubelet_size: the largest number of time steps (64 // 2 = 32)
    tubelet_size: int = 2
    embed_dim: int = 1408  # encoder width (input and output of the predictor)
    predictor_embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    action_embed_dim: int | None = None  # numbers per action and per state; None: the robot space's (DROID: 7)
    use_extrinsics: bool = False
    # 1: the official ``[action, state]`` conditioning tokens per step; 0: ``[action]`` only, as in jepa-wms's
    # retrained ``vjepa2_ac_droid`` (its ``proprio_tokens``); the state then only drives pose propagation.
    state_tokens: int = 1
    is_frame_causal: bool = True
    use_rope: bool = True
    layer_norm_eps: float = 1e-6
    # Not in the official model (the released checkpoint: False). True adds each input frame's tokens to the output
    # (slot t = frame t + a predicted change) and zero-initialises ``predictor_proj``, so an untrained predictor
    # copies the current frame and training spends its capacity on what the action changes.
    predict_residual: bool = False
    # Not in the official model: the robot's state and action space (:class:`~vjepa2_ac.model.space.RobotSpace`, or
    # its dict). None: DROID's Franka end-effector space, as released.
    robot: RobotSpace | None = None

    def __post_init__(self) -> None:
        if self.robot is not None:
            self.robot = RobotSpace.from_dict(self.robot)
            if self.action_embed_dim is None:
                self.action_embed_dim = self.robot.dim
            elif self.action_embed_dim != self.robot.dim:
                raise ValueError(f"ACPredictorConfig.action_embed_dim ({self.action_embed_dim}) must equal the robot "
                                 f"space's dims ({self.robot.describe()}: {self.robot.dim}); leave it unset")
        elif self.action_embed_dim is None:
            self.action_embed_dim = DROID_FRANKA.dim
        if isinstance(self.img_size, (tuple, list)):
            if len(self.img_size) != 2 or self.img_size[0] != self.img_size[1]:
                raise ValueError(f"img_size must be an int or a square (h, w) pair, got {self.img_size!r}")
            self.img_size = int(self.img_size[0])
        for name in ("img_size", "patch_size", "num_frames", "tubelet_size", "embed_dim", "predictor_embed_dim",
                     "depth", "num_heads", "action_embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ACPredictorConfig.{name} must be a positive int, got {value!r}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size ({self.img_size}) must be divisible by patch_size ({self.patch_size})")
        if self.predictor_embed_dim % self.num_heads:
            raise ValueError(
                f"predictor_embed_dim ({self.predictor_embed_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head dim must be even for RoPE, got {self.head_dim}")
        if self.state_tokens not in (0, 1) or isinstance(self.state_tokens, bool):
            raise ValueError(f"ACPredictorConfig.state_tokens must be 0 or 1, got {self.state_tokens!r}")
        if not isinstance(self.predict_residual, bool):
            raise ValueError(f"ACPredictorConfig.predict_residual must be a bool, got {self.predict_residual!r}")
        if not self.use_rope:
            raise ValueError("use_rope=False is not supported: the released AC predictor and its training recipe use "
                             "3D RoPE (the official code has no working absolute-position variant)")

    @property
    def robot_space(self) -> RobotSpace:
        """The model's robot space: ``robot``, or DROID's Franka space for the released 7-d layout."""
        if self.robot is not None:
            return self.robot
        if self.action_embed_dim != DROID_FRANKA.dim:
            raise ValueError(f"a predictor with action_embed_dim={self.action_embed_dim} needs "
                             "ACPredictorConfig.robot (a RobotSpace saying what its numbers mean)")
        return DROID_FRANKA

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_size**2

    @property
    def cond_tokens(self) -> int:
        """Conditioning tokens per step: action (+ state) (+ extrinsics)."""
        return 1 + self.state_tokens + int(self.use_extrinsics)

    @property
    def tokens_per_step(self) -> int:
        return self.cond_tokens + self.tokens_per_frame

    @property
    def max_steps(self) -> int:
        return self.num_frames // self.tubelet_size

    @property
    def head_dim(self) -> int:
        return self.predictor_embed_dim // self.num_heads

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.predictor_embed_dim * self.mlp_ratio)

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.robot is None:
            del d["robot"]  # the official fields only
        else:
            d["robot"] = self.robot.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ACPredictorConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown ACPredictorConfig fields {unknown}; expected a subset of {sorted(names)}")
        return cls(**d)


# ----------------------------------------------------------------------------------------------------------------
# RoPE


def rope_rotary_dim(head_dim: int) -> int:
    """Dims per axis (t, h, w) rotated by the official 3D RoPE: ``2 * ((head_dim // 3) // 2)``; the rest are not."""
    return 2 * ((head_dim // 3) // 2)


def _rope_angles(pos: Tensor, dim: int) -> Tensor:
    """Official angle table for one axis: ``pos [P] -> [P, dim]``, the ``dim/2`` frequencies *tiled* twice.

    This reproduces the official ``rotate_queries_or_keys`` (its "subtle bug": ``repeat`` instead of
    ``repeat_interleave``), which the released weights depend on."""
    omega = torch.arange(dim // 2, dtype=pos.dtype, device=pos.device)
    omega /= dim / 2.0
    omega = 1.0 / ROPE_BASE**omega
    freq = pos[:, None] * omega[None, :]
    return torch.cat([freq, freq], dim=-1)


def build_rope_tables(steps: int, grid: int, cond_tokens: int, head_dim: int, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """cos/sin tables ``[steps, L, head_dim]`` for the tokens ``[cond..., patches]`` of every step.

    Patch token (t, h, w) rotates its 3 chunks by t, h, w; conditioning tokens rotate only the temporal chunk
    (by t); unrotated dims get cos 1, sin 0. ``sin`` carries the pair sign so that
    ``rope(x) = x * cos + swap_pairs(x) * sin`` with ``swap_pairs(x)[2i] = x[2i+1]``, ``[2i+1] = x[2i]``.
    """
    d = rope_rotary_dim(head_dim)
    n = grid * grid
    ids = torch.arange(n, device=device)
    h_pos = (ids // grid).to(dtype)
    w_pos = (ids % grid).to(dtype)
    t_pos = torch.arange(steps, device=device).to(dtype)
    ang = torch.zeros(steps, cond_tokens + n, head_dim, dtype=dtype, device=device)
    ang_t = _rope_angles(t_pos, d)  # [steps, d]
    ang[:, :, :d] = ang_t[:, None, :]
    ang[:, cond_tokens:, d:2 * d] = _rope_angles(h_pos, d)[None]
    ang[:, cond_tokens:, 2 * d:3 * d] = _rope_angles(w_pos, d)[None]
    rotated = torch.zeros(head_dim, dtype=torch.bool, device=device)
    rotated[:3 * d] = True
    cos = torch.where(rotated, ang.cos(), torch.ones_like(ang))
    sin = torch.where(rotated, ang.sin(), torch.zeros_like(ang))
    sign = torch.tensor([-1.0, 1.0], dtype=dtype, device=device).repeat(head_dim // 2)
    return cos, sin * sign


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x [..., hd]`` with tables broadcastable to it (official pairing:
    ``(x_2i, x_2i+1) -> (x_2i cos - x_2i+1 sin, x_2i+1 cos + x_2i sin)``; the pair sign is folded into ``sin``)."""
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return torch.addcmul(x * cos, swapped, sin)


# ----------------------------------------------------------------------------------------------------------------
# KV cache


class KVCache:
    """Per-layer keys/values of the steps processed so far, ``[B, heads, steps * L, head_dim]`` each.

    With ``capacity`` (in steps) the buffers are preallocated and written in place (no ``torch.cat`` per step);
    without it (needed when gradients flow through the rollout) steps are concatenated."""

    def __init__(self, depth: int, tokens_per_step: int, capacity: int | None = None) -> None:
        self.depth = depth
        self.tokens_per_step = tokens_per_step
        self.capacity = capacity
        self.keys: list[Tensor | None] = [None] * depth
        self.values: list[Tensor | None] = [None] * depth
        self.steps = 0

    def append(self, layer: int, k: Tensor, v: Tensor, new_steps: int) -> tuple[Tensor, Tensor]:
        """Store ``k, v [B, h, new_steps * L, hd]`` for ``layer``; return all keys/values up to them."""
        start = self.steps * self.tokens_per_step
        end = start + k.shape[2]
        if start == 0 and self.capacity is not None and self.capacity * self.tokens_per_step == end:
            self.keys[layer], self.values[layer] = k, v  # the whole capacity in one call: nothing to copy
            return k, v
        if self.capacity is None:
            if self.keys[layer] is not None:
                k = torch.cat([self.keys[layer], k], dim=2)
                v = torch.cat([self.values[layer], v], dim=2)
            self.keys[layer], self.values[layer] = k, v
            return k, v
        if self.keys[layer] is None:
            shape = (*k.shape[:2], self.capacity * self.tokens_per_step, k.shape[-1])
            self.keys[layer] = k.new_empty(shape)
            self.values[layer] = v.new_empty(shape)
        if end > self.keys[layer].shape[2]:
            raise ValueError(f"KV cache capacity of {self.capacity} steps exceeded")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        if start == 0:  # attend to the fresh tensors rather than re-reading the strided buffer
            return k, v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, new_steps: int) -> None:
        self.steps += new_steps

    def select(self, index: Tensor) -> KVCache:
        """A cache holding only batch rows ``index`` (e.g. elite samples)."""
        out = KVCache(self.depth, self.tokens_per_step, self.capacity)
        out.steps = self.steps
        out.keys = [None if k is None else k.index_select(0, index) for k in self.keys]
        out.values = [None if v is None else v.index_select(0, index) for v in self.values]
        return out


# ----------------------------------------------------------------------------------------------------------------
# Modules (names and shapes mirror the official state dict)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1(x, gelu=True))  # exact (erf) GELU, fused into fc1 where it can be


class ACAttention(nn.Module):
    """Multi-head self-attention with 3D RoPE on q/k (fused ``qkv`` as in the official checkpoint)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = Linear(dim, 3 * dim, bias=True)
        self.proj = Linear(dim, dim)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, attn_mask: Tensor | None,
                cache: KVCache | None = None, layer: int = 0, new_steps: int = 0) -> Tensor:
        """``x [B, S, C]`` with RoPE tables ``[S, hd]``; with a cache, attend to the cached steps too."""
        q, k, v = self.qkv_rope(x, cos, sin)
        if cache is not None:
            k, v = cache.append(layer, k, v, new_steps)
        return self.proj(self.attend(q, k, v, attn_mask))

    def qkv_rope(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x [B, S, C]`` -> rotated q, k and v ``[B, heads, S, hd]`` (no cache state: compiles cleanly)."""
        B, S, _ = x.shape
        qkv = self.qkv(x).view(B, S, 3, self.num_heads, self.head_dim)
        qk = apply_rope(qkv[:, :, :2], cos[:, None, None], sin[:, None, None])  # q and k in one pass
        return qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)

    @staticmethod
    def attend(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None) -> Tensor:
        """Scaled dot-product attention, heads merged back: ``[B, S, C]`` (:func:`kernels.attention`)."""
        return attention(q, k, v, attn_mask)


class ACBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = ACAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_hidden)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, attn_mask: Tensor | None,
                cache: KVCache | None = None, layer: int = 0, new_steps: int = 0) -> Tensor:
        q, k, v = self.pre_attention(x, cos, sin)
        if cache is not None:
            k, v = cache.append(layer, k, v, new_steps)
        return self.post_attention(x, self.attn.attend(q, k, v, attn_mask))

    # The two halves around the attention (and its KV cache) are pure functions of their inputs:
    # ``WorldModel.compile_predictor`` compiles them, which fuses the RoPE, norm, bias and GELU work.
    def pre_attention(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.attn.qkv_rope(self.norm1(x), cos, sin)

    def post_attention(self, x: Tensor, attn_out: Tensor) -> Tensor:
        x = x + self.attn.proj(attn_out)
        return x + self.mlp(self.norm2(x))


class ACPredictor(nn.Module):
    """Action-conditioned predictor. ``forward(z, actions, states)``: slot t of the output predicts frame t+1."""

    def __init__(self, config: ACPredictorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ACPredictorConfig()
        C = config.predictor_embed_dim
        self.predictor_embed = Linear(config.embed_dim, C)
        self.action_encoder = Linear(config.action_embed_dim, C)
        if config.state_tokens:
            self.state_encoder = Linear(config.action_embed_dim, C)
        # Stored in the released checkpoint even though it is unused there (use_extrinsics=False).
        self.extrinsics_encoder = Linear(config.action_embed_dim - 1, C)
        self.predictor_blocks = nn.ModuleList(
            ACBlock(C, config.num_heads, config.mlp_hidden_dim, config.layer_norm_eps) for _ in range(config.depth))
        self.predictor_norm = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.predictor_proj = Linear(C, config.embed_dim)
        self._tables: dict[tuple, tuple[Tensor, Tensor]] = {}
        self._masks: dict[tuple, Tensor] = {}
        if not any(p.is_meta for p in self.parameters()):
            self.reset_parameters()

    # -- initialisation (official: trunc-normal 0.02, zero bias, residual projections scaled by 1/sqrt(2 * layer))
    @torch.no_grad()
    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for layer_id, block in enumerate(self.predictor_blocks, start=1):
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))
        if self.config.predict_residual:  # start as "the next frame is the current one"
            nn.init.zeros_(self.predictor_proj.weight)

    # -- official checkpoints
    def load_official_state_dict(self, state_dict: dict[str, Tensor], layout: str | None = None) -> None:
        """Load an official or jepa-wms predictor state dict (``module.``/``backbone.`` deleted wherever they occur),
        strictly.

        ``layout``: ``"official"`` (vjepa2), ``"jepa-wms"`` (``proprio_encoder.*``, no ``extrinsics_encoder``) or
        ``None`` to detect it (:func:`~vjepa2_ac.model.checkpoint.predictor_layout`). Raises ``ValueError`` naming
        every missing, unexpected or mis-shaped key; on error nothing is loaded."""
        from vjepa2_ac.model.checkpoint import load_state_dict_strict, to_official_layout

        sd, layout = to_official_layout(state_dict, layout, use_extrinsics=self.config.use_extrinsics)
        load_state_dict_strict(self, sd, what=f"AC predictor ({layout} layout)")

    # -- cached tables
    def rope_tables(self, steps: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos/sin ``[steps, L, hd]`` in ``dtype`` (computed in float32/64, cached per device and dtype)."""
        key = (device, dtype)
        have = self._tables.get(key)
        if have is None or have[0].shape[0] < steps:
            c = self.config
            n = max(steps, c.max_steps, have[0].shape[0] * 2 if have is not None else 0)
            exact = torch.float64 if dtype == torch.float64 else torch.float32
            cos, sin = build_rope_tables(n, c.grid_size, c.cond_tokens, c.head_dim, dtype=exact, device=device)
            self._tables[key] = (cos.to(dtype), sin.to(dtype))
        cos, sin = self._tables[key]
        return cos[:steps], sin[:steps]

    def block_causal_mask(self, new_steps: int, past_steps: int, device: torch.device) -> Tensor | None:
        """Bool mask ``[new * L, (past + new) * L]`` (True = attend): a token sees its own and earlier steps."""
        if not self.config.is_frame_causal or new_steps == 1:
            return None
        key = (new_steps, past_steps, device)
        if key not in self._masks:
            L = self.config.tokens_per_step
            q_step = torch.arange(new_steps * L, device=device) // L + past_steps
            k_step = torch.arange((past_steps + new_steps) * L, device=device) // L
            self._masks[key] = k_step[None, :] <= q_step[:, None]
        return self._masks[key]

    # -- forward
    def forward(self, z: Tensor, actions: Tensor, states: Tensor, extrinsics: Tensor | None = None,
                cache: KVCache | None = None) -> Tensor:
        """Predict the next frame's tokens for every step.

        Args:
            z: frame tokens ``[B, T, N, D]``, or ``[B, T*N, D]`` as in the official code (the output then has
                the same flattened layout).
            actions, states: ``[B, T, 7]``. extrinsics: ``[B, T, 6]`` (only with ``use_extrinsics``).
            cache: if given, ``z``/``actions``/``states`` are the *new* steps following the cached ones; their
                keys/values are appended to the cache.
            ``z`` and ``states`` (and ``extrinsics``) may have batch 1 while ``actions`` has batch B: a context
            shared by B action candidates, as in planning. Its first step then computes the shared tokens once
            (:meth:`_shared_first_step`) instead of B times.
        Returns:
            ``[B, T, N, D]`` (raw: after ``predictor_norm`` and ``predictor_proj`` -- plus ``z`` with
            ``predict_residual`` -- before the representation layer-norm); slot t predicts frame t+1.
        """
        c = self.config
        flat = z.ndim == 3
        if flat:
            if z.shape[1] % c.tokens_per_frame:
                raise ValueError(f"z of shape {tuple(z.shape)}: token count must be a multiple of "
                                 f"{c.tokens_per_frame} (tokens per frame)")
            z = z.unflatten(1, (-1, c.tokens_per_frame))
        if z.shape[0] == 1 and actions.shape[0] > 1 and z.ndim == 4:  # a context shared by all action rows
            if (cache is not None and cache.steps == 0 and z.shape[1] == 1 and not c.use_extrinsics
                    and states.shape[0] == 1):
                self._check_inputs(z, actions[:1], states, extrinsics)
                out = self._shared_first_step(z, actions, states, cache)
                return out.flatten(1, 2) if flat else out
            B = actions.shape[0]
            z = z.expand(B, *z.shape[1:])
            states = states.expand(B, *states.shape[1:]) if states.shape[0] == 1 else states
            if extrinsics is not None and extrinsics.shape[0] == 1:
                extrinsics = extrinsics.expand(B, *extrinsics.shape[1:])
        B, T, N, D = self._check_inputs(z, actions, states, extrinsics)
        past = cache.steps if cache is not None else 0
        if past + T > c.max_steps:
            raise ValueError(f"{T} time steps exceed the predictor's maximum of {c.max_steps} "
                             f"(num_frames // tubelet_size)")

        x = self.predictor_embed(z)  # [B, T, N, C]
        cond = [self.action_encoder(actions)] + ([self.state_encoder(states)] if c.state_tokens else [])
        if c.use_extrinsics:
            cond.append(self.extrinsics_encoder(extrinsics))
        x = torch.cat([torch.stack(cond, dim=2).to(x.dtype), x], dim=2).flatten(1, 2)  # [B, T*L, C]

        compute_dtype = x.dtype
        if torch.is_autocast_enabled(x.device.type):  # tables in the matmul dtype: no per-layer casts
            compute_dtype = torch.get_autocast_dtype(x.device.type)
        cos, sin = self.rope_tables(past + T, x.device, compute_dtype)
        cos, sin = cos[past:].flatten(0, 1), sin[past:].flatten(0, 1)
        mask = self.block_causal_mask(T, past, x.device)
        for i, block in enumerate(self.predictor_blocks):
            x = block(x, cos, sin, mask, cache, i, T)
        if cache is not None:
            cache.advance(T)

        x = x.view(B, T, c.tokens_per_step, -1)[:, :, c.cond_tokens:]
        out = self.predictor_proj(self.predictor_norm(x))  # [B, T, N, D]
        if c.predict_residual:
            out = out + z.to(out.dtype)
        return out.flatten(1, 2) if flat else out

    def _shared_first_step(self, z: Tensor, actions: Tensor, states: Tensor, cache: KVCache) -> Tensor:
        """First step of B rollouts from one shared frame: ``z [1, 1, N, D]``, ``states [1, 1, 7]``, ``actions
        [B, 1, 7]`` -> ``[B, 1, N, D]``, filling ``cache``. Equal to the batched forward up to float rounding.

        Only the action token differs between rows, so layer 0's inputs, norms, q/k/v and RoPE for the state and
        patch tokens are computed once, and their attention over the shared keys is computed once too; each row
        then adds its own action key/value to the softmax (a one-key log-sum-exp merge). From layer 1 on every
        token depends on the row's action and the blocks run batched as usual."""
        c = self.config
        B, L, H, hd = actions.shape[0], c.tokens_per_step, c.num_heads, c.head_dim
        shared = self.predictor_embed(z)  # [1, 1, N, C], then the state token in front of it
        if c.state_tokens:
            shared = torch.cat([self.state_encoder(states)[:, :, None].to(shared.dtype), shared], dim=2)
        shared = shared.flatten(1, 2)
        x_a = self.action_encoder(actions).to(shared.dtype)  # [B, 1, C]
        compute_dtype = shared.dtype
        if torch.is_autocast_enabled(shared.device.type):
            compute_dtype = torch.get_autocast_dtype(shared.device.type)
        cos, sin = (t[0] for t in self.rope_tables(1, shared.device, compute_dtype))  # [L, hd]

        block = self.predictor_blocks[0]
        attn = block.attn
        qkv_s = attn.qkv(block.norm1(shared)).view(1, L - 1, 3, H, hd)
        qk_s = apply_rope(qkv_s[:, :, :2], cos[1:, None, None], sin[1:, None, None])
        q_s, k_s, v_s = (t[0].transpose(0, 1) for t in (qk_s[:, :, 0], qk_s[:, :, 1], qkv_s[:, :, 2]))  # [H, L-1, hd]
        qkv_a = attn.qkv(block.norm1(x_a)).view(B, 1, 3, H, hd)
        qk_a = apply_rope(qkv_a[:, :, :2], cos[:1, None, None], sin[:1, None, None])
        q_a, k_a, v_a = qk_a[:, :, 0].transpose(1, 2), qk_a[:, :, 1].transpose(1, 2), qkv_a[:, :, 2].transpose(1, 2)
        k = torch.cat([k_a, k_s.expand(B, -1, -1, -1)], dim=2)  # [B, H, L, hd]
        v = torch.cat([v_a, v_s.expand(B, -1, -1, -1)], dim=2)
        k, v = cache.append(0, k, v, 1)

        # shared queries: softmax over the shared keys once, then merge each row's action key (float32 statistics)
        scale = hd ** -0.5
        scores = (q_s.float() @ k_s.float().transpose(-1, -2)) * scale  # [H, L-1, L-1]
        m = scores.amax(-1)  # [H, L-1]
        p = torch.exp(scores - m[..., None])
        z_sum, o_sum = p.sum(-1), p @ v_s.float()  # [H, L-1], [H, L-1, hd]
        s_a = torch.einsum("hqd,bhd->bhq", q_s.float(), k_a[:, :, 0].float()) * scale  # [B, H, L-1]
        m_new = torch.maximum(m, s_a)
        w_old, w_a = torch.exp(m - m_new), torch.exp(s_a - m_new)
        out_s = (o_sum * w_old[..., None] + w_a[..., None] * v_a.float()) / (z_sum * w_old + w_a)[..., None]
        out_a = F.scaled_dot_product_attention(q_a, k, v)  # [B, H, 1, hd]: the action token sees every key
        out = torch.cat([out_a, out_s.to(out_a.dtype)], dim=2).transpose(1, 2).flatten(2)  # [B, L, C]
        x = block.post_attention(torch.cat([x_a, shared.expand(B, -1, -1)], dim=1), out)
        for i, blk in enumerate(self.predictor_blocks[1:], start=1):
            x = blk(x, cos, sin, None, cache, i, 1)
        cache.advance(1)
        x = x.view(B, 1, L, -1)[:, :, c.cond_tokens:]
        out = self.predictor_proj(self.predictor_norm(x))
        return out + z.to(out.dtype) if c.predict_residual else out

    def new_cache(self, capacity: int | None = None) -> KVCache:
        """An empty KV cache; ``capacity`` (steps) preallocates buffers (use ``None`` when differentiating)."""
        return KVCache(self.config.depth, self.config.tokens_per_step, capacity)

    def _check_inputs(self, z: Tensor, actions: Tensor, states: Tensor, extrinsics: Tensor | None) -> tuple:
        c = self.config
        if z.ndim != 4:
            raise ValueError(f"z must be [B, T, N, D] (or [B, T*N, D]), got shape {tuple(z.shape)}")
        B, T, N, D = z.shape
        if N != c.tokens_per_frame or D != c.embed_dim:
            raise ValueError(f"z must have N={c.tokens_per_frame} tokens per frame and D={c.embed_dim} channels, "
                             f"got shape {tuple(z.shape)}")
        for name, t, width in (("actions", actions, c.action_embed_dim), ("states", states, c.action_embed_dim)):
            if t.shape != (B, T, width):
                raise ValueError(f"{name} must have shape [B={B}, T={T}, {width}], got {tuple(t.shape)}")
        if c.use_extrinsics:
            if extrinsics is None or extrinsics.shape != (B, T, c.action_embed_dim - 1):
                got = None if extrinsics is None else tuple(extrinsics.shape)
                raise ValueError(f"extrinsics must have shape [B={B}, T={T}, {c.action_embed_dim - 1}], got {got}")
        elif extrinsics is not None:
            raise ValueError("extrinsics given but the config has use_extrinsics=False")
        return B, T, N, D
