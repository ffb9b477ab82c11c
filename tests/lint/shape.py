#!/usr/bin/env python3
"""The shape src/ keeps (issue 15): no source file over 800 lines, no header over 300, no function over 80
lines, and no comparison of S3 operation names as strings outside the one place that parses them
(src/s3api/operation.cpp). Prints each breach with its place; exit status 1 if any.

  python3 tests/lint/shape.py [SRC_DIR]

Functions are found by brace matching (comments and literals skipped): a body is a `{` at namespace or
class level whose head ends like a signature (`)`, `) const`, `override`, `noexcept`, `-> T`, or a
constructor's initializer list). Lambdas count toward the function that holds them.
"""
import os
import re
import sys

MAX_SOURCE, MAX_HEADER, MAX_FUNCTION = 800, 300, 80
CONTROL = re.compile(r"^\s*(if|for|while|switch|catch|do|else)\b")


def strip(text):
    """The text with comments, string and character literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(text):
    """(name, first line, line count) of each function body at namespace or class level."""
    s = strip(text)
    found, stack, head_start = [], [], 0  # stack: kinds of open braces ("scope" or "body" or "other")
    for i, c in enumerate(s):
        if c in ";}":
            if c == "}" and stack:
                kind, start, name = stack.pop()
                if kind == "body":
                    first = s.count("\n", 0, start) + 1
                    last = s.count("\n", 0, i) + 1
                    found.append((name, first, last - first + 1))
            head_start = i + 1
        elif c == "{":
            head = s[head_start:i].strip()
            in_body = any(k == "body" for k, _, _ in stack)
            if in_body:
                stack.append(("other", i, ""))
            elif re.search(r"\b(namespace|class|struct|union|enum)\b[^()]*$", head) or head.startswith("extern"):
                stack.append(("scope", i, ""))
            elif (re.search(r"\)\s*(const|override|noexcept|final|mutable|\s)*$", head) or
                  re.search(r"\)\s*(const\s*)?->\s*[\w:<>,\s*&]+$", head) or
                  re.search(r"\)\s*:\s*[\w:]+[({]", head.replace("\n", " "))) and not CONTROL.match(head) \
                    and "=" not in head.split("(")[0]:
                m = re.search(r"([\w:~]+)\s*\(", head)
                stack.append(("body", head_start + len(s[head_start:i]) - len(s[head_start:i].lstrip()),
                              m.group(1) if m else "?"))
            else:
                stack.append(("other", i, ""))
            head_start = i + 1
    return found


def op_names(src):
    path = os.path.join(src, "s3api", "operation.cpp")
    if not os.path.exists(path):
        return set()
    text = open(path).read()
    names = set(re.findall(r'\.name\s*=\s*"([A-Za-z]+)"', text))  # the table's rows ({.name = "GetObject", ...})
    return names or {m for m in re.findall(r'"([A-Z][A-Za-z]+)"', text) if len(m) > 6}


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "src")
    src = os.path.abspath(src)
    ops = op_names(src)
    breaches = []
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith((".cpp", ".h")):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, os.path.dirname(src))
            text = open(path, encoding="utf-8").read()
            lines = text.count("\n")
            limit = MAX_HEADER if f.endswith(".h") else MAX_SOURCE
            if lines > limit:
                breaches.append("%s: %d lines (at most %d)" % (rel, lines, limit))
            for name, first, count in functions(text):
                if count > MAX_FUNCTION:
                    breaches.append("%s:%d: function %s is %d lines (at most %d)" % (rel, first, name, count, MAX_FUNCTION))
            if rel != os.path.join("src", "s3api", "operation.cpp"):
                for no, line in enumerate(text.splitlines(), 1):
                    if ".name()" in line:  # an XML element's name (<CompleteMultipartUpload>), not an operation
                        continue
                    for m in re.finditer(r'(==|!=)\s*"([A-Za-z]+)"|"([A-Za-z]+)"\s*(==|!=)', line):
                        name = m.group(2) or m.group(3)
                        if name in ops:
                            breaches.append("%s:%d: operation name compared as a string: %s" % (rel, no, line.strip()))
    for b in breaches:
        print(b)
    print("shape: %d breach%s" % (len(breaches), "" if len(breaches) == 1 else "es"))
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
