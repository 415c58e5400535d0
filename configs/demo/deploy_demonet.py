_base_ = ['../deploy/int8_base.py']

onnx_config = dict(
    output_names=['logits'],
    input_shapes=dict(inputs=[-1, 3, 32, 32]),
    dynamic_axes=dict(inputs={0: 'batch'}, logits={0: 'batch'}),
)
quantization = dict(calib_batches=16, calib_method='mse')
verification = dict(num_batches=4, metric=True)
tensorrt = dict(profiles=[dict(inputs=[[1, 3, 32, 32], [8, 3, 32, 32], [64, 3, 32, 32]])])
