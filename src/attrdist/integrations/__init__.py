"""Integrations: attrdist where users already are, in the libraries they evaluate and compose attributions with.

* :mod:`attrdist.integrations.quantus`: :func:`~attrdist.integrations.quantus.explain`, an ``explain_func`` for
  Quantus metrics (vanilla or VAR-refined maps of any registered method);
* :mod:`attrdist.integrations.captum`: :class:`~attrdist.integrations.captum.VARAttribution`, a Captum
  ``Attribution`` (it sits inside ``captum.attr.NoiseTunnel`` like any Captum method).

Importing this package imports nothing heavy; each submodule imports torch (and Captum) when imported itself.
``docs/integrations.md`` shows both at work.
"""

__all__: list[str] = []
