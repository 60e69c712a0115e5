"""The package has no ``# type: ignore`` comments: a type mismatch is fixed in the code, never silenced.

No type checker runs in CI, so an ignore comment guards nothing; where a library's stubs are too loose, use
``typing.cast`` or a Protocol instead.
"""

import io
import re
import tokenize
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "attrdist"
IGNORE = re.compile(r"type:\s*ignore", re.IGNORECASE)


def _ignores(path: Path) -> list[int]:
    """Lines of ``path`` with a ``type: ignore`` comment (comments only: strings that mention it do not count)."""
    source = path.read_text(encoding="utf-8")
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # not valid Python: fall back to any '#' line that has it
        return [n for n, line in enumerate(source.splitlines(), 1) if "#" in line and IGNORE.search(line)]
    return [tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT and IGNORE.search(tok.string)]


def test_no_type_ignore_comments_in_the_package():
    files = sorted(SRC.rglob("*.py"))
    assert files, f"no Python files under {SRC}"
    found = [f"{path.relative_to(SRC.parents[1])}:{line}" for path in files for line in _ignores(path)]
    assert not found, "type: ignore comments (fix the types instead):\n" + "\n".join(found)
