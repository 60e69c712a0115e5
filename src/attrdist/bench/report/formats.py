"""The report's formats: Markdown, LaTeX, a self-contained HTML page and a tidy CSV, and :func:`write_report`.

Every format renders the same content (:mod:`.tables`: the header's facts, the sections, the notes) and escapes
names from the database its own way (HTML, TeX, Markdown table cells, spreadsheet formulas in CSV cells).
"""

from __future__ import annotations

import csv
import math
import re
import sqlite3
from pathlib import Path
from typing import Protocol

from ..._files import atomic_open, write_text_atomic
from ..results import is_count, relative
from ..store import ResultStore
from .tables import Table, config_yaml, header, higher_is_better, notes, plain, sections, summarize

__all__ = ["ReportHooks", "csv_rows", "html", "latex", "markdown", "report_benchmark", "run_folders", "write_report"]


class ReportHooks(Protocol):
    """What a report needs of the benchmark that wrote a run (a :class:`~attrdist.bench.base.Benchmark` class)."""

    @staticmethod
    def report_unit(store: ResultStore) -> str | None:
        """The unit the report's table summarises (``None``: every unit)."""

    @staticmethod
    def plots(store: ResultStore, table: Table, run_dir: Path) -> dict[str, Path]:
        """The benchmark's figures."""


# ---------------------------------------------------------------------------------------------------------------
# Markdown


def _md(value: object) -> str:
    """Text for a Markdown table cell or line: one line, no cell break, no HTML, autolink, link or code span.

    A link needs ``](`` or ``][`` (there are no reference definitions), so only such a ``]`` is escaped and
    intervals read ``[0.1, 0.2]`` in the raw text too.
    """
    text = re.sub(r"([\\|<>`])", r"\\\1", plain(value))
    return re.sub(r"\](?=[(\[])", r"\\]", text)


def markdown(t: Table) -> str:
    """The report as Markdown: header, a table per metric, counts, notes, and the run's configuration (YAML)."""
    title = f"# attrdist report: {_md(t.config.get('benchmark', 'benchmark'))}"
    lines = [title, ""] + [f"- {label}: {_md(value)}" for label, value in header(t)]
    for s in sections(t):
        lines += ["", f"## {_md(s.title)}", "", "| " + " | ".join(_md(c) for c in s.columns) + " |",
                  "|" + "---|" * len(s.columns)]
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in s.rows]
    lines += [""] + [_md(n) + "\n" for n in notes(t)]
    text = config_yaml(t)
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    lines += ["## Run configuration", "", fence + "yaml", text, fence]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# LaTeX

_TEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
        "$": r"\$", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
        ">": r"\textgreater{}", "[": "{[}", "]": "{]}"}


def _tex(value: object) -> str:
    """Text for TeX: every special character escaped, brackets braced (a row may not start an optional argument)."""
    return re.sub(r"[\\{}_%&#$~^<>\[\]]", lambda m: _TEX[m.group()], plain(value))


def _tex_comment(text: str) -> list[str]:
    return ["% " + plain(line) for line in (text.splitlines() or [""])]


def latex(t: Table) -> str:
    """The report as LaTeX: the header and configuration as comments, a captioned table per metric (booktabs)."""
    facts = dict(header(t))
    out = [f"% attrdist report: {plain(t.config.get('benchmark', 'benchmark'))} (needs \\usepackage{{booktabs}})"]
    out += [f"% {label}: {plain(value)}" for label, value in header(t)]
    out += ["% run configuration:"] + _tex_comment(config_yaml(t))
    context = (f"Model {facts['model']} (weights: {facts['weights']}), dataset {facts['dataset']}, {t.items} items, "
               f"attrdist {facts['attrdist']}.")
    for s in sections(t):
        caption = (f"{s.title}. Mean [bootstrap 95% interval]; change against vanilla on the maps both could score. "
                   f"{context}")
        out += ["", r"\begin{table}[htbp]", r"\centering", r"\caption{" + _tex(caption) + "}",
                r"\begin{tabular}{l" + "r" * (len(s.columns) - 1) + "}", r"\toprule",
                " & ".join(_tex(c) for c in s.columns) + r" \\", r"\midrule"]
        out += [" & ".join(_tex(c) for c in row) + r" \\" for row in s.rows]
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 75em;
       padding: 0 1em; color: #1a1a1a; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
