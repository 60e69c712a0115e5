"""The README's two set-up commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_commands_are_run_by_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = [b.split("```")[0].strip() for b in readme.split("```bash\n")[1:]]
    main, tests = blocks[0], blocks[1]
    assert main.endswith("attrdist explain") and "pytest" in tests
    assert main in ci and tests in ci


def test_readme_python_example_runs():
    """The README's Python block, as written."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```python\n")[1].split("```")[0]
    exec(compile(block, "README.md", "exec"), {})
