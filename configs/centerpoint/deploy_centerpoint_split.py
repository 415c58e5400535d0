# CenterPoint deployed as AWML does: the PFN as one graph (decorated pillars -> pillar features)
# and backbone + neck + head as another (BEV canvas -> head maps), float and Q/DQ; voxelization,
# decoration, scatter and box decoding stay in Python between them. The verification runs both
# graphs in ONNX Runtime and scores the boxes with the model config's val_evaluator (mAP).
_base_ = ['../deploy/int8_base.py']
custom_imports = dict(
    imports=['quantization', 'deployment', 'projects.CenterPoint'], allow_failed_imports=False)

exporter = dict(type='CenterPointSplitExporter')
onnx_config = dict(input_shapes=dict(decorated_pillars=[-1, -1, 10], bev_canvas=[-1, -1, -1, -1]), )
# Used for a float checkpoint; a checkpoint from `centerpoint_quantization.py ptq|qat` brings its
# own recipe and amax.
quantization = dict(recipe=dict(type='CenterPointRecipe'), calib_batches=16, calib_method='mse')
verification = dict(num_batches=100, metric=True)  # the whole validation set of the demo data
# TensorRT optimisation profiles of the dynamic pillar count and batch (the small config: 16
# points per pillar, 32 PFN channels, 160 x 160 canvas; change them with the model config)
tensorrt = dict(
    profiles=dict(
        _delete_=True,
        pts_voxel_encoder=[
            dict(decorated_pillars=[[1000, 16, 10], [10000, 16, 10], [20000, 16, 10]])
        ],
        pts_backbone_neck_head=[
            dict(bev_canvas=[[1, 32, 160, 160], [4, 32, 160, 160], [8, 32, 160, 160]])
        ]))
