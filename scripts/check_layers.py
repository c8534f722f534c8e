#!/usr/bin/env python3
"""pml's layering, checked by the build: ops <- models <- planner <- runtime <- tools.

A source file of a layer may include the public header of its own layer or of a layer to its
left ("planner/planner.h" from runtime/), its own layer's private headers by their bare names,
and system headers; never a layer to its right, never a path with "../". (Another layer's
private header already fails to compile: only public headers are on the include path.)
Usage: check_layers.py SOURCE_ROOT STAMP"""
import os
import re
import sys

LAYERS = ["ops", "models", "planner", "runtime", "tools"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main():
    root, stamp = sys.argv[1], sys.argv[2]
    bad = []
    for rank, layer in enumerate(LAYERS):
        folder = os.path.join(root, layer)
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for inc in INCLUDE.findall(text):
                where = f"{layer}/{name}: #include \"{inc}\""
                if ".." in inc.split("/"):
                    bad.append(f"{where}: a relative path out of the folder")
                    continue
                if "/" not in inc:
                    if not os.path.exists(os.path.join(folder, inc)):
                        bad.append(f"{where}: not a header of {layer}/")
                    continue
                top = inc.split("/")[0]
                if top not in LAYERS:
                    bad.append(f"{where}: not a pml layer's header")
                elif LAYERS.index(top) > rank:
                    bad.append(f"{where}: {top}/ is to the right of {layer}/")
                elif top != layer and inc != f"{top}/{top}.h":
                    bad.append(f"{where}: a private header of {top}/")
    if bad:
        sys.stderr.write("layering: " + "\n layering: ".join(bad) + "\n")
        return 1
    with open(stamp, "w") as f:
        f.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
