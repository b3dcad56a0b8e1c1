"""The evaluation report: mean scores per run (markdown and CSV), per-pair scores, contact sheets."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from sbsconvert.evaluate.runner import METRICS, REGIONS, Evaluation, Run
from sbsconvert.errors import SbsError
from sbsconvert.output import atomic_path, write_image

COLUMNS = [f"{metric}_{region}" for metric in METRICS for region in REGIONS]
_HEADINGS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS"}
_REGION_HEADINGS = {"all": "all", "nonocc": "non-occl.", "disocc": "disoccl."}
_DECIMALS = {"psnr": 2, "ssim": 4, "lpips": 4}
REPORT_FILES = ("results.md", "results.csv", "pairs.csv")
# Identical pixels have infinite PSNR; in means over pairs they count as this many dB, so one
# exactly copied region does not turn the whole mean into inf (pairs.csv keeps the inf).
PSNR_CAP_DB = 100.0


def contact_sheet_name(run: str) -> str:
    return f"contact_{run.replace('/', '-')}.png"


def report_paths(folder: Path, runs: Sequence[Run]) -> list[Path]:
    return [folder / name for name in REPORT_FILES] + [folder / contact_sheet_name(run.name) for run in runs]


def check_report_paths(folder: Path, runs: Sequence[Run], force: bool) -> None:
    """Refuse before any work when a report file exists and --force was not given."""
    if not force:
        existing = [path for path in report_paths(folder, runs) if path.exists()]
        if existing:
            raise SbsError(f"{existing[0]} already exists (use `force` to overwrite the report, or `output` another folder)")


def mean(values: Sequence[float]) -> float:
    """Mean over pairs; pairs without the region (NaN) do not count."""
    defined = [value for value in values if not math.isnan(value)]
    return float(np.mean(defined)) if defined else float("nan")


def summarize(evaluation: Evaluation, runs: Sequence[Run]) -> list[dict[str, object]]:
    rows = []
    for run in runs:
        scores = [score for score in evaluation.scores if score.run == run.name]
        row: dict[str, object] = {"run": run.name, "note": run.note, "pairs": len(scores)}
        for column in COLUMNS:
            values = [score.values[column] for score in scores]
            if column.startswith("psnr"):
                values = [min(value, PSNR_CAP_DB) for value in values]
            row[column] = mean(values)
        row["seconds_per_pair"] = mean([score.seconds for score in scores])
        rows.append(row)
    return rows


def _format(column: str, value: object) -> str:
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "inf"
    return f"{value:.{_DECIMALS.get(column.split('_')[0], 3)}f}"


def markdown_table(rows: Sequence[dict[str, object]]) -> str:
    headings = ["run", "pairs"] + [f"{_HEADINGS[c.split('_')[0]]} {_REGION_HEADINGS[c.split('_')[1]]}" for c in COLUMNS]
    headings.append("s/pair")
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for row in rows:
        name = f"{row['run']} ({row['note']})" if row["note"] else str(row["run"])
        cells = [name, str(row["pairs"])] + [_format(c, row[c]) for c in COLUMNS]
        cells.append(_format("seconds", row["seconds_per_pair"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["run", "note", "pairs", *COLUMNS, "seconds_per_pair"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    return buffer.getvalue()


def pairs_csv(evaluation: Evaluation) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["pair", "run", *COLUMNS, "seconds"])
    for score in evaluation.scores:
        writer.writerow([score.pair, score.run, *(_csv_value(score.values[c]) for c in COLUMNS), _csv_value(score.seconds)])
    return buffer.getvalue()


def _csv_value(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value) if math.isinf(value) else f"{value:.6g}"
    return value


def ranked_pairs(evaluation: Evaluation, run: str) -> list[tuple[str, str]]:
    """(label, pair) for the best, median and worst pair of a run by PSNR over all scored pixels;
    a pair holding several ranks appears once."""
    scores = sorted(
        (score for score in evaluation.scores if score.run == run),
        key=lambda score: -math.inf if math.isnan(score.values["psnr_all"]) else score.values["psnr_all"],
        reverse=True,
    )
    if not scores:
        return []
    chosen: dict[str, list[str]] = {}
    for label, score in (("best", scores[0]), ("median", scores[len(scores) // 2]), ("worst", scores[-1])):
        chosen.setdefault(score.pair, []).append(label)
    psnr_of = {score.pair: score.values["psnr_all"] for score in scores}
    return [(f"{'/'.join(labels)}: {pair}, PSNR {_format('psnr', psnr_of[pair])} dB", pair) for pair, labels in chosen.items()]


_GAP = 4
_STRIP = 18


def _text_strip(width: int, text: str) -> np.ndarray:
    strip = np.full((_STRIP, width, 3), 255, dtype=np.uint8)
    cv2.putText(strip, text, (4, _STRIP - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def contact_sheet(evaluation: Evaluation, run: str) -> np.ndarray:
    """Rows best / median / worst pair; columns left, real right, generated right, error map."""
    ranked = ranked_pairs(evaluation, run)
    rows = []
    for label, pair in ranked:
        tiles = evaluation.thumbnails[(run, pair)]
        gap = np.full((tiles[0].shape[0], _GAP, 3), 255, dtype=np.uint8)
        row = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
        rows += [_text_strip(row.shape[1], label), row]
    width = rows[1].shape[1]
    tile_width = evaluation.thumbnails[(run, ranked[0][1])][0].shape[1]
    header = np.full((_STRIP, width, 3), 255, dtype=np.uint8)
    titles = ("left", "real right", "generated right", "|error| x4, grey: unscored")
    for index, title in enumerate(titles):
        cv2.putText(header, title, (index * (tile_width + _GAP) + 4, _STRIP - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    header = np.concatenate([_text_strip(width, run), header])
    return np.concatenate([header, *rows]).astype(np.float32) / 255.0


def write_text(path: Path, text: str, force: bool) -> None:
    with atomic_path(path, force) as temp:
        temp.write_text(text, encoding="utf-8")


def write_report(
    folder: Path, evaluation: Evaluation, runs: Sequence[Run], heading: str, notes: Sequence[str], force: bool
) -> list[Path]:
    """Write results.md, results.csv, pairs.csv and one contact sheet per run; returns the paths."""
    rows = summarize(evaluation, runs)
    markdown = f"# {heading}\n\n" + "".join(f"{note}\n" for note in notes) + "\n" + markdown_table(rows)
    write_text(folder / "results.md", markdown, force)
    write_text(folder / "results.csv", csv_table(rows), force)
    write_text(folder / "pairs.csv", pairs_csv(evaluation), force)
    written = [folder / name for name in REPORT_FILES]
    for run in runs:
        path = folder / contact_sheet_name(run.name)
        write_image(contact_sheet(evaluation, run.name), path, force=force)
        written.append(path)
    return written
