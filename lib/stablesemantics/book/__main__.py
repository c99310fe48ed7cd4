"""``python -m stablesemantics.book``: the book runner's command line (see :mod:`stablesemantics.book.runner`).

The same commands are ``stablesemantics book list | params | run | stage``.
"""

import sys

from stablesemantics.book.runner import main

sys.exit(main())
