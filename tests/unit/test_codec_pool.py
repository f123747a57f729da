"""JPEG 2000 over worker processes (distortions/functional/codec_pool.py): same bytes as in-process, the pool is
really used, a broken pool falls back with one warning, bad settings fail naming the variable."""

from __future__ import annotations

import warnings

import pytest
import torch

from iqa_bench import distortions
from iqa_bench.distortions.functional.compression import jpeg2000
from iqa_bench.utils import codec_pool


@pytest.fixture
def fresh_pool():
    codec_pool.reset()
    yield
    codec_pool.reset()


def _images(n: int = 6, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear").clamp(0, 1)


def test_pool_gives_the_same_images_as_in_process(monkeypatch, fresh_pool):
    x = _images()
    ratio = torch.tensor([8.0, 16.0, 32.0, 64.0, 128.0, 16.0])
    monkeypatch.setenv(codec_pool.ENV, "0")
    serial = jpeg2000(x, ratio)
    assert codec_pool.last_mode == "serial"
    monkeypatch.setenv(codec_pool.ENV, "2")
    pooled = jpeg2000(x, ratio)
    assert codec_pool.last_mode == "pool"
    assert torch.equal(serial, pooled)
    assert len(codec_pool.worker_pids(8)) == 2  # both workers were started and serve tasks
    assert not torch.equal(pooled[1], pooled[4])  # the per-image ratios reached the workers in order


def test_bank_sends_a_whole_cpu_batch_of_jpeg2000_to_the_pool(monkeypatch, fresh_pool):
    monkeypatch.setenv(codec_pool.ENV, "2")
    seen: list[int] = []
    real = codec_pool.submit_images

    def spy(fn, images, params):
        seen.append(len(images))
        return real(fn, images, params)

    monkeypatch.setattr(codec_pool, "submit_images", spy)
    distortions.apply("jpeg2000", _images(n=20, size=32), torch.arange(20) % 5 + 1)
    assert seen == [20]  # one call, not chunks of 8
    plan = distortions.DistortionPlan(torch.full((20, 1), _JPEG2000), torch.arange(20).view(20, 1) % 5 + 1)
    distortions.apply_plan(_images(n=20, size=32), plan)
    assert seen == [20, 20]  # a composition step too


_JPEG2000 = distortions.names().index("jpeg2000")


def test_submit_returns_before_the_images_are_coded(monkeypatch, fresh_pool):
    """The caller goes on while the workers code: submit is fast, collect gives the in-process results."""
    import time

    monkeypatch.setenv(codec_pool.ENV, "2")
    images = _u8_images()
    codec_pool.map_images(codec_pool.jpeg2000_round_trip, images, [16, 32, 64])  # start the workers
    t0 = time.perf_counter()
    collect = codec_pool.submit_images(_slow_round_trip, images, [16, 32, 64])
    submitted = time.perf_counter() - t0
    out = collect()
    assert submitted < 0.25 <= time.perf_counter() - t0  # each image sleeps 0.25 s in a worker
    assert codec_pool.last_mode == "pool"
    serial = [codec_pool.jpeg2000_round_trip(i, r) for i, r in zip(images, [16, 32, 64])]
    assert all((a == b).all() for a, b in zip(out, serial))


def test_a_pool_that_cannot_start_falls_back_with_one_warning(monkeypatch, fresh_pool):
    monkeypatch.setenv(codec_pool.ENV, "2")

    def broken(n):
        raise OSError("no processes here")

    monkeypatch.setattr(codec_pool, "_get_pool", broken)
    x, ratio = _images(n=3), torch.tensor([16.0, 32.0, 64.0])
    assert codec_pool.parallel_workers() == 2
    with pytest.warns(RuntimeWarning, match="IQA_CODEC_WORKERS") as rec:
        first = jpeg2000(x, ratio)
    assert len(rec) == 1 and codec_pool.last_mode == "serial"
    assert codec_pool.parallel_workers() == 0  # the bank no longer leaves cores to workers that do not exist
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = jpeg2000(x, ratio)  # no second warning
    monkeypatch.setenv(codec_pool.ENV, "0")
    assert torch.equal(first, second) and torch.equal(first, jpeg2000(x, ratio))


def test_one_worker_means_in_process(monkeypatch, fresh_pool):
    monkeypatch.setenv(codec_pool.ENV, "1")
    assert codec_pool.codec_workers() == 1 and codec_pool.parallel_workers() == 0
    monkeypatch.setenv(codec_pool.ENV, "3")
    assert codec_pool.parallel_workers() == 3


@pytest.mark.parametrize("bad", ["two", "-1", "1.5"])
def test_bad_worker_setting_names_the_variable(monkeypatch, bad):
    monkeypatch.setenv(codec_pool.ENV, bad)
    with pytest.raises(ValueError, match=f"IQA_CODEC_WORKERS.*{bad}"):
        codec_pool.codec_workers()


def test_default_worker_count_is_shared_between_local_ranks(monkeypatch):
    monkeypatch.delenv(codec_pool.ENV, raising=False)
    monkeypatch.setattr(codec_pool, "_usable_cpus", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert codec_pool.codec_workers() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setattr(codec_pool, "_usable_cpus", lambda: 64)
    assert codec_pool.codec_workers() == codec_pool.MAX_DEFAULT_WORKERS


def _slow_round_trip(img, ratio):
    import time

    time.sleep(0.25)
    return codec_pool.jpeg2000_round_trip(img, ratio)


def _u8_images() -> list:
    return list((_images(n=3) * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy())


def _code_in_forked_child(queue, images) -> None:
    # numpy + Pillow only in the child (torch's OpenMP pool does not survive fork; data-loading workers use 1 thread)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = codec_pool.map_images(codec_pool.jpeg2000_round_trip, images, [16, 32, 64])
    queue.put(([o.tolist() for o in out], codec_pool.last_mode, [str(w.message) for w in caught]))


def test_a_forked_child_codes_in_process_instead_of_using_its_parents_pool(monkeypatch, fresh_pool):
    """A data-loading worker forked after the pool started must not hang on (or warn about) the parent's pool."""
    import multiprocessing as mp

    import numpy as np

    monkeypatch.setenv(codec_pool.ENV, "2")
    images = _u8_images()
    parent = codec_pool.map_images(codec_pool.jpeg2000_round_trip, images, [16, 32, 64])
    assert codec_pool.last_mode == "pool"
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_code_in_forked_child, args=(queue, images))
    child.start()
    child_out, mode, caught = queue.get(timeout=60)
    child.join(timeout=60)
    assert not any("unavailable" in w for w in caught), caught  # silently in-process
    assert child.exitcode == 0 and mode == "serial"
    assert all(np.array_equal(np.array(c, dtype=np.uint8), p) for c, p in zip(child_out, parent))
    assert len(codec_pool.worker_pids(4)) == 2  # the parent's pool still works


def test_workers_start_without_importing_the_main_module(tmp_path):
    """A training entry point imports torch, Lightning and Hydra; its codec workers must not (memory, start-up)."""
    import subprocess
    import sys

    script = tmp_path / "entry.py"
    script.write_text(
        "import torch  # noqa: F401  (a heavy main module)\n"
        "from iqa_bench.utils import codec_pool\n"
        "if __name__ == '__main__':\n"
        "    codec_pool._get_pool(2)\n"
        "    print(sorted({tuple(m) for m in codec_pool._pool.map(codec_pool._heavy_modules_loaded, range(4))}))\n"
        "    print(__file__)\n"
    )
    env = {**__import__("os").environ, "IQA_CODEC_WORKERS": "2"}
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    loaded, main_file = res.stdout.strip().splitlines()[-2:]
    assert loaded == "[()]"  # no worker imported torch, lightning or hydra
    assert main_file == str(script)  # the main module's __file__ is back after the pool started


def test_workers_end_when_their_parent_dies_without_shutting_them_down(tmp_path):
    """A hard exit (os._exit after SIGTERM's grace period, SIGKILL) must not leave codec workers behind: they would
    hold the parent's stdout/stderr open, so whoever waits for the output (a scheduler, a test) waits forever."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "entry.py"
    script.write_text(
        "import os\n"
        "from iqa_bench.utils import codec_pool\n"
        "if __name__ == '__main__':\n"
        "    print(sorted(codec_pool.worker_pids(8) if codec_pool._get_pool(2) else []), flush=True)\n"
        "    os._exit(143)\n"
    )
    env = {**os.environ, "IQA_CODEC_WORKERS": "2"}
    t0 = time.time()
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 143, res.stderr
    pids = [int(p) for p in res.stdout.strip().strip("[]").split(",")]
    assert len(pids) == 2 and time.time() - t0 < 30  # the pipes closed: the workers did not keep them open
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)
