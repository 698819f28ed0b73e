"""``python -m airflow_provider_omics.testing.emulator``: the emulator's command line, by the name that the
README, the demo, :mod:`.deployment` and running processes use; the code is in :mod:`.cli`.

Nothing imports this module: ``-m`` runs it as ``__main__``, which is only warning-free for a module that the
package has not imported already.
"""

from __future__ import annotations

import sys

from airflow_provider_omics.testing.cli import main

if __name__ == "__main__":
    sys.exit(main())
