"""The evaluation's outputs for people: Markdown tables, the paper's orderings, plots, grids.

`markdown(results)` writes one table per block, with the paper's Table 1
PSNR beside ours, and states which of the paper's orderings hold here
(`orderings`). `write_plots` draws bars per method and per-step curves with
matplotlib; `write_grids` lays every method's outputs side by side on the
same test faces. Every number comes from `results` (the `results.json`
dictionary); a value that is NaN or None prints as "-".
"""

import math
import os
import pathlib

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fvae_tf import atomic_io, viz  # noqa: E402
from fvae_tf.eval import table1  # noqa: E402

_COLUMNS = (("psnr", "PSNR dB", 2), ("ssim", "SSIM", 3), ("l1", "L1", 4),
            ("sharpness", "sharpness", 3), ("epe_visible", "EPE visible px", 3),
            ("epe_moving", "EPE moving px", 3),
            ("epe_moving_face", "EPE moving px, inside face", 3),
            ("mouth_width", "mouth width / IOD", 3),
            ("width_error", "width error", 3), ("corner_lift", "corner lift / IOD", 3),
            ("lift_error", "lift error", 3), ("lip_thickness", "lip thickness / IOD", 3),
            ("lower_lip_drop", "lower lip drop / IOD", 3),
            ("closed_share", "mouth distance closed", 2),
            ("closed_share_pooled", "mouth distance closed, pooled", 2),
            ("identity_distance", "identity distance", 3),
            ("identity_distance_p90", "identity distance, 90th pct", 3), ("n", "n", 0))


