"""`make demo`'s report: one self-contained HTML page of pictures and numbers.

Reads what the demo's stages wrote into the demo folder: the dataset
manifest, the runs fvae/, fvae/mask/ and vae/ (metrics.json, best
checkpoints), the evaluation (eval/results.md and its plots and grids,
`fvae_tf.eval.evaluate`), stage times (timings/<stage>, seconds), the
synthetic set's figures, and every PNG or GIF under edit/ and interpolate/.
Every number shown is on the test split except the training runs' own
held-out numbers, which are on val (the split early stopping used).
"""

import base64
import html
import json
import pathlib

import numpy as np

from fvae_tf import atomic_io
from fvae_tf.data import input_pipeline, records
from fvae_tf.train import checkpoints, summaries

_PICTURE_DIRS = ("eval", "edit", "interpolate")
_SYNTHETIC_FIGURES = ("contact_sheet.png", "ground_truth.png")
_METRICS = (("eval/l1", "L1 of the output (true target latent)"),
            ("eval/l1_no_motion", "L1 of the no-motion warp (the source)"),
            ("eval/psnr", "PSNR of the output, dB"),
            ("eval/psnr_no_motion", "PSNR of the no-motion warp, dB"),
            ("eval/epe_px", "flow end-point error vs ground truth, px (visible pixels)"),
            ("eval/epe_px_no_motion", "end-point error of the identity flow, px"),
            ("eval/mask_mae", "mean |confidence - eq. 7 label|"),
            ("best_step", "best checkpoint's step"), ("step", "steps trained"))


def _img(data: bytes, mime: str, caption: str) -> str:
    source = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return (f'<figure><img src="{source}"><figcaption>{html.escape(caption)}</figcaption>'
            "</figure>")


def _png(image: np.ndarray, caption: str) -> str:
    return _img(atomic_io.encode_png(image), "image/png", caption)


def _table(rows: list[list[str]], header: list[str]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    for row in rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>{cells}</table>"


def markdown_to_html(text: str) -> str:
    """The subset of Markdown `report.markdown` writes: headings, tables, bullets, paragraphs."""
    out, table_rows = [], []

    def flush_table():
        if table_rows:
            out.append(_table(table_rows[1:], table_rows[0]))
            table_rows.clear()

    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("|"):
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if not all(set(c) <= {"-"} for c in cells):  # skip the |---| rule
                    table_rows.append(cells)
                continue
            flush_table()
            level = len(line) - len(line.lstrip("#"))
            body = html.escape(line.lstrip("#- ").strip()).replace("**", "")
            if level:
                out.append(f"<h{level + 1}>{body}</h{level + 1}>")
            elif line.startswith("- "):
                out.append(f"<li>{body}</li>")
            else:
                out.append(f"<p>{body}</p>")
        flush_table()
    return "\n".join(out)


def _metrics_table(demo: pathlib.Path) -> str:
    runs = {"FVAE": demo / "fvae", "mask": demo / "fvae" / "mask", "VAE": demo / "vae",
            "VAE (source U-Net)": demo / "vae_unet"}
    reports = {name: json.loads((path / checkpoints.METRICS).read_text())
               for name, path in runs.items() if (path / checkpoints.METRICS).exists()}
    rows = [[label] + [f"{reports[name][key]:.4g}" if key in reports[name] else ""
                       for name in reports]
            for key, label in _METRICS if any(key in r for r in reports.values())]
    return _table(rows, ["training runs, val split"] + list(reports))


def _timings_table(demo: pathlib.Path) -> str:
    """Stage times, then the whole run's: timings/total, the wall time `make demo`
    wrote (its stages overlap, two at a time), else the stages' sum."""
    times = {p.name: int(p.read_text()) for p in sorted((demo / "timings").glob("*"))}
    wall = times.pop("total", None)
    total = ["whole run (wall time)", wall] if wall is not None else [
        "total (sum of stages)", sum(times.values())]
    rows = [[name, f"{seconds // 60}:{seconds % 60:02d}"]
            for name, seconds in [*times.items(), total]]
    return _table(rows, ["stage", "m:ss"])


def _example_grids(demo: pathlib.Path, examples: int) -> list[str]:
    """FVAE, mask and VAE outputs on the first test pairs, with the true target latent."""
    batch = next(iter(input_pipeline.make_dataset(
        demo / "dataset", "test", examples, shuffle=False, flip=False, repeat=False)))
    source, target = batch["source"], batch["target"]
    fvae = checkpoints.load_model(demo / "fvae")
    z = fvae.encode(target)
    coords = fvae.decode_flow(z, source)
    warped = fvae.warp(source, z)
    figures = [_png(summaries.pair_grid(source.numpy(), target.numpy(), warped.numpy(),
                                        coords=coords.numpy()),
                    "FVAE: source | target | warp of the source | flow | L1 error")]
    mask = checkpoints.load_confidence_model(demo / "fvae")
    _, confidence, label, _ = mask.compute_loss_and_outputs(batch, training=False)
    figures.append(_png(summaries.pair_grid(
        source.numpy(), target.numpy(), warped.numpy(), label=label.numpy(),
        confidence=confidence.numpy()),
        "Confidence: source | target | warp | eq. 7 label | M's confidence "
        "(jet, from their minimum in blue to 1 in red)"))
    vae = checkpoints.load_model(demo / "vae")
    output = vae.generate(source, vae.encode(target))
    figures.append(_png(summaries.pair_grid(source.numpy(), target.numpy(), output.numpy()),
                        "VAE baseline: source | target | decoded image | L1 error"))
    return figures


def _picture_files(demo: pathlib.Path) -> list[str]:
    paths = [demo / "synthetic" / name for name in _SYNTHETIC_FIGURES]
    for folder in _PICTURE_DIRS:
        paths += sorted(p for p in (demo / folder).rglob("*") if p.suffix in (".png", ".gif"))
    return [_img(p.read_bytes(), f"image/{p.suffix[1:]}", str(p.relative_to(demo)))
            for p in paths if p.is_file()]


def build_report(demo: str | pathlib.Path, examples: int = 6) -> str:
    """The report page of a finished demo folder.

    Raises:
      checkpoints.CheckpointError, records.RecordsError: a stage has not run.
      FileNotFoundError: no evaluation (eval/results.md).
    """
    demo = pathlib.Path(demo)
    manifest = records.read_manifest(demo / "dataset")
    splits = [[name, str(len(s.identities)), str(s.num_images), str(s.num_pairs)]
              for name, s in manifest.splits.items()]
    evaluation = (demo / "eval" / "results.md").read_text()
    return "\n".join([
        "<!doctype html><meta charset=utf-8><title>fvae demo</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "td,th{padding:2px 10px;text-align:right}img{max-width:100%}</style>",
        "<h1>fvae demo</h1>",
        "<p>Synthetic faces, FVAE (demo preset), its confidence mask and the VAE baselines, "
        "evaluated on test identities no training decision saw (experiments.evaluate).</p>",
        "<h2>Data</h2>", _table(splits, ["split", "identities", "images", "pairs"]),
        markdown_to_html(evaluation),
        "<h2>Training runs</h2>", _metrics_table(demo),
        "<h2>Test examples</h2>", *_example_grids(demo, examples),
        "<h2>Pictures</h2>", *_picture_files(demo),
        "<h2>Time per stage</h2>", _timings_table(demo),
    ])
