"""Orientation maths: quaternions, cubic symmetry, disorientation, IPF colours."""

from .ipf import ipf_colors, ipf_key_image, sample_direction_in_crystal, to_standard_triangle
from .quaternion import (
    axis_angle_to_quat, euler_to_quat, qconj, qmul, qnormalize, quat_to_euler, random_quat,
    rotate_vector, rotation_angle,
)
from .symmetry import (
    BRANDON_SIGMA3_DEG, CUBIC_SYMMETRY, MAX_CUBIC_DISORIENTATION_DEG, SIGMA3, cubic_min_angle,
    disorientation_angle, is_sigma3, mackenzie_density, mean_orientation, sigma3_deviation,
    to_fundamental_zone,
)

__all__ = [
    "axis_angle_to_quat", "euler_to_quat", "qconj", "qmul", "qnormalize", "quat_to_euler",
    "random_quat", "rotate_vector", "rotation_angle", "BRANDON_SIGMA3_DEG", "CUBIC_SYMMETRY",
    "MAX_CUBIC_DISORIENTATION_DEG", "SIGMA3", "cubic_min_angle", "disorientation_angle", "is_sigma3",
    "mackenzie_density", "mean_orientation", "sigma3_deviation", "to_fundamental_zone", "ipf_colors",
    "ipf_key_image", "sample_direction_in_crystal", "to_standard_triangle",
]
