"""The ``vjepa2-ac`` entry point: every sub-command is wired and documents itself."""

import subprocess
import sys

import pytest

from vjepa2_ac.cli import COMMANDS, build_parser, main


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: vjepa2-ac" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "vjepa2_ac.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("vjepa2-ac ")


@pytest.mark.parametrize("name", ["train", "pretrain-encoder", "encode-dataset", "demo", "eval"])
def test_threads_option_sets_torch_threads_or_refuses_bad_values(name, tmp_path):
    import torch

    from vjepa2_ac.commands.common import apply_threads

    required = {"train": ["--data", "d", "--out", "o"], "pretrain-encoder": ["--data", "d", "--out", "o"],
                "encode-dataset": ["--data", "d", "--encoder", "e", "--out", "o"], "demo": [], "eval": []}[name]
    before = torch.get_num_threads()
    try:
        apply_threads(build_parser().parse_args([name, *required, "--threads", "1"]))
        assert torch.get_num_threads() == 1
        with pytest.raises(SystemExit, match="--threads must be >= 1, got 0"):
            apply_threads(build_parser().parse_args([name, *required, "--threads", "0"]))
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- one line per user error
def test_user_errors_are_one_line_with_exit_2_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    """A bad value deep inside a command (here: NaN in --state) is one line naming it; --debug re-raises."""
    from PIL import Image

    img = tmp_path / "f.png"
    Image.fromarray(__import__("numpy").zeros((8, 8, 3), "uint8")).save(img)
    argv = ["landscape", "--frame", str(img), "--goal", str(img), "--state", "0", "0", "nan", "0", "0", "0", "0",
            "--grid", "2", "--out", str(tmp_path / "l.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "vjepa2-ac landscape: error: --state must be 7 finite numbers" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit, match="--state"):
        main(["--debug", *argv])


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    import vjepa2_ac.commands.upgrade_planning as command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "run", interrupted)
    assert main(["upgrade-planning", "x.json"]) == 130
    assert capsys.readouterr().err.strip() == "vjepa2-ac upgrade-planning: interrupted"


def test_broken_model_files_name_the_file(tmp_path, tiny_world_model):
    from vjepa2_ac import WorldModel
    from vjepa2_ac.model.checkpoint import CheckpointError, load_torch_checkpoint

    tiny_world_model.save_pretrained(tmp_path / "wm")
    (tmp_path / "wm" / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match=r"wm/config.json is not valid JSON"):
        WorldModel.from_pretrained(tmp_path / "wm")
    (tmp_path / "x.pt").write_text("not a torch file")
    with pytest.raises(CheckpointError, match=r"x.pt: not a readable torch checkpoint"):
        load_torch_checkpoint(tmp_path / "x.pt")


@pytest.mark.parametrize("kwargs, match", [
    ({"samples": 16.5}, "CEMConfig.samples must be an int"), ({"horizon": "2"}, "horizon must be an int"),
    ({"topk": True}, "topk must be an int"), ({"maxnorm": float("nan")}, "maxnorm must be a finite number"),
    ({"xyz_std": -0.1}, "xyz_std must be > 0"), ({"warm_start": 1}, "warm_start must be true or false"),
])
def test_planner_configs_check_types_at_construction(kwargs, match):
    from planners import CEMConfig

    with pytest.raises(ValueError, match=match):
        CEMConfig(**kwargs)


def test_env_image_size_is_named_when_wrong():
    import gymnasium

    import envs  # noqa: F401

    for bad in ("big", (64,), (64.5, 64), True):
        with pytest.raises(ValueError, match="image_size must be"):
            gymnasium.make("vjepa2ac/FrankaReach-v0", image_size=bad)


def test_an_unavailable_device_is_named_before_loading(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--device", "cuda", "--episodes", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "device 'cuda': cuda is not available on this machine" in err and "safetensors" not in err
    from vjepa2_ac.agent.loading import check_device

    with pytest.raises(ValueError, match="not a torch device"):
        check_device("gpu0")


def test_a_commands_own_refusal_is_one_line_with_exit_2(capsys):
    assert main(["eval", "--episodes", "0"]) == 2
    assert capsys.readouterr().err.strip() == "vjepa2-ac eval: error: --episodes must be >= 1, got 0"


def test_rollout_names_a_numpy_or_float64_input(tiny_world_model):
    import numpy as np
    import torch

    z0, s0 = torch.zeros(2, 1, 16, 64), torch.zeros(2, 1, 7)
    with pytest.raises(ValueError, match="actions must be a torch.Tensor, got numpy.ndarray"):
        tiny_world_model.rollout(z0, s0, np.zeros((2, 1, 7)))
    with pytest.raises(ValueError, match=r"actions must be float32 .* got torch.float64: cast with .float\(\)"):
        tiny_world_model.rollout(z0, s0, torch.zeros(2, 1, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="s0 must be float32"):
        tiny_world_model.rollout(z0, s0.double(), torch.zeros(2, 1, 7))


def test_an_unusable_out_directory_is_one_line_before_the_model_loads(tmp_path, capsys, monkeypatch):
    loaded = []
    monkeypatch.setattr("vjepa2_ac.commands.demo.load_model_or_exit", lambda args: loaded.append(1))
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "--out: cannot create" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert loaded == []
