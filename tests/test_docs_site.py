"""The documentation site: every page in the navigation, links that resolve, commands that parse, a short README,
the tutorial run as written, and ``mkdocs build --strict`` where MkDocs is installed (the ``docs`` extra)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial.md"
PAGES = sorted(DOCS.glob("*.md"))


def _nav_files(nav):
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            yield from _nav_files(value)
        else:
            yield value


def _mkdocs_config():
    # mkdocs.yml has no custom YAML tags, so the safe loader reads it
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def _blocks(text, lang):
    return [b.split("```")[0] for b in text.split(f"```{lang}\n")[1:]]


def _attrdist_commands(text):
    """Every ``attrdist ...`` command of a text's bash blocks, as argv lists (continuations joined, ``&&`` split)."""
    for block in _blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|;", line):
                words = shlex.split(part, comments=True)
                if "attrdist" in words:
                    yield words[words.index("attrdist") + 1:]


def test_every_page_is_in_the_navigation_and_every_entry_exists():
    nav = set(_nav_files(_mkdocs_config()["nav"]))
    pages = {p.name for p in PAGES}
    assert pages - nav == set(), "pages missing from mkdocs.yml's nav"
    assert nav - pages == set(), "nav entries without a page"
    assert {"index.md", "tutorial.md", "api.md", "methods.md", "presets.md", "benchmarks.md", "performance.md",
            "explorer.md", "extending.md", "integrations.md", "safety.md", "development.md", "changelog.md"} <= nav


def test_the_api_reference_is_generated_from_the_docstrings():
    config = _mkdocs_config()
    assert any("mkdocstrings" in (p if isinstance(p, str) else next(iter(p))) for p in config["plugins"])
    api = (DOCS / "api.md").read_text()
    for name in ("attrdist.var", "attrdist.explanation", "attrdist.models.load_model", "attrdist.methods.get_method"):
        assert f"::: {name}" in api


@pytest.mark.parametrize("path", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_relative_links_and_images_resolve(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # links inside code blocks are not links
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#")[0]
        assert (path.parent / file).exists(), f"{path.name} links to {target}, which does not exist"


@pytest.mark.parametrize("path", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_attrdist_commands_in_the_docs_parse(path):
    """Every ``attrdist`` command of the pages' bash blocks is a real subcommand with real options."""
    from attrdist.cli import build_parser

    parser = build_parser()
    for argv in _attrdist_commands(path.read_text()):
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{path.name}: `attrdist {shlex.join(argv)}` does not parse")


def test_the_command_check_catches_a_wrong_option():
    from attrdist.cli import build_parser

    (argv,) = _attrdist_commands("```bash\nattrdist explain x.jpg --clases 'tiger cat'  # typo\n```\n")
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


def test_readme_is_short_and_points_to_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    assert "docs/sample_grid.png" in readme
    for page in ("tutorial", "methods", "presets", "benchmarks", "performance", "explorer", "extending", "api"):
        assert f"(docs/{page}.md)" in readme


def test_the_tutorial_covers_the_three_tasks():
    """Class names, two presets from one set of raw maps, and the figure in a notebook (what CI runs below)."""
    text = TUTORIAL.read_text()
    code = "\n".join(_blocks(text, "python"))
    assert 'classes="tabby, tiger cat, Egyptian cat"' in code and 'target="tiger cat"' in code
    assert 'exp.refine("paper")' in code and "with_presets(" in code
    assert ".figure()" in code and any(b.strip() == "both" for b in _blocks(text, "python"))
    assert any("--target" in " ".join(argv) for argv in _attrdist_commands(text))


@pytest.mark.slow
def test_tutorial_runs(tmp_path, monkeypatch, capsys):
    """The tutorial's Python blocks, in order, as one script, then its command lines (EfficientNet-Lite0, one photo)."""
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")  # a test process has no display; the tutorial itself sets no backend
    text = TUTORIAL.read_text()
    namespace = {}
    for block in _blocks(text, "python"):
        exec(compile(block, str(TUTORIAL), "exec"), namespace)
    printed = capsys.readouterr().out
    for line in ("tiger cat  0.38", "model calls: 0", "{} {'authors-code': {'gradcam': ['tabby']"):
        assert line in printed and line in text  # what the page shows is what it prints
    exp, both = namespace["exp"], namespace["both"]
    assert exp.class_names == ["tabby", "tiger cat", "Egyptian cat"] and exp.target == 282
    assert namespace["calls"] == []  # refine and with_presets made no model call
    assert list(both.presets) == ["smoothed-positive", "paper"]
    assert namespace["egyptian"].target == 285
    assert both._repr_png_().startswith(b"\x89PNG")  # what Jupyter shows for the cell that ends with `both`
    assert (tmp_path / "tiger-cat.png").stat().st_size > 0 and (tmp_path / "photo.jpg").exists()

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    setup, *commands = _blocks(text, "bash")
    assert "pip install" in setup  # the set-up command is the README's, run by CI itself
    for block in commands:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, f"{block}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    for suffix in ("png", "json", "npz"):
        assert (tmp_path / "tutorial-out" / f"photo.{suffix}").stat().st_size > 0


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    """The site builds with warnings as errors (CI installs the ``docs`` extra; without it, this is skipped)."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text().count('class="doc doc-heading"') > 50
