"""``oicsr-lab course``: the student / instructor release of the notebooks and grading (nbgrader)."""

from __future__ import annotations

import argparse

NAME = "course"


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of ``course``: ``release`` or ``grade``."""
    sub = p.add_subparsers(dest="action", required=True)
    r = sub.add_parser("release", help="write <out>/student and <out>/instructor from notebooks/")
    r.add_argument("--out", default="dist/course", help="output folder (default dist/course)")
    r.add_argument("--notebooks", default=None, help="source notebooks folder (default: the repository's notebooks/)")
    r.add_argument("--wheel", action="store_true", help="also put the oicsr-lab wheel (data + models) in student/")
    g = sub.add_parser("grade", help="autograde <submissions>/<student>/<notebook>.ipynb into a CSV")
    g.add_argument("submissions", help="folder of submissions: <student>/<notebook>.ipynb")
    g.add_argument("--course", default="dist/course", help="the release folder (default dist/course)")
    g.add_argument("--csv", default="grades.csv", help="CSV to write (default grades.csv)")
    g.add_argument("--preset", default="ci", help="scale the notebooks are re-executed at (default ci: seconds)")
    g.add_argument("--timeout", type=int, default=1800, help="seconds per notebook (default 1800)")


def run(args: argparse.Namespace) -> int:
    """Release the course notebooks (student and instructor versions) or grade submissions into a CSV."""
    if args.action == "release":
        from ..course.release import release

        written = release(args.out, args.notebooks, wheel=args.wheel)
        print(f"{args.out}/student: {len(written['student'])} notebooks + README.md; "
              f"{args.out}/instructor: solutions + nbgrader/")
        return 0
    from ..course.grading import grade_submissions

    rows = grade_submissions(args.submissions, args.course, args.csv, preset=args.preset, timeout=args.timeout)
    for r in rows:
        print(f"{r['student']:16s} {r['notebook']:28s} {r['auto_score']:g}/{r['auto_max']:g}"
              f"{'  failed: ' + r['failed_checks'] if r['failed_checks'] else ''}")
    return 0
