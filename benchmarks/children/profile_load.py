"""cProfile of one `get_kernel` call in a fresh interpreter, torch already imported. Prints the top 30.

python profile_load.py REPO LOCKFILE
"""

import cProfile
import io
import pstats
import sys

import torch  # noqa: F401 - imported first, as every program that loads a kernel has it

from kernel_lock import get_kernel

profile = cProfile.Profile()
profile.enable()
get_kernel(sys.argv[1], lockfile=sys.argv[2])
profile.disable()
text = io.StringIO()
pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(30)
print(text.getvalue())
