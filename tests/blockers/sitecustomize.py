"""Put this folder first on PYTHONPATH and torch, timm and torchvision cannot be imported.

Python imports `sitecustomize` at start-up; this one puts a finder in front of every other, so the
first import of a blocked stack raises ImportError naming the module and whoever asked for it.
"""
import sys

BLOCKED = {"torch", "timm", "torchvision"}


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked by tests/blockers: {name}")


sys.meta_path.insert(0, _Blocker())
