"""attrdist's own processes keep freed memory for reuse (glibc's mallopt), and leave it alone on request."""

import subprocess
import sys

import pytest

CHECK = "from attrdist._memory import reuse_freed_memory; print(reuse_freed_memory(), reuse_freed_memory())"


def _run(env_extra):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "ATTRDIST_MALLOC"}
    return subprocess.run([sys.executable, "-c", CHECK], env={**env, **env_extra}, capture_output=True, text=True,
                          check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_settings_applied_once_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _run({}) == ["True", "True"]


@pytest.mark.parametrize("env", [{"ATTRDIST_MALLOC": "default"}, {"MALLOC_ARENA_MAX": "2"}])
def test_left_alone_on_request(env):
    assert _run(env) == ["False", "False"]
