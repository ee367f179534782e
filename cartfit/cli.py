"""The ``cartfit`` command line (DESIGN.md section 6).

Each sub-command parses its options and calls one library function; user errors
(:class:`cartfit.errors.CartfitError`) are printed without a traceback and give exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cartfit.errors import CartfitError

MODELS = ("predator_prey", "multifate", "escape")
GROWTHS = ("exponential", "logistic", "gompertz")


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _dvid_map(text: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isdigit() or not value.strip():
            raise argparse.ArgumentTypeError(
                f"expected N=analyte pairs like 1=car_t,2=tumor, got {item!r}"
            )
        out[int(key)] = value.strip()
    return out


def _cmd_validate(args: argparse.Namespace) -> int:
    from cartfit.data import load_cohort, summarize

    print(summarize(load_cohort(args.dir)))
    return 0


def _cmd_import_nonmem(args: argparse.Namespace) -> int:
    from cartfit.data import import_nonmem, summarize

    cohort = import_nonmem(args.file, args.out, dvid=args.dvid)
    print(summarize(cohort))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from cartfit.simulate import simulate_cohort

    simulate_cohort(
        model=args.model,
        growth=args.growth,
        n_subjects=args.subjects,
        seed=args.seed,
        out=args.out,
        phenotype_days=tuple(args.phenotype_days),
    )
    print(f"wrote {args.out}")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from cartfit.inference import FitSettings, fit_cohort

    settings = FitSettings(
        chains=args.chains,
        tune=args.tune,
        draws=args.draws,
        seed=args.seed,
        likelihood=args.likelihood,
        cores=args.cores,
        max_treedepth=args.max_treedepth,
        target_accept=args.target_accept,
        large_cohort=args.large_cohort,
    )
    report = fit_cohort(
        args.dir,
        model=args.model,
        growth=args.growth,
        subject=args.subject,
        population=args.population,
        out=args.out,
        settings=settings,
    )
    print(report.table())
    if args.strict and not report.converged:
        print(
            "cartfit fit: convergence problems (see above); --strict makes this an error",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from cartfit.analysis import compare_fits, log_linearity_diagnostic
    from cartfit.data import load_cohort
    from cartfit.inference.predict import load_fit
    from cartfit.io import write_table

    table = compare_fits(
        args.fits, kfold=args.kfold, max_refits=args.max_refits, kfold_groups=args.kfold_groups
    )
    write_table(table, args.out)
    print(table.to_string(index=False))
    # the model-free diagnostic of the seed: is ln B linear in t before treatment?
    cohort_attr = load_fit(args.fits[0]).attrs.get("cohort", "")
    cohort_dir = Path(cohort_attr)
    if cohort_attr and cohort_dir.is_dir():
        diag = log_linearity_diagnostic(load_cohort(cohort_dir))
        if len(diag):
            out = args.out.with_name(args.out.stem + "_loglinearity.csv")
            write_table(diag, out)
            print(f"\npre-infusion ln B linear in t? (written to {out})")
            print(diag.to_string(index=False))
    return 0


def _cmd_exposure(args: argparse.Namespace) -> int:
    from cartfit.analysis import exposure_table
    from cartfit.io import write_table

    table = exposure_table(args.fit, window=args.window)
    write_table(table, args.out)
    print(f"wrote {args.out} ({len(table)} rows)")
    return 0


def _cmd_relapse(args: argparse.Namespace) -> int:
    from cartfit.analysis import relapse_table
    from cartfit.io import write_table

    table = relapse_table(args.fit, horizons=args.horizons)
    write_table(table, args.out)
    print(table.to_string(index=False))
    return 0


def _cmd_trial(args: argparse.Namespace) -> int:
    from cartfit.analysis import virtual_trial
    from cartfit.io import write_table

    table = virtual_trial(
        args.fit,
        dose=args.dose,
        costim=args.costim,
        lymphodepletion=args.lymphodepletion,
        n_subjects=args.subjects,
        seed=args.seed,
        n_draws=args.draws,
        per_draw=args.per_draw,
        subjects_out=args.subjects_out,
    )
    write_table(table, args.out)
    print(table.to_string(index=False))
    return 0


def _cmd_trial_contrast(args: argparse.Namespace) -> int:
    from cartfit.analysis.trial_contrast import trial_contrast
    from cartfit.io import write_table

    table = trial_contrast(args.arm, args.reference, n_subjects=args.subjects, seed=args.seed,
                           arm=args.arm_name, reference=args.reference_name)  # fmt: skip
    write_table(table, args.out)
    print(table.to_string(index=False))
    return 0


def _cmd_costim(args: argparse.Namespace) -> int:
    from cartfit.analysis.costim_tables import write_costim_tables

    written = write_costim_tables(
        args.fit,
        args.out,
        horizon=args.horizon,
        rechallenge_day=args.rechallenge_day,
        antigen=args.antigen,
    )
    for path, df in written.items():
        print(f"wrote {path} ({len(df)} rows)")
    print(next(iter(written.values())).to_string(index=False))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from cartfit.report import build_report

    out = build_report(args.results_dir)
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cartfit", description=__doc__.splitlines()[0])
    from cartfit import __version__

    parser.add_argument("--version", action="version", version=f"cartfit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a cohort folder against the data contract")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("import-nonmem", help="convert a NONMEM-style table into a cohort folder")
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--dvid",
        type=_dvid_map,
        default={1: "car_t", 2: "tumor"},
        help="CMT/DVID to analyte map (default 1=car_t,2=tumor)",
    )
    p.set_defaults(func=_cmd_import_nonmem)

    p = sub.add_parser("simulate", help="simulate a virtual cohort with known truth")
    p.add_argument("--model", choices=MODELS, required=True)
    p.add_argument("--growth", choices=GROWTHS, required=True)
    p.add_argument("--subjects", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument(
        "--phenotype-days",
        type=_int_list,
        default=[],
        help="visit days with CAR T memory/exhausted fractions by flow, e.g. 7,14,28,90 "
        "(multifate only; default none)",
    )
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("fit", help="Bayesian ODE fit of one subject or a population")
    p.add_argument("dir", type=Path)
    p.add_argument("--model", choices=MODELS, required=True)
    p.add_argument("--growth", choices=GROWTHS, required=True)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--subject")
    who.add_argument("--population", action="store_true")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--max-treedepth", type=int, default=10)
    p.add_argument(
        "--large-cohort",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Newton-polished start and per-subject centring weights (default: for populations"
        " of 50 subjects or more; helps some models at any size, e.g. escape)",
    )
    p.add_argument("--likelihood", choices=("lognormal", "student_t"), default="lognormal")
    p.add_argument("--strict", action="store_true", help="exit 1 on convergence problems")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("compare", help="PSIS-LOO comparison of fits on the same data")
    p.add_argument("fits", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--max-refits",
        type=int,
        default=10,
        metavar="N",
        help="per fit, refit without each of the N worst points with Pareto k > 0.7 and use "
        "the exact leave-one-out density there (0: keep PSIS and warn; default 10)",
    )
    p.add_argument(
        "--kfold",
        action="store_true",
        help="population fits: k-fold cross-validation over subjects with refits, each "
        "held-out subject predicted as a new subject (instead of PSIS-LOO)",
    )
    p.add_argument(
        "--kfold-groups",
        type=int,
        default=None,
        metavar="K",
        help="number of subject groups for --kfold (default: one per subject, at most 10)",
    )
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("exposure", help="posterior-predictive exposure metrics")
    p.add_argument("fit", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--window", type=float, default=28.0)
    p.set_defaults(func=_cmd_exposure)

    p = sub.add_parser("relapse", help="relapse and antigen-escape probabilities")
    p.add_argument("fit", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--horizons", type=_int_list, default=[90, 180, 365])
    p.set_defaults(func=_cmd_relapse)

    p = sub.add_parser("trial", help="virtual trial from a population posterior")
    p.add_argument("fit", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dose", type=float, default=None)
    p.add_argument("--costim", choices=("CD28", "4-1BB"), default=None)
    p.add_argument("--lymphodepletion", type=float, default=None)
    p.add_argument(
        "--subjects",
        type=int,
        default=200,
        help="patients per arm: the trial size the rates' intervals describe",
    )
    p.add_argument("--draws", type=int, default=None, help="posterior draws simulated (50)")
    p.add_argument("--per-draw", type=int, default=None, help="virtual patients per draw (40)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--subjects-out",
        type=Path,
        default=None,
        help="also write the virtual subjects, one row each (for cartfit trial-contrast)",
    )
    p.set_defaults(func=_cmd_trial)

    p = sub.add_parser(
        "trial-contrast",
        help="paired difference between two virtual-trial arms of one fit",
        description="Arm minus reference, virtual subject by virtual subject: rate differences "
        "and exposure ratios with intervals. Both files come from `cartfit trial --subjects-out` "
        "with the same fit, --seed, --draws and --per-draw.",
    )
    p.add_argument("arm", type=Path, help="virtual subjects of the arm")
    p.add_argument("reference", type=Path, help="virtual subjects of the reference arm")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--subjects", type=int, default=200, help="patients per arm")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--arm-name", default=None, help="label of the arm (default: file name)")
    p.add_argument("--reference-name", default=None, help="label of the reference")
    p.set_defaults(func=_cmd_trial_contrast)

    p = sub.add_parser(
        "costim",
        help="multifate population fits: CD28 vs 4-1BB contrasts, homeostatic share of early "
        "expansion, re-expansion on antigen rechallenge",
    )
    p.add_argument("fit", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--horizon", type=float, default=90.0, help="day of the memory fraction")
    p.add_argument("--rechallenge-day", type=float, default=180.0)
    p.add_argument(
        "--antigen",
        type=float,
        default=None,
        help="tumour bolus at the rechallenge, tumour units (default: the cohort's relapse "
        "threshold, else the median tumour burden at infusion)",
    )
    p.set_defaults(func=_cmd_costim)

    p = sub.add_parser("report", help="figures and an HTML summary of a results folder")
    p.add_argument("results_dir", type=Path)
    p.set_defaults(func=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CartfitError as err:
        print(str(err), file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
