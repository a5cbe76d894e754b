"""hfus_xai_bench.allocator: after keep_freed_memory() a freed large block is reused without page faults."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import torch
    from hfus_xai_bench.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    # activations of 8 x 32 x 224 x 224 floats (51 MiB): above glibc's largest mmap threshold (32 MiB)
    conv = torch.nn.Conv2d
    net = torch.nn.Sequential(conv(3, 32, 3, padding=1), torch.nn.ReLU(), conv(32, 32, 3))
    x = torch.rand(8, 3, 224, 224)
    with torch.inference_mode():
        net(x), net(x)  # warm-up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            net(x)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_freed_memory_is_reused_without_page_faults() -> None:
    pages = 3 * 2 * 8 * 32 * 224 * 224 * 4 // 4096  # two fresh activations per forward, three forwards
    assert _faults("default") > pages // 2  # glibc maps fresh pages for every large activation
    assert _faults("keep") < pages // 100  # the heap's pages are reused


def test_switch_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from hfus_xai_bench import allocator

    monkeypatch.setattr(allocator, "_done", [])
    monkeypatch.setenv(allocator.ENV_SWITCH, "0")
    assert allocator.keep_freed_memory() is False
    assert allocator.keep_freed_memory() is False  # once per process
