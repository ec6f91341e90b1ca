"""CSV files keyed by ImageID (info.csv, submissions, label files), read one way everywhere."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.errors import UserError


def read_ids_csv(path: Path, what: str) -> pd.DataFrame:
    """The table with ImageID as text; `what` names the file in the one-line error."""
    # keep_default_na=False: an ImageID such as "NA", "nan", "None" or "null" is a file name, not a missing value.
    try:
        frame = pd.read_csv(path, dtype={"ImageID": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{what} {path} is not a readable CSV ({err.__class__.__name__})") from err
    if "ImageID" not in frame.columns:
        raise UserError(f"{what} {path} has no 'ImageID' column (header: {', '.join(map(str, frame.columns))})")
    return frame
