"""``python -m tapegrad train ...``: the same as the ``tapegrad`` console script."""
import sys

from .cli import main

sys.exit(main())
