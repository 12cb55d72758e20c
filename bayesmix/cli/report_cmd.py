"""`bayesmix report`: one self-contained HTML report of a fit and the decisions taken from it."""

from __future__ import annotations

from .._files import check_output_path
from .common import check_scale, load_fit, require_positive, target_scale_from_args
from .options import add_command, add_input_argument, add_max_draws_option, add_seed_option, add_target_scale_options

DESCRIPTION = """\
Write one HTML file that opens in a browser with no server (figures embedded as PNG):
the data summary, sampler diagnostics (R-hat/ESS table, rank plots), a posterior
predictive check, loss against model size and tokens per domain with the fitted law and
its extrapolation band out to the target scale, and, when given, the recommended
mixture (--recommend), the law comparison (--compare) and the acquisition ranking
(--next). Sections whose input is not given are left out with a one-line note.

Figures are readable in grey-scale print. --format png writes the figures alone, one
PNG per figure, into the folder named by -o."""

EPILOG = """\
examples:
  bayesmix report fit.nc -o report.html
  bayesmix report fit.nc --recommend rec.json --compare cmp.json --next next.csv -o report.html
  bayesmix report fit.nc --target-model-size 7B --target-tokens 140B -o report.html
  bayesmix report fit.nc --format png -o figures/"""


def add_parser(sub):
    p = add_command(sub, "report", summary="write a self-contained HTML report of a fit", description=DESCRIPTION,
                    epilog=EPILOG)
    add_input_argument(p, "fit")
    p.add_argument("-o", "--out", required=True, metavar="PATH",
                   help="the HTML file to write (with --format png: the folder for the figures)")
    p.add_argument("--compare", metavar="CMP.json", help="comparison written by 'bayesmix compare --json'")
    p.add_argument("--recommend", metavar="REC.json", help="recommendation written by 'bayesmix recommend --out'")
    p.add_argument("--next", metavar="NEXT.csv", help="acquisition ranking written by 'bayesmix next'")
    add_target_scale_options(p, required=False, default_note=", reached by the extrapolation "
                                                              "(default: 10x the largest of the fit)")
    p.add_argument("--format", choices=("html", "png"), default="html",
                   help="html: one self-contained file (default); png: the figures alone, into a folder")
    add_max_draws_option(p, 200, use=" for predictions")
    p.add_argument("--next-rows", type=int, default=20, metavar="R",
                   help="rows of the acquisition ranking shown (default 20)")
    add_seed_option(p, "of the draws thinned and simulated")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..report import build_report, read_comparison, read_next_table, read_recommendation

    check_output_path(args.out, folder=args.format == "png")
    require_positive(args, "max_draws", "next_rows")
    target_n, target_d = target_scale_from_args(args)
    if target_n or target_d:
        check_scale(None, target_n or 1.0, target_d or 1.0, what="target")
    # Read every input before the (slower) rendering, so that a wrong path fails at once.
    rec = read_recommendation(args.recommend) if args.recommend else None
    cmp = read_comparison(args.compare) if args.compare else None
    nxt = read_next_table(args.next) if args.next else None
    report = build_report(load_fit(args.fit), recommendation=rec, comparison=cmp, next_table=nxt, target_model_size=target_n,
                          target_tokens=target_d, max_draws=args.max_draws, next_rows=args.next_rows, seed=args.seed)
    import matplotlib

    matplotlib.use("Agg")
    if args.format == "png":
        paths = report.write_pngs(args.out)
        print(f"wrote {len(paths)} figures to {args.out}")
    else:
        report.write_html(args.out)
        print(f"wrote {args.out}")
    for sec in report.sections:
        if sec.omitted:
            print(f"  note: {sec.omitted}")
    return 0
