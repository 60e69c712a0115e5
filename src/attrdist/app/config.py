"""The explorer's settings: each field an ``attrdist serve`` option (a light module: the help needs no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..options import opt

__all__ = ["AppConfig"]


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    """Settings of the web explorer (each field is an ``attrdist serve`` option; none comes from a request).

    Attributes:
        host: Address to bind (default: localhost only).
        port: Port (0: any free port).
        models: The models offered; requests choose among these names only.
        device: Torch device.
        max_upload_mb: Largest accepted upload.
        max_megapixels: Largest accepted image, decoded (decompression bombs are refused before decoding).
        cache_size: Explanations kept for the VAR controls.
        workers: Attribution jobs run at once.
        queue: Jobs that may wait for a worker; more get 503 with ``Retry-After``.
        trust_checkpoint: Allow checkpoint files among ``models`` that hold pickled code (unpickling runs it).
        request_timeout: Longest an attribution request may take, in seconds, waiting for a worker included
            (a longer one is stopped and answered 422); 0: no limit. A request whose client disconnects is stopped
            as well.
        header_timeout: Longest the request line and headers may take to arrive, in seconds (a slower client gets
            408 and its connection closed; an idle kept-alive connection is closed after as long).
        body_timeout: Longest an upload may take to arrive, in seconds (then 408).
        max_answer_mb: Largest answer of ``/api/var`` and ``/api/maps`` (a larger one is refused with 422).
        allowed_hosts: Host names the server answers to besides ``localhost`` and IP addresses (a request whose
            ``Host`` header names another host is refused: what a DNS-rebinding page would send); ``*``: any.
    """

    host: str = field(default="127.0.0.1", metadata=opt("address to bind (127.0.0.1: this machine only)"))
    port: int = field(default=7860, metadata=opt("port (0: any free port)"))
    models: tuple[str, ...] = field(default=("efficientnet_lite0",), metadata=opt(
        "comma-separated models offered; requests choose among these names only"))
    device: str = field(default="cpu", metadata=opt("torch device"))
    max_upload_mb: float = field(default=10.0, metadata=opt("largest accepted upload in MB"))
    max_megapixels: float = field(default=50.0, metadata=opt("largest accepted image in megapixels"))
    cache_size: int = field(default=16, metadata=opt("explanations kept for the instant VAR controls"))
    workers: int = field(default=1, metadata=opt("attribution jobs run at once"))
    queue: int = field(default=32, metadata=opt("jobs that may wait for a worker (more: 503 Retry-After)"))
    request_timeout: float = field(default=120.0, metadata=opt(
        "longest an attribution request may take in seconds (then it stops with a clear error); 0: no limit"))
    header_timeout: float = field(default=10.0, metadata=opt(
        "longest the request line and headers may take to arrive in seconds (a slower client gets 408)"))
    body_timeout: float = field(default=60.0, metadata=opt(
        "longest an upload may take to arrive in seconds (a slower client gets 408)"))
    max_answer_mb: float = field(default=64.0, metadata=opt(
        "largest answer of the VAR controls and the maps download in MB (larger: 422)"))
    trust_checkpoint: bool = field(default=False, metadata=opt(
        "allow --models checkpoint files that hold pickled code (unpickling runs it: only files you trust)"))
    allowed_hosts: tuple[str, ...] = field(default=(), metadata=opt(
        "comma-separated host names served besides localhost and IP addresses (the names users type to reach "
        "this machine); '*': any (no DNS-rebinding protection)"))

    def __post_init__(self) -> None:
        for name in ("models", "allowed_hosts"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, tuple(m.strip().lower() for m in getattr(self, name).split(",")
                                                     if m.strip()) if name == "allowed_hosts"
                                   else tuple(m for m in getattr(self, name).split(",") if m))
        if not self.models:
            raise ValueError("the explorer needs at least one model")
        for name in ("max_upload_mb", "max_megapixels", "header_timeout", "body_timeout", "max_answer_mb"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be a positive, finite number, got {getattr(self, name)}")
        if not 0 <= self.request_timeout < float("inf"):
            raise ValueError(f"request_timeout must be a finite number of seconds >= 0 (0: no limit), "
                             f"got {self.request_timeout}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port {self.port}: a port is 0-65535 (0: any free port)")
        if self.cache_size < 1 or self.workers < 1 or self.queue < 0:
            raise ValueError("cache_size and workers must be >= 1 and queue >= 0")