td { font-variant-numeric: tabular-nums; }
table.facts th { text-align: left; width: 8em; } table.facts td { text-align: left; white-space: normal; }
.better { color: #0b6e2e; } .worse { color: #a4262c; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; height: auto; } figcaption { font-size: 0.9em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.notes { color: #444; max-width: 60em; }
"""

_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _figure_html(name: str, path: Path) -> str:
    """A figure file inline (base64 data URI): the page needs no file beside it and fetches nothing."""
    import base64
    from html import escape

    kind = _IMAGE_TYPES.get(path.suffix.lower())
    if kind is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{escape(plain(name))}" src="data:{kind};base64,{data}">'
            f"<figcaption>{escape(plain(name))}</figcaption></figure>")


def html(t: Table, figures: dict[str, Path] | None = None) -> str:
    """The report as one self-contained HTML page: CSS and figures inline, nothing fetched, no script.

    Args:
        t: The summarised run.
        figures: Figure files to embed (name -> path), e.g. those :func:`write_report` drew.

    Returns:
        The page.
    """
    from html import escape

    def e(value: object) -> str:
        return escape(plain(value), quote=True)

    bench = t.config.get("benchmark", "benchmark")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           # defence in depth: should a name ever slip through unescaped, the page still runs and fetches nothing
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
           "style-src 'unsafe-inline'\">",
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>attrdist report: {e(bench)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>attrdist report: {e(bench)}</h1>", '<table class="facts">']
    out += [f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>" for label, value in header(t)]
    out.append("</table>")
    for s in sections(t):
        out += [f"<h2>{e(s.title)}</h2>", "<table>", "<thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in s.columns)
                + "</tr></thead>", "<tbody>"]
        for row in s.rows:
            cells = []
            for c in row:
                verdict = getattr(c, "verdict", "")
                cls = f' class="{verdict}"' if verdict in ("better", "worse") else ""
                cells.append(f"<td{cls}>{e(c)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out += ["</tbody>", "</table>"]
    out += ['<div class="notes">'] + [f"<p>{e(n)}</p>" for n in notes(t)] + ["</div>"]
    embedded = [_figure_html(name, Path(path)) for name, path in (figures or {}).items()]
    if any(embedded):
        out += ["<h2>Figures</h2>", "<div>"] + [f for f in embedded if f] + ["</div>"]
    out += ["<details>", "<summary>Run configuration (YAML)</summary>", f"<pre>{escape(config_yaml(t))}</pre>",
            "</details>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# CSV

_CSV_COLUMNS = ["method", "variant", "metric", "kind", "mean", "ci_low", "ci_high", "base", "change", "change_low",
                "change_high", "change_unit", "higher_is_better", "n", "items", "unscorable", "maps"]


#: Control characters other than tab, line feed and carriage return (C0, DEL, C1).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _csv_cell(value: object) -> object:
    """A CSV cell: numbers stay numbers (nan: empty); text that a spreadsheet would run as a formula gets a ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return "" if math.isnan(value) else value
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))  # no NUL, ESC, BEL in a cell: escaped
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(t: Table) -> list[list[object]]:
    """The long (tidy) table: one row per method, variant and metric; a header row first.

    Averaged metrics (``kind`` ``mean``): the mean and its interval, vanilla's mean on the same maps (``base``),
    the change and its interval, ``n`` maps averaged from ``items`` items. Count metrics (``kind`` ``count``):
    ``n`` maps counted of ``maps``. Every row: the method and variant's ``unscorable`` maps of ``maps``.
    """
    out: list[list[object]] = [list(_CSV_COLUMNS)]
    for m in t.methods:
        for v in t.variants:
            dead, maps = t.unscorable.get((m, v), (0, 0))
            for metric in t.metrics:
                if is_count(metric):
                    if (m, v, metric) not in t.counts:
                        continue
                    n, total = t.counts[(m, v, metric)]
                    out.append([m, v, metric, "count", *[None] * 9, n, None, dead, total])
                    continue
                c = t.cells.get((m, v, metric))
                if c is None:
                    continue
                van = v == "vanilla"
                out.append([m, v, metric, "mean", c.mean, *c.mean_ci, c.base, None if van else c.change,
                            *((None, None) if van else c.ci), "percent" if relative(metric) else "difference",
                            higher_is_better(metric), c.n, c.items, dead, maps])
    return out


