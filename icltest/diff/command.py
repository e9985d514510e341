"""The ``icltest diff`` subcommand: options and exit codes.

Exit codes: 0 (the diff is informational), 1 with ``--fail-on-flip`` when a claim item went
from pass to fail, 2 for bad input (a missing file, a file that is not a report or baseline, a
pytest run that produced no report, a run-mode suite that names its own ``model:``, which would
win over ``--models``), always as one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

USAGE = ("icltest diff A.json B.json  |  icltest diff --suite S.yaml --models A B "
         "(report JSON files from pytest --icl-json, or baseline files)")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``diff`` on the CLI's subparsers."""
    p = sub.add_parser("diff", help="compare two reports, baselines or models: claims that flipped, heads that "
                                    "moved, heads matched by behaviour",
                       description="Compare two icltest report JSON files (pytest --icl-json) or baseline files, "
                                   "or run a suite on two models and compare (--suite S.yaml --models A B).")
    p.add_argument("inputs", nargs="*", metavar="REPORT", help="A and B: report JSON or baseline files")
    p.add_argument("--suite", help="run mode: spec file (or folder) to run with pytest on each of --models")
    p.add_argument("--models", nargs=2, metavar=("A", "B"), help="run mode: two models (aliases, hub ids or folders)")
    p.add_argument("--pytest-args", default="", help='run mode: extra pytest arguments, e.g. "--icl-seed 1"')
    p.add_argument("--reports-dir", help="run mode: keep the two report JSON files here (default: a temp folder, deleted after "
                        "the diff)")
    p.add_argument("--patterns", action="store_true",
                   help="run mode: also match heads by attention-pattern correlation on one shared probe "
                        "(loads both models in this process)")
    p.add_argument("--labels", help="names for A and B, comma separated (default: model name @ weights sha256)")
    p.add_argument("--top", type=int, default=5, help="heads listed per map under 'moved most' (default 5)")
    p.add_argument("--poor-match", type=float, default=0.5, dest="poor_match",
                   help="similarity below which a matched head pair is reported as poor (default 0.5)")
    p.add_argument("--markdown", help="also write the diff as Markdown to this path")
    p.add_argument("--json", help="also write the diff as JSON to this path")
    p.add_argument("--fail-on-flip", action="store_true", dest="fail_on_flip",
                   help="exit 1 when any claim went from pass to fail (a CI gate)")
    p.set_defaults(func=cmd_diff)
    return p


def _fail(message: str) -> int:
    print(f"icltest diff: {message}", file=sys.stderr)
    return 2


def cmd_diff(args: argparse.Namespace) -> int:
    from icltest.diff import DiffInputError, diff_sides, load_side, render_markdown, render_text
    from icltest.report.files import write_atomic

    run_mode = bool(args.suite or args.models)
    if run_mode and args.inputs:
        return _fail(f"give either two report files or --suite with --models, not both; usage: {USAGE}")
    if run_mode and not (args.suite and args.models):
        return _fail(f"run mode needs both --suite S.yaml and --models A B; usage: {USAGE}")
    if not run_mode and len(args.inputs) != 2:
        return _fail(f"needs two inputs A and B, got {len(args.inputs)}; usage: {USAGE}")
    if args.patterns and not run_mode:
        return _fail("--patterns needs run mode (--suite S.yaml --models A B): it loads both models")
    labels = None
    if args.labels is not None:
        labels = tuple(x.strip() for x in args.labels.split(","))
        if len(labels) != 2 or not all(labels):
            return _fail(f"--labels needs two names separated by a comma, got {args.labels!r}")
    if args.top < 1:
        return _fail(f"--top must be at least 1, got {args.top}")
    try:
        if run_mode:
            if not Path(args.suite).exists():
                return _fail(f"--suite {args.suite}: no such file or folder")
            from icltest.diff.run import run_suite, suite_models

            named = suite_models(args.suite)
            if named:
                spec, model = named[0]
                more = f" (and {len(named) - 1} more spec file(s) with a model:)" if len(named) > 1 else ""
                return _fail(f"{spec} names model: {model}{more}; run mode needs a suite without model: (like "
                             "specs/*.yaml or suites/induction-2l.yaml), because a spec's own model wins over "
                             f"--icl-model and both runs would measure {model}; remove its model: line, or run "
                             "pytest with --icl-json on each model and diff the two reports")
            tmp = None if args.reports_dir else tempfile.TemporaryDirectory(prefix="icltest-diff-")
            out = Path(args.reports_dir or tmp.name)  # type: ignore[union-attr]
            out.mkdir(parents=True, exist_ok=True)
            try:
                paths = [run_suite(args.suite, m, out, args.pytest_args, tag=tag)
                         for m, tag in zip(args.models, ("A-", "B-"))]
                sides = [load_side(p) for p in paths]
            finally:
                if tmp is not None:
                    tmp.cleanup()
            if tmp is not None:  # the reports are gone: never print a path into the deleted folder
                for side, model in zip(sides, args.models):
                    side.path = f"pytest on {model}, temporary file (deleted; --reports-dir DIR keeps it)"
        else:
            sides = [load_side(p) for p in args.inputs]
        result = diff_sides(sides[0], sides[1], labels=labels, top=args.top, poor=args.poor_match)
        if args.patterns:
            result["patterns"] = _patterns(args)
    except DiffInputError as exc:
        return _fail(str(exc))
    text = render_text(result)
    print(text, end="")
    if args.markdown:
        write_atomic(Path(args.markdown), render_markdown(result))
        print(f"wrote {args.markdown}", file=sys.stderr)
    if args.json:
        write_atomic(Path(args.json), json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.fail_on_flip and result["claims"]["counts"]["pass->fail"]:
        n = result["claims"]["counts"]["pass->fail"]
        print(f"icltest diff: {n} claim item(s) went from pass to fail (--fail-on-flip)", file=sys.stderr)
        return 1
    return 0


def _patterns(args: argparse.Namespace) -> dict[str, Any]:
    from icltest.diff.inputs import DiffInputError
    from icltest.diff.run import pattern_matching
    from icltest.errors import IcltestError

    try:
        return pattern_matching(args.models[0], args.models[1], poor=args.poor_match)
    except IcltestError as exc:
        raise DiffInputError(f"--patterns: {str(exc).splitlines()[0]}") from None
