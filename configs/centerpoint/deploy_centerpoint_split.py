# CenterPoint deployed as AWML does: the PFN as one graph (decorated pillars -> pillar features)
# and backbone + neck + head as another (BEV canvas -> head maps), float and Q/DQ; voxelization,
# decoration, scatter and box decoding stay in Python between them. The verification runs both
# graphs in ONNX Runtime and scores the boxes with the model config's val_evaluator (mAP).
_base_ = ['../deploy/int8_base.py']
custom_imports = dict(
    imports=['quantization', 'deployment', 'projects.CenterPoint.deploy'],
    allow_failed_imports=False)

# autoware_package: also write work_dir/autoware/ with the tensorrt-placement graphs under the
# file and tensor names Autoware's autoware_lidar_centerpoint node reads, and its
# centerpoint_ml_package.param.yaml (projects/CenterPoint/deploy/autoware.py).
exporter = dict(type='CenterPointSplitExporter', autoware_package=True)
# The graph input shapes (decorated pillars: points per pillar x point features after
# decoration; BEV canvas: PFN channels x height x width) and the TensorRT profiles (1 to the
# test-time pillar limit, batch 1 to tensorrt.max_batch_size) come from the model config. Set
# onnx_config.input_shapes or tensorrt.profiles (per graph) here to override them.
onnx_config = dict(input_shapes=dict(_delete_=True))
# Used for a float checkpoint; a checkpoint from `centerpoint_quantization.py ptq|qat` brings its
# own recipe and amax.
quantization = dict(recipe=dict(type='CenterPointRecipe'), calib_batches=16, calib_method='mse')
verification = dict(num_batches=100, metric=True)  # the whole validation set of the demo data
tensorrt = dict(profiles=dict(_delete_=True), max_batch_size=4)