def run_folders(path: str | Path) -> list[Path]:
    """The run folders under ``path``: the folder itself, or each subfolder with a ``results.sqlite``.

    A suite's folder (``attrdist bench study``) holds one run folder per benchmark; ``[path]`` when there is none
    (the report then says what is missing).
    """
    run = Path(path)
    if (run / "results.sqlite").exists() or not run.is_dir():
        return [run]
    return sorted(d for d in run.iterdir() if (d / "results.sqlite").exists()) or [run]


def _store(run: Path) -> ResultStore:
    """The run's store, opened read-only (a report never creates or changes one)."""
    db = run / "results.sqlite"
    if not db.is_file():
        raise FileNotFoundError(f"{run}: no results.sqlite (not a benchmark run folder)")
    try:
        return ResultStore(db, read_only=True)
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{db}: not a readable results database ({err})") from None


def report_benchmark(run_dir: str | Path) -> str:
    """The name of the benchmark that wrote a run folder (the caller looks it up in the registry).

    Raises:
        FileNotFoundError: If the folder holds no results.
        ValueError: If its ``results.sqlite`` is not a results database.
    """
    try:
        with _store(Path(run_dir)) as store:
            name = store.config().get("benchmark", "localization")
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{Path(run_dir) / 'results.sqlite'}: not a readable results database ({err})") from None
    return str(name)


def write_report(run_dir: str | Path, benchmark: ReportHooks) -> dict[str, Path]:
    """Write ``report.md``, ``report.tex``, ``report.html``, ``report.csv`` and the benchmark's figures.

    Args:
        run_dir: A run folder with ``results.sqlite``.
        benchmark: The benchmark that wrote it (``BENCHMARKS.get(report_benchmark(run_dir))``): the unit its
            table summarises and its figures.

    Returns:
        The written files by kind (``markdown``, ``latex``, ``html``, ``csv``, then the figures).

    Raises:
        FileNotFoundError: If the folder holds no results.
        ValueError: If its ``results.sqlite`` is not a results database.
    """
    run = Path(run_dir)
    db = run / "results.sqlite"
    try:
        with _store(run) as store:
            t = summarize(store, unit=benchmark.report_unit(store))
            figures = benchmark.plots(store, t, run)
    except sqlite3.OperationalError as err:  # the file is fine, the folder not (read-only, full, locked)
        raise ValueError(f"{db}: cannot open the results database ({err}; is the folder read-only or the disk "
                         "full?)") from None
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{db}: not a readable results database ({err})") from None
    written = {"markdown": run / "report.md", "latex": run / "report.tex", "html": run / "report.html",
               "csv": run / "report.csv"}
    write_text_atomic(written["markdown"], markdown(t))  # new files renamed over the names: a link, a hard link
    write_text_atomic(written["latex"], latex(t))  # or a FIFO there is replaced, never written through or opened
    write_text_atomic(written["html"], html(t, figures))
    with atomic_open(written["csv"], "w", newline="") as f:
        csv.writer(f).writerows([[_csv_cell(v) for v in row] for row in csv_rows(t)])
    written.update(figures)
    return written
