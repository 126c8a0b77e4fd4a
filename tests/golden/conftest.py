"""Golden scenarios: hand-derived expectations; builders live in ``tests/golden/builders.py``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
