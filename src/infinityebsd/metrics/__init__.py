"""The eight grain metrics, their distributions and the conditioning tensor."""

from .histograms import (
    AXIS_POINTS, BIN_RULES, CONDITIONING_SHAPE, METRIC_AXES, axis_values, conditioning_tensor, distributions,
    distributions_from_tensor, edge_corrected_distributions, histogram, metric_axes, miles_lantuejoul_factor,
    tensor_from_distributions,
)
from .table import (
    METRIC_NAMES, GrainTable, compute_metrics, euler_region_deg, grain_table, metrics_document, metrics_of,
    read_metrics_json,
)

__all__ = [
    "AXIS_POINTS", "BIN_RULES", "CONDITIONING_SHAPE", "METRIC_AXES", "METRIC_NAMES", "GrainTable", "axis_values",
    "compute_metrics", "conditioning_tensor", "distributions", "distributions_from_tensor", "edge_corrected_distributions", "miles_lantuejoul_factor",
    "euler_region_deg", "grain_table", "metrics_document", "histogram", "metric_axes", "metrics_of", "read_metrics_json",
    "tensor_from_distributions",
]
