"""``python -m oicsr_lab`` runs the ``oicsr-lab`` command."""

import sys

from .cli import main

sys.exit(main())
