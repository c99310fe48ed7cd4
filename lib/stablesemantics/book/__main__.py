"""``python -m stablesemantics.book``: the book runner's command line (see :mod:`stablesemantics.book.runner`)."""

import sys

from stablesemantics.book.runner import main

sys.exit(main())
