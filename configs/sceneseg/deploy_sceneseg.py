# SceneSeg: float ONNX, Q/DQ ONNX for TensorRT and for ONNX Runtime, verified against PyTorch
# (logits and mIoU), TensorRT engine where installed. Input 1 x 3 x H x W normalised RGB; the
# context grid fixes H x W (96 x 192 for the small synthetic model, 320 x 640 upstream: set
# onnx_config.input_shapes.inputs accordingly).
_base_ = ['../deploy/int8_base.py']
custom_imports = dict(
    imports=['quantization', 'deployment', 'projects.SceneSeg'], allow_failed_imports=False)

onnx_config = dict(
    output_names=['logits'],
    input_shapes=dict(inputs=[-1, 3, -1, -1]),
    dynamic_axes=dict(inputs={0: 'batch'}, logits={0: 'batch'}),
)
quantization = dict(recipe=dict(type='SceneSegRecipe'), calib_batches=16,
                    calib_method='entropy')
verification = dict(num_batches=100, metric=True)
