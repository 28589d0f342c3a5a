"""The overfit check of ``test/test_training.py`` over several seeds and thread counts: what its bounds rest on.

Prints, per (seed, threads), the ratio of the last to the first validation correspondence loss, the lowest 5°2cm and
10°5cm AP over the last four validations and the step from which 5°2cm held, keeps each validation trace (step, 5°2cm
AP, 10°5cm AP, validation correspondence loss) and writes ``benchmarks/results/overfit.json``. Each run is the
test's: one generated frame's instances (a bowl and a mug), 600 steps of the tiny model (the rate cut to 0.1× for the
last 160), about two and a half minutes on 2 cores.

    python benchmarks/overfit.py --seeds 0 1 2 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.synth.generate import GenerateConfig, generate
from acr_pose_core.synth.scene import SceneConfig
from acr_pose_core.training.config import load_train_config
from acr_pose_core.training.trainer import Trainer

TINY = Path(__file__).resolve().parents[1] / "config" / "train_tiny.yaml"


def overfit(root: Path, out: Path, seed: int) -> list[dict]:
    """The test's run with ``config.seed = seed``; returns the validation records of its log."""
    config = load_train_config(
        TINY,
        [
            f"train=[{{root: {root / 'train'}}}]", f"val=[{{root: {root / 'train'}}}]", f"seed={seed}",
            "schedule.epochs=600", "samples_per_epoch=4", "batch_size=4", "dataset.augment=false",
            "cache_items=true", "val_every=40", "adversarial=false", "schedule.decay_epochs=[440]",
            "schedule.decay_factors=[0.1]", "checkpoint_every_epochs=1000",
        ],
    )  # fmt: skip
    Trainer(config, out, progress=False).run()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r for r in log if "IoU50" in r]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "one"
        scene = SceneConfig(objects=(4, 4), distractors=(0, 0))
        generate(GenerateConfig(out=root, split="train", frames=1, frames_per_scene=1, seed=7, scene=scene), False)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for seed in args.seeds:
                checks = overfit(root, Path(tmp) / f"run_{seed}_{threads}", seed)
                ratio = checks[-1]["val_correspondence"] / checks[0]["val_correspondence"]
                last4 = min(r["5°2cm"] for r in checks[-4:])
                last4_10 = min(r["10°5cm"] for r in checks[-4:])
                held = [r["step"] for k, r in enumerate(checks) if all(c["5°2cm"] == 1.0 for c in checks[k:])]
                settled = held[0] if held else None  # from this validation on, every one is at 5°2cm
                trace = [(r["step"], r["5°2cm"], r["10°5cm"], r["val_correspondence"]) for r in checks]
                rows.append({"seed": seed, "threads": threads, "ratio": ratio, "min_5deg2cm_last4": last4,
                             "min_10deg5cm_last4": last4_10, "settled_step": settled, "trace": trace})  # fmt: skip
                print(f"seed {seed} threads {threads}: last/first correspondence {ratio:.3f}, "
                      f"min 5°2cm / 10°5cm over the last 4 validations {last4:.2f} / {last4_10:.2f}, "
                      f"at 5°2cm from step {settled}",
                      flush=True)  # fmt: skip
    print("| seed | threads | last/first val. corr. | min 5°2cm AP, last 4 | min 10°5cm AP, last 4 | at 5°2cm from |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = (r["seed"], r["threads"], f"{r['ratio']:.3f}", f"{r['min_5deg2cm_last4']:.2f}",
                 f"{r['min_10deg5cm_last4']:.2f}", r["settled_step"])  # fmt: skip
        print("| " + " | ".join(map(str, cells)) + " |")
    write_result(Path(__file__).parent / "results" / "overfit.json", {"runs": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
