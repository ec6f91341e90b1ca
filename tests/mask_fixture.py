"""Writes the mask-competition layout (the competition's format notes) with small images of its own.

Real photos are 384 x 512; these are 24 x 32 so tests stay fast. The fixture
plants what real data holds: mixed extensions within one person, a repeated id
with different paths, a suffixed id, macOS dot-files, stray Thumbs.db files, the
age boundaries 29/30/59/60, and every mask state. Each person's expected task
labels are written out by hand here, independent of the code under test.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

WIDTH, HEIGHT = 24, 32
# stem -> expected mask state (0 worn, 1 incorrect, 2 not worn), and the extension each stem gets:
# extensions differ within every person, in mixed letter case.
STEMS = {"mask1": (0, ".jpg"), "mask2": (0, ".png"), "mask3": (0, ".jpeg"), "mask4": (0, ".JPG"),
         "mask5": (0, ".png"), "incorrect_mask": (1, ".jpeg"), "normal": (2, ".PNG")}


@dataclass(frozen=True)
class Person:
    id: str
    gender: str
    race: str
    age: int
    gender_code: int   # expected, written by hand
    age_band: int      # expected, written by hand

    @property
    def path(self) -> str:
        return f"{self.id}_{self.gender}_{self.race}_{self.age}"


PEOPLE = [
    Person("000001", "female", "Asian", 29, 1, 0),
    Person("000002", "male", "Asian", 30, 0, 1),
    Person("000003", "female", "Asian", 59, 1, 1),
    Person("000004", "male", "Asian", 60, 0, 2),
    Person("000005", "male", "Asian", 18, 0, 0),
    Person("000006", "female", "Asian", 64, 1, 2),
    Person("000007", "female", "Asian", 45, 1, 1),
    Person("000008", "male", "Asian", 22, 0, 0),
    Person("000600", "female", "Asian", 52, 1, 1),
    Person("000600", "male", "Asian", 20, 0, 0),      # the same id again, another person
    Person("000600-1", "male", "Asian", 61, 0, 2),    # a suffixed id
    Person("000012", "female", "Asian", 33, 1, 1),
]


@dataclass
class MaskFixture:
    root: Path
    people: list[Person]
    eval_ids: list[str]

    @property
    def info_csv(self) -> Path:
        return self.root / "eval" / "info.csv"

    def image(self, person: Person, stem: str) -> Path:
        return self.root / "train" / "images" / person.path / f"{stem}{STEMS[stem][1]}"

    def expected_tasks(self) -> dict[str, tuple[int, int, int]]:
        """'<path>/<file>' -> (mask, gender, age band) for every photo."""
        return {f"{p.path}/{stem}{ext}": (state, p.gender_code, p.age_band)
                for p in self.people for stem, (state, ext) in STEMS.items()}


def _picture(seed: int) -> Image.Image:
    # Flat colour plus noise: distinct per image, so no two files are byte-identical by accident.
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 215, size=3)
    pixels = np.clip(base + rng.integers(-30, 30, size=(HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def _save(img: Image.Image, path: Path) -> None:
    kind = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    img.save(path, format=kind, **({"quality": 90} if kind == "JPEG" else {}))


def write_mask_layout(root: Path, people: list[Person] | None = None, n_eval: int = 9) -> MaskFixture:
    people = PEOPLE if people is None else people
    root = Path(root)
    images = root / "train" / "images"
    images.mkdir(parents=True)
    (images / "Thumbs.db").write_bytes(b"\x00thumbnail cache")
    seed = 0
    for person in people:
        folder = images / person.path
        folder.mkdir()
        for stem, (_, ext) in STEMS.items():
            seed += 1
            _save(_picture(seed), folder / f"{stem}{ext}")
        (folder / "._mask1.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # would fail to decode if read
        (folder / "Thumbs.db").write_bytes(b"\x00thumbnail cache")
    pd.DataFrame([{"id": p.id, "gender": p.gender, "race": p.race, "age": p.age, "path": p.path} for p in people]
                 ).to_csv(root / "train" / "train.csv", index=False)
    eval_images = root / "eval" / "images"
    eval_images.mkdir(parents=True)
    eval_ids = []
    for i in range(n_eval):
        image_id = hashlib.sha1(f"eval-{i}".encode()).hexdigest()[:20] + (".png" if i % 3 == 0 else ".jpg")
        _save(_picture(10_000 + i), eval_images / image_id)
        eval_ids.append(image_id)
    # Deliberately not sorted: the submission must keep info.csv's own row order.
    eval_ids = eval_ids[::-1]
    pd.DataFrame({"ImageID": eval_ids, "ans": 0}).to_csv(root / "eval" / "info.csv", index=False)
    return MaskFixture(root, list(people), eval_ids)


def plant_bad_files(root: Path, fixture: MaskFixture) -> dict[str, Path]:
    """Replace four training photos with one bad file of each kind; returns kind -> path."""
    jpeg = fixture.image(fixture.people[0], "mask1")
    png = fixture.image(fixture.people[1], "mask2")
    corrupt = fixture.image(fixture.people[2], "mask3")
    empty = fixture.image(fixture.people[3], "normal")
    for path in (jpeg, png):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    corrupt.write_bytes(b"this is not an image at all" * 20)
    empty.write_bytes(b"")
    return {"truncated JPEG": jpeg, "truncated PNG": png, "corrupt bytes": corrupt, "0-byte": empty}
