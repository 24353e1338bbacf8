"""A data directory's input files, found by their names: what `demo`, `up` and `bench` read."""
from __future__ import annotations

import sys
from pathlib import Path

from storemon_app.errors import CommandError

DATA_FILES = {
    "status": ("store_status.csv",),
    "hours": ("menu_hours.csv", "business_hours.csv"),
    "timezones": ("timezones.csv",),
}
#: By the specification a store without hours is open 24x7 and one without a zone is in
#: America/Chicago, so only the polls are required.
OPTIONAL_KINDS = {"hours", "timezones"}


def find_dataset(directory: Path) -> dict[str, Path]:
    """The input files of a data directory, by kind (hours and zones may be absent)."""
    if not directory.is_dir():
        raise CommandError(f"{directory}: no such directory")
    found = {}
    for kind, names in DATA_FILES.items():
        for name in names:
            if (directory / name).is_file():
                found[kind] = directory / name
                break
        else:
            if kind not in OPTIONAL_KINDS:
                raise CommandError(f"{directory}: no {' or '.join(names)}")
            print(f"{directory}: no {' or '.join(names)}; "
                  f"{'every store is open 24x7' if kind == 'hours' else 'every store is in America/Chicago'}",
                  file=sys.stderr)
    return found
