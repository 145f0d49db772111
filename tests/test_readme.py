"""The user docs: the README's first Python block runs as written, every repository path the docs cite exists, and
the README and the bundled model card stay within their length limits."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MODEL_DIR = REPO / "vjepa2_ac" / "models" / "vjepa2-ac-sim-small"
MODEL_CARD = MODEL_DIR / "README.md"  # the model card, hub-ready (YAML metadata on top)
DOCUMENTS = [README, MODEL_CARD, MODEL_DIR / "RESULTS.md", REPO / "vjepa2_ac" / "assets" / "README.md",
             *sorted((REPO / "docs").glob("*.md"))]

README_MAX_WORDS = 1000  # counted like `wc -w`, code included
MODEL_CARD_MAX_LINES = 150

# A token cites a repository file when it starts with one of these folders, or when it has a folder part and a
# file extension (`tests/fixtures/x.npz`). Commands, module names (`vjepa2_ac.agent`), hub ids
# (`facebook/vjepa2-vitg-fpc64-256`), gym ids (`vjepa2ac/FrankaReach-v0`) and output paths of the documented
# commands (`runs/...`, `data/...`) match neither.
TOP_LEVEL = ("vjepa2_ac", "planners", "envs", "examples", "benchmarks", "investigations", "configs", "tests", "docs")
EXTENSIONS = ("py", "md", "json", "yaml", "yml", "png", "npz", "pt", "toml", "txt", "safetensors")
_PATH = re.compile(rf"^(?:(?:{'|'.join(TOP_LEVEL)})/[\w./-]*|[\w.-]+(?:/[\w.-]+)+\.(?:{'|'.join(EXTENSIONS)}))$")
_PLACEHOLDER = re.compile(r"[*$<>{}]|\.\.\.")  # globs, shell variables, placeholders: not one file
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_INLINE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def first_python_block(text: str) -> str:
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, "README.md has no ```python block"
    return match.group(1)


def cited_paths(text: str) -> tuple[list[str], list[str]]:
    """(markdown link targets relative to the document, repository paths named in code or prose)."""
    links = [t.split("#")[0] for t in _LINK.findall(text)
             if "://" not in t and not t.startswith(("#", "mailto:"))]
    fenced = _FENCE.findall(text)
    prose = _FENCE.sub(" ", text)
    code = fenced + _INLINE.findall(prose)
    prose = _INLINE.sub(" ", _LINK.sub("]", prose))
    tokens = [t for chunk in code for t in re.split(r"[\s\"'(),;:=\[\]]+", chunk)]
    tokens += [t for t in re.split(r"[\s\"'(),;:\[\]]+", prose) if t.startswith(tuple(f"{d}/" for d in TOP_LEVEL))]
    paths = []
    for token in tokens:
        token = token.rstrip(".")
        if token and _PATH.match(token) and not _PLACEHOLDER.search(token):
            paths.append(token)
    return [link for link in links if link], paths


def test_cited_paths_parser():
    text = ("See [results](RESULTS.md#reach) and ![x](../docs/a.png), <https://x.org/a.py>, `python benchmarks/"
            "bench_rollout.py --compile`, `vjepa2_ac.agent`, `facebook/vjepa2-vitg-fpc64-256`, `runs/enc_v2/model`,"
            " `vjepa2ac/FrankaReach-v0`, `investigations/*.py`, prose envs/tasks.py.\n```bash\nvjepa2-ac train "
            "--config configs/bundled/ac_sim_small.yaml --out runs/ac_v3\ncp -r runs/x/* vjepa2_ac/models/m/\n```\n")
    links, paths = cited_paths(text)
    assert links == ["RESULTS.md", "../docs/a.png"]
    assert sorted(paths) == sorted(["benchmarks/bench_rollout.py", "envs/tasks.py",
                                    "configs/bundled/ac_sim_small.yaml", "vjepa2_ac/models/m/"])


def in_repository(path: Path) -> bool:
    """``path`` exists and lies inside the repository (``../shared/x.md`` may exist beside a checkout)."""
    path = path.resolve()
    return path.exists() and (path == REPO or REPO in path.parents)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_documents_cite_existing_files(document):
    links, paths = cited_paths(document.read_text(encoding="utf-8"))
    missing = [link for link in links if not in_repository(document.parent / link)]
    missing += [path for path in paths
                if not in_repository(REPO / path) and not in_repository(document.parent / path)]
    assert not missing, f"{document.relative_to(REPO)} cites files not in the repository: {missing}"


def test_readme_and_model_card_lengths():
    words = len(README.read_text(encoding="utf-8").split())
    assert words <= README_MAX_WORDS, f"README.md has {words} words (at most {README_MAX_WORDS})"
    lines = len(MODEL_CARD.read_text(encoding="utf-8").splitlines())
    assert lines <= MODEL_CARD_MAX_LINES, f"the model card ({MODEL_CARD.name}) has {lines} lines (at most {MODEL_CARD_MAX_LINES})"


def test_readme_test_command_is_the_ci_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pytest -q" in README.read_text(encoding="utf-8")
    assert re.search(r"^python -m pytest -q\b", ci, re.M)


def test_readme_first_python_block_runs_as_written(capsys):
    """The README's first example, exactly as written: the bundled model plans a MuJoCo reach episode offline."""
    exec(compile(first_python_block(README.read_text(encoding="utf-8")), str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert re.search(r"^(reached|missed) after \d+ actions", out, re.M), out
