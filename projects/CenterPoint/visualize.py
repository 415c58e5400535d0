"""Bird's-eye-view PNGs of a lidar sweep with ground-truth and predicted boxes."""
from typing import Optional, Sequence

import numpy as np

from quantization.fileio import atomic_output


def box_corners_bev(boxes: np.ndarray) -> np.ndarray:
    """(M, 4, 2) BEV corners of ``[x, y, z, l, w, h, yaw, ...]`` boxes."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, boxes.shape[-1] if len(boxes) else 7)
    half_l, half_w = boxes[:, 3:4] / 2, boxes[:, 4:5] / 2
    local = np.stack([
        np.concatenate([half_l, half_l, -half_l, -half_l], 1),
        np.concatenate([half_w, -half_w, -half_w, half_w], 1)
    ],
                     axis=-1)
    cos, sin = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin + boxes[:, 0:1]
    y = local[..., 0] * sin + local[..., 1] * cos + boxes[:, 1:2]
    return np.stack([x, y], axis=-1)


def plot_bev(path: str,
             points: np.ndarray,
             gt_boxes: np.ndarray,
             predictions: Optional[Sequence[tuple]] = None,
             extent: float = 40.0,
             title: str = ''):
    """Save a BEV PNG: points (grey), ground truth (green) and each ``(boxes, colour, label)``
    prediction set; written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 8))
    inside = (np.abs(points[:, 0]) < extent) & (np.abs(points[:, 1]) < extent)
    ax.scatter(points[inside, 0], points[inside, 1], s=1.0, c='0.45', linewidths=0)
    sets = [(gt_boxes, 'tab:green', 'ground truth')] + list(predictions or [])
    for boxes, colour, label in sets:
        for i, corners in enumerate(box_corners_bev(np.asarray(boxes))):
            closed = np.vstack([corners, corners[:1]])
            ax.plot(
                closed[:, 0],
                closed[:, 1],
                color=colour,
                linewidth=1.0,
                label=label if i == 0 else None)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect('equal')
    ax.set_xlabel('x (m)')
    ax.set_ylabel('y (m)')
    ax.set_title(title)
    ax.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    try:
        with atomic_output(path, '.png') as tmp_path:
            fig.savefig(tmp_path, dpi=100)
    finally:
        plt.close(fig)
