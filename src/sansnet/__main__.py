"""``python -m sansnet``: the same command line as the ``sansnet`` script."""

from .cli import main

raise SystemExit(main())
