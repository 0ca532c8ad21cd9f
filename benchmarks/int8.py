"""int8 (OpenVINO + NNCF post-training quantization) against fp32 and bf16: retrieval quality,
forward and ingest throughput, and JPEG draft decoding. Prints one JSON object.

- quality: leave-one-out kNN precision@10 by label (cosine, the subfolder is the label) on
  flowers102 and oxford-buildings, decoded as ingest decodes (JPEG draft on), for fp32, bf16 and
  int8 calibrated on another set (cats-dogs) and on the evaluated set itself (a collection's own
  photos, the documented use); fp32 again with draft off (does draft decoding change precision?);
  the mean and minimum cosine of each to fp32;
- forward: images/s of the bare forward (preprocess + network, batch 32 as ingest) on pre-decoded
  cats-dogs images for TF fp32, ONNX Runtime fp32, OpenVINO fp32, bf16 and int8, in alternating rounds;
- end to end: ``Ingester.run`` of cats-dogs with the defaults (runtime and precision auto) and with
  precision int8 (calibrated on the same folder), alternating with the forward rounds;
- decode: one thread, read + hash + decode + thumbnail + model resize, with and without draft mode,
  on the shared photos and on 4000x3000 (12 MP) JPEGs upscaled from them.

Usage: nice -n 10 python benchmarks/int8.py [--rounds 2] [--large 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py
from ingest import decode_rate, large_jpegs  # noqa: E402  benchmarks/ingest.py

DATASETS = ROOT.parent / "shared" / "datasets"
if not DATASETS.is_dir():
    DATASETS = Path("/work/shared/datasets")


def pixels_of(paths, size: int, draft: bool) -> np.ndarray:
    from simsearch.images import THUMBNAIL_SIDE, load_image, resize_for_model

    return np.stack([resize_for_model(load_image(p, draft_size=size if draft else None,
                                                 draft_long=THUMBNAIL_SIDE if draft else 0).image, size) for p in paths])


def cosines(a: np.ndarray, b: np.ndarray) -> dict:
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"mean": round(float(c.mean()), 5), "min": round(float(c.min()), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--large", type=int, default=8, help="12 MP JPEGs to make for the decode figures")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--speed-only", action="store_true",
                    help="skip the precision@10 pass over the shared sets (forward, ingest and decode rates only)")
    args = ap.parse_args()

    from simsearch.analysis.neighbours import knn_precision
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.embedding.embedder import Embedder
    from simsearch.errors import RuntimeRefused
    from simsearch.images import scan_images
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.spaces import parse, space_key

    work = Path(tempfile.mkdtemp(prefix="simsearch-int8-"))
    weights = Path(os.environ.get("SIMSEARCH_WEIGHTS_DIR", work / "weights"))
    other = DATASETS / "cats-dogs"
    bs = args.batch_size

    def embedder(precision: str, runtime: str = "openvino", calibration: Path | None = None) -> Embedder:
        emb = Embedder(parse(space_key(args.backbone, "avg", precision)), weights, runtime=runtime, device="cpu",
                       calibration=calibration)
        t0 = time.perf_counter()
        emb.load()
        log(f"{emb.numerics} ({emb.session.source}, {time.perf_counter() - t0:.1f} s, probe cosine "
            f"{emb.session.validation})")
        return emb

    def embed(emb: Embedder, pixels: np.ndarray) -> np.ndarray:
        return np.concatenate([emb.embed(pixels[i:i + bs]) for i in range(0, len(pixels), bs)])

    # Quality.
    fp32 = embedder("fp32", "onnxruntime")
    try:
        bf16 = embedder("bf16")
    except RuntimeRefused as e:  # a CPU without AVX512-BF16 or AMX: no bf16 space to measure
        log(f"bf16 skipped: {e}")
        bf16 = None
    int8_other = embedder("int8", calibration=other)
    size = fp32.input_size
    quality, decode_sets = {}, {}
    for name in ("flowers102", "oxford-buildings"):
        paths = sorted(scan_images(DATASETS / name))
        decode_sets[name] = paths[:200]
        if args.speed_only:
            continue
        labels = [p.parent.name for p in paths]
        px = pixels_of(paths, size, True)
        px_plain = pixels_of(paths, size, False)
        ref = embed(fp32, px)
        vecs = {"fp32": ref, "fp32_draft_off": embed(fp32, px_plain),
                **({"bf16": embed(bf16, px)} if bf16 else {}),
                "int8_calibrated_on_cats_dogs": embed(int8_other, px),
                "int8_calibrated_on_this_set": embed(embedder("int8", calibration=DATASETS / name), px)}
        p10 = {k: round(knn_precision(v, labels, 10), 4) for k, v in vecs.items()}
        quality[name] = {"images": len(paths), "labels": len(set(labels)), "precision_at_10": p10,
                         "minus_fp32": {k: round(v - p10["fp32"], 4) for k, v in p10.items() if k != "fp32"},
                         "cosine_to_fp32": {k: cosines(v, ref) for k, v in vecs.items() if k != "fp32"}}
        log(f"{name}: {p10}")

    # Forward throughput, alternating with end-to-end ingests.
    runners = {"tensorflow_fp32": embedder("fp32", "keras"), "onnxruntime_fp32": fp32,
               "openvino_fp32": embedder("fp32", "openvino"), "openvino_bf16": bf16, "openvino_int8": int8_other}
    runners = {k: v for k, v in runners.items() if v is not None}
    paths = sorted(scan_images(other))
    px = pixels_of(paths, size, True)
    n_full = (len(px) // bs) * bs
    files, _ = files_from_folder(other, labels="folders")

    def ingest_once(home: Path, precision: str | None):
        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}", weights_path=weights,
                                     int8_calibration=other)
        services = AppContext.open(settings, schema="upgrade")
        try:
            space = services.new_space(args.backbone, "avg", precision)
            services.embedder(space).load()  # the model's opening is not ingest throughput
            t0 = time.perf_counter()
            report = Ingester(services, spaces=[space], batch_size=bs).run("bench", files, source=str(other))
            seconds = time.perf_counter() - t0
            assert report.added == len(paths), report.errors
            return len(paths) / seconds, services.embedder(space).numerics
        finally:
            services.close()

    bare = {k: [] for k in runners}
    e2e = {"defaults": [], "int8": []}
    e2e_runtime = {}
    for r in range(args.rounds):
        for label, emb in runners.items():
            emb.embed(px[:bs])
            t0 = time.perf_counter()
            for i in range(0, n_full, bs):
                emb.embed(px[i:i + bs])
            bare[label].append(n_full / (time.perf_counter() - t0))
        for label, precision in (("defaults", None), ("int8", "int8")):
            rate, e2e_runtime[label] = ingest_once(work / f"home-{label}-{r}", precision)
            e2e[label].append(rate)
        log(f"round {r}: {[(k, round(v[-1], 1)) for k, v in bare.items()]}, end to end "
            f"{[(k, round(v[-1], 1)) for k, v in e2e.items()]}, load {os.getloadavg()}")
    median = {k: float(np.median(v)) for k, v in bare.items()}
    tf = median["tensorflow_fp32"]

    # Decode, one thread.
    big_dir = work / "large"
    big_dir.mkdir()
    bigs = large_jpegs(paths, big_dir, args.large)
    decode = {}
    for name, sample in [("cats_dogs", paths[:200]), *decode_sets.items()]:
        datas = [p.read_bytes() for p in sample]
        decode[name] = {"draft_off": round(decode_rate(datas, size, False, 4.0), 1),
                        "draft_on": round(decode_rate(datas, size, True, 4.0), 1)}
    decode["12mp_4000x3000"] = {"draft_off": round(decode_rate(bigs, size, False, 6.0), 1),
                                "draft_on": round(decode_rate(bigs, size, True, 6.0), 1)}

    emit({
        "benchmark": "int8", "backbone": args.backbone, "batch_size": bs, "rounds": args.rounds,
        "numerics": {k: v.numerics for k, v in runners.items()},
        "quality": quality,
        "bare_forward_images_per_s": {k: round(v, 1) for k, v in median.items()},
        "bare_forward_runs": {k: [round(x, 1) for x in v] for k, v in bare.items()},
        "bare_forward_over_tf_fp32": {k: round(v / tf, 2) for k, v in median.items()},
        "end_to_end_images_per_s": {k: round(float(np.median(v)), 1) for k, v in e2e.items()},
        "end_to_end_runs": {k: [round(x, 1) for x in v] for k, v in e2e.items()},
        "end_to_end_runtime": e2e_runtime,
        "end_to_end_over_tf_fp32_bare": {k: round(float(np.median(v)) / tf, 2) for k, v in e2e.items()},
        "decode_one_thread_images_per_s": decode,
    }, indent=2)


if __name__ == "__main__":
    main()
