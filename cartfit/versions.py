"""Check that the installed stack is the one cartfit is written for (fail loudly otherwise).

``python -m cartfit.versions`` exits 1 with a message naming every package that is too old.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

#: package -> minimum major version
REQUIRED_MAJOR = {"pymc": 6, "pytensor": 3, "arviz": 1, "snakemake": 9}


def check_versions() -> list[str]:
    """Return one message per required package that is missing or older than required."""
    problems = []
    for name, major in REQUIRED_MAJOR.items():
        try:
            found = version(name)
        except PackageNotFoundError:
            problems.append(f"{name} is not installed (need >= {major})")
            continue
        if int(found.split(".")[0]) < major:
            problems.append(f"{name} {found} is installed but cartfit needs {name} >= {major}")
    return problems


def software_versions() -> dict[str, str]:
    """Versions of Python and the scientific stack, for provenance."""
    names = [
        "pymc",
        "pytensor",
        "arviz",
        "nutpie",
        "numba",
        "numpy",
        "scipy",
        "pandas",
        "snakemake",
    ]
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def main() -> int:
    problems = check_versions()
    if sys.version_info < (3, 12):  # noqa: UP036 (this check must run on an old Python)
        problems.append(f"Python {sys.version.split()[0]} is too old: cartfit needs Python >= 3.12")
    for p in problems:
        print(f"cartfit: {p}", file=sys.stderr)
    if not problems:
        print("cartfit: " + ", ".join(f"{k} {v}" for k, v in software_versions().items()))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
