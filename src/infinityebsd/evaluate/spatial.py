"""Former home of the spatial checks, kept so existing imports keep working.

Each job now has its own module: measuring maps (:mod:`.measure`), crop homogeneity
(:mod:`.homogeneity`), generation plans and seams (:mod:`.seams`), border grains
(:mod:`.border_grains`); reading a metrics JSON back is :func:`infinityebsd.metrics.read_metrics_json`.
New code imports from those.
"""

from ..metrics import read_metrics_json as table_from_metrics_json
from .border_grains import BORDER_METRICS, border_grains
from .homogeneity import compare_homogeneity, crop_boxes, homogeneity
from .measure import Measured, halves, measure, split_table, sub_table
from .seams import plan_beside, read_plan, seam_lines, seam_statistics

__all__ = [
    "BORDER_METRICS", "Measured", "border_grains", "compare_homogeneity", "crop_boxes", "halves", "homogeneity",
    "measure", "plan_beside", "read_plan", "seam_lines", "seam_statistics", "split_table", "sub_table",
    "table_from_metrics_json",
]
