"""Issue 22, item 9: bad input on the command line is one line naming the problem, never a traceback.

Each case runs ``attrdist`` in-process and checks the exit status 2 and a single ``error:`` line on stderr; the
catch-all (an unforeseen error) also prints one line, with the traceback only under ``ATTRDIST_DEBUG=1``.
"""

import pickle

import pytest

from attrdist.cli import main


@pytest.fixture
def files(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"garbage")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "code.pkl").write_bytes(pickle.dumps({"a": 1}))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "m1.yaml").write_text("methods: [{a: 1}]\n")
    (tmp_path / "m2.yaml").write_text("method_options: {gradcam: 5}\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.sqlite").write_bytes(b"not sqlite")
    return tmp_path


CASES = {
    "weights garbage": (["explain", "--weights", "{d}/garbage.pt", "--out", "{d}/o"], "garbage.pt"),
    "weights empty": (["explain", "--weights", "{d}/empty.pt", "--out", "{d}/o"], "empty.pt"),
    "weights pickle": (["explain", "--weights", "{d}/code.pkl", "--out", "{d}/o"], "code.pkl"),
    "weights missing": (["explain", "--weights", "{d}/missing.pt", "--out", "{d}/o"], "missing.pt"),
    "out is a file": (["bench", "localization", "--out", "{d}/afile", "--max-items", "1"], "a file, not a run folder"),
    "methods of mappings": (["bench", "localization", "--config", "{d}/m1.yaml", "--out", "{d}/r1"], "list[str]"),
    "method options not mappings": (["bench", "localization", "--config", "{d}/m2.yaml", "--out", "{d}/r2"],
                                    "dict[str, dict]"),
    "report of garbage": (["report", "{d}/run"], "not a readable results database"),
    "report of a file": (["report", "{d}/afile"], "no results.sqlite"),
    "serve upload 0": (["serve", "--max-upload-mb", "0"], "max_upload_mb"),
    "serve workers 0": (["serve", "--workers", "0"], "workers must be >= 1"),
    "serve port": (["serve", "--port", "99999"], "0-65535"),
    "serve nan": (["serve", "--max-megapixels", "nan"], "max_megapixels"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_line_error(case, files, capsys, monkeypatch):
    monkeypatch.delenv("ATTRDIST_DEBUG", raising=False)
    argv, expected = CASES[case]
    assert main([a.format(d=files) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    last = err[-1]
    assert last.startswith("error: ") and expected in last and "Traceback" not in "\n".join(err), err


def test_an_unforeseen_error_is_one_line_and_its_traceback_on_request(monkeypatch, capsys):
    import attrdist.cli as cli

    def broken(args):
        raise RuntimeError("something inside broke")

    monkeypatch.setitem(cli.COMMAND_RUNNERS, "models", broken)
    monkeypatch.delenv("ATTRDIST_DEBUG", raising=False)
    assert main(["models"]) == 2
    assert capsys.readouterr().err.strip() == ("error: RuntimeError: something inside broke (ATTRDIST_DEBUG=1 shows "
                                               "the traceback)")
    monkeypatch.setenv("ATTRDIST_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["models"])


@pytest.mark.parametrize(("mutation", "expected"), [
    ("INSERT INTO results VALUES ('a','u','m','vanilla','region_attribution','abc')", "where a number belongs"),
    ("UPDATE config SET value='[1,2]' WHERE key='run'", "is a list, not a mapping"),
    ("UPDATE config SET value='{not json' WHERE key='run'", "not valid JSON"),
])
def test_a_crafted_results_database_is_one_line(tmp_path, capsys, mutation, expected):
    from attrdist.bench.store import ResultStore

    with ResultStore(tmp_path / "results.sqlite") as store:
        store.bind_config({"benchmark": "localization", "methods": ["m"]})
        store.write_item("b", [("u", "m", "vanilla", "region_attribution", 0.4)], 0.0, 0)
        store.db.execute(mutation)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'results.sqlite'}: ") and expected in err and "\n" not in err
