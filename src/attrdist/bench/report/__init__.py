"""Reports of benchmark runs: Markdown, LaTeX, a self-contained HTML page and a tidy CSV, plus each benchmark's plots.

Every report opens with its context (benchmark, model and weights, dataset and its size, items scored and
skipped with the count per reason, date, attrdist version) and ends with the run's full configuration. Then one
table per metric: a row per method; the vanilla mean with its bootstrap 95% interval, and for each VAR variant
its mean and its change against vanilla, each with its interval, the change marked better or worse by the
metric's registered direction (a falling sanity similarity or deletion AUC is an improvement); the maps each
variant could not score (``n/N``); an average-change row over methods. A variant is compared with vanilla on the
maps both could score (:mod:`~attrdist.bench.results`, the one aggregation); maps that cannot be scored
(all zero, constant or non-finite) and the other count metrics are shown as ``n/N``, never averaged.
The benchmark that wrote the run (looked up by the caller, ``attrdist report``, in the registry and handed in)
names the unit its table summarises and draws its figures.

The package: :mod:`.tables` (the records aggregated into tables, the header and sections as plain text),
:mod:`.formats` (Markdown, LaTeX, HTML, CSV, :func:`write_report`) and :mod:`.figures`.

Names come from a results database, which may come from someone else: every format escapes them (HTML, TeX,
Markdown table cells, spreadsheet formulas in CSV cells), and figure file names derived from them are sanitised
and kept apart.
"""

from .figures import bar_plots, curve_plots, frontier_plot, sanity_plot
from .formats import ReportHooks, csv_rows, html, latex, markdown, report_benchmark, run_folders, write_report
from .tables import Section, Table, header, sections, summarize

__all__ = ["ReportHooks", "Section", "Table", "bar_plots", "csv_rows", "curve_plots", "frontier_plot", "header",
           "html", "latex", "markdown", "report_benchmark", "run_folders", "sanity_plot", "sections", "summarize",
           "write_report"]
