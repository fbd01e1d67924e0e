"""The experiment report: every materialised partition of every study, summarised over seeds and judged.

The report reads each partition's latest materialisation from the instance (its per-seed results are in the
materialisation metadata), not through the IO manager, so a study that was never run, or a variant not yet
materialised, is listed as missing instead of failing the report.
"""

import base64
import json
import math
import tempfile
from dataclasses import asdict
from pathlib import Path

import dagster as dg
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from manga_distill_assets.assets.experiments.init_study import INIT_STUDY, INIT_VARIANTS, init_study
from manga_distill_assets.assets.experiments.studies import (
    GROUP,
    STUDY_VARIANTS,
    TEMPERATURES,
    alpha_study,
    data_study,
    recipe_study,
    temperature_study,
)
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.data.fingerprint import lines_fingerprint
from manga_distill_assets.distill.experiments import (
    METRICS,
    VariantSummary,
    summarise_variant,
    verdict,
)
from manga_distill_assets.resources.model_store import ModelStore

REPORT_FILE = "experiment_report.json"
PLOT_FILE = "accuracy_vs_temperature.png"
REPORTED_STUDIES = {**STUDY_VARIANTS, INIT_STUDY: INIT_VARIANTS}


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch"},
    deps=[temperature_study, alpha_study, recipe_study, data_study, init_study],
)
def experiment_report(context: dg.AssetExecutionContext, model_store: ModelStore) -> dg.Output[dict]:
    """Per study: mean ± std over seeds of accuracy, macro-F1, retention, training time and final loss for
    each variant, the best variant and whether it is distinguishable from the runner-up; the partitions not
    yet materialised are listed. Accuracy against T is plotted."""
    runs = {study: _latest_runs(context.instance, study) for study in REPORTED_STUDIES}
    report = build_report(runs)
    for study, part in report["studies"].items():
        if part["missing"]:
            context.log.warning(f"{study}: not materialised yet: {', '.join(part['missing'])}")
    image = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "experiment_report"
        folder.mkdir()
        (folder / REPORT_FILE).write_text(json.dumps(report, indent=2))
        temperature = report["studies"]["temperature_study"]["variants"]
        if temperature:
            image = _inline_png(accuracy_plot(temperature, folder / PLOT_FILE))
        stored = model_store.put(
            folder, kind="experiment_report", label_map={}, metrics=_best_accuracies(report)
        )
    metadata: dict = {"summary": dg.MetadataValue.md(report_markdown(report)), "report_uri": stored.uri}
    if image:
        metadata["accuracy_vs_temperature"] = dg.MetadataValue.md(image)
    for study, part in report["studies"].items():
        metadata[f"{study}_best"] = part["verdict"]["best"] if part["verdict"] else "not run"
    return dg.Output(report, data_version=dg.DataVersion(_report_version(report)), metadata=metadata)


def _latest_runs(instance: dg.DagsterInstance, study: str) -> dict[str, list[dict]]:
    """Each partition's per-seed results from its latest materialisation; partitions never run are absent."""
    runs = {}
    for partition in REPORTED_STUDIES[study]:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(study), asset_partitions=[partition]), limit=1
        ).records
        materialization = records[0].asset_materialization if records else None
        if materialization is not None and "results" in materialization.metadata:
            runs[partition] = list(materialization.metadata["results"].value)
    return runs


def build_report(runs: dict[str, dict[str, list[dict]]]) -> dict:
    """`runs[study][variant]` holds one dict per seed; the report keeps the studies' variant order."""
    studies = {}
    for study, variants in REPORTED_STUDIES.items():
        present = runs.get(study, {})
        summaries = [
            summarise_variant(variant, present[variant]) for variant in variants if variant in present
        ]
        studies[study] = {
            "variants": [_summary_dict(summary) for summary in summaries],
            "missing": [variant for variant in variants if variant not in present],
            "verdict": asdict(verdict(summaries)) if summaries else None,
        }
    return {"studies": studies}


def _summary_dict(summary: VariantSummary) -> dict:
    return {
        "variant": summary.variant,
        "seeds": list(summary.seeds),
        **{name: _finite(asdict(summary.metrics[name])) for name in METRICS},
    }


def _finite(value: dict) -> dict:
    """JSON has no NaN: a metric no run produced is stored as null."""
    return {
        key: None if isinstance(item, float) and math.isnan(item) else item for key, item in value.items()
    }


def report_markdown(report: dict) -> str:
    sections = []
    for study, part in report["studies"].items():
        lines = [f"### {study}"]
        if part["variants"]:
            lines.append(markdown_table([_table_row(variant) for variant in part["variants"]]))
            lines.append(f"\n**Verdict:** {part['verdict']['text']}")
        else:
            lines.append("_no variant materialised yet_")
        if part["missing"]:
            lines.append(f"\nMissing partitions: {', '.join(part['missing'])}")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def _table_row(variant: dict) -> dict[str, str]:
    return {
        "variant": variant["variant"],
        "seeds": str(len(variant["seeds"])),
        "accuracy": _mean_std(variant["accuracy"]),
        "macro_f1": _mean_std(variant["macro_f1"]),
        "retention": _mean_std(variant["retention"]),
        "training_s": _mean_std(variant["training_seconds"], digits=1),
        "final_loss": _mean_std(variant["final_loss"]),
    }


def _mean_std(value: dict, digits: int = 4) -> str:
    if value["mean"] is None:
        return "n/a"
    if value["std"] is None:
        return f"{value['mean']:.{digits}f}"
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def accuracy_plot(variants: list[dict], path: Path) -> Path:
    """Mean test accuracy against T on a log axis, one std as error bars. Drawn on an Agg canvas without
    pyplot, so it touches no global matplotlib state."""
    points = sorted((TEMPERATURES[variant["variant"]], variant["accuracy"]) for variant in variants)
    figure = Figure(figsize=(5.0, 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.errorbar(
        [temperature for temperature, _ in points],
        [accuracy["mean"] for _, accuracy in points],
        yerr=[accuracy["std"] or 0.0 for _, accuracy in points],
        marker="o",
        capsize=4,
    )
    axes.set_xscale("log", base=2)
    axes.set_xticks([temperature for temperature, _ in points], [f"{t:g}" for t, _ in points])
    axes.set_xlabel("temperature T")
    axes.set_ylabel("test accuracy (mean ± std over seeds)")
    axes.set_title("Stage-2 student accuracy against T")
    axes.grid(alpha=0.3)
    figure.savefig(path, format="png", dpi=100)
    return path


def _inline_png(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"![accuracy against T](data:image/png;base64,{encoded})"


def _best_accuracies(report: dict) -> dict[str, float]:
    best = {}
    for study, part in report["studies"].items():
        if part["variants"]:
            best[f"{study}_best_accuracy"] = max(variant["accuracy"]["mean"] for variant in part["variants"])
    return best


def _report_version(report: dict) -> str:
    """Training time varies run to run; the version names which runs scored what."""
    return lines_fingerprint(
        f"{study}:{variant['variant']}:{variant['seeds']}:{variant['accuracy']['mean']:.6f}"
        for study, part in report["studies"].items()
        for variant in part["variants"]
    )
