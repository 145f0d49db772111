"""World models shipped inside the package (``vjepa2_ac/models/<name>/``), loadable offline by name."""

from __future__ import annotations

from pathlib import Path

MODELS_ROOT = Path(__file__).parent.parent / "models"  # vjepa2_ac/models/<name>/


def _discover() -> dict[str, Path]:
    if not MODELS_ROOT.is_dir():
        return {}
    return {p.name: p for p in sorted(MODELS_ROOT.iterdir()) if (p / "config.json").is_file()}


MODELS: dict[str, Path] = _discover()


def model_dir(name: str) -> Path:
    """Directory of the bundled model ``name``."""
    if name not in MODELS:
        raise KeyError(f"no bundled model {name!r}; available: {sorted(MODELS)}")
    return MODELS[name]
