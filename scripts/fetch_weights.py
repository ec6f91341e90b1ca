"""Download timm's pretrained weights into the Hugging Face cache, for a server without internet.

    python -m scripts.fetch_weights resnet18 convnext_nano [--cache DIR]

Run it on a machine with internet; each name is a timm architecture (optionally tagged, such as
resnet18.tv_in1k). Copy the cache folder to the server and train there with
HF_HOME=<that folder> HF_HUB_OFFLINE=1 ... model.pretrained=true. Exit 2 when a name is unknown
or the hub cannot be reached.
"""
from __future__ import annotations

import argparse

from core.errors import cli_entry


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.fetch_weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archs", nargs="+", help="timm architectures, e.g. resnet18 convnext_nano")
    parser.add_argument("--cache", help="hub cache folder to fill (default: HF_HUB_CACHE, else HF_HOME/hub)")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the job imports torch and timm; --help must not wait for them
    from jobs.fetch_weights import FetchRequest, fetch_weights
    for line in fetch_weights(FetchRequest(args.archs, args.cache)).lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
