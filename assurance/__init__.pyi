# Types of the names assurance/__init__.py imports on first use (PEP 562).
from .api import evaluate as evaluate
from .api import run as run
from .evidence.store import Store as Store
from .evidence.store import StoreError as StoreError
from .evidence.verify import VerifyReport as VerifyReport
from .evidence.verify import verify_run as verify_run
from .pipeline import RunResult as RunResult
from .plan import Plan as Plan
from .plan import PlanError as PlanError
from .plan import load_plan as load_plan

__version__: str
__all__: list[str]
