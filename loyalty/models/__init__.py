from .events import OrderEvent
from .ledger import PointsEntry
from .members import Member
from .programs import Program
from .purchases import Purchase

__all__ = ["Member", "OrderEvent", "PointsEntry", "Program", "Purchase"]
