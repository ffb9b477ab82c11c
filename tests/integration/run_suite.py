#!/usr/bin/env python3
"""Runs one suite (DIR/test_<suite>.py; DIR defaults to tests/integration) against a built granary.
   run_suite.py SUITE --granary PATH --aws PATH [--source-dir DIR] [--dir DIR]"""
import argparse
import os
import sys
import unittest

ap = argparse.ArgumentParser()
ap.add_argument("suite")
ap.add_argument("--granary", required=True)
ap.add_argument("--aws", required=True)
ap.add_argument("--source-dir", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
ap.add_argument("--dir", default=os.path.dirname(os.path.abspath(__file__)),
                help="directory of the test_<suite>.py files (e.g. tests/hostile)")
args = ap.parse_args()
os.environ["GRANARY_BIN"] = args.granary
os.environ["GRANARY_AWS"] = args.aws
os.environ["GRANARY_SOURCE_DIR"] = args.source_dir
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.abspath(args.dir))

import boto3  # noqa: E402

print("suite %s: python %s, boto3 %s, aws %s" % (args.suite, sys.version.split()[0], boto3.__version__, args.aws),
      flush=True)
suite = unittest.defaultTestLoader.loadTestsFromName("test_" + args.suite)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors)
# A test with failing subtests reports each of them: count the tests.
failed_tests = len({getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors})
import harness  # noqa: E402
if failed:
    for g in harness.STARTED:
        tail = g.log_text().splitlines()[-40:]
        print("---- granary on port %d: last %d log lines (%s)" % (g.port, len(tail), g.log))
        print("\n".join(tail))
else:  # the logs and config files of a suite that passed are of no more use
    for g in harness.STARTED:
        for path in (g.log, getattr(g, "config", None)):
            if path and os.path.exists(path):
                os.unlink(path)
print("%d passed, %d failed, %d skipped" % (result.testsRun - failed_tests - len(result.skipped), failed_tests,
                                            len(result.skipped)))
sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
