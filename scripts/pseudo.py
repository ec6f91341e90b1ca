"""Pseudo-label the test images a saved recipe is sure of, fold-safely, for members to train on.

    python -m scripts.pseudo --recipe submissions/NAME.recipe.yaml --name pl-x [--threshold 0.9] [--per-class-cap 0.2]
    python -m scripts.train --config … data.pseudo=pl-x          # hard labels
    python -m scripts.train --config … distill.unlabeled=pl-x    # the teacher's soft targets (distillation loss)

Fold k's pseudo-labels come only from models validated on fold k (each unit's fold-k model for a
fold-group recipe; holdout members serve their own fold only). Writes pseudo/<name>/ from the
prediction cache, and prints how many test images pass per class and fold, and how often the
teacher is right on held-out validation rows at that threshold.
"""
from __future__ import annotations

import argparse

from core.cli import add_overwrite, add_registry
from core.console import console_logging
from core.errors import cli_entry
from core.settings import load_settings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.pseudo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help="the teacher: a recipe saved by scripts.vote")
    parser.add_argument("--name", required=True, help="the set's name: pseudo/<name>/, data.pseudo=<name>")
    parser.add_argument("--threshold", type=float, default=0.9, help="minimum teacher confidence, in (0, 1]")
    parser.add_argument("--per-class-cap", type=float, metavar="SHARE",
                        help="keep at most SHARE x test images per class and fold, the most confident first")
    parser.add_argument("--tta", nargs="?", const="flip", default="none", metavar="VIEWS",
                        help="test-time views of the members' predictions (alone: flip)")
    parser.add_argument("--device", default="auto", help="where members predict what the cache lacks")
    add_registry(parser)
    add_overwrite(parser, "pseudo-label set")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the job imports torch, timm, scikit-learn and pandas; --help must not wait for them
    from jobs.pseudo import PseudoRequest, pseudo_command
    console_logging()
    result = pseudo_command(PseudoRequest(recipe=args.recipe, name=args.name, threshold=args.threshold,
                                          per_class_cap=args.per_class_cap, registry=args.registry,
                                          overwrite=args.overwrite, tta=args.tta, device=args.device),
                            load_settings())
    print(f"passing test images (of {result.test_rows}) per class and fold, threshold {args.threshold}:")
    print(result.counts.to_string())
    c = result.calibration
    right = f"{c['accuracy_above']:.2%} of those are right" if c["above"] else "so nothing shows how often it is right"
    print(f"teacher on held-out validation rows: {c['above']} of {c['rows']} ({c['share_above']:.1%}) reach "
          f"{args.threshold}; {right}")
    for k, chosen in result.folds.items():
        print(f"fold {k} learns from: {', '.join(chosen.values())}")
    print(f"wrote {result.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
