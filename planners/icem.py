"""iCEM: improved cross-entropy method (Pinneri et al., "Sample-efficient cross-entropy method for real-time
planning", CoRL 2020).

Over plain CEM: time-correlated (coloured, PSD ~ 1/f^beta) sampling noise along the horizon; a population
that shrinks every iteration (``N_i = max(N * gamma^-i, 2K)``); a fraction of the elites is carried into the
next iteration and, shifted by one step, into the next plan (with ``warm_start``); the mean is evaluated in
the last iteration; the best sequence ever evaluated is returned. Mean/std updates use the same "old value
weighted by momentum" rule as the released CEM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from planners.common import (
    SearchConfig,
    _positive,
    bind_space,
    check_generator,
    check_inputs,
    rollout_energy,
    shift_plan,
)
from planners.protocol import Plan, WorldModelLike


def colored_noise(
    samples: int,
    horizon: int,
    dims: int,
    beta: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Gaussian noise ``[samples, horizon, dims]`` with power spectrum ~ ``1/f^beta`` along the horizon.

    The ``colorednoise.powerlaw_psd_gaussian`` recipe in torch, normalised to exactly unit variance per step
    (that package's normalisation leaves out the DC bin).
    ``beta = 0`` or ``horizon = 1`` gives white noise.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta == 0 or horizon == 1:
        return torch.randn(samples, horizon, dims, generator=generator, device=device)
    f = torch.fft.rfftfreq(horizon, device=device).clamp_min(1.0 / horizon)
    scale = f ** (-beta / 2.0)
    # exact per-step variance of the irfft below: DC and Nyquist bins are real (x sqrt 2), the others complex
    var = 2.0 * scale[0] ** 2
    if horizon % 2 == 0:
        var = var + 4.0 * (scale[1:-1] ** 2).sum() + 2.0 * scale[-1] ** 2
    else:
        var = var + 4.0 * (scale[1:] ** 2).sum()
    sigma = torch.sqrt(var) / horizon
    real = torch.randn(samples, dims, f.numel(), generator=generator, device=device) * scale
    imag = torch.randn(samples, dims, f.numel(), generator=generator, device=device) * scale
    if horizon % 2 == 0:
        imag[..., -1] = 0.0
        real[..., -1] = real[..., -1] * math.sqrt(2.0)
    imag[..., 0] = 0.0
    real[..., 0] = real[..., 0] * math.sqrt(2.0)
    y = torch.fft.irfft(torch.complex(real, imag), n=horizon, dim=-1) / sigma
    return y.transpose(1, 2).contiguous()


@dataclass
class ICEMConfig(SearchConfig):
    """iCEM settings (shared fields: :class:`planners.common.SearchConfig`).

    samples: initial population; topk: elites; iterations.
    noise_beta: coloured-noise exponent (paper: 2-2.5; 0 = white noise).
    population_decay: gamma in ``N_i = max(N * gamma^-i, 2K)`` (paper 1.25).
    keep_elites: fraction of the elites carried over (paper 0.3).
    momentum: weight of the old mean/std (paper alpha 0.1).
    xyz_std, rotation_std, gripper_std: initial std (``None``: ``maxnorm`` / ``rotation_maxnorm``).
    add_mean: evaluate the mean in the last iteration; return_best: return the best sequence found (else the mean).
    """

    samples: int = 400
    topk: int = 10
    iterations: int = 10
    noise_beta: float = 2.0
    population_decay: float = 1.25
    keep_elites: float = 0.3
    momentum: float = 0.1
    xyz_std: float | None = None
    rotation_std: float | None = None
    gripper_std: float = 1.0
    add_mean: bool = True
    return_best: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.topk <= self.samples:
            raise ValueError(f"need samples >= topk >= 2, got {self.samples=}, {self.topk=}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.noise_beta < 0 or self.population_decay < 1.0:
            raise ValueError(f"need noise_beta >= 0 and population_decay >= 1, got {self.noise_beta}, {self.population_decay}")
        if not 0.0 <= self.keep_elites <= 1.0 or not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"keep_elites must be in [0, 1] and momentum in [0, 1), got {self.keep_elites}, {self.momentum}")
        _positive(gripper_std=self.gripper_std)

    def population(self, iteration: int) -> int:
        """Number of fresh samples in ``iteration`` (0-based)."""
        return max(int(self.samples * self.population_decay ** (-iteration)), 2 * self.topk)


class ICEM:
    """iCEM planner (``ICEM(ICEMConfig(horizon=4)).plan(wm, z0, s0, z_goal, generator=g)``)."""

    def __init__(self, config: ICEMConfig | None = None) -> None:
        self.config = config if config is not None else ICEMConfig()
        self.space = self.config.action_space()
        self._previous_mean: Tensor | None = None
        self._previous_elites: Tensor | None = None

    def reset(self) -> None:
        self._previous_mean = None
        self._previous_elites = None

    def plan(
        self,
        world_model: WorldModelLike,
        z0: Tensor,
        s0: Tensor,
        z_goal: Tensor,
        *,
        context_actions: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Plan:
        """z0 ``[1, T0, N, D]``, s0 ``[1, T0, A]``, z_goal ``[1, 1, N, D]`` -> :class:`Plan`.

        ``history[i]``: ``mean``/``std`` ``[H, d]``, ``energies`` of the evaluated samples, ``best_energy``.
        """
        check_inputs(z0, s0, z_goal, context_actions, bind_space(self, world_model).robot)
        check_generator(generator, z0.device)
        cfg, space, device = self.config, self.space, z0.device
        kw = dict(context_actions=context_actions, energy=cfg.energy, dtype=cfg.dtype, rescore=cfg.rescore)
        n_keep = math.ceil(cfg.keep_elites * cfg.topk)
        mean = space.initial_mean(cfg.horizon, device)
        std = space.initial_std(
            cfg.horizon,
            xyz_std=cfg.maxnorm if cfg.xyz_std is None else cfg.xyz_std,
            gripper_std=cfg.gripper_std,
            rotation_std=cfg.rotation_maxnorm if cfg.rotation_std is None else cfg.rotation_std,
            device=device,
        )
        carried = None
        if cfg.warm_start and self._previous_mean is not None:
            mean = shift_plan(self._previous_mean.to(device), mean)
            prev = self._previous_elites.to(device)[:n_keep]
            carried = torch.cat([prev[:, 1:], mean[-1:].expand(prev.shape[0], 1, -1)], dim=1)
        best_energy, best = math.inf, mean
        history = []
        with torch.no_grad():
            for i in range(cfg.iterations):
                noise = colored_noise(cfg.population(i), cfg.horizon, space.size, cfg.noise_beta, generator, device)
                parts = [mean + std * noise]
                if carried is not None and n_keep > 0:
                    parts.append(carried)
                if i == cfg.iterations - 1 and cfg.add_mean:
                    parts.append(mean[None])
                samples = space.project(torch.cat(parts, dim=0))
                energies = rollout_energy(world_model, z0, s0, z_goal, space.to_full(samples), **kw)
                top = energies.topk(cfg.topk, largest=False).indices  # sorted, best first
                elites = samples[top]
                if energies[top[0]] < best_energy:
                    best_energy, best = float(energies[top[0]]), elites[0]
                mean = (1.0 - cfg.momentum) * elites.mean(dim=0) + cfg.momentum * mean
                std = (1.0 - cfg.momentum) * elites.std(dim=0) + cfg.momentum * std
                carried = elites[:n_keep]
                history.append({"mean": mean.clone(), "std": std.clone(), "energies": energies, "best_energy": best_energy})
            self._previous_mean, self._previous_elites = mean, elites
            chosen = best if cfg.return_best else space.project(mean)
            plan_actions = space.to_full(chosen)
            energy = best_energy if cfg.return_best else math.nan
            if cfg.evaluate_plan and not cfg.return_best:
                energy = float(rollout_energy(world_model, z0, s0, z_goal, plan_actions[None], **kw)[0])
        return Plan(actions=plan_actions, energy=energy, history=history)
