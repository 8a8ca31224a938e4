"""python -m devstack run | clean-data"""

import sys

USAGE = "usage: python -m devstack run | clean-data"

command = sys.argv[1] if len(sys.argv) == 2 else ""
if command == "run":
    from devstack.run import main

    sys.exit(main())
elif command == "clean-data":
    # Standard library only: this runs before anything is installed.
    import shutil

    from devstack.locations import DATA, forget

    for path in forget(DATA / "postgres"):
        print(f"removed {path}")
    if DATA.exists():
        shutil.rmtree(DATA)
        print(f"removed {DATA}")
    sys.exit(0)
print(USAGE, file=sys.stderr)
sys.exit(2)
