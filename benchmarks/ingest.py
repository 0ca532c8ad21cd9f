"""Embedding and ingest throughput with the default backbone, every runtime side by side. Prints one JSON object.

In one run, in alternating rounds (the host's speed drifts from minute to minute, so every
figure is the median of its rounds and each ratio is taken within a round):

- bare forward (images/s of the backbone's normalisation + the network on pre-decoded,
  pre-resized uint8 tensors at the ingest batch size): TensorFlow/Keras fp32 (the reference),
  then each installed runtime at fp32 and bf16, with the minimum cosine to TF fp32 over all images
  (a runtime that refuses a precision here is listed with its reason);
- end to end: `Ingester.run` with the defaults (runtime and precision `auto`: bf16 where the CPU
  has AMX / AVX512-BF16) into a fresh SQLite store: read, hash, decode, thumbnail, resize,
  forward, SQL commit per batch, index update; and the same with precision fp32;
- naive: the classic tutorial loop (keras.utils.load_img + img_to_array + model.predict on one
  image + one INSERT/commit per image) on the first --naive-count images;
- decode only, one thread: read + decode + thumbnail + resize per image, on the dataset and on
  large JPEGs made in a temporary folder (4000x3000), without and with JPEG draft mode.

Also: the CPU model and the flags that decide the runtime and precision, and the load average
(`uptime`) before and after, since other processes on the host skew the figures.

Usage: python benchmarks/ingest.py [--data ../shared/datasets/cats-dogs] [--batch-size 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def decode_rate(datas: list[bytes], size: int, draft: bool, seconds: float = 6.0) -> float:
    """Images/s of one thread: decode + thumbnail + model resize (as ingest does per file)."""
    from simsearch.images import THUMBNAIL_SIDE, content_hash, decode_image, make_thumbnail, resize_for_model

    n, t0 = 0, time.perf_counter()
    while True:
        for data in datas:
            content_hash(data)
            img = decode_image(data, draft_size=size if draft else None, draft_long=THUMBNAIL_SIDE if draft else 0,
                               max_pixels=200_000_000)
            make_thumbnail(img.image)
            resize_for_model(img.image, size)
            n += 1
        if time.perf_counter() - t0 >= seconds:
            return n / (time.perf_counter() - t0)


def large_jpegs(paths: list[Path], folder: Path, count: int) -> list[bytes]:
    """``count`` 4000x3000 JPEGs (quality 90) made by upscaling dataset images."""
    from PIL import Image

    out = []
    for i, p in enumerate(paths[:count]):
        with Image.open(p) as im:
            big = im.convert("RGB").resize((4000, 3000), Image.BICUBIC)
        buf = io.BytesIO()
        big.save(buf, format="JPEG", quality=90)
        (folder / f"large{i}.jpg").write_bytes(buf.getvalue())
        out.append(buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "cats-dogs"))
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--naive-count", type=int, default=100)
    ap.add_argument("--workers", type=int, default=None, help="decoding threads (default: as ingest)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians are reported)")
    ap.add_argument("--keras-bf16", action="store_true", help="also TensorFlow with Keras mixed_bfloat16 (slow without bf16 hardware)")
    ap.add_argument("--large", type=int, default=12, help="4000x3000 JPEGs to make for the decode figure")
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.embedding.embedder import Embedder
    from simsearch.spaces import parse, space_key
    from simsearch.images import load_image, resize_for_model, scan_images
    from simsearch.ingest import Ingester, default_workers, files_from_folder
    from simsearch.embedding.runtimes import BF16, FP32, RuntimeRefused, cpu_summary, get_runtime, runtime_names
    from simsearch.context import AppContext

    load_before = load_average()
    data = Path(args.data)
    paths = list(scan_images(data))
    work = Path(tempfile.mkdtemp(prefix="simsearch-bench-"))
    weights = Path(os.environ.get("SIMSEARCH_WEIGHTS_DIR", work / "weights"))
    bs = args.batch_size

    # The runners: TF fp32 first (the reference), then every other runtime at fp32 and bf16.
    runners: dict[str, Embedder] = {}
    refused: dict[str, str] = {}
    load_seconds: dict[str, float] = {}
    order = [("keras", FP32)] + [(rt, pr) for pr in (FP32, BF16) for rt in runtime_names() if rt != "keras"]
    if args.keras_bf16:
        order.append(("keras", BF16))
    for rt, precision in order:
        label = f"{'tensorflow' if rt == 'keras' else rt}_{precision}"
        why = get_runtime(rt).unavailable()
        if why:
            refused[label] = why
            continue
        emb = Embedder(parse(space_key(args.backbone, "avg", precision)), weights, runtime=rt, device="cpu")
        try:
            t0 = time.perf_counter()
            emb.load()
            load_seconds[label] = round(time.perf_counter() - t0, 2)
            runners[label] = emb
            log(f"{label}: {emb.numerics} ({load_seconds[label]} s)")
        except RuntimeRefused as exc:
            refused[label] = exc.message
    size = runners["tensorflow_fp32"].input_size

    pixels = np.stack([resize_for_model(load_image(p).image, size) for p in paths])
    n_full = (len(pixels) // bs) * bs
    reference = runners["tensorflow_fp32"].embed(pixels[:n_full])
    cosine = {label: round(cosine_min(emb.embed(pixels[:n_full]), reference), 7) for label, emb in runners.items()}

    log(f"cosines {cosine}")
    bare: dict[str, list[float]] = {label: [] for label in runners}
    e2e_runs, e2e_over_tf, runtime_used = [], [], None
    e2e_fp32_runs, runtime_fp32 = [], None
    files, _ = files_from_folder(data, labels="folders")

    def ingest_once(home: Path, precision: str | None):
        """Ingest the dataset into a fresh SQLite store; (images/s, the runtime that embedded)."""
        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}", weights_path=weights)
        services = AppContext.open(settings, schema="upgrade")
        try:
            t0 = time.perf_counter()
            space = services.new_space(args.backbone, "avg", precision)
            report = Ingester(services, spaces=[space], batch_size=bs, workers=args.workers).run("bench", files, source=str(data))
            seconds = time.perf_counter() - t0
            assert report.added == len(paths), report.errors
            return len(paths) / seconds, services.embedder(space).numerics
        finally:
            services.close()

    for r in range(args.rounds):
        for label, emb in runners.items():
            emb.embed(pixels[:bs])  # warm
            t0 = time.perf_counter()
            for i in range(0, n_full, bs):
                emb.embed(pixels[i : i + bs])
            bare[label].append(n_full / (time.perf_counter() - t0))
        rate, runtime_used = ingest_once(work / f"home{r}", None)  # the defaults: runtime and precision auto
        e2e_runs.append(rate)
        e2e_over_tf.append(rate / bare["tensorflow_fp32"][-1])
        rate, runtime_fp32 = ingest_once(work / f"home{r}-fp32", FP32)
        e2e_fp32_runs.append(rate)
        log(f"round {r}: bare {[(k, round(v[-1], 1)) for k, v in bare.items()]}, end to end {e2e_runs[-1]:.1f} "
            f"(fp32 {e2e_fp32_runs[-1]:.1f}), load {load_average()}")
    median = {label: float(np.median(v)) for label, v in bare.items()}
    tf = median["tensorflow_fp32"]
    e2e = float(np.median(e2e_runs))

    # Naive tutorial loop (TensorFlow, one image at a time, one commit per image).
    import keras

    from simsearch.embedding.runtimes.keras_rt import keras_model

    model = keras_model(_spec(runners["tensorflow_fp32"]))[0]
    conn = sqlite3.connect(work / "naive.sqlite")
    conn.execute("CREATE TABLE v (path TEXT, vec BLOB)")
    subset = paths[: args.naive_count]
    t0 = time.perf_counter()
    for p in subset:
        img = keras.utils.load_img(p, target_size=(size, size))
        arr = keras.utils.img_to_array(img)[None]
        vec = model.predict(runners["tensorflow_fp32"].backbone.preprocess(arr), verbose=0)[0]
        vec = vec / np.linalg.norm(vec)
        conn.execute("INSERT INTO v VALUES (?, ?)", (str(p), vec.astype(np.float32).tobytes()))
        conn.commit()
    naive = len(subset) / (time.perf_counter() - t0)
    log(f"naive {naive:.1f}")

    # Decode only, one thread, without and with draft mode.
    datas = [p.read_bytes() for p in paths]
    big_dir = work / "large"
    big_dir.mkdir()
    bigs = large_jpegs(paths, big_dir, args.large)
    decode = {
        "dataset_no_draft": round(decode_rate(datas, size, False), 1),
        "dataset_draft": round(decode_rate(datas, size, True), 1),
        "large_4000x3000_no_draft": round(decode_rate(bigs, size, False), 2),
        "large_4000x3000_draft": round(decode_rate(bigs, size, True), 2),
    }

    fastest = max((lbl for lbl in median if not lbl.startswith("tensorflow") and lbl.endswith(FP32)),
                  key=lambda lbl: median[lbl], default=None)
    # The runtime and precision `auto` chose for the end-to-end run ("openvino 2026.4.1 bf16 cpu").
    name, _version, chosen_precision = runtime_used.split()[:3]
    chosen = f"{'tensorflow' if name.startswith('keras') else name}_{chosen_precision}"
    has_bf16 = cpu_summary()["cpu_bf16"]
    forward_target = 3.0 if has_bf16 else 2.0
    emit({
        "benchmark": "ingest",
        **cpu_summary(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "load_average_before": load_before, "load_average_after": load_average(),
        "dataset": str(data), "images": len(paths), "backbone": args.backbone, "batch_size": bs, "rounds": args.rounds,
        "decode_workers": args.workers or default_workers(),
        "model_load_seconds": load_seconds,
        "bare_forward_images_per_s": {k: round(v, 1) for k, v in median.items()},
        "bare_forward_runs_images_per_s": {k: [round(x, 1) for x in v] for k, v in bare.items()},
        "bare_forward_over_tf_fp32": {k: round(v / tf, 2) for k, v in median.items()},
        "cosine_min_to_tf_fp32": cosine,
        "refused": refused,
        "end_to_end_runtime": runtime_used,
        "end_to_end_images_per_s": round(e2e, 1),
        "end_to_end_runs_images_per_s": [round(v, 1) for v in e2e_runs],
        "end_to_end_over_tf_fp32_bare": round(float(np.median(e2e_over_tf)), 2),
        "end_to_end_over_tf_fp32_bare_runs": [round(v, 2) for v in e2e_over_tf],
        "end_to_end_fp32_runtime": runtime_fp32,
        "end_to_end_fp32_images_per_s": round(float(np.median(e2e_fp32_runs)), 1),
        "end_to_end_fp32_runs_images_per_s": [round(v, 1) for v in e2e_fp32_runs],
        "end_to_end_fp32_over_tf_fp32_bare": round(float(np.median(e2e_fp32_runs)) / tf, 2),
        "naive_images_per_s": round(naive, 1), "naive_images": len(subset),
        "end_to_end_over_naive": round(e2e / naive, 1),
        "decode_only_images_per_s_one_thread": decode,
        "targets": {
            "chosen_runtime": chosen,
            f"chosen_runtime_forward_over_tf_fp32_at_least_{forward_target:g}": (
                round(median[chosen] / tf, 2) if chosen in median else None,
                bool(chosen in median and median[chosen] / tf >= forward_target)),
            "fastest_fp32_runtime": fastest,
            "fastest_fp32_runtime_forward_over_tf_fp32": round(median[fastest] / tf, 2) if fastest else None,
            "end_to_end_over_tf_fp32_bare_at_least_2": (round(float(np.median(e2e_over_tf)), 2), bool(np.median(e2e_over_tf) >= 2)),
            "end_to_end_over_naive_at_least_10": (round(e2e / naive, 1), bool(e2e / naive >= 10)),
        },
    }, indent=2)


def _spec(emb):
    from simsearch.embedding.runtimes import ModelSpec

    return ModelSpec(emb.backbone, emb.pooling, emb.precision, emb.weights_dir, emb.weights, "cpu")


if __name__ == "__main__":
    main()