def _number(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(rows: dict[str, dict], extra: dict[str, dict[str, str]] | None = None) -> str:
    """A Markdown table: one row per method, the columns its metrics have.

    Args:
      rows: method -> {metric: value}; known metrics (`_COLUMNS`) in that order.
      extra: column title -> {method: text}, inserted after PSNR (e.g. the paper's).
    """
    present = [c for c in _COLUMNS if any(c[0] in r for r in rows.values())]
    titles = ["method"] + [title for _, title, _ in present]
    extra = extra or {}
    position = 2 if present and present[0][0] == "psnr" else 1
    titles[position:position] = list(extra)
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for method, values in rows.items():
        cells = [method] + [_number(values.get(key), digits) for key, _, digits in present]
        cells[position:position] = [column.get(method, "") for column in extra.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def interval_table(rows: dict[str, dict]) -> str:
    """Pooled mouth share [95 %] and gain over the mean landmark motion [paired 95 %]."""
    def span(values, key):
        if key not in values:
            return ""
        return (f"{_number(values[key], 3)} [{_number(values[key + '_low'], 3)}, "
                f"{_number(values[key + '_high'], 3)}]")

    lines = ["| method | mouth distance closed, pooled [95 %] | gain over the mean landmark "
             "motion [95 %] |", "|---|---|---|"]
    lines += [f"| {method} | {span(values, 'closed_share_pooled')} | "
              f"{span(values, 'gain_over_mean_motion')} |"
              for method, values in rows.items() if "closed_share_pooled_low" in values]
    return "\n".join(lines)


def step_table(by_step: dict[str, dict[str, dict]], metric: str, digits: int = 2) -> str:
    """Methods x steps of one metric (e.g. PSNR per intensity)."""
    steps = list(by_step)
    methods = list(dict.fromkeys(m for step in by_step.values() for m in step))
    lines = ["| method | " + " | ".join(steps) + " |", "|" + "---|" * (len(steps) + 1)]
    for method in methods:
        cells = [_number(by_step[s].get(method, {}).get(metric), digits) for s in steps]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _value(rows: dict, method: str, metric: str) -> float:
    value = rows.get(method, {}).get(metric)
    return math.nan if value is None else float(value)


def orderings(results: dict) -> list[tuple[str, bool | None, str]]:
    """The paper's claims, checked on these numbers.

    Returns:
      (claim, verdict, evidence): verdict True/False, or None for a tie
      (within 0.1 %) or a value that is missing.
    """
    out = []
    rows = results.get("table1", {})
    vaes = [m for m in rows if m.startswith("VAE")]
    flows = [m for m in rows if m.startswith("optical flow")]
    fvae_psnr = _value(rows, table1.FVAE, "psnr")

    def claim(text, left, right, evidence):
        # Equal to 0.1 %, e.g. a confidence blend of a single source: a tie, neither way.
        testable = (math.isfinite(left) and math.isfinite(right)
                    and abs(left - right) > 1e-3 * max(abs(left), abs(right)))
        out.append((text, (left > right) if testable else None, evidence))

    if vaes:
        best_other = max((_value(rows, m, "psnr") for m in rows if m not in vaes), default=math.nan)
        best_vae = max(_value(rows, m, "psnr") for m in vaes)
        claim("Table 1: the VAE has the highest PSNR", best_vae, best_other,
              f"best VAE {best_vae:.2f} dB vs best other {best_other:.2f} dB")
        vae_sharp = max(_value(rows, m, "sharpness") for m in vaes)
        claim("FVAE is sharper than the VAE", _value(rows, table1.FVAE, "sharpness"), vae_sharp,
              f"sharpness {_value(rows, table1.FVAE, 'sharpness'):.3f} vs {vae_sharp:.3f}")
    if table1.FVAE_CONFIDENCE in rows:
        conf = _value(rows, table1.FVAE_CONFIDENCE, "psnr")
        claim("Confidence helps (FVAE with confidence above FVAE)", conf, fvae_psnr,
              f"{conf:.2f} vs {fvae_psnr:.2f} dB")
    if flows:
        best_flow = max(_value(rows, m, "psnr") for m in flows)
        claim("FVAE above optical flow (PSNR)", fvae_psnr, best_flow,
              f"{fvae_psnr:.2f} vs best flow {best_flow:.2f} dB")
    upsampling = results.get("upsampling", {})
    if upsampling:
        flow_sharp = _value(upsampling, "flow upsampling", "sharpness")
        pixel_sharp = max(_value(upsampling, m, "sharpness") for m in upsampling
                          if m.startswith("pixel"))
        claim("Flow upsampling is sharper than pixel upsampling", flow_sharp, pixel_sharp,
              f"{flow_sharp:.3f} vs {pixel_sharp:.3f}")
    interp = results.get("interpolation", {}).get("overall", {})
    if table1.FVAE in interp:
        fvae_best = max(_value(interp, m, "psnr") for m in (table1.FVAE, table1.FVAE_CONFIDENCE)
                        if m in interp)
        others = max((_value(interp, m, "psnr") for m in interp
                      if m not in (table1.FVAE, table1.FVAE_CONFIDENCE)), default=math.nan)
        claim("FVAE interpolation is closest to the truth (PSNR)", fvae_best, others,
              f"{fvae_best:.2f} vs best baseline {others:.2f} dB")
    return out


def markdown(results: dict) -> str:
    """results.md: the setting, one table per block, the orderings."""
    info = results["setting"]
    parts = [f"# Evaluation on the {info['split']} split of {info['dataset_dir']}",
             f"{info['source']} faces, {info['identities']} people, {info['pairs']} pairs "
             f"evaluated of {info['split_pairs']}; FVAE `{info['fvae_dir']}`"
             + "".join(f"; {name} `{path}`" for name, path in info["vae_dirs"].items()) + "."]
    if "table1" in results:
        paper = {m: f"{v:.2f}" for m, v in table1.PAPER_PSNR.items()}
        parts += ["## Table 1 protocol (true target latent)",
                  "Scores against the true target; sharpness = gradient energy relative to "
                  "the target; EPE against the ground-truth flow (synthetic only).",
                  table(results["table1"], {"paper PSNR (Multi-PIE)": paper}),
                  "\n".join(f"- {note}" for note in results.get("notes", []))]
    if "confidence" in results:
        c = results["confidence"]
        parts += ["## Confidence mask against truth",
                  f"ROC AUC of 1 - M against the target pixels the source does not show "
                  f"({100 * c['hidden_share']:.1f} % of pixels): **{_number(c['auc_mask'], 3)}**; "
                  f"of 1 - eq. 7's label: **{_number(c['auc_label'], 3)}** (0.5: chance). "
                  f"Inside the face (hull of the jaw line and brows, leaving out the crop's "
                  f"padded frame and the rubber-sheet background): 1 - M "
                  f"**{_number(c.get('auc_mask_face'), 3)}**, label "
                  f"**{_number(c.get('auc_label_face'), 3)}**."]
    if "upsampling" in results:
        parts += ["## Flow upsampling (6.4)",
                  "FVAE warp with the true target latent, 64 px to the high-resolution crop; "
                  "sharpness and PSNR against the true high-resolution target.",
                  table(results["upsampling"])]
    if "editing" in results:
        parts += ["## Editing against truth (Algorithm 1, synthetic graded series)",
                  "From the neutral face, factor = intensity; scores against the true "
                  "rendering; EPE over moving pixels.",
                  table(results["editing"]["overall"]), "PSNR by intensity:",
                  step_table(results["editing"]["by_intensity"], "psnr"),
                  "EPE (moving pixels) by intensity:",
                  step_table(results["editing"]["by_intensity"], "epe_moving", 3),
                  "EPE (moving pixels inside the face) by intensity:",
                  step_table(results["editing"]["by_intensity"], "epe_moving_face", 3)]
    if "interpolation" in results:
        parts += ["## Interpolation against truth (6.2, synthetic graded series)",
                  "Inputs: neutral and 100 %; truth: the 25/50/75 % renderings.",
                  table(results["interpolation"]["overall"]), "PSNR by step:",
                  step_table(results["interpolation"]["by_step"], "psnr")]
    if results.get("real_editing", {}).get("rows"):
        real = results["real_editing"]
        found = ", ".join(f"{m} {100 * v:.0f} %" for m, v in real["faces_found"].items())
        parts += ["## Editing real faces against their own smile",
                  f"{real['people']} test people, neutral -> smile at factor 1 (no target "
                  "latent). PSNR of the 64 px crops against the real smile; dlib landmarks on "
                  "the high-resolution crops: mouth width and corner lift per inter-ocular "
                  "distance (IOD) and their errors against the real smile, the share of the "
                  "neutral-to-real mouth-landmark distance closed (after a similarity fit on "
                  "eyes and nose), lip thickness; identity distance of dlib face embeddings "
                  "to the source (< 0.6: same person for dlib).",
                  table(real["rows"]), f"Faces dlib found: {found}.",
                  "The pooled share with its 95 % bootstrap interval over the people, and its "
                  "gain over the mean landmark motion on the same people with the paired "
                  "interval: an interval that straddles 0 is a tie on these people.",
                  interval_table(real["rows"])]
        if real.get("fitted_direction"):
            parts.append(f"The fitted direction: {real['fitted_direction']}.")
    checks = orderings(results)
    if checks:
        verdicts = {True: "holds", False: "does NOT hold", None: "tie or untestable"}
        parts += ["## The paper's orderings, here", "\n".join(
            f"- {text}: **{verdicts[holds]}** ({evidence})" for text, holds, evidence in checks)]
    return "\n\n".join(parts) + "\n"


def _bars(path: pathlib.Path, rows: dict[str, dict], metric: str, title: str,
          paper: dict[str, float] | None = None) -> None:
    """A bar per method; a row with `<metric>_low` and `_high` gets them as an error bar."""
    methods = [m for m in rows if math.isfinite(_value(rows, m, metric))]
    if not methods:
        return
    figure, axes = plt.subplots(figsize=(max(6.0, 0.9 * len(methods) + 2), 4))
    x = np.arange(len(methods))
    heights = np.array([_value(rows, m, metric) for m in methods])
    spans = np.array([[_value(rows, m, f"{metric}_{end}") for m in methods]
                      for end in ("low", "high")])
    errors = np.nan_to_num(np.abs(spans - heights), nan=0.0) if np.isfinite(spans).any() else None
    axes.bar(x, heights, yerr=errors, capsize=4, label="here")
    if paper:
        marked = [(i, paper[m]) for i, m in enumerate(methods) if m in paper]
        if marked:
            axes.scatter(*zip(*marked), color="red", marker="_", s=400, label="paper")
            axes.legend()
    axes.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _curves(path: pathlib.Path, by_step: dict[str, dict], metric: str, title: str) -> None:
    steps = list(by_step)
    methods = list(dict.fromkeys(m for step in by_step.values() for m in step))
    figure, axes = plt.subplots(figsize=(6, 4))
    for method in methods:
        axes.plot(steps, [_value(by_step[s], method, metric) for s in steps], marker="o",
                  label=method)
    axes.set_title(title)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_plots(folder: str | os.PathLike, results: dict) -> None:
    """PNG plots of every block present in `results`, into `folder`."""
    folder = pathlib.Path(folder)
    if "table1" in results:
        _bars(folder / "table1_psnr.png", results["table1"], "psnr",
              "Table 1 protocol: PSNR (dB) vs the true target", table1.PAPER_PSNR)
        _bars(folder / "table1_sharpness.png", results["table1"], "sharpness",
              "Sharpness relative to the target (1 = as sharp)")
    if "upsampling" in results:
        _bars(folder / "upsampling_sharpness.png", results["upsampling"], "sharpness",
              "64 -> high resolution: sharpness relative to the target")
    if "editing" in results:
        _curves(folder / "editing_psnr.png", results["editing"]["by_intensity"], "psnr",
                "Editing: PSNR (dB) vs the true rendering, by intensity")
    if results.get("real_editing", {}).get("rows"):
        _bars(folder / "real_editing_closed.png", results["real_editing"]["rows"],
              "closed_share_pooled", "Real faces: mouth distance to the real smile closed "
              "(pooled, 95 % interval)")
    if "interpolation" in results:
        _curves(folder / "interpolation_psnr.png", results["interpolation"]["by_step"], "psnr",
                "Interpolation: PSNR (dB) vs the truth, by step")


def grid(columns: dict[str, np.ndarray]) -> np.ndarray:
    """One column per method, one row per face: uint8 image, cells enlarged to >= 128 px."""
    names = list(columns)
    rows = [[viz.to_uint8(columns[name][r]) for name in names]
            for r in range(min(len(c) for c in columns.values()))]
    return viz.image_grid(rows, labels=names, scale=max(1, 128 // rows[0][0].shape[0]))


def write_grids(folder: str | os.PathLike, grids: dict[str, dict[str, np.ndarray]]) -> None:
    """Writes `folder/<name>_grid.png` for each block's method -> images."""
    for name, columns in grids.items():
        if columns:
            atomic_io.write_png(pathlib.Path(folder) / f"{name}_grid.png", grid(columns))
