"""mmdet3d dataset for the synthetic lidar scenes (and any v2 info file laid out the same way)."""
import numpy as np
from mmdet3d.datasets import Det3DDataset
from mmdet3d.registry import DATASETS
from mmdet3d.structures import LiDARInstance3DBoxes

from .synthetic_lidar import CLASSES


@DATASETS.register_module()
class SyntheticLidarDataset(Det3DDataset):
    """Reads ``infos_<split>.pkl`` (mmdet3d v2 info layout) and ``points/*.bin``.

    Instances hold gravity-centre boxes ``[x, y, z, l, w, h, yaw]``, a 2-D velocity and
    ``bbox_3d_isvalid`` (the box has lidar points); boxes become
    ``LiDARInstance3DBoxes`` of 9 values (box + velocity) with mmdet3d's bottom-centre origin,
    as nuScenes boxes do. Invalid boxes are dropped from training targets.

    ``metainfo=dict(classes=[...])`` may name any classes (a 10-class nuScenes head): labels map
    to their place in that list, objects of classes it leaves out are dropped, and classes the
    files hold no objects of are simply absent.
    """

    METAINFO = {'classes': CLASSES}

    def __init__(self, data_root: str, ann_file: str, pipeline=(), data_prefix=None,
                 metainfo=None, **kwargs):
        wanted = tuple((metainfo or {}).get('classes') or ())
        # Det3DDataset maps the file's labels (indices into METAINFO) by name into `classes`;
        # names the files never use extend the known list, so every requested name has a place.
        self.METAINFO = {'classes': CLASSES + tuple(c for c in wanted if c not in CLASSES)}
        super().__init__(
            metainfo=metainfo,
            data_root=data_root,
            ann_file=ann_file,
            pipeline=list(pipeline),
            data_prefix=data_prefix or dict(pts='points'),
            modality=dict(use_lidar=True, use_camera=False),
            **kwargs)

    def parse_ann_info(self, info: dict) -> dict:
        ann_info = super().parse_ann_info(info)
        if ann_info is None:
            boxes = np.zeros((0, 9), np.float32)
            labels = np.zeros(0, np.int64)
        else:
            valid = np.asarray(ann_info['bbox_3d_isvalid'], bool)
            boxes = np.concatenate([ann_info['gt_bboxes_3d'], ann_info['velocities']], axis=-1)
            boxes, labels = boxes[valid], ann_info['gt_labels_3d'][valid]
        return {
            'gt_bboxes_3d': LiDARInstance3DBoxes(boxes, box_dim=9, origin=(0.5, 0.5, 0.5)),
            'gt_labels_3d': labels,
        }
